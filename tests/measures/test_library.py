"""The instrument format: what loads, how it scores, and what is refused, with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from concord.measures.library import InstrumentError, load_file, load_library, parse_instrument
from concord.measures.scoring import score_response, validate_answers

FILES = Path(__file__).parent / "files"


@pytest.fixture(scope="module")
def rules():
    return load_file(FILES / "rules.yaml")


@pytest.fixture(scope="module")
def licensed():
    return load_file(FILES / "clinic-licensed.yaml")


class TestALicensedClinicsOwnFile:
    def test_it_loads_and_scores_with_its_reverse_item(self, licensed):
        all_no = {str(i): 0 for i in range(1, 11)}
        scored = score_response(licensed, all_no)
        # Item 3 is reverse-scored: "no" counts 1.
        assert scored.value("total") == 1 and scored.scores["total"].band == "low"
        all_yes = {str(i): 1 for i in range(1, 11)}
        assert score_response(licensed, all_yes).value("total") == 9

    def test_it_is_refused_when_incomplete_because_its_rule_says_so(self, licensed):
        partial = {str(i): 1 for i in range(1, 10)}
        result = score_response(licensed, partial).scores["total"]
        assert result.value is None and result.missing == ("10",)
        assert "not scored with missing answers" in result.reason

    def test_its_positive_flag(self, licensed):
        answers = {str(i): 0 for i in range(1, 11)} | {"1": 1, "2": 1}
        assert [f.id for f in score_response(licensed, answers).flags] == ["positive"]


class TestScoring:
    def test_sum_band_and_multiplied_score(self, rules):
        scored = score_response(rules, {"a": 1, "b": 2, "c": 0, "d": 4})
        assert scored.value("total") == 7 and scored.scores["total"].band == "low"
        assert scored.value("scaled") == 12

    def test_band_edges(self, rules):
        assert (
            score_response(rules, {"a": 4, "b": 2, "c": 2, "d": 0}).scores["total"].band == "high"
        )  # 8 is the first value of "high"

    def test_prorating_within_the_limit(self, rules):
        result = score_response(rules, {"a": 3, "b": 1, "d": 2}).scores["total"]
        # (3 + 1 + 2) * 4 / 3 = 8
        assert result.value == 8 and result.prorated and result.missing == ("c",)

    def test_prorating_rounds_half_up(self, rules):
        result = score_response(rules, {"a": 1, "b": 0, "d": 4}).scores["total"]
        assert result.value == 7  # 5 * 4 / 3 = 6.67

    def test_too_many_missing_is_incomplete_with_the_reason(self, rules):
        result = score_response(rules, {"a": 1, "b": 1}).scores["total"]
        assert result.value is None
        assert result.reason == ("2 of 4 questions unanswered; the scoring rule allows at most 1")

    def test_a_follow_up_question_counts_only_when_it_applies(self, rules):
        quiet = score_response(rules, {"a": 0, "b": 0, "c": 0, "d": 0, "follow": 4})
        assert "follow" not in quiet.asked and quiet.critical == ()
        loud = score_response(rules, {"a": 3, "b": 0, "c": 0, "d": 0, "follow": 1})
        assert "follow" in loud.asked
        assert [(f.id, f.severity) for f in loud.critical] == [("danger", "acute")]

    def test_an_unanswered_follow_up_is_reported_but_does_not_block_scores(self, rules):
        scored = score_response(rules, {"a": 3, "b": 0, "c": 0, "d": 0})
        assert scored.unanswered == ("follow",) and scored.value("total") == 3

    def test_optional_unscored_items_are_never_missing(self, rules):
        assert score_response(rules, {"a": 0, "b": 0, "c": 0, "d": 0}).unanswered == ()

    @pytest.mark.parametrize(
        ("sex", "total", "expected"),
        [
            ("female", 3, [("women", None)]),
            ("female", 2, []),
            ("male", 3, []),
            ("male", 4, [("men", None)]),
            (None, 3, [("women", "female")]),
            ("unknown", 4, [("women", "female"), ("men", "male")]),
        ],
    )
    def test_sex_specific_thresholds(self, rules, sex, total, expected):
        answers = {"a": total, "b": 0, "c": 0, "d": 0}
        flags = [
            (f.id, f.only_if_sex)
            for f in score_response(rules, answers, sex).flags
            if f.id in ("women", "men")
        ]
        assert flags == expected

    def test_cluster_counting(self, rules):
        holds = {"a": 2, "b": 0, "c": 2, "d": 2}
        fails = {"a": 2, "b": 0, "c": 2, "d": 0}
        assert "clusters" in [f.id for f in score_response(rules, holds).flags]
        assert "clusters" not in [f.id for f in score_response(rules, fails).flags]

    def test_all_items_at_the_top(self, rules):
        assert "top" in [f.id for f in score_response(rules, {"a": 4, "b": 4, "c": 4}).flags]
        assert "top" not in [f.id for f in score_response(rules, {"a": 4, "b": 4, "c": 3}).flags]

    def test_score_rules_do_not_hold_on_an_incomplete_score(self, rules):
        flags = score_response(rules, {"a": 4, "b": 4}, "male").flags
        assert "men" not in [f.id for f in flags]


class TestAnswerValidation:
    def test_answers_out_of_range_unknown_or_wrong_type_are_named(self, rules):
        problems = validate_answers(rules, {"a": 9, "zz": 1, "b": "2", "d": 1, "c": True})
        assert problems == {
            "a": "9 is not an answer to this question; allowed: 0, 1, 2, 3, 4",
            "zz": "is not a question of RULES-TEST",
            "b": "must be a whole number, one of 0, 1, 2, 3, 4",
            "d": "1 is not an answer to this question; allowed: 0, 2, 4",
            "c": "must be a whole number, one of 0, 1, 2, 3, 4",
        }


def broken(tmp_path, mutate):
    data = yaml.safe_load((FILES / "rules.yaml").read_text())
    mutate(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


class TestRefusals:
    @pytest.mark.parametrize(
        ("mutate", "problem"),
        [
            (lambda d: d.update(kind="decision_aid"), "kind must be 'instrument'"),
            (lambda d: d.update(code="has spaces"), "code must be"),
            (lambda d: d["items"][0]["text"].pop("es"), "item a.text has no text in: es"),
            (
                lambda d: d["answer_sets"]["zero_to_four"][0]["text"].pop("es"),
                "answer set zero_to_four[0].text has no text in: es",
            ),
            (lambda d: d["items"].append(dict(d["items"][0])), "item ids must be unique"),
            (lambda d: d["items"][0].update(answers="nope"), "answer set that does not exist"),
            (lambda d: d["scores"][0].update(max=20), "says 0-20 but its items add up to 0-16"),
            (lambda d: d["scores"][0]["bands"][1].update(min=9), "gap between bands low and high"),
            (lambda d: d["scores"][0]["bands"][1].update(min=7), "bands low and high overlap"),
            (lambda d: d["scores"][0]["bands"][1].update(max=15), "bands must cover 0-16"),
            (lambda d: d["scores"][0]["missing"].pop("source"), "needs a source for its rule"),
            (
                lambda d: d["scores"][0]["missing"].update(max_missing=4),
                "prorating needs max_missing between 1 and 3",
            ),
            (lambda d: d["scores"][0]["items"].append("extra"), "marked scored: false"),
            (lambda d: d["flags"][4].pop("severity"), "needs severity: urgent or acute"),
            (
                lambda d: d["flags"][0].update(rule={"item": "nope", "at_least": 1}),
                "names an item that does not exist: nope",
            ),
            (lambda d: d["flags"][0].update(rule={"item": "a"}), "needs exactly one of at_least"),
            (lambda d: d["flags"][0].update(rule={"magic": 1}), "is not a rule this version"),
            (lambda d: d["flags"][0].pop("source"), "needs a source"),
            (lambda d: d.pop("licence"), "licence is required"),
            (lambda d: d.pop("category"), "category is required: one of mental_health"),
            (lambda d: d.update(category="alcohol"), "category alcohol is not one of"),
            (lambda d: d.update(category="general"), "category general is not one of"),
            (
                lambda d: d["targets"].update(remission={"score": "total", "source": "x"}),
                "targets.remission needs below (and nothing else)",
            ),
            (
                lambda d: d["targets"].update(cure={"score": "total", "below": 1, "source": "x"}),
                "only remission, response, improvement targets are understood",
            ),
        ],
    )
    def test_a_broken_file_is_refused_naming_the_file_and_problem(self, tmp_path, mutate, problem):
        path = broken(tmp_path, mutate)
        with pytest.raises(InstrumentError) as exc:
            load_file(path)
        assert exc.value.path == str(path)
        assert problem in exc.value.problem, exc.value.problem

    def test_not_yaml(self, tmp_path):
        path = tmp_path / "bad.yaml"
        path.write_text("kind: instrument\n  - nonsense: [")
        with pytest.raises(InstrumentError) as exc:
            load_file(path)
        assert "is not valid YAML at line" in exc.value.problem

    def test_two_files_with_one_code_are_refused(self, tmp_path):
        copy = tmp_path / "copy.yaml"
        copy.write_text((FILES / "rules.yaml").read_text())
        with pytest.raises(InstrumentError) as exc:
            load_library([FILES / "rules.yaml", copy])
        assert "code RULES-TEST is already used by" in exc.value.problem

    def test_parse_accepts_a_mapping_only(self):
        with pytest.raises(InstrumentError):
            parse_instrument(Path("x.yaml"), ["a list"])


def test_each_built_in_instrument_names_the_category_of_what_it_asks():
    from concord.categories import DataCategory as C
    from concord.measures.library import BUILT_IN, files_in, load_library

    found = {code: i.category for code, i in load_library(files_in([BUILT_IN])).instruments.items()}
    assert found == {
        "AHC-HRSN": C.social_needs,
        "ASQ": C.safety,
        "AUDIT": C.substance_use,
        "AUDIT-C": C.substance_use,
        "CollaboRATE": C.decisions,
        "GAD-2": C.mental_health,
        "GAD-7": C.mental_health,
        "PCL-5": C.mental_health,
        "PHQ-2": C.mental_health,
        "PHQ-9": C.mental_health,
        "TAPS-1": C.substance_use,
        "WHO-5": C.mental_health,
    }

"""Every shipped instrument, scored at its edges: minimum, maximum, each band boundary, missing
answers, and each flag at its threshold and just below it. Each test names its source (the
same one the instrument file cites; docs/clinical-sources.md lists them all)."""

from __future__ import annotations

import pytest

from concord.measures.library import library
from concord.measures.scoring import score_response


def instrument(code):
    found = library().get(code)
    assert found is not None, code
    return found


def answers_for(code, total, score_id=None, exclude=()):
    """Answers that add up to `total` on the score, filling items in order."""
    inst = instrument(code)
    score = inst.score(score_id) if score_id else inst.main_score
    remaining = total / score.multiply
    answers = {}
    for item_id in score.items:
        if item_id in exclude:
            continue
        item = inst.item(item_id)
        for value in sorted(item.values, reverse=True):
            if value <= remaining:
                answers[item_id] = value
                remaining -= value
                break
    assert remaining == 0, f"cannot reach {total} on {code}"
    return answers


def flags(code, answers, sex=None):
    return {f.id for f in score_response(instrument(code), answers, sex).flags}


SCORED = [i.code for i in library().all() if i.scores]


@pytest.mark.parametrize("code", SCORED)
def test_minimum_and_maximum(code):
    inst = instrument(code)
    for score in inst.scores:
        low = {i: inst.item(i).min_value for i in score.items}
        high = {i: inst.item(i).max_value for i in score.items}
        assert score_response(inst, low).value(score.id) == score.min
        assert score_response(inst, high).value(score.id) == score.max


@pytest.mark.parametrize("code", SCORED)
def test_every_band_boundary(code):
    inst = instrument(code)
    for score in inst.scores:
        for band in score.bands:
            for edge in (band.min, band.max):
                result = score_response(inst, answers_for(code, edge, score.id)).scores[score.id]
                assert (result.value, result.band) == (edge, band.code)


@pytest.mark.parametrize("code", SCORED)
def test_a_missing_answer_follows_the_files_rule(code):
    """Every shipped instrument's source gives no prorating rule: one unanswered question
    leaves the score incomplete, with the reason (see each file's missing.source)."""
    inst = instrument(code)
    score = inst.main_score
    # Every other question at its lowest answer (0 on most; 1 on the AHC HRSN's safety).
    partial = {i: inst.item(i).min_value for i in score.items[:-1]}
    result = score_response(inst, partial).scores[score.id]
    assert score.missing.rule == "incomplete"
    assert result.value is None and result.missing == (score.items[-1],)
    assert "not scored with missing answers" in result.reason


class TestPHQ9:
    """Kroenke, Spitzer & Williams 2001; LOINC 44249-1 / 44261-6; Concord's item 9 rule."""

    def test_bands(self):
        cases = {
            4: "minimal",
            5: "mild",
            9: "mild",
            10: "moderate",
            14: "moderate",
            15: "moderately-severe",
            19: "moderately-severe",
            20: "severe",
            27: "severe",
        }
        for total, band in cases.items():
            assert (
                score_response(instrument("PHQ-9"), answers_for("PHQ-9", total))
                .scores["total"]
                .band
                == band
            )

    def test_item_9_above_zero_is_urgent(self):
        base = {str(i): 0 for i in range(1, 9)}
        assert flags("PHQ-9", base | {"9": 0}) == set()
        assert flags("PHQ-9", base | {"9": 1}) == {"self-harm-thoughts"}
        result = score_response(instrument("PHQ-9"), base | {"9": 3})
        assert [(f.kind, f.severity) for f in result.critical] == [("critical", "urgent")]

    def test_the_difficulty_item_is_asked_only_after_a_problem_and_never_scored(self):
        none = {str(i): 0 for i in range(1, 10)}
        assert "difficulty" not in score_response(instrument("PHQ-9"), none).asked
        some = none | {"1": 1, "difficulty": 3}
        result = score_response(instrument("PHQ-9"), some)
        assert "difficulty" in result.asked and result.value("total") == 1

    def test_the_difficulty_item_is_optional(self):
        some = {str(i): 0 for i in range(1, 10)} | {"1": 2}
        assert score_response(instrument("PHQ-9"), some).unanswered == ()


class TestScreens:
    def test_phq2_positive_at_3(self):
        """Kroenke, Spitzer & Williams 2003 (PMID 14583691): 3 is the optimal cutpoint."""
        assert flags("PHQ-2", {"1": 1, "2": 1}) == set()
        assert flags("PHQ-2", {"1": 2, "2": 1}) == {"positive-screen"}

    def test_gad2_positive_at_3(self):
        """Plummer et al. 2016 (doi:10.1016/j.genhosppsych.2015.11.005): cutoff 3."""
        assert flags("GAD-2", {"1": 1, "2": 1}) == set()
        assert flags("GAD-2", {"1": 0, "2": 3}) == {"positive-screen"}

    def test_gad7_further_evaluation_at_10(self):
        """Spitzer et al. 2006; PHQ/GAD-7 manual: 10 or greater."""
        assert flags("GAD-7", answers_for("GAD-7", 9)) == set()
        assert flags("GAD-7", answers_for("GAD-7", 10)) == {"further-evaluation"}

    @pytest.mark.parametrize(
        ("total", "sex", "expected"),
        [
            (3, "male", set()),
            (4, "male", {"positive-male"}),
            (2, "female", set()),
            (3, "female", {"positive-female"}),
        ],
    )
    def test_audit_c_sex_specific_thresholds(self, total, sex, expected):
        """LOINC 75626-2: 4 or more for men, 3 or more for women."""
        assert flags("AUDIT-C", answers_for("AUDIT-C", total), sex) == expected

    def test_audit_c_with_no_recorded_sex_shows_both_thresholds(self):
        result = score_response(instrument("AUDIT-C"), answers_for("AUDIT-C", 3), None)
        assert [(f.id, f.only_if_sex) for f in result.flags] == [("positive-female", "female")]

    def test_audit_hazardous_at_8_and_the_who_zones(self):
        """WHO AUDIT manual (Babor et al. 2001): 8 or more; zones I-IV."""
        assert flags("AUDIT", answers_for("AUDIT", 7)) == set()
        assert flags("AUDIT", answers_for("AUDIT", 8)) == {"hazardous-harmful"}

    def test_audit_questions_9_and_10_take_only_0_2_4(self):
        inst = instrument("AUDIT")
        assert inst.item("9").values == {0, 2, 4} and inst.item("10").values == {0, 2, 4}


class TestPCL5:
    """DSM-5 provisional diagnosis rule as scored by the National Center for PTSD: an item at
    2 or more is endorsed; 1 of B (1-5), 1 of C (6-7), 2 of D (8-14), 2 of E (15-20)."""

    def base(self):
        return {str(i): 0 for i in range(1, 21)}

    def test_the_rule_holds_with_exactly_the_minimum(self):
        answers = self.base() | {"1": 2, "6": 2, "8": 2, "9": 2, "15": 2, "16": 2}
        assert flags("PCL-5", answers) == {"provisional-ptsd"}

    @pytest.mark.parametrize("drop", ["1", "6", "9", "16"])
    def test_each_cluster_is_needed(self, drop):
        answers = self.base() | {"1": 2, "6": 2, "8": 2, "9": 2, "15": 2, "16": 2}
        answers[drop] = 0
        assert flags("PCL-5", answers) == set()

    def test_a_rating_of_1_does_not_count(self):
        answers = self.base() | {"1": 1, "6": 2, "8": 2, "9": 2, "15": 2, "16": 2}
        assert flags("PCL-5", answers) == set()

    def test_no_cut_point_on_the_total_is_invented(self):
        """NCPTSD gives a range (31-33), so the file sets no single cut-point."""
        assert [f.id for f in instrument("PCL-5").flags] == ["provisional-ptsd"]


class TestWHO5:
    """WHO-5 (1998): raw 0-25, percentage = raw x 4; raw below 13 suggests screening."""

    def test_raw_and_percentage(self):
        result = score_response(instrument("WHO-5"), {str(i): 3 for i in range(1, 6)})
        assert (result.value("raw"), result.value("percentage")) == (15, 60)

    def test_poor_wellbeing_below_13(self):
        assert flags("WHO-5", answers_for("WHO-5", 13, "raw")) == set()
        assert flags("WHO-5", answers_for("WHO-5", 12, "raw")) == {"poor-wellbeing"}


class TestASQ:
    """NIMH ASQ toolkit: yes to any of 1-4 is a positive screen (refusing to answer too);
    question 5 follows a positive screen, and yes to it is an acute positive."""

    def test_all_no_is_negative_and_question_5_is_not_asked(self):
        result = score_response(instrument("ASQ"), {"1": 0, "2": 0, "3": 0, "4": 0})
        assert result.flags == () and "5" not in result.asked

    @pytest.mark.parametrize("item", ["1", "2", "3", "4"])
    def test_yes_to_any_of_1_to_4_is_urgent(self, item):
        answers = {"1": 0, "2": 0, "3": 0, "4": 0, item: 1}
        result = score_response(instrument("ASQ"), answers | {"5": 0})
        assert [(f.id, f.severity) for f in result.flags] == [("positive-screen", "urgent")]

    def test_yes_to_question_5_is_acute(self):
        result = score_response(instrument("ASQ"), {"1": 1, "2": 0, "3": 0, "4": 0, "5": 1})
        assert ("acute-positive", "acute") in [(f.id, f.severity) for f in result.flags]

    def test_declining_to_answer_counts_as_positive(self):
        result = score_response(instrument("ASQ"), {"1": 0, "2": 0})
        assert [f.id for f in result.flags] == ["positive-screen"]


class TestCollaboRATE:
    def test_its_wording_is_not_shipped(self):
        """CC BY-NC-ND (glynelwyn.com FAQ): Concord ships the structure only."""
        inst = instrument("CollaboRATE")
        assert inst.placeholder and not inst.usable

    def test_the_top_score_needs_every_item_at_the_maximum(self):
        """glynelwyn.com scoring guidance: top score only when all three are at the top."""
        assert flags("CollaboRATE", {"1": 4, "2": 4, "3": 4}) == {"top-score"}
        assert flags("CollaboRATE", {"1": 4, "2": 4, "3": 3}) == set()


def test_every_shipped_instrument_cites_its_source_and_licence():
    for inst in library().all():
        assert inst.source.get("citation"), inst.code
        assert inst.licence.get("holder") and inst.licence.get("terms"), inst.code
        for score in inst.scores:
            assert score.missing.source, inst.code
        for flag in inst.flags:
            assert flag.source, inst.code

"""The AHC HRSN core questions, scored by the CMS rules at each boundary: each domain is
positive on an "underlined" answer, interpersonal safety on a sum of questions 7-10 above 10."""

from __future__ import annotations

import pytest

from concord.measures.library import library
from concord.measures.scoring import score_response, validate_answers

NEGATIVE = {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0, "6": 0, "7": 1, "8": 1, "9": 1, "10": 1}


@pytest.fixture(scope="module")
def ahc():
    return library().get("AHC-HRSN")


def flags(ahc, **changes):
    answers = {**NEGATIVE, **{k.lstrip("q"): v for k, v in changes.items()}}
    return {f.id for f in score_response(ahc, answers, None).flags}


def test_the_file_is_the_panel_and_a_social_needs_record(ahc):
    assert ahc.loinc_panel == "96777-8"
    assert ahc.category == "social_needs"
    assert [i.loinc for i in ahc.items] == [
        "71802-3", "96778-6", "88122-7", "88123-5", "93030-5", "96779-4",
        "95618-5", "95617-7", "95616-9", "95615-1",
    ]  # fmt: skip
    assert {f.domain for f in ahc.flags} == {
        "housing-instability", "food-insecurity", "transportation-insecurity",
        "utility-insecurity", "intimate-partner-violence",
    }  # fmt: skip


def test_all_negative_answers_flag_nothing(ahc):
    assert flags(ahc) == set()


@pytest.mark.parametrize(("value", "positive"), [(0, False), (1, True), (2, True)])
def test_housing_question_1(ahc, value, positive):
    assert ("housing-instability" in flags(ahc, q1=value)) is positive


@pytest.mark.parametrize("problem", [1, 2, 4, 8, 16, 32, 64, 1 + 64, 127])
def test_housing_question_2_any_problem_is_positive(ahc, problem):
    assert "housing-instability" in flags(ahc, q2=problem)


def test_housing_question_2_none_of_the_above_is_negative(ahc):
    assert "housing-instability" not in flags(ahc, q2=0)


@pytest.mark.parametrize("question", ["q3", "q4"])
@pytest.mark.parametrize(("value", "positive"), [(0, False), (1, True), (2, True)])
def test_food_questions(ahc, question, value, positive):
    assert ("food-insecurity" in flags(ahc, **{question: value})) is positive


@pytest.mark.parametrize(("value", "positive"), [(0, False), (1, True)])
def test_transportation(ahc, value, positive):
    assert ("transportation-insecurity" in flags(ahc, q5=value)) is positive


@pytest.mark.parametrize(("value", "positive"), [(0, False), (1, True), (2, True)])
def test_utilities(ahc, value, positive):
    assert ("utility-insecurity" in flags(ahc, q6=value)) is positive


@pytest.mark.parametrize(
    ("answers", "total", "positive"),
    [
        ((1, 1, 1, 1), 4, False),  # the lowest sum
        ((3, 3, 2, 2), 10, False),  # 10 is not above 10
        ((3, 3, 3, 2), 11, True),  # 11 is
        ((5, 5, 5, 5), 20, True),  # the highest sum
    ],
)
def test_interpersonal_safety_is_a_sum_above_10(ahc, answers, total, positive):
    given = {**NEGATIVE, **dict(zip(["7", "8", "9", "10"], answers, strict=True))}
    scored = score_response(ahc, given, None)
    assert scored.value("safety") == total
    assert ("interpersonal-safety" in {f.id for f in scored.flags}) is positive


def test_a_missing_safety_answer_leaves_no_safety_score_and_no_flag(ahc):
    given = {k: v for k, v in {**NEGATIVE, "7": 5, "8": 5, "9": 5}.items() if k != "10"}
    scored = score_response(ahc, given, None)
    assert scored.value("safety") is None
    assert "interpersonal-safety" not in {f.id for f in scored.flags}


def test_check_all_that_apply_allows_only_combinations_of_the_boxes(ahc):
    assert validate_answers(ahc, {"2": 1 + 2 + 64}) == {}
    assert validate_answers(ahc, {"2": 0}) == {}
    assert "2" in validate_answers(ahc, {"2": 128})
    assert ahc.item("2").chosen(1 + 64)[1].code == "LA32001-2"
    assert [a.code for a in ahc.item("2").chosen(0)] == ["LA9-3"]

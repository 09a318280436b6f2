"""TAPS-1 (NIDA TAPS Tool, Part 1), at each rule's edge. Sources (taps-1.yaml and
docs/clinical-sources.md): NIDA's TAPS page, "screens positive on TAPS-1 (i.e., reports other
than 'never')"; Gryczynski et al. 2017, the five answers never ... daily or almost daily;
PhenX 511601, a different alcohol question for men and for women (LOINC 88037-7, 5 or more
drinks; 75889-6, 4 or more). TAPS-2 is not shipped (its wording and scoring are unverified)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from concord.errors import InvalidInput
from concord.measures import service as measures
from concord.measures.library import InstrumentError, library, load_library
from concord.measures.models import MeasureResponse
from concord.measures.scoring import asked_items, score_response
from tests.conftest import commit
from tests.factories import acc_for, create_plan

PATIENT = "pat@patients.example.org"
NEVER = {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0}
SUBSTANCE_FLAGS = {"1": "tobacco-positive", "4": "drugs-positive", "5": "prescription-positive"}


def taps():
    found = library().get("TAPS-1")
    assert found is not None
    return found


def flags(answers, sex):
    return {(f.id, f.only_if_sex) for f in score_response(taps(), answers, sex).flags}


class TestTheFile:
    def test_it_is_the_four_substance_screen_with_two_alcohol_questions(self):
        inst = taps()
        assert inst.category == "substance_use"
        assert inst.scores == ()
        assert [(i.id, i.loinc, i.only_for_sex) for i in inst.items] == [
            ("1", "96842-0", None),
            ("2", "88037-7", "male"),
            ("3", "75889-6", "female"),
            ("4", "96843-8", None),
            ("5", "96844-6", None),
        ]
        assert inst.loinc_panel == "96841-2"

    def test_the_answers_are_never_to_daily_or_almost_daily(self):
        for item in taps().items:
            assert [(a.value, a.text["en"]) for a in item.answers] == [
                (0, "Never"),
                (1, "Less than monthly"),
                (2, "Monthly"),
                (3, "Weekly"),
                (4, "Daily or almost daily"),
            ]

    def test_no_spanish_is_claimed(self):
        assert taps().languages == ("en",)


class TestTheScreen:
    @pytest.mark.parametrize("sex", ["female", "male", None])
    def test_never_to_everything_is_negative(self, sex):
        assert flags(NEVER, sex) == set()

    @pytest.mark.parametrize("item", sorted(SUBSTANCE_FLAGS))
    @pytest.mark.parametrize("value", [1, 2, 3, 4])
    def test_any_answer_but_never_is_positive_for_that_substance(self, item, value):
        assert flags(NEVER | {item: value}, "female") == {(SUBSTANCE_FLAGS[item], None)}

    @pytest.mark.parametrize("value", [1, 4])
    def test_the_mens_alcohol_question_screens_men(self, value):
        answers = {"1": 0, "2": value, "4": 0, "5": 0}
        assert flags(answers, "male") == {("alcohol-positive-male", None)}
        assert flags(answers | {"2": 0}, "male") == set()

    @pytest.mark.parametrize("value", [1, 4])
    def test_the_womens_alcohol_question_screens_women(self, value):
        answers = {"1": 0, "3": value, "4": 0, "5": 0}
        assert flags(answers, "female") == {("alcohol-positive-female", None)}
        assert flags(answers | {"3": 0}, "female") == set()

    def test_an_answer_to_the_other_sexs_question_is_not_counted(self):
        # A man who also answered the women's question: it does not apply to him.
        assert flags({"1": 0, "2": 0, "3": 4, "4": 0, "5": 0}, "male") == set()
        assert flags({"1": 0, "2": 4, "3": 0, "4": 0, "5": 0}, "female") == set()

    def test_with_no_recorded_sex_each_alcohol_rule_is_shown_with_its_sex(self):
        assert flags(NEVER | {"2": 1}, None) == {("alcohol-positive-male", "male")}
        assert flags(NEVER | {"3": 1}, None) == {("alcohol-positive-female", "female")}

    def test_each_substance_is_flagged_on_its_own(self):
        everything = {"1": 4, "2": 4, "3": 4, "4": 4, "5": 4}
        assert {f for f, _ in flags(everything, "male")} == {
            "tobacco-positive",
            "alcohol-positive-male",
            "drugs-positive",
            "prescription-positive",
        }


class TestWhichQuestionsAreAsked:
    @pytest.mark.parametrize(
        "sex,asked",
        [("male", ["1", "2", "4", "5"]), ("female", ["1", "3", "4", "5"]), (None, list("12345"))],
    )
    def test_by_recorded_sex(self, sex, asked):
        assert [i.id for i in asked_items(taps(), {}, sex)] == asked
        # Patient.gender "other" or "unknown" is no recorded sex: both are asked.
        assert [i.id for i in asked_items(taps(), {}, sex or "unknown")] == asked

    def test_a_bare_sex_rule_names_female_or_male(self, tmp_path):
        good = tmp_path / "x.yaml"
        text = (
            "kind: instrument\ncode: X-1\ncategory: substance_use\nversion: '1'\n"
            "name: {en: X}\nlanguages: [en]\ninstructions: {en: X}\n"
            "source: {citation: X}\nlicence: {holder: X, terms: X}\n"
            "answer_sets: {yn: [{value: 0, text: {en: 'No'}}, {value: 1, text: {en: 'Yes'}}]}\n"
            "items:\n  - {id: '1', text: {en: A}, answers: yn, show_if: {sex: SEX}}\n"
            "scores: []\n"
        )
        good.write_text(text.replace("SEX", "female"))
        assert load_library([good]).instruments["X-1"].items[0].only_for_sex == "female"
        good.write_text(text.replace("SEX", "other"))
        with pytest.raises(InstrumentError, match="sex must be female or male"):
            load_library([good])


@pytest.fixture
def plan(session, people):
    plan = create_plan(session, people, activate=True)
    commit(session)
    return plan


def stored(session):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(MeasureResponse))


class TestRecording:
    def record(self, session, people, answers):
        access = acc_for(session, people.care_manager, people.patient)
        return measures.record_response(
            session,
            access=access,
            instrument_code="TAPS-1",
            submission=measures.Submission(answers=answers, mode=measures.Mode.in_person),
        )

    def test_a_man_answers_the_mens_alcohol_question_only(self, session, people, plan):
        people.patient.gender = "male"
        with pytest.raises(InvalidInput) as refused:
            self.record(session, people, {"1": 0, "3": 0, "4": 0, "5": 0})
        assert set(refused.value.errors) == {"answers.2"}
        assert stored(session) == 0
        done = self.record(session, people, {"1": 0, "2": 1, "4": 0, "5": 0})
        assert [f.id for f in done.scored.flags] == ["alcohol-positive-male"]

    def test_a_woman_answers_the_womens_alcohol_question_only(self, session, people, plan):
        people.patient.gender = "female"
        with pytest.raises(InvalidInput) as refused:
            self.record(session, people, {"1": 0, "2": 0, "4": 0, "5": 0})
        assert set(refused.value.errors) == {"answers.3"}
        self.record(session, people, {"1": 0, "3": 0, "4": 0, "5": 0})
        assert stored(session) == 1

    def test_with_no_recorded_sex_both_alcohol_questions_are_needed(self, session, people, plan):
        people.patient.gender = "unknown"
        with pytest.raises(InvalidInput) as refused:
            self.record(session, people, {"1": 0, "2": 0, "4": 0, "5": 0})
        assert set(refused.value.errors) == {"answers.3"}
        assert stored(session) == 0


class TestThePortal:
    def form(self, client, sign_in):
        token = sign_in(PATIENT)
        started = client.post(
            "/my/check-ins/start", data={"csrf_token": token, "instrument": "TAPS-1"}
        )
        assert started.status_code == 303, started.text
        return client.get(started.headers["location"]).text

    def test_a_woman_is_not_shown_the_mens_question(self, client, session, people, plan, sign_in):
        people.patient.gender = "female"
        commit(session)
        page = self.form(client, sign_in)
        assert "four or more drinks" in page and "five or more drinks" not in page
        assert "Your sex is not recorded" not in page

    def test_with_no_recorded_sex_both_are_shown_and_say_why(
        self, client, session, people, plan, sign_in
    ):
        people.patient.gender = "unknown"
        commit(session)
        page = self.form(client, sign_in)
        assert "four or more drinks" in page and "five or more drinks" in page
        assert page.count("Your sex is not recorded, so please answer it too.") == 2

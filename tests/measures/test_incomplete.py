"""An empty or partial check-in is never done: every path that records a response refuses
one with a required question unanswered (naming it, the suicide-risk question called out);
an incomplete response never satisfies a schedule; a skipped or declined risk question is
shown to the team as unanswered, never as a negative; FHIR says when it did not score.
And a patient who reads Spanish is never handed an English-only questionnaire."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from concord.clock import now
from concord.db import new_id
from concord.errors import InvalidInput
from concord.measures import service as measures
from concord.measures.library import library
from concord.measures.models import MeasureObservation, MeasureResponse, MeasureSchedule
from concord.safety.models import SafetyAlert
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for, create_plan
from tests.fhir.test_fhir_measures import ehr_response, post

PATIENT = "pat@patients.example.org"
CM = "cara@test.example.org"
GAD7 = [str(i) for i in range(1, 8)]


@pytest.fixture
def plan(session, people):
    plan = create_plan(session, people, activate=True)
    commit(session)
    return plan


def count(session, model, *where):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where))


def completed(session):
    return count(session, MeasureResponse, MeasureResponse.status == "completed")


def start(client, token, instrument):
    response = client.post(
        "/my/check-ins/start", data={"csrf_token": token, "instrument": instrument}
    )
    assert response.status_code == 303, response.text
    return response.headers["location"]


def due(session, people, code):
    access = acc_for(session, people.patient_user, people.patient)
    states = measures.check_ins(session, access=access)
    return next(c.state.status for c in states if c.instrument.code == code)


class TestTheRiskItems:
    def test_each_instrument_knows_its_suicide_risk_questions(self):
        assert library().get("PHQ-9").risk_items == ("9",)
        assert library().get("ASQ").risk_items == ("1", "2", "3", "4", "5")
        assert library().get("GAD-7").risk_items == ()

    def test_only_the_asq_screening_questions_may_be_declined(self):
        declinable = {
            (i.code, item.id) for i in library().all() for item in i.items if item.declinable
        }
        assert declinable == {("ASQ", "1"), ("ASQ", "2"), ("ASQ", "3"), ("ASQ", "4")}


class TestThePortal:
    def test_an_empty_gad7_is_refused_naming_every_question_and_the_schedule_stays_due(
        self, client, session, people, plan, sign_in
    ):
        token = sign_in(PATIENT)
        url = start(client, token, "GAD-7")
        sent = client.post(url, data={"csrf_token": token, "version": 1, "action": "submit"})
        assert sent.status_code == 422
        assert "(1, 2, 3, 4, 5, 6, 7)" in sent.text
        assert sent.context["errors"].keys() == {f"answers.{i}" for i in GAD7}
        assert completed(session) == 0
        assert due(session, people, "GAD-7") == "due"
        # And it can still be done.
        assert client.get(url).status_code == 200

    def test_item_9_skipped_is_refused_and_called_out(self, client, session, people, plan, sign_in):
        token = sign_in(PATIENT)
        url = start(client, token, "PHQ-9")
        answers = {f"a.{i}": "0" for i in range(1, 9)}
        sent = client.post(
            url, data={"csrf_token": token, "version": 1, "action": "submit", **answers}
        )
        assert sent.status_code == 422
        assert "including the question about suicide or self-harm (9)" in sent.text
        assert "suicide or self-harm" in str(sent.context["errors"]["answers.9"])
        assert completed(session) == 0
        assert count(session, SafetyAlert) == 0

    def test_saving_part_of_it_for_later_is_still_allowed(
        self, client, session, people, plan, sign_in
    ):
        token = sign_in(PATIENT)
        url = start(client, token, "GAD-7")
        saved = client.post(
            url, data={"csrf_token": token, "version": 1, "action": "save", "a.1": "2"}
        )
        assert saved.status_code == 303
        session.expire_all()
        assert session.scalar(select(MeasureResponse)).answers == {"1": 2}

    def test_phq9_item_9_cannot_be_declined(self, client, session, people, plan, sign_in):
        token = sign_in(PATIENT)
        url = start(client, token, "PHQ-9")
        answers = {f"a.{i}": "0" for i in range(1, 9)}
        sent = client.post(
            url,
            data={
                "csrf_token": token,
                "version": 1,
                "action": "submit",
                "a.9": "declined",
                **answers,
            },
        )
        assert sent.status_code == 422
        assert "cannot be declined" in str(sent.context["errors"]["answers.9"])
        assert completed(session) == 0

    def test_an_asq_question_declined_is_sent_and_shown_to_the_team_as_unanswered(
        self, client, session, people, plan, sign_in
    ):
        token = sign_in(PATIENT)
        url = start(client, token, "ASQ")
        form = client.get(url)
        assert "rather not answer" in form.text
        sent = client.post(
            url,
            data={
                "csrf_token": token,
                "version": 1,
                "action": "submit",
                "a.1": "0",
                "a.2": "0",
                "a.3": "declined",
                "a.4": "0",
            },
        )
        assert sent.status_code == 303, sent.text
        session.expire_all()
        response = session.scalar(select(MeasureResponse))
        assert response.status == "completed"
        assert response.flags["declined"] == ["3"] and "3" not in response.answers
        alert = session.scalar(select(SafetyAlert))
        assert alert is not None and alert.tier == "urgent"  # NIMH: a refusal screens positive
        token = sign_in(CM)
        page = client.get(f"/patients/{people.patient.id}/measures/responses/{response.id}")
        assert "Question 3, about suicide or self-harm, was declined" in page.text
        assert "declined to answer" in page.text


class TestRecordedByTheTeam:
    def test_the_clinicians_form_refuses_a_partial_response(
        self, client, session, people, plan, sign_in
    ):
        token = sign_in(CM)
        sent = client.post(
            f"/patients/{people.patient.id}/measures/record/PHQ-9",
            data={"csrf_token": token, "mode": "phone", **{f"a.{i}": "1" for i in range(1, 9)}},
        )
        assert sent.status_code == 422
        assert "answers.9" in sent.context["errors"]
        assert "suicide or self-harm" in sent.text
        assert count(session, MeasureResponse) == 0

    def test_the_service_refuses_an_empty_response_on_every_recording_path(
        self, session, people, plan
    ):
        access = acc_for(session, people.care_manager, people.patient)
        for mode in (measures.Mode.in_person, measures.Mode.external):
            with pytest.raises(InvalidInput) as refused:
                measures.record_response(
                    session,
                    access=access,
                    instrument_code="GAD-7",
                    submission=measures.Submission(answers={}, mode=mode),
                )
            assert set(refused.value.errors) == {f"answers.{i}" for i in GAD7}
        assert count(session, MeasureResponse) == 0


class TestFhir:
    @pytest.fixture
    def token(self, session, people):
        return bearer(session, people.care_manager)

    def test_a_response_with_no_items_is_refused_naming_them(self, client, session, people, token):
        body = ehr_response(people.patient.id, [0] * 9)
        body["item"] = []
        sent = post(client, body, token)
        assert sent.status_code == 422
        outcome = sent.json()
        assert outcome["resourceType"] == "OperationOutcome"
        text = str(outcome)
        assert all(f"item.{i}" in text for i in range(1, 10))
        assert "suicide or self-harm" in text
        assert count(session, MeasureResponse) == 0

    def test_item_9_left_out_is_refused(self, client, session, people, token):
        body = ehr_response(people.patient.id, [0] * 9)
        body["item"] = [i for i in body["item"] if i["linkId"] != "/44260-8"]
        sent = post(client, body, token)
        assert sent.status_code == 422
        assert "item.9" in str(sent.json())
        assert count(session, MeasureResponse) == 0

    def test_a_scored_response_answers_with_the_resource(self, client, people, token):
        sent = post(client, ehr_response(people.patient.id, [1] * 9), token)
        assert sent.status_code == 201
        assert sent.json()["resourceType"] == "QuestionnaireResponse"

    def asq_body(self, patient_id):
        return {
            "resourceType": "QuestionnaireResponse",
            "questionnaire": "https://concord-care.org/fhir/Questionnaire/ASQ",
            "status": "completed",
            "subject": {"reference": f"Patient/{patient_id}"},
            "authored": "2026-11-21T10:00:00Z",
            "item": [{"linkId": str(i), "answer": [{"valueInteger": 0}]} for i in range(1, 5)],
        }

    def test_a_response_that_is_not_scored_says_so_in_the_201(self, client, session, people, token):
        sent = post(client, self.asq_body(people.patient.id), token)
        assert sent.status_code == 201, sent.text
        outcome = sent.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["severity"] == "warning"
        assert "not scored" in outcome["issue"][0]["diagnostics"]
        assert "/QuestionnaireResponse/" in sent.headers["Location"]
        assert completed(session) == 1

    def test_the_client_may_still_ask_for_the_resource(self, client, people, token):
        sent = post(
            client, self.asq_body(people.patient.id), {**token, "Prefer": "return=representation"}
        )
        assert sent.status_code == 201
        assert sent.json()["resourceType"] == "QuestionnaireResponse"


def store_incomplete(session, people, answers):
    """A response stored before the write paths refused incomplete ones (as the database may
    still hold): completed, with required questions unanswered."""
    instrument = library().get("PHQ-9")
    from concord.measures.scoring import score_response

    scored = score_response(instrument, answers)
    response = MeasureResponse(
        id=new_id(),
        patient_id=people.patient.id,
        instrument="PHQ-9",
        instrument_version=instrument.version,
        language="en",
        status="completed",
        mode="portal",
        entered_by_id=people.patient_user.id,
        started_at=now(),
        updated_at=now(),
        completed_at=now(),
        answers=answers,
        scores={
            k: {
                "value": r.value,
                "band": r.band,
                "prorated": r.prorated,
                "missing": list(r.missing),
                "reason": r.reason,
            }
            for k, r in scored.scores.items()
        },
        flags={"items": [], "unanswered": list(scored.unanswered)},
    )
    session.add(response)
    commit(session)
    return response


class TestWhatTheTeamSees:
    def test_an_incomplete_response_never_satisfies_a_schedule(self, session, people, plan):
        store_incomplete(session, people, {})
        assert due(session, people, "PHQ-9") == "due"
        store_incomplete(session, people, {str(i): 0 for i in range(1, 10)})
        assert due(session, people, "PHQ-9") == "completed"

    def test_item_9_skipped_shows_as_unanswered_not_negative(
        self, client, session, people, plan, sign_in
    ):
        response = store_incomplete(session, people, {str(i): 0 for i in range(1, 9)})
        sign_in(CM)
        page = client.get(f"/patients/{people.patient.id}/measures/responses/{response.id}")
        assert "Question 9, about suicide or self-harm, was not answered" in page.text
        assert "This is not a “no”" in page.text
        overview = client.get(f"/patients/{people.patient.id}/measures")
        assert "risk question 9 not answered" in overview.text
        assert count(session, MeasureObservation) == 0


class TestSpanish:
    @pytest.fixture
    def rosa(self, session, people, plan):
        people.patient_user.language = "es"
        people.patient.language = "es"
        measures.add_schedule(
            session,
            access=acc_for(session, people.care_manager, people.patient),
            instrument_code="ASQ",
            every_days=28,
        )
        commit(session)

    @pytest.mark.parametrize("code", ["ASQ", "PCL-5", "AUDIT", "AUDIT-C", "WHO-5", "TAPS-1"])
    def test_an_english_only_questionnaire_is_never_given_in_english(
        self, client, session, people, rosa, sign_in, code
    ):
        assert "es" not in library().get(code).languages  # no citable Spanish text yet
        token = sign_in(PATIENT)
        started = client.post("/my/check-ins/start", data={"csrf_token": token, "instrument": code})
        assert started.status_code == 409
        assert "intérprete" in started.text
        assert count(session, MeasureResponse) == 0

    def test_the_check_ins_page_says_so_in_spanish_and_offers_no_start(
        self, client, session, people, rosa, sign_in
    ):
        sign_in(PATIENT)
        page = client.get("/my/check-ins")
        assert page.text.count("no está disponible en su idioma") == 1
        assert 'value="ASQ"' not in page.text  # no Start form for it
        assert 'value="PHQ-9"' in page.text and 'value="GAD-7"' in page.text

    def test_the_phq9_is_in_spanish(self, client, people, rosa, sign_in):
        token = sign_in(PATIENT)
        form = client.get(start(client, token, "PHQ-9"))
        assert "Pensamientos de que estaría mejor muerto(a)" in form.text

    def test_the_gad7_is_in_pfizers_spanish_and_scored_the_same(
        self, client, session, people, rosa, sign_in
    ):
        token = sign_in(PATIENT)
        url = start(client, token, "GAD-7")
        form = client.get(url)
        assert "Se ha sentido nervioso(a), ansioso(a) o con los nervios de punta" in form.text
        assert "Ha tenido miedo de que algo terrible fuera a pasar" in form.text
        assert "Ningún día" in form.text
        assert "no está disponible" not in form.text
        answers = {f"a.{i}": "2" for i in GAD7}
        sent = client.post(
            url, data={"csrf_token": token, "version": 1, "action": "submit", **answers}
        )
        assert sent.status_code == 303, sent.text
        session.expire_all()
        response = session.scalar(select(MeasureResponse))
        assert (response.language, response.scores["total"]["value"]) == ("es", 14)

    def test_the_team_is_told_to_use_an_interpreter(self, client, session, people, rosa, sign_in):
        sign_in(CM)
        page = client.get(f"/patients/{people.patient.id}/measures")
        assert page.text.count("data-not-in-language") == 1  # the ASQ, not PHQ-9 or GAD-7
        record = client.get(f"/patients/{people.patient.id}/measures/record/ASQ")
        assert "interpreter" in record.text
        phq9 = client.get(f"/patients/{people.patient.id}/measures/record/PHQ-9")
        assert "interpreter" not in phq9.text
        schedules = session.scalars(select(MeasureSchedule)).all()
        assert {s.instrument for s in schedules} == {"ASQ", "GAD-7", "PHQ-9"}

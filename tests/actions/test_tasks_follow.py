"""Tasks, flags and alerts follow a change whichever door it came through (issue 17).

Each door (the portal, the clinician's record form, FHIR, the JSON API, the worker) calls the
same action, so each leaves the same alert and the same tasks; the worker's nightly run then
finds nothing left to do. Before concord.actions, only some pages brought the tasks up to date.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from concord.careplans import service as plans
from concord.clock import now
from concord.measures import service as measures
from concord.measures.models import MeasureResponse
from concord.registry import reviews as rv
from concord.registry import service as reg
from concord.registry.jobs import sync_all_tasks, sync_patient_tasks
from concord.registry.models import TaskStatus, WorkTask
from concord.registry.tasks import flag_source
from concord.safety.models import SafetyAlert
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for, create_plan
from tests.fhir.test_fhir_measures import ehr_response

PATIENT = "pat@patients.example.org"
CM = "cara@test.example.org"
# PHQ-9 16 with question 9 ("thoughts that you would be better off dead...") at 1: not 50%
# better than the baseline of 18 at week 9, and a positive item 9.
NOT_IMPROVING_ITEM_9 = [2, 2, 2, 2, 2, 2, 2, 1, 1]


def open_sources(session, patient_id) -> set[str]:
    session.expire_all()
    return {
        t.source
        for t in session.scalars(
            select(WorkTask).where(
                WorkTask.patient_id == patient_id, WorkTask.status == TaskStatus.open
            )
        )
    }


def alerts(session, patient_id) -> list[SafetyAlert]:
    session.expire_all()
    return list(session.scalars(select(SafetyAlert).where(SafetyAlert.patient_id == patient_id)))


@pytest.fixture
def week_9(session, people):
    """Pat: an agreed plan, enrolled 9 weeks ago, a baseline PHQ-9 of 18 the day after, and the
    tasks the worker opened since (the initial assessment, no contact in 30 days)."""
    create_plan(session, people, activate=True)
    acc = acc_for(session, people.care_manager, people.patient)
    started = now() - timedelta(days=63)
    episode = reg.enroll(
        session,
        access=acc,
        data=reg.Enrolment(program="depression", started_on=started.date()),
    )
    measures.record_response(
        session,
        access=acc,
        instrument_code="PHQ-9",
        submission=measures.Submission(
            answers={str(i + 1): v for i, v in enumerate([3, 3, 2, 2, 2, 2, 2, 2, 0])},
            mode=measures.Mode.phone,
            completed_at=started + timedelta(days=1),
        ),
    )
    sync_patient_tasks(session, people.patient.id)
    commit(session)
    assert flag_source("not_improving", episode.id) not in open_sources(session, people.patient.id)
    return episode


def through_fhir(client, session, people, sign_in):
    sent = client.post(
        "/fhir/QuestionnaireResponse",
        json=ehr_response(people.patient.id, NOT_IMPROVING_ITEM_9),
        headers={**bearer(session, people.care_manager), "Content-Type": "application/fhir+json"},
    )
    assert sent.status_code == 201, sent.text


def through_the_portal(client, session, people, sign_in):
    token = sign_in(PATIENT)
    started = client.post("/my/check-ins/start", data={"csrf_token": token, "instrument": "PHQ-9"})
    assert started.status_code == 303, started.text
    answers = {f"a.{i + 1}": str(v) for i, v in enumerate(NOT_IMPROVING_ITEM_9)}
    answers["a.difficulty"] = "1"
    sent = client.post(
        started.headers["location"],
        data={
            "csrf_token": token,
            "version": 1,
            "action": "submit",
            "a.difficulty": "1",
            **answers,
        },
    )
    assert sent.status_code == 303, sent.text
    assert "/done" in sent.headers["location"] or "done=" in sent.headers["location"]


def through_the_record_form(client, session, people, sign_in):
    token = sign_in(CM)
    answers = {f"a.{i + 1}": str(v) for i, v in enumerate(NOT_IMPROVING_ITEM_9)}
    sent = client.post(
        f"/patients/{people.patient.id}/measures/record/PHQ-9",
        data={"csrf_token": token, "mode": "phone", "a.difficulty": "1", **answers},
    )
    assert sent.status_code == 303, sent.text


@pytest.mark.parametrize(
    "door", [through_fhir, through_the_portal, through_the_record_form], ids=lambda d: d.__name__
)
def test_a_check_in_raises_the_alert_and_opens_the_review_task_on_every_door(
    door, client, session, people, sign_in, week_9
):
    pid = people.patient.id
    before = open_sources(session, pid)
    door(client, session, people, sign_in)
    assert (
        session.scalar(
            select(MeasureResponse)
            .where(MeasureResponse.patient_id == pid, MeasureResponse.status == "completed")
            .order_by(MeasureResponse.completed_at.desc())
        ).scores["total"]["value"]
        == 16
    )
    assert len(alerts(session, pid)) == 1  # question 9 answered above 0
    after = open_sources(session, pid)
    assert after - before == {flag_source("not_improving", week_9.id)}
    # The worker's nightly run finds the tasks as it would leave them: nothing to open or close.
    assert sync_all_tasks(session) == 0


def test_a_check_in_replayed_through_fhir_acts_once(client, session, people, week_9):
    headers = {**bearer(session, people.care_manager), "Content-Type": "application/fhir+json"}
    body = ehr_response(people.patient.id, NOT_IMPROVING_ITEM_9)
    first = client.post("/fhir/QuestionnaireResponse", json=body, headers=headers)
    again = client.post("/fhir/QuestionnaireResponse", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert len(alerts(session, people.patient.id)) == 1


@pytest.fixture
def enrolled(session, people):
    """Pat: an active plan not yet agreed, enrolled today; the worker's tasks opened."""
    plan = create_plan(session, people, activate=True)
    acc = acc_for(session, people.care_manager, people.patient)
    episode = reg.enroll(session, access=acc, data=reg.Enrolment(program="depression"))
    sync_patient_tasks(session, people.patient.id)
    commit(session)
    return plan, episode


def test_the_first_contact_logged_through_the_api_closes_the_assessment_task(
    client, session, people, enrolled
):
    _, episode = enrolled
    initial = flag_source("needs_initial_assessment", episode.id)
    assert initial in open_sources(session, people.patient.id)
    sent = client.post(
        f"/api/v1/patients/{people.patient.id}/contacts",
        json={"kind": "initial_assessment", "mode": "video", "minutes": 45},
        headers=bearer(session, people.care_manager),
    )
    assert sent.status_code == 201, sent.text
    assert initial not in open_sources(session, people.patient.id)
    assert sync_all_tasks(session) == 0


def test_voiding_the_initial_assessment_on_the_page_reopens_its_task(
    client, session, people, sign_in, enrolled
):
    _, episode = enrolled
    initial = flag_source("needs_initial_assessment", episode.id)
    contact = reg.log_contact(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        data=reg.ContactIn(kind="initial_assessment", mode="phone", minutes=30),
    )
    sync_patient_tasks(session, people.patient.id)
    commit(session)
    assert initial not in open_sources(session, people.patient.id)
    token = sign_in(CM)
    sent = client.post(
        f"/patients/{people.patient.id}/registry/contacts/{contact.id}/void",
        data={"csrf_token": token, "reason": "Logged on the wrong patient"},
    )
    assert sent.status_code == 303, sent.text
    assert initial in open_sources(session, people.patient.id)
    assert sync_all_tasks(session) == 0


def test_the_plan_agreed_in_the_portal_and_through_the_api_closes_its_task(
    client, session, people, sign_in, enrolled
):
    plan, episode = enrolled
    awaiting = flag_source("plan_awaiting_agreement", episode.id)
    assert awaiting in open_sources(session, people.patient.id)
    revision = plan.revision_number
    lead = client.post(
        f"/api/v1/patients/{people.patient.id}/careplan/agree",
        json={"revision": revision},
        headers=bearer(session, people.care_manager),
    )
    assert lead.status_code == 200, lead.text
    assert awaiting in open_sources(session, people.patient.id)  # the patient has not agreed
    token = sign_in(PATIENT)
    sent = client.post("/my/plan/agree", data={"csrf_token": token, "revision": revision})
    assert sent.status_code == 303, sent.text
    assert awaiting not in open_sources(session, people.patient.id)
    assert sync_all_tasks(session) == 0


def test_a_substantive_plan_change_through_the_api_asks_for_agreement_again(
    client, session, people, enrolled
):
    plan, episode = enrolled
    awaiting = flag_source("plan_awaiting_agreement", episode.id)
    for who in (people.care_manager, people.patient_user):
        plans.agree(
            session,
            access=acc_for(session, who, people.patient),
            revision=plan.revision_number,
        )
    sync_patient_tasks(session, people.patient.id)
    commit(session)
    assert awaiting not in open_sources(session, people.patient.id)
    sent = client.post(
        f"/api/v1/patients/{people.patient.id}/careplan/goals",
        json={"statement": "Walk to work twice a week", "category": "wellbeing"},
        headers=bearer(session, people.care_manager),
    )
    assert sent.status_code == 201, sent.text
    assert awaiting in open_sources(session, people.patient.id)
    assert sync_all_tasks(session) == 0


def test_a_recommendation_accepted_through_the_api_revises_the_plan_and_its_tasks(
    client, session, people, enrolled
):
    plan, episode = enrolled
    acc = acc_for(session, people.care_manager, people.patient)
    for who in (people.care_manager, people.patient_user):
        plans.agree(
            session, access=acc_for(session, who, people.patient), revision=plan.revision_number
        )
    review = rv.record_review(
        session,
        access=acc_for(session, people.consultant, people.patient),
        data=rv.ReviewIn(
            minutes=20,
            summary="Partial response at week 9",
            recommendations=[rv.RecommendationIn("increase_dose", "Sertraline to 100 mg daily")],
        ),
    )
    sync_patient_tasks(session, people.patient.id)
    commit(session)
    (rec,) = [r for r in rv.recommendations_for(session, acc) if r.review_id == review.id]
    revision = plan.revision_number
    sent = client.post(
        f"/api/v1/patients/{people.patient.id}/recommendations/{rec.id}/decision",
        json={"accept": True, "reason": "Agreed at the visit"},
        headers=bearer(session, people.care_manager),
    )
    assert sent.status_code == 200, sent.text
    session.expire_all()
    assert plans.current_plan(session, people.patient.id).revision_number == revision + 1
    after = open_sources(session, people.patient.id)
    assert f"recommendation:{rec.id}" not in after
    assert flag_source("plan_awaiting_agreement", episode.id) in after
    assert sync_all_tasks(session) == 0

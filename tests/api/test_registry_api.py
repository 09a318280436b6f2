"""Tasks, voiding a contact, the relapse-prevention plan, the patient's view of a proposed
change and the program, minutes and review-queue reads through /api/v1: the registry pages'
schemas, services and rules; a denied caller writes nothing; a retry is recorded once."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from concord.audit.models import AuditEvent
from concord.registry import reviews as rv
from concord.registry import service as reg
from concord.registry.models import Contact, Recommendation, RelapsePlan, WorkTask
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for


def _count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def _denied(session, user):
    return _count(
        session, AuditEvent, AuditEvent.actor_id == user.id, AuditEvent.outcome == "denied"
    )


def _enrol(session, people):
    cm = acc_for(session, people.care_manager, people.patient)
    reg.enroll(session, access=cm, data=reg.Enrolment(program="depression"))
    commit(session)
    return cm


def test_a_clinician_gives_a_task_once_and_it_is_done(client, session, people):
    cm = bearer(session, people.care_manager)
    pid = people.patient.id
    body = {
        "title": "Call the pharmacy",
        "owner_id": str(people.therapist.id),
        "priority": "urgent",
    }
    key = {"Idempotency-Key": uuid.uuid4().hex}
    made = client.post(f"/api/v1/patients/{pid}/tasks", json=body, headers={**cm, **key})
    assert made.status_code == 201, made.text
    again = client.post(f"/api/v1/patients/{pid}/tasks", json=body, headers={**cm, **key})
    assert again.status_code == 200 and again.json()["id"] == made.json()["id"]
    assert _count(session, WorkTask, WorkTask.title == "Call the pharmacy") == 1
    listed = client.get(f"/api/v1/patients/{pid}/tasks", headers=cm).json()
    assert [t["owner_id"] for t in listed if t["title"] == "Call the pharmacy"] == [
        str(people.therapist.id)
    ]
    therapist = bearer(session, people.therapist)
    assert made.json()["id"] in [
        t["id"] for t in client.get("/api/v1/tasks", headers=therapist).json()
    ]
    done = client.post(
        f"/api/v1/tasks/{made.json()['id']}/done", json={"note": "Called"}, headers=therapist
    )
    assert done.status_code == 200 and done.json()["status"] == "done"
    wrong = client.post(
        f"/api/v1/patients/{pid}/tasks",
        json={"title": "Call", "owner_id": str(people.outsider.id)},
        headers=cm,
    )
    assert wrong.status_code == 422 and wrong.json()["fields"][0]["field"] == "owner_id"


def test_tasks_are_not_given_from_outside_the_team(client, session, people):
    pid = people.patient.id
    before = _count(session, WorkTask)
    for user in (people.outsider, people.patient_user, people.family):
        denials = _denied(session, user)
        refused = client.post(
            f"/api/v1/patients/{pid}/tasks", json={"title": "Call"}, headers=bearer(session, user)
        )
        assert refused.status_code == 404, refused.text
        assert _denied(session, user) > denials
    assert _count(session, WorkTask) == before


def test_a_contact_logged_by_mistake_is_voided(client, session, people):
    _enrol(session, people)
    cm = bearer(session, people.care_manager)
    pid = people.patient.id
    made = client.post(
        f"/api/v1/patients/{pid}/contacts",
        json={"kind": "follow_up", "mode": "phone", "minutes": 10},
        headers=cm,
    ).json()
    outsider = bearer(session, people.outsider)
    refused = client.post(
        f"/api/v1/patients/{pid}/contacts/{made['id']}/void", json={"reason": "x"}, headers=outsider
    )
    assert refused.status_code == 404
    assert session.get(Contact, uuid.UUID(made["id"])).voided_at is None
    voided = client.post(
        f"/api/v1/patients/{pid}/contacts/{made['id']}/void",
        json={"reason": "Wrong patient"},
        headers=cm,
    )
    assert voided.status_code == 200, voided.text
    listed = client.get(f"/api/v1/patients/{pid}/contacts", headers=cm).json()
    assert [c["void"] for c in listed] == [True]


def test_the_team_and_the_patient_write_the_relapse_plan(client, session, people):
    _enrol(session, people)
    pid = people.patient.id
    cm = bearer(session, people.care_manager)
    me = bearer(session, people.patient_user)
    assert client.get(f"/api/v1/patients/{pid}/relapse-plan", headers=cm).json()["version"] == 0
    first = client.put(
        f"/api/v1/patients/{pid}/relapse-plan",
        json={"base_version": 0, "content": {"warning_signs": ["Sleeping badly"]}, "reason": "New"},
        headers=cm,
    )
    assert first.status_code == 200, first.text
    stale = client.put(
        f"/api/v1/patients/{pid}/relapse-plan",
        json={"base_version": 0, "content": {"warning_signs": ["Other"]}, "reason": "Mine"},
        headers=me,
    )
    assert stale.status_code == 409
    mine = client.put(
        f"/api/v1/patients/{pid}/relapse-plan",
        json={
            "base_version": first.json()["version"],
            "content": {"warning_signs": ["Sleeping badly", "Skipping meals"]},
            "reason": "Added one",
        },
        headers=me,
    )
    assert mine.status_code == 200, mine.text
    read = client.get(f"/api/v1/patients/{pid}/relapse-plan", headers=me).json()
    assert "Skipping meals" in str(read["content"])
    for user in (people.family, people.outsider, people.other_patient_user):
        denials = _denied(session, user)
        refused = client.put(
            f"/api/v1/patients/{pid}/relapse-plan",
            json={"base_version": 2, "content": {"warning_signs": ["x"]}, "reason": "x"},
            headers=bearer(session, user),
        )
        assert refused.status_code == 404
        assert _denied(session, user) > denials
    assert session.scalar(select(RelapsePlan.version)) == 2


def test_the_patient_gives_their_view_of_a_proposed_change(client, session, people):
    cm = _enrol(session, people)
    rv.request_review(session, access=cm, question="Next?")
    rv.record_review(
        session,
        access=acc_for(session, people.consultant, people.patient),
        data=rv.ReviewIn(
            minutes="10",
            summary="Partial",
            recommendations=[rv.RecommendationIn("add_psychotherapy", "Add activation")],
        ),
    )
    commit(session)
    rec = session.scalar(select(Recommendation))
    pid = people.patient.id
    url = f"/api/v1/patients/{pid}/recommendations/{rec.id}/patient-view"
    team = bearer(session, people.care_manager)
    assert client.post(url, json={"agree": True}, headers=team).status_code == 403
    assert (
        client.post(url, json={"agree": True}, headers=bearer(session, people.family)).status_code
        == 404
    )
    session.refresh(rec)
    assert rec.patient_view is None
    me = bearer(session, people.patient_user)
    given = client.post(url, json={"agree": False, "reason": "Not yet"}, headers=me)
    assert given.status_code == 200 and given.json()["patient_view"] == "disagree"
    seen = client.get(f"/api/v1/patients/{pid}/recommendations", headers=team).json()
    assert seen[0]["patient_view"] == "disagree"


def test_program_minutes_and_queue_are_read_by_those_the_pages_let_in(client, session, people):
    _enrol(session, people)
    cm = bearer(session, people.care_manager)
    program = client.get("/api/v1/registry/program", headers=cm)
    assert program.status_code == 200 and program.json()["open_episodes"] == 1
    minutes = client.get("/api/v1/registry/minutes?month=2026-11", headers=cm)
    assert minutes.status_code == 200 and minutes.json()["month"] == "2026-11"
    assert client.get("/api/v1/registry/reviews", headers=cm).status_code == 200
    bad = client.get("/api/v1/registry/program?clinic=nowhere", headers=cm)
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "clinic"
    for user in (people.patient_user, people.family):
        headers = bearer(session, user)
        for path in ("program", "minutes", "reviews"):
            assert client.get(f"/api/v1/registry/{path}", headers=headers).status_code == 403

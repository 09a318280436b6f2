"""The patient's own check-ins, and the decision steps the API lacked (a question marked
answered, CollaboRATE started), through /api/v1: the pages' schemas, services and rules."""

from __future__ import annotations

from sqlalchemy import func, select

from concord.audit.models import AuditEvent
from concord.decisions import service as ds
from concord.measures.models import MeasureResponse
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for

PHQ9 = {**{str(i): 0 for i in range(1, 10)}, "difficulty": 0}


def _count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def _denied(session, user):
    return _count(
        session, AuditEvent, AuditEvent.actor_id == user.id, AuditEvent.outcome == "denied"
    )


def test_the_patient_starts_saves_and_sends_a_check_in(client, session, people):
    me = bearer(session, people.patient_user)
    base = f"/api/v1/patients/{people.patient.id}/check-ins"
    started = client.post(base, json={"instrument": "PHQ-9"}, headers=me)
    assert started.status_code == 201, started.text
    rid, version = started.json()["id"], started.json()["version"]
    # Starting again resumes the same one: one check-in in progress.
    assert client.post(base, json={"instrument": "PHQ-9"}, headers=me).json()["id"] == rid
    saved = client.put(
        f"{base}/{rid}",
        json={"answers": {"1": 1}, "version": version, "submit": False},
        headers=me,
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["status"] == "in_progress" and saved.json()["answers"] == {"1": 1}
    incomplete = client.put(
        f"{base}/{rid}", json={"answers": {"1": 1}, "version": saved.json()["version"]}, headers=me
    )
    assert incomplete.status_code == 422
    sent = client.put(
        f"{base}/{rid}", json={"answers": PHQ9, "version": saved.json()["version"]}, headers=me
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "completed" and sent.json()["scores"]
    again = client.put(f"{base}/{rid}", json={"answers": PHQ9, "version": 99}, headers=me)
    assert again.status_code == 409
    team = bearer(session, people.care_manager)
    seen = client.get(f"/api/v1/patients/{people.patient.id}/measures/responses", headers=team)
    assert [r["id"] for r in seen.json()] == [rid]


def test_only_the_patient_answers_their_own_check_ins(client, session, people):
    base = f"/api/v1/patients/{people.patient.id}/check-ins"
    for user in (people.care_manager, people.family, people.other_patient_user):
        denials = _denied(session, user)
        headers = bearer(session, user)
        refused = client.post(base, json={"instrument": "PHQ-9"}, headers=headers)
        assert refused.status_code == 404, refused.text
        assert client.get(base, headers=headers).status_code == 404
        assert _denied(session, user) > denials
    assert _count(session, MeasureResponse) == 0
    me = bearer(session, people.patient_user)
    due = client.get(base, headers=me)
    assert due.status_code == 200 and isinstance(due.json(), list)


def test_the_team_marks_a_question_answered_and_only_the_patient_starts_collaborate(
    client, session, people
):
    me_acc = acc_for(session, people.patient_user, people.patient)
    decision = ds.start(session, access=me_acc, aid_id="depression-treatment")
    ds.add_question(session, access=me_acc, decision_id=decision.id, text="Side effects?")
    commit(session)
    url = f"/api/v1/patients/{people.patient.id}/decisions/{decision.id}"
    me = bearer(session, people.patient_user)
    assert client.post(f"{url}/questions/0/answered", headers=me).status_code == 403
    cm = bearer(session, people.care_manager)
    done = client.post(f"{url}/questions/0/answered", headers=cm)
    assert done.status_code == 200, done.text
    assert done.json()["questions"][0]["answered"] is True
    wrong = client.post(f"{url}/questions/5/answered", headers=cm)
    assert wrong.status_code == 422
    denials = _denied(session, people.care_manager)
    assert client.post(f"{url}/collaborate", headers=cm).status_code == 404
    assert _denied(session, people.care_manager) > denials
    # Offered after the visit, once the decision is recorded: not yet.
    assert client.post(f"{url}/collaborate", headers=me).status_code == 409

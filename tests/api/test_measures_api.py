"""Schedules, "ask now" and answers recorded by a clinician through /api/v1: the measures
tab's schemas, services and rules; a denied caller writes nothing; a retry is recorded once."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from concord.audit.models import AuditEvent
from concord.measures.models import MeasureResponse, MeasureSchedule
from tests.careplans.test_api import bearer

PHQ9 = {**{str(i): 1 for i in range(1, 10)}, "difficulty": 1}


def _count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def _denied(session, user):
    return _count(
        session, AuditEvent, AuditEvent.actor_id == user.id, AuditEvent.outcome == "denied"
    )


def test_the_team_schedules_changes_asks_now_and_stops(client, session, people):
    cm = bearer(session, people.care_manager)
    base = f"/api/v1/patients/{people.patient.id}/measures"
    body = {"instrument": "GAD-7", "every_days": 14}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    made = client.post(f"{base}/schedules", json=body, headers={**cm, **key})
    assert made.status_code == 201, made.text
    again = client.post(f"{base}/schedules", json=body, headers={**cm, **key})
    assert again.status_code == 200 and again.json()["id"] == made.json()["id"]
    assert _count(session, MeasureSchedule, MeasureSchedule.instrument == "GAD-7") == 1
    # Without the key, the same schedule again is the page's conflict.
    assert client.post(f"{base}/schedules", json=body, headers=cm).status_code == 409
    listed = client.get(f"{base}/schedules", headers=cm).json()
    assert [s["instrument"] for s in listed] == ["GAD-7"] and listed[0]["status"]
    sid = made.json()["id"]
    bad = client.post(f"{base}/schedules/{sid}", json={"every_days": 7}, headers=cm)
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "version"
    changed = client.post(
        f"{base}/schedules/{sid}", json={"every_days": 7, "version": 1}, headers=cm
    )
    assert changed.status_code == 200 and changed.json()["every_days"] == 7
    stale = client.post(f"{base}/schedules/{sid}", json={"every_days": 9, "version": 1}, headers=cm)
    assert stale.status_code == 409
    asked = client.post(f"{base}/ask-now", json={"instrument": "PHQ-9"}, headers=cm)
    assert asked.status_code == 200 and asked.json()["end_on"] == asked.json()["start_on"]
    stopped = client.post(f"{base}/schedules/{sid}", json={"stop": True}, headers=cm)
    assert stopped.status_code == 200
    assert "GAD-7" not in [
        s["instrument"] for s in client.get(f"{base}/schedules", headers=cm).json()
    ]
    wrong = client.post(
        f"{base}/schedules", json={"instrument": "XYZ", "every_days": 7}, headers=cm
    )
    assert wrong.status_code == 422 and wrong.json()["fields"][0]["field"] == "instrument"


def test_only_the_team_schedules(client, session, people):
    base = f"/api/v1/patients/{people.patient.id}/measures"
    for user in (people.outsider, people.patient_user, people.family):
        denials = _denied(session, user)
        headers = bearer(session, user)
        for path, body in (
            ("schedules", {"instrument": "GAD-7", "every_days": 14}),
            ("ask-now", {"instrument": "GAD-7"}),
        ):
            refused = client.post(f"{base}/{path}", json=body, headers=headers)
            assert refused.status_code == 404, refused.text
        assert client.get(f"{base}/schedules", headers=headers).status_code == 404
        assert _denied(session, user) > denials
    assert _count(session, MeasureSchedule) == 0


def test_a_clinician_records_answers_once_and_reads_them_back(client, session, people):
    consultant = bearer(session, people.consultant)
    base = f"/api/v1/patients/{people.patient.id}/measures"
    body = {"mode": "phone", "answers": PHQ9}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    made = client.post(f"{base}/PHQ-9/responses", json=body, headers={**consultant, **key})
    assert made.status_code == 201, made.text
    assert made.json()["scores"] and made.json()["mode"] == "phone"
    again = client.post(f"{base}/PHQ-9/responses", json=body, headers={**consultant, **key})
    assert again.status_code == 200 and again.json()["id"] == made.json()["id"]
    assert _count(session, MeasureResponse, MeasureResponse.status == "completed") == 1
    listed = client.get(f"{base}/responses", headers=consultant).json()
    assert [r["id"] for r in listed] == [made.json()["id"]]
    # The portal is the patient's own door: a clinician says how they collected the answers.
    portal = client.post(
        f"{base}/PHQ-9/responses", json={"mode": "portal", "answers": PHQ9}, headers=consultant
    )
    assert portal.status_code == 422 and portal.json()["fields"][0]["field"] == "mode"


def test_answers_are_not_recorded_from_outside_the_team(client, session, people):
    base = f"/api/v1/patients/{people.patient.id}/measures"
    for user in (people.outsider, people.patient_user, people.family):
        denials = _denied(session, user)
        refused = client.post(
            f"{base}/PHQ-9/responses",
            json={"mode": "phone", "answers": PHQ9},
            headers=bearer(session, user),
        )
        assert refused.status_code == 404, refused.text
        assert _denied(session, user) > denials
    assert _count(session, MeasureResponse) == 0

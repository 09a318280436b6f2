"""Safety through /api/v1, as a program uses it."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from concord.safety.models import SafetyAlert, SafetyPlanVersion
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.safety.conftest import asq, respond


def test_raise_acknowledge_close_and_follow_up(client, session, people, plan):
    token = bearer(session, people.therapist)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    refused = client.post(
        f"/api/v1/patients/{people.patient.id}/alerts",
        json={"tier": "severe", "reason": ""},
        headers={**token, **key},
    )
    assert refused.status_code == 422
    fields = {f["field"] for f in refused.json()["fields"]}
    assert fields == {"tier", "reason"}
    assert session.scalars(select(SafetyAlert)).all() == []
    body = {"tier": "high", "reason": "Talked about having no way out."}
    raised = client.post(
        f"/api/v1/patients/{people.patient.id}/alerts", json=body, headers={**token, **key}
    )
    assert raised.status_code == 201, raised.text
    again = client.post(
        f"/api/v1/patients/{people.patient.id}/alerts", json=body, headers={**token, **key}
    )
    assert again.status_code == 200 and again.json()["id"] == raised.json()["id"]
    assert len(session.scalars(select(SafetyAlert)).all()) == 1
    alert_id = raised.json()["id"]
    assert raised.json()["owner_id"] == str(people.care_manager.id)

    assert client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=token).status_code == 200
    twice = client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=token)
    assert twice.status_code == 409
    bad_close = client.post(
        f"/api/v1/alerts/{alert_id}/close",
        json={"outcome": "assessed", "note": "ok", "follow_up_due_at": "2026-11-24T10:00:00"},
        headers=token,
    )
    assert bad_close.status_code == 422 and "time zone" in bad_close.text
    closed = client.post(
        f"/api/v1/alerts/{alert_id}/close",
        json={
            "outcome": "assessed",
            "risk_after": "moderate",
            "note": "Assessed in person.",
            "follow_up_due_at": "2026-11-24T10:00:00-06:00",
        },
        headers=token,
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["follow_up_due_at"] == "2026-11-24T16:00:00+00:00"
    done = client.post(
        f"/api/v1/alerts/{alert_id}/follow-up", json={"note": "Called; safe."}, headers=token
    )
    assert done.status_code == 200 and done.json()["follow_up_done_at"]
    detail = client.get(f"/api/v1/alerts/{alert_id}", headers=token).json()
    assert [e["kind"] for e in detail["events"]] == [
        "raised",
        "acknowledged",
        "closed",
        "followed_up",
    ]
    status = client.get(f"/api/v1/patients/{people.patient.id}/risk-status", headers=token).json()
    assert status["tier"] == "moderate"


def test_off_the_team_nothing_is_found(client, session, people, plan):
    alert = respond(session, people, "ASQ", asq(2)).alert
    commit(session)
    token = bearer(session, people.outsider)
    assert client.get(f"/api/v1/alerts/{alert.id}", headers=token).status_code == 404
    assert client.post(f"/api/v1/alerts/{alert.id}/acknowledge", headers=token).status_code == 404
    assert (
        client.get(f"/api/v1/patients/{people.patient.id}/alerts", headers=token).status_code == 404
    )
    assert client.get("/api/v1/alerts", headers=token).json() == []
    assert (
        client.get(f"/api/v1/patients/{people.patient.id}/safety-plan", headers=token).status_code
        == 404
    )


def test_a_read_only_token_cannot_act(client, session, people, plan):
    alert = respond(session, people, "ASQ", asq(2)).alert
    commit(session)
    token = bearer(session, people.care_manager, scope="read")
    assert client.post(f"/api/v1/alerts/{alert.id}/acknowledge", headers=token).status_code == 403


def test_the_safety_plan_through_the_api(client, session, people, plan):
    patient_token = bearer(session, people.patient_user)
    empty = client.get(f"/api/v1/patients/{people.patient.id}/safety-plan", headers=patient_token)
    assert empty.status_code == 200 and empty.json()["version"] == 0
    assert "988" in str(empty.json()["crisis_lines"])
    content = {
        "warning_signs": ["Can't sleep"],
        "people": [{"name": "Maya", "contact": "555-0142"}],
    }
    saved = client.put(
        f"/api/v1/patients/{people.patient.id}/safety-plan",
        json={"base_version": 0, "content": content},
        headers=patient_token,
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 1
    team_token = bearer(session, people.care_manager)
    stale = client.put(
        f"/api/v1/patients/{people.patient.id}/safety-plan",
        json={"base_version": 0, "content": content, "reason": "x"},
        headers=team_token,
    )
    assert stale.status_code == 409
    bad = client.put(
        f"/api/v1/patients/{people.patient.id}/safety-plan",
        json={"base_version": 1, "content": {"hobbies": ["x"]}, "reason": "x"},
        headers=team_token,
    )
    assert bad.status_code == 422 and "hobbies" in bad.text
    assert len(session.scalars(select(SafetyPlanVersion)).all()) == 1


def test_figures_through_the_api(client, session, people, plan):
    respond(session, people, "ASQ", asq(2))
    commit(session)
    token = bearer(session, people.care_manager)
    data = client.get("/api/v1/safety/figures", headers=token).json()
    assert data["total"]["raised"] == 1 and len(data["alerts"]) == 1
    assert client.get("/api/v1/safety/figures?from=bad", headers=token).status_code == 422
    patient_token = bearer(session, people.patient_user)
    assert client.get("/api/v1/safety/figures", headers=patient_token).status_code == 403

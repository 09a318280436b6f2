"""The registry through /api/v1, as a program uses it."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from concord.registry.models import Contact, Episode
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.registry.conftest import TODAY


def test_enrol_log_review_decide_and_tasks(client, session, people, plan):
    cm = bearer(session, people.care_manager)
    pid = people.patient.id
    bad = client.post(f"/api/v1/patients/{pid}/episodes", json={"program": "knitting"}, headers=cm)
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "program"
    key = {"Idempotency-Key": uuid.uuid4().hex}
    made = client.post(
        f"/api/v1/patients/{pid}/episodes", json={"program": "depression"}, headers={**cm, **key}
    )
    again = client.post(
        f"/api/v1/patients/{pid}/episodes", json={"program": "depression"}, headers={**cm, **key}
    )
    assert (
        made.status_code == 201
        and again.status_code == 200
        and again.json()["id"] == made.json()["id"]
    )
    assert len(session.scalars(select(Episode)).all()) == 1
    body = {
        "kind": "initial_assessment",
        "mode": "video",
        "minutes": 45,
        "occurred_on": TODAY.isoformat(),
    }
    key = {"Idempotency-Key": uuid.uuid4().hex}
    assert (
        client.post(
            f"/api/v1/patients/{pid}/contacts", json=body, headers={**cm, **key}
        ).status_code
        == 201
    )
    assert (
        client.post(
            f"/api/v1/patients/{pid}/contacts", json=body, headers={**cm, **key}
        ).status_code
        == 200
    )
    assert len(session.scalars(select(Contact)).all()) == 1
    wrong = client.post(
        f"/api/v1/patients/{pid}/contacts", json={**body, "minutes": 900}, headers=cm
    )
    assert wrong.status_code == 422 and "minutes" in wrong.text
    caseload = client.get("/api/v1/registry/caseload", headers=cm).json()
    assert [row["patient"] for row in caseload] == ["Pat Ient"]
    assert caseload[0]["episode"]["status"] == "active"
    assert (
        client.post(
            f"/api/v1/patients/{pid}/reviews", json={"question": "Dose?"}, headers=cm
        ).status_code
        == 201
    )
    consultant = bearer(session, people.consultant)
    recorded = client.post(
        f"/api/v1/patients/{pid}/reviews/record",
        json={
            "minutes": 12,
            "summary": "Increase",
            "recommendations": [{"kind": "increase_dose", "text": "Sertraline 100 mg"}],
        },
        headers=consultant,
    )
    assert recorded.status_code == 201, recorded.text
    rec = recorded.json()["recommendations"][0]
    tasks = client.get("/api/v1/tasks", headers=cm).json()
    assert any(t["source"] == "recommendation" for t in tasks)
    decided = client.post(
        f"/api/v1/patients/{pid}/recommendations/{rec['id']}/decision",
        json={"accept": True, "version": rec["version"]},
        headers=cm,
    )
    assert decided.status_code == 200 and decided.json()["status"] == "accepted"
    assert decided.json()["intervention_id"]
    task = next(t for t in client.get("/api/v1/tasks", headers=cm).json())
    assert (
        client.post(f"/api/v1/tasks/{task['id']}/done", json={}, headers=cm).json()["status"]
        == "done"
    )


def test_off_the_team_and_read_only(client, session, people, plan):
    outsider = bearer(session, people.outsider)
    assert (
        client.get(f"/api/v1/patients/{people.patient.id}/episodes", headers=outsider).status_code
        == 404
    )
    assert client.get("/api/v1/registry/caseload", headers=outsider).json() == []
    reader = bearer(session, people.care_manager, scope="read")
    response = client.post(
        f"/api/v1/patients/{people.patient.id}/episodes",
        json={"program": "anxiety"},
        headers=reader,
    )
    assert response.status_code == 403
    commit(session)

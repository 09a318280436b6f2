"""The decision steps through /api/v1: the same rules as the pages, a 422 naming the field,
an outcome sent twice with one Idempotency-Key recorded once, nothing for outsiders."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from concord.careplans.models import Intervention
from tests.careplans.test_api import bearer
from tests.conftest import NOW, commit
from tests.factories import create_plan


@pytest.fixture
def plan(session, people):
    created = create_plan(session, people, activate=True)
    commit(session)
    return created


def test_a_decision_through_the_api(client, session, people, plan):
    patient = bearer(session, people.patient_user)
    cm = bearer(session, people.care_manager)
    aids = client.get("/api/v1/decision-aids", headers=cm).json()
    assert {a["id"] for a in aids} >= {"depression-treatment", "alcohol-use"}
    base = f"/api/v1/patients/{people.patient.id}/decisions"
    started = client.post(base, json={"aid": "alcohol-use"}, headers=patient)
    assert started.status_code == 200, started.text
    decision = started.json()
    url = f"{base}/{decision['id']}"
    bad = client.put(f"{url}/values", json={"values": ["nope"]}, headers=patient)
    assert bad.status_code == 422 and "values" in bad.text
    aid = next(a for a in aids if a["id"] == "alcohol-use")
    ok = client.put(
        f"{url}/values",
        json={"values": [aid["values"][0]["id"]], "leaning": "cut_down"},
        headers=patient,
    )
    assert ok.status_code == 200 and ok.json()["fit"][0]["good"] >= ok.json()["fit"][-1]["good"]
    asked = client.post(f"{url}/questions", json={"text": "Is it safe to stop?"}, headers=patient)
    assert asked.json()["questions"][0]["text"] == "Is it safe to stop?"
    sure = client.put(
        f"{url}/sure",
        json={"sure": True, "understand": False, "risk_benefit": True, "encouragement": True},
        headers=patient,
    )
    assert sure.json()["sure_score"] == 3 and sure.json()["missing"] == ["information"]
    denied = client.post(
        f"{url}/outcome",
        json={
            "choice": "cut_down",
            "considered": ["cut_down"],
            "reasons": "x",
            "decided_on": "2026-11-22",
        },
        headers=patient,
    )
    assert denied.status_code == 403  # recorded by a clinician, with the patient
    body = {
        "choice": "cut_down",
        "considered": ["cut_down", "counselling"],
        "reasons": "I want to keep one drink at dinner.",
        "decided_on": NOW.date().isoformat(),
    }
    key = {"Idempotency-Key": "decision-1", **cm}
    first = client.post(f"{url}/outcome", json=body, headers=key)
    again = client.post(f"{url}/outcome", json=body, headers=key)
    assert first.status_code == 200, first.text
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert session.scalar(select(func.count()).select_from(Intervention)) == 1
    assert first.json()["status"] == "decided" and first.json()["intervention_id"]

    outsider = bearer(session, people.outsider)
    assert client.get(url, headers=outsider).status_code == 404
    assert client.get(base, headers=outsider).status_code == 404

"""Closing an alert records everything that was done, not one thing (issue 16, item 12: an
assessment, a safety plan and a call to emergency services could not all be recorded)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from concord.errors import InvalidInput
from concord.safety.models import AlertEvent
from tests.safety.test_alerts import THEO, close, high_alert


def test_several_things_done_are_all_recorded_and_shown(client, session, people, plan, sign_in):
    alert = high_alert(session, people)
    token = sign_in(THEO)
    page = client.get(f"/patients/{people.patient.id}/alerts/{alert.id}").text
    assert 'type="checkbox" name="outcome" value="safety_plan"' in page
    closed = client.post(
        f"/patients/{people.patient.id}/alerts/{alert.id}/close",
        data={
            "csrf_token": token,
            "idem": uuid.uuid4().hex,
            "outcome": ["safety_plan", "assessed"],
            "risk_after": "moderate",
            "note": "Assessed by phone, safety plan written together.",
            "no_follow_up": "on",
        },
    )
    assert closed.status_code == 303, closed.text
    session.refresh(alert)
    assert alert.outcome == "assessed"  # the one that sets the risk status
    event = session.scalar(select(AlertEvent).where(AlertEvent.kind == "closed"))
    assert event.detail["outcomes"] == ["safety_plan", "assessed"]
    shown = client.get(closed.headers["location"]).text
    done = shown[shown.index("What was done</dt>") :][:400]
    assert "safety assessment" in done.lower() and "safety plan" in done.lower()


def test_unreachable_does_not_go_with_an_assessment(session, people, plan):
    alert = high_alert(session, people)
    with pytest.raises(InvalidInput) as caught:
        close(session, people, alert, outcome=["unreachable", "assessed"])
    assert "outcome" in caught.value.errors


def test_the_api_takes_a_list(session, people, plan):
    alert = high_alert(session, people)
    closed = close(session, people, alert, outcome=["emergency", "assessed"])
    assert closed.outcome == "assessed"


def test_every_outcome_is_shown_on_every_door(client, session, people, plan, sign_in):
    """The FHIR Task, the API's alert and the figures CSV show everything done, not only the
    main outcome the alert's column keeps (issue 16 follow-up)."""
    from tests.careplans.test_api import bearer

    alert = high_alert(session, people)
    close(session, people, alert, outcome=["safety_plan", "assessed", "emergency"])
    token = bearer(session, people.care_manager)
    task = client.get(f"/fhir/Task/{alert.id}", headers=token).json()
    done = [o["valueCodeableConcept"]["coding"][0]["code"] for o in task["output"]]
    assert {"safety_plan", "assessed", "emergency"} <= set(done), task["output"]
    searched = client.get(f"/fhir/Task?patient={people.patient.id}", headers=token).json()
    (found,) = [e["resource"] for e in searched["entry"] if e["resource"]["id"] == str(alert.id)]
    assert found["output"] == task["output"]
    read = client.get(f"/api/v1/alerts/{alert.id}", headers=token).json()
    assert read["outcome"] == "assessed"
    assert set(read["outcomes"]) == {"safety_plan", "assessed", "emergency"}
    listed = client.get(
        f"/api/v1/patients/{people.patient.id}/alerts?closed=true", headers=token
    ).json()
    assert set(next(a for a in listed if a["id"] == str(alert.id))["outcomes"]) == set(
        read["outcomes"]
    )
    sign_in(THEO)
    rows = client.get("/safety/figures.csv").text.strip().splitlines()
    header = rows[0].split(",")
    row = next(r for r in rows[1:] if r.startswith(str(alert.id))).split(",")
    assert set(row[header.index("outcomes")].split("; ")) == {
        "safety_plan",
        "assessed",
        "emergency",
    }


def test_the_patients_safety_page_lists_every_outcome(client, session, people, plan, sign_in):
    alert = high_alert(session, people)
    close(session, people, alert, outcome=["safety_plan", "assessed"])
    sign_in(THEO)
    page = client.get(f"/patients/{people.patient.id}/safety").text
    table = page[page.index('id="history-h"') :]
    row = table[table.index(f"/alerts/{alert.id}") :].split("</tr>")[0]
    assert "safety assessment" in row.lower() and "safety plan" in row.lower(), row

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

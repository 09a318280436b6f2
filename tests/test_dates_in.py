"""Every date a person or program types is checked the same way on every path (issue 16,
item 3): a date from year 0001, stored, broke every page and job that showed it. The JSON
API, the forms, FHIR and the command line each answer with the field named."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from concord.errors import InvalidInput
from concord.measures.models import MeasureSchedule
from concord.registry.models import Contact
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import create_plan

CM = "cara@test.example.org"
TOO_EARLY = ("0001-01-01", "1899-12-31", "2201-01-01")


@pytest.fixture
def plan(session, people):
    created = create_plan(session, people, activate=True)
    commit(session)
    return created


def _problems(response):
    assert response.status_code == 422, response.text
    return {f["field"]: f["problem"] for f in response.json()["fields"]}


@pytest.mark.parametrize("day", TOO_EARLY)
def test_the_json_api_refuses_a_date_outside_1900_to_2200(client, session, people, plan, day):
    cm = bearer(session, people.care_manager)
    pid = people.patient.id
    contact = client.post(
        f"/api/v1/patients/{pid}/contacts",
        json={"kind": "follow_up", "mode": "phone", "minutes": 10, "occurred_on": day},
        headers=cm,
    )
    assert _problems(contact) == {"occurred_on": "must be a date between 1900 and 2200"}
    goal = client.post(
        f"/api/v1/patients/{pid}/careplan/goals",
        json={"statement": "Sleep better", "category": "symptoms", "due_on": day},
        headers=cm,
    )
    assert _problems(goal) == {"due_on": "must be a date between 1900 and 2200"}
    assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_a_follow_up_time_from_year_0001_is_refused(client, session, people, plan):
    cm = bearer(session, people.care_manager)
    raised = client.post(
        f"/api/v1/patients/{people.patient.id}/alerts",
        json={"tier": "high", "reason": "Said there is no way out."},
        headers=cm,
    )
    alert_id = raised.json()["id"]
    client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=cm)
    closed = client.post(
        f"/api/v1/alerts/{alert_id}/close",
        json={
            "outcome": "assessed",
            "risk_after": "moderate",
            "note": "Assessed.",
            "follow_up_due_at": "0001-01-01T00:00:00+01:00",
        },
        headers=cm,
    )
    assert _problems(closed) == {"follow_up_due_at": "must be a date between 1900 and 2200"}


@pytest.mark.parametrize("day", TOO_EARLY)
def test_a_form_refuses_a_date_outside_1900_to_2200(client, session, people, plan, sign_in, day):
    token = sign_in(CM)
    before = session.scalar(select(func.count()).select_from(MeasureSchedule))
    response = client.post(
        f"/patients/{people.patient.id}/measures/schedules",
        data={"csrf_token": token, "instrument": "PHQ-2", "every_days": "7", "start_on": day},
    )
    assert response.status_code == 422
    assert "between 1900 and 2200" in response.text
    assert session.scalar(select(func.count()).select_from(MeasureSchedule)) == before


def test_an_api_token_cannot_expire_after_2200():
    from concord.accounts.tokens import parse_duration

    with pytest.raises(InvalidInput) as refused:
        parse_duration("99999999999d")
    assert list(refused.value.errors) == ["expires_in"]
    with pytest.raises(InvalidInput):
        parse_duration("100000d")
    assert parse_duration("30d").days == 30


def test_a_risk_rule_deadline_cannot_overflow_the_calendar():
    from concord.safety.rules import RuleFileError, parse_duration

    with pytest.raises(RuleFileError):
        parse_duration("99999999999d", "tiers.urgent.acknowledge_within")
    assert parse_duration("4h", "x").seconds == 4 * 3600

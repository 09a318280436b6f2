"""A check-in dated year 0001, stored by a version that did not check dates, still broke the
care team's measures page, the patient's /my and their check-ins (500: OverflowError). New
ones are refused (tests/test_dates_in.py); an old one is shown, marked as not a valid date,
and tells no schedule that the check-in was done (issue 16 follow-up, item 5)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from concord.measures.models import MeasureResponse
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import create_plan

YEAR_ONE = datetime(1, 1, 1, tzinfo=UTC)


@pytest.fixture
def bad_row(session, people):
    create_plan(session, people, activate=True)
    row = MeasureResponse(
        patient_id=people.patient.id,
        instrument="PHQ-9",
        instrument_version="1",
        status="completed",
        mode="external",
        entered_by_id=people.care_manager.id,
        started_at=YEAR_ONE,
        updated_at=YEAR_ONE,
        completed_at=YEAR_ONE,
        answers={f"phq9_{i}": 1 for i in range(1, 10)},
        scores={"total": {"value": 9, "band": "mild"}},
        flags={},
    )
    session.add(row)
    commit(session)
    return row


def test_every_door_shows_a_year_0001_check_in_rather_than_failing(
    app, session, people, sign_in, bad_row
):
    client = TestClient(
        app, base_url="http://testserver", follow_redirects=False, raise_server_exceptions=False
    )
    p = people.patient.id
    sign_in("cara@test.example.org", target_client=client)
    team = [
        f"/patients/{p}",
        f"/patients/{p}/measures",
        f"/patients/{p}/measures/responses/{bad_row.id}",
        f"/patients/{p}/plan",
        f"/patients/{p}/registry",
        "/patients",
        "/registry",
        "/registry/caseload.csv?scope=teams",
        "/safety/figures.csv",
    ]
    for path in team:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
    measures = client.get(f"/patients/{p}/measures").text
    assert "(not a valid date)" in measures
    sign_in("pat@patients.example.org", target_client=client)
    for path in ("/my", "/my/check-ins", "/my/progress", f"/my/check-ins/{bad_row.id}"):
        answer = client.get(path)
        assert answer.status_code in (200, 303, 404), (path, answer.status_code)
    token = bearer(session, people.care_manager)
    for path in (
        f"/fhir/QuestionnaireResponse?patient={p}",
        f"/fhir/QuestionnaireResponse/{bad_row.id}",
        f"/fhir/Observation?patient={p}",
        f"/api/v1/patients/{p}",
    ):
        answer = client.get(path, headers=token)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:200])


def test_it_does_not_count_as_the_check_in_done(session, people, bad_row):
    from concord.measures import service as measures

    assert measures._completed_dates(session, people.patient, {"PHQ-9"})["PHQ-9"] == []


def test_a_date_out_of_range_is_written_marked():
    from concord.dates import format_date, format_datetime

    assert format_datetime(YEAR_ONE, lang="en", where="America/Chicago").endswith(
        "(not a valid date)"
    )
    assert "(not a valid date)" in format_date(YEAR_ONE, lang="en", where="America/Chicago")
    assert "not" not in format_date(
        datetime(2026, 12, 6, 18, 40, tzinfo=UTC), lang="en", where="America/Chicago"
    )

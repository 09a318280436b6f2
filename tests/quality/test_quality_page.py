"""The Quality page (/quality), its CSV and JSON twin: CMS159 and CMS2 over the clinician's
care teams' patients from the EHR's data, per clinic and clinician, with counts beside every
rate, a 95% Wilson interval, and a warning where too few are counted (issue 20)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from concord.audit.models import AuditEvent
from concord.quality import stats
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.ehr.test_import import FHIR, MRN, client_token
from tests.ehr.test_official_decks import case_bundle
from tests.quality.decks import all_cases, expected_counts, load_case

CM = "cara@test.example.org"
PERIOD = "start=2026-01-01&end=2026-12-31"


def official_case(population: str, wanted: int):
    return next(
        f
        for deck, measure, f in all_cases()
        if (deck, measure) == ("2025", "CMS159")
        and expected_counts(load_case(f)[1]).get(population) == wanted
        and expected_counts(load_case(f)[1]).get("denominator") == 1
        and expected_counts(load_case(f)[1]).get("denominator-exclusion") == 0
    )


@pytest.fixture
def imported(client, session, people):
    """An official CMS159 case not in the numerator, sent as the EHR's record of the team's
    patient (MRN N-1)."""
    token = client_token(session, people)
    body, _ = case_bundle(official_case("numerator", 0))
    for entry in body["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["identifier"] = [{"system": MRN, "value": "N-1"}]
    assert client.post("/fhir", json=body, headers={**FHIR, **token}).status_code == 200
    return people


def test_the_page_lists_who_has_not_met_the_goal(client, session, imported, sign_in):
    sign_in(CM)
    page = client.get(f"/quality?{PERIOD}")
    assert page.status_code == 200
    text = page.text
    assert "Pat Ient" in text and "Not met yet" in text
    assert "Too few to compare" in text
    assert "Depression Remission" in text


def test_the_page_in_spanish(client, session, imported, sign_in):
    imported.care_manager.language = "es"
    commit(session)
    sign_in(CM)
    text = client.get(f"/quality?{PERIOD}").text
    assert "Medidas de calidad" in text and "Todavía no" in text


def test_the_json_twin_has_the_same_figures(client, session, imported):
    token = bearer(session, imported.care_manager)
    data = client.get(f"/api/v1/quality?{PERIOD}", headers=token).json()
    cms159 = next(m for m in data["measures"] if m["measure_id"] == "CMS159")
    assert cms159["overall"]["counts"]["denominator"] == 1
    assert cms159["overall"]["counts"]["numerator"] == 0
    assert cms159["overall"]["too_small"] is True
    assert [p["patient_id"] for p in cms159["patients"]] == [str(imported.patient.id)]
    assert cms159["patients"][0]["open"] is True
    assert [r["label"] for r in cms159["by_clinic"]] == [imported.patient.clinic.name]
    assert data["min_denominator"] == stats.MIN_DENOMINATOR


def test_the_csv_lists_the_patients(client, session, imported):
    token = bearer(session, imported.care_manager)
    response = client.get(f"/quality.csv?{PERIOD}", headers=token)
    assert response.status_code == 200
    lines = response.text.strip().splitlines()
    assert lines[0].startswith("measure,version,period_start")
    assert any(line.startswith("CMS159,") and "N-1" in line for line in lines)


def test_others_see_none_of_these_patients(client, session, imported):
    outsider = bearer(session, imported.outsider)
    data = client.get(f"/api/v1/quality?{PERIOD}", headers=outsider).json()
    assert all(m["patients"] == [] for m in data["measures"])
    patient = bearer(session, imported.patient_user)
    assert client.get(f"/api/v1/quality?{PERIOD}", headers=patient).status_code == 404
    assert session.scalar(
        select(AuditEvent).where(
            AuditEvent.actor_id == imported.patient_user.id, AuditEvent.outcome == "denied"
        )
    )


def test_a_bad_period_is_named(client, session, people):
    token = bearer(session, people.care_manager)
    response = client.get("/api/v1/quality?start=2026-13-01", headers=token)
    assert response.status_code == 422 and "start" in response.text


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (5, 10, 0.2366, 0.7634),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),
    ],
)
def test_the_wilson_interval(k, n, low, high):
    got = stats.wilson_interval(k, n)
    assert got is not None
    assert got[0] == pytest.approx(low, abs=1e-4) and got[1] == pytest.approx(high, abs=1e-4)
    assert stats.wilson_interval(0, 0) is None


def test_rolling_periods():
    from datetime import date

    from concord.actions.quality import rolling_periods

    got = rolling_periods(date(2026, 1, 15), date(2026, 12, 31), date(2026, 3, 2))
    assert got == [
        (date(2025, 2, 1), date(2026, 1, 31)),
        (date(2025, 3, 1), date(2026, 2, 28)),
        (date(2025, 4, 1), date(2026, 3, 31)),  # the month to date
    ]


def test_the_trend_over_rolling_12_month_periods(client, session, imported, sign_in):
    sign_in(CM)
    body = client.get(f"/api/v1/quality?{PERIOD}").json()
    # The last 12 months up to the end of November 2026, as a period of its own.
    rolling = client.get("/api/v1/quality?start=2025-12-01&end=2026-11-30").json()
    for measure, same in zip(body["measures"], rolling["measures"], strict=True):
        trend = measure["trend"]
        # Up to the current month (the test clock: November 2026).
        assert [t["month"] for t in trend] == [f"2026-{m:02d}" for m in range(1, 12)]
        overall = same["overall"]
        assert (trend[-1]["numerator"], trend[-1]["denominator"]) == (
            overall["numerator"],
            overall["performance_denominator"],
        )
    cms159 = next(m for m in body["measures"] if "159" in m["measure_id"])
    assert any(t["denominator"] for t in cms159["trend"])
    page = client.get(f"/quality?{PERIOD}").text
    assert f'data-quality-trend="measure:{cms159["measure_id"]}"' in page
    assert "Trend: the rate over the 12 months up to the end of each month" in page

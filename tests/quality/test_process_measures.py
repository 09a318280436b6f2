"""The process measures (issue 20) as pure functions: each rule at its boundary
(docs/quality-measures.md, "Process measures")."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from concord.quality import process
from concord.quality.process import EpisodeFacts, evaluate
from tests.registry.conftest import TODAY, contact, enroll, phq9

START = date(2026, 1, 5)
YEAR = (date(2026, 1, 1), date(2027, 12, 31))


def units(facts: EpisodeFacts, measure: str, period=YEAR) -> list[process.Unit]:
    return [u for u in evaluate(facts, *period).units if u.measure == measure]


def days(facts: EpisodeFacts, measure: str, period=YEAR) -> list[int]:
    return [d.days for d in evaluate(facts, *period).days if d.measure == measure]


def test_days_to_first_contact_and_treatment():
    facts = EpisodeFacts(
        START,
        True,
        contacts=[
            (START + timedelta(days=2), "outreach_attempt"),
            (START + timedelta(days=6), "initial_assessment"),
            (START + timedelta(days=20), "follow_up"),
        ],
    )
    assert days(facts, "days_to_first_contact") == [6]  # an attempt is not a contact
    assert days(facts, "days_to_first_treatment") == [20]
    # Counted in the period the episode began in, not in another.
    assert days(facts, "days_to_first_contact", (date(2026, 2, 1), date(2026, 12, 31))) == []
    assert days(EpisodeFacts(START, True), "days_to_first_contact") == []


@pytest.mark.parametrize(("after", "met"), [(28, True), (29, False), (0, False)])
def test_follow_up_within_4_weeks(after, met):
    contacts = [(START, "initial_assessment"), (START + timedelta(days=after), "follow_up")]
    assert [
        u.numerator for u in units(EpisodeFacts(START, True, contacts), "follow_up_4_weeks")
    ] == [met]


def test_follow_up_counts_a_case_review_as_no_follow_up():
    contacts = [(START, "initial_assessment"), (START + timedelta(days=7), "case_review")]
    assert [
        u.numerator for u in units(EpisodeFacts(START, True, contacts), "follow_up_4_weeks")
    ] == [False]


def test_phq9_utilization_by_4_month_period():
    assert process.four_month_period(date(2026, 4, 30)) == (date(2026, 1, 1), date(2026, 4, 30))
    assert process.four_month_period(date(2026, 5, 1)) == (date(2026, 5, 1), date(2026, 8, 31))
    assert process.four_month_period(date(2026, 12, 31)) == (date(2026, 9, 1), date(2026, 12, 31))
    facts = EpisodeFacts(
        START,
        True,
        contacts=[(date(2026, 4, 30), "follow_up"), (date(2026, 5, 1), "follow_up")],
        phq9=[(date(2026, 1, 10), 12)],
    )
    found = units(facts, "phq9_utilization", (date(2026, 1, 1), date(2026, 12, 31)))
    assert [(u.month, u.numerator) for u in found] == [
        (date(2026, 1, 1), True),
        (date(2026, 5, 1), False),
    ]
    # Only 4-month periods wholly in the measurement period; only PHQ-9 programs.
    assert units(facts, "phq9_utilization", (date(2026, 2, 1), date(2026, 12, 31)))[
        0
    ].month == date(2026, 5, 1)
    assert units(EpisodeFacts(START, False, facts.contacts, facts.phq9), "phq9_utilization") == []


def scores(*pairs):
    return [(START + timedelta(days=d), v) for d, v in pairs]


@pytest.mark.parametrize(
    ("day", "value", "response", "remission"),
    [
        (120, 10, True, False),  # exactly 50% lower than 20
        (240, 11, False, False),
        (180, 4, True, True),
        (119, 4, False, False),  # before the window: no score in it
        (241, 4, False, False),  # after it
    ],
)
def test_response_and_remission_at_6_months(day, value, response, remission):
    facts = EpisodeFacts(START, True, phq9=scores((0, 20), (day, value)))
    assert [u.numerator for u in units(facts, "response_6_months")] == [response]
    assert [u.numerator for u in units(facts, "remission_6_months")] == [remission]


def test_12_months_plus_or_minus_60_days_and_the_last_score_counts():
    twelve = process.add_months(START, 12)
    inside = (twelve - START).days + 60
    facts = EpisodeFacts(START, True, phq9=scores((0, 15), (inside - 100, 3), (inside, 7)))
    assert [u.numerator for u in units(facts, "remission_12_months")] == [False]
    assert [u.numerator for u in units(facts, "response_12_months")] == [True]
    late = EpisodeFacts(START, True, phq9=scores((0, 15), (inside + 1, 3)))
    assert [u.numerator for u in units(late, "remission_12_months")] == [False]


def test_only_an_elevated_baseline_is_counted():
    assert (
        units(EpisodeFacts(START, True, phq9=scores((0, 9), (180, 2))), "remission_6_months") == []
    )
    # The baseline is the first score from 30 days before the episode.
    early = EpisodeFacts(START, True, phq9=scores((-31, 25), (-30, 9), (180, 2)))
    assert units(early, "remission_6_months") == []
    assert units(EpisodeFacts(START, True, phq9=scores((-30, 12), (180, 2))), "remission_6_months")


@pytest.mark.parametrize(
    ("latest", "review_day", "counted", "met"),
    [
        (18, 83, True, True),  # the last day of week 12
        (18, 84, True, False),
        (18, None, True, False),
        (10, None, False, False),  # 50% lower by week 8: responding
        (4, None, False, False),  # in remission
    ],
)
def test_psychiatric_review_when_not_improving(latest, review_day, counted, met):
    facts = EpisodeFacts(
        START,
        True,
        phq9=scores((0, 20), (56, latest)),
        reviews=[START + timedelta(days=review_day)] if review_day is not None else [],
    )
    found = units(facts, "review_not_improving")
    assert [u.numerator for u in found] == ([met] if counted else [])


def test_review_anchor_outside_the_period():
    facts = EpisodeFacts(START, True, phq9=scores((0, 20), (56, 18)))
    assert units(facts, "review_not_improving", (date(2026, 1, 1), date(2026, 3, 28))) == []
    assert units(facts, "review_not_improving", (date(2026, 1, 1), date(2026, 3, 29)))


def test_tallies_and_months():
    us = [
        process.Unit("x", date(2026, 1, 1), True),
        process.Unit("x", date(2026, 1, 1), False),
        process.Unit("x", date(2026, 2, 1), True),
        process.Unit("y", date(2026, 2, 1), True),
    ]
    assert process.tally(us, "x") == process.Tally(3, 2)
    assert process.by_month(us, "x") == {
        date(2026, 1, 1): process.Tally(2, 1),
        date(2026, 2, 1): process.Tally(1, 1),
    }
    vs = [process.DaysValue("d", date(2026, 1, 1), n) for n in (3, 30, 10)]
    assert process.days_tally(vs, "d") == process.DaysTally(3, 10.0, 2)


# --- through the action and the doors ----------------------------------------------------------


@pytest.fixture
def enrolled(session, people):
    enroll(session, people, started_on=TODAY - timedelta(days=20))
    contact(session, people, "initial_assessment", TODAY - timedelta(days=18))
    contact(session, people, "follow_up", TODAY - timedelta(days=5))
    phq9(session, people, 15)
    return people


def _process(body) -> dict:
    return {m["measure"]: m for m in body["process_measures"]}


def test_the_process_measures_in_json_csv_and_page(client, enrolled, sign_in):
    sign_in("cara@test.example.org")
    body = client.get("/api/v1/quality?start=2026-01-01&end=2026-12-31").json()
    found = _process(body)
    assert found["days_to_first_contact"]["days_count"] == 1
    assert found["days_to_first_contact"]["days_median"] == 2
    assert found["days_to_first_treatment"]["days_median"] == 15
    follow = found["follow_up_4_weeks"]["overall"]
    assert (follow["numerator"], follow["performance_denominator"]) == (1, 1)
    assert follow["too_small"] is True and follow["interval"][1] == 1.0
    assert found["follow_up_4_weeks"]["by_clinic"][0]["label"] == "North Clinic"
    assert found["follow_up_4_weeks"]["trend"] == [
        {"month": "2026-11", "denominator": 1, "numerator": 1, "rate": 1.0}
    ]
    utilization = found["phq9_utilization"]["overall"]
    assert (utilization["numerator"], utilization["performance_denominator"]) == (1, 1)
    # Response at 6 months is not due yet in this period.
    assert found["response_6_months"]["overall"]["performance_denominator"] == 0
    csv = client.get("/quality.csv?start=2026-01-01&end=2026-12-31").text
    assert "follow_up_4_weeks,,2026-01-01,2026-12-31" in csv
    page = client.get("/quality?start=2026-01-01&end=2026-12-31").text
    assert "Follow-up within 4 weeks of the initial assessment" in page
    assert 'data-quality-trend="follow_up_4_weeks"' in page


def test_the_process_measures_count_only_the_viewers_patients(client, enrolled, sign_in):
    sign_in("otto@test.example.org")
    found = _process(client.get("/api/v1/quality?start=2026-01-01&end=2026-12-31").json())
    assert found["follow_up_4_weeks"]["overall"]["performance_denominator"] == 0
    assert found["days_to_first_contact"]["days_count"] == 0


def test_exclusions_leave_response_and_remission_out():
    scores = [(START, 15.0), (START + timedelta(days=150), 3.0)]
    kept = EpisodeFacts(START, True, phq9=scores)
    assert [(u.numerator, u.excluded) for u in units(kept, "remission_6_months")] == [(True, False)]
    windows = []

    def hospice(first, last):
        windows.append((first, last))
        return "hospice"

    out = EpisodeFacts(START, True, phq9=scores, excluded=hospice)
    found = units(out, "remission_6_months") + units(out, "response_6_months")
    assert [(u.numerator, u.excluded) for u in found] == [(False, True), (False, True)]
    # From the baseline to the window's last day.
    assert windows[0] == (START, START + timedelta(days=240))
    assert process.tally(found, "remission_6_months") == process.Tally(0, 0, 1)
    # The other measures are not the spec's to exclude.
    follow = EpisodeFacts(
        START,
        True,
        contacts=[(START, "initial_assessment"), (START + timedelta(days=7), "follow_up")],
        excluded=hospice,
    )
    assert [u.excluded for u in units(follow, "follow_up_4_weeks")] == [False]


def test_nqf_0712_exclusions_leave_a_4_month_period_out():
    contacts = [(date(2026, 3, 2), "follow_up"), (date(2026, 6, 2), "follow_up")]
    phq = [(date(2026, 3, 2), 12.0), (date(2026, 6, 2), 8.0)]
    windows = []

    def died_in_june(first, last):
        windows.append((first, last))
        return "died" if last >= date(2026, 6, 15) else None

    # CMS159's exclusions (`excluded`) are not PHQ-9 utilization's: nothing is left out.
    kept = EpisodeFacts(START, True, contacts, phq, excluded=lambda a, b: "palliative_care")
    assert [u.excluded for u in units(kept, "phq9_utilization")] == [False, False]
    out = EpisodeFacts(START, True, contacts, phq, excluded_utilization=died_in_june)
    found = units(out, "phq9_utilization")
    # Asked over each 4-month period; January-April kept and met, May-August left out.
    assert windows == [
        (date(2026, 1, 1), date(2026, 4, 30)),
        (date(2026, 5, 1), date(2026, 8, 31)),
    ]
    assert [(u.month, u.numerator, u.excluded) for u in found] == [
        (date(2026, 1, 1), True, False),
        (date(2026, 5, 1), False, True),
    ]
    assert process.tally(found, "phq9_utilization") == process.Tally(1, 1, 1)

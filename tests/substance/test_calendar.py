"""The days-of-use calendar (Timeline Followback style) and substance-use goals (issue 19):
the figures at their boundaries, recording from either side, a retry recorded once, the Part 2
label and the consent decision, the goals' targets, the JSON API, the pages and the check-in's
optional steps. Both engines."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from concord import disclosure
from concord.actions import part2 as part2_actions
from concord.actions import substance_use as act
from concord.audit.models import AuditEvent
from concord.careplans import service as plans
from concord.careplans.schemas import GoalIn, PlanStart
from concord.dates import org_today
from concord.errors import InvalidInput, PermissionDenied
from concord.registry.service import Enrolment, enroll
from concord.substance import service as calendar
from concord.substance.models import SubstanceUseDay
from concord.substance.schemas import DaysIn
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for


@pytest.fixture
def team(session, people):
    return acc_for(session, people.care_manager, people.patient)


@pytest.fixture
def me(session, people):
    return acc_for(session, people.patient_user, people.patient)


@pytest.fixture
def today(people):
    return org_today(people.org)


def _days(substance, *days):
    return DaysIn.model_validate(
        {
            "substance": substance,
            "days": [{"on": on, "used": used, "drinks": drinks} for on, used, drinks in days],
        }
    )


def _count(session):
    return session.scalar(select(func.count()).select_from(SubstanceUseDay))


def _goal(session, access, **fields):
    if plans.current_plan(session, access.patient.id) is None:
        plans.start_plan(session, access=access, data=PlanStart(title="Care plan"))
    data = {"statement": "Fewer drinks on the weekend", "category": "substance_use", **fields}
    return plans.add_item(session, access=access, section="goals", data=GoalIn(**data))


# --- the figures, pure, at their boundaries -------------------------------------------------


def test_days_of_use_count_the_30_days_ending_today_and_no_day_before(session, me, today):
    # Day 29 back is inside the window, day 30 back is not.
    act.record_days(
        session,
        access=me,
        data=_days(
            "cannabis",
            (today, True, None),
            (today - timedelta(days=29), True, None),
            (today - timedelta(days=30), True, None),
            (today - timedelta(days=1), False, None),
        ),
    )
    days = calendar.list_days(session, access=me)
    w = calendar.window(days, "cannabis", today)
    assert (w.start, w.end) == (today - timedelta(days=29), today)
    assert (w.days_of_use, w.recorded, w.complete) == (2, 3, False)
    assert w.drinks_per_drinking_day is None  # not alcohol
    # Another substance's days are not counted.
    assert calendar.window(days, "alcohol", today).recorded == 0


def test_drinks_per_drinking_day_is_the_mean_on_days_of_drinking(session, me, today):
    act.record_days(
        session,
        access=me,
        data=_days(
            "alcohol",
            (today, True, 3),
            (today - timedelta(days=2), True, 4),
            (today - timedelta(days=3), False, None),
        ),
    )
    w = calendar.window(calendar.list_days(session, access=me), "alcohol", today)
    assert (w.days_of_use, w.drinking_days, w.drinks) == (2, 2, 7)
    assert w.drinks_per_drinking_day == 3.5  # days without drinking are not in the mean


def test_the_chart_series_is_consecutive_30_day_windows(session, me, today):
    act.record_days(
        session,
        access=me,
        data=_days(
            "opioids",
            (today - timedelta(days=65), True, None),
            (today - timedelta(days=31), True, None),
            (today - timedelta(days=30), False, None),
            (today, False, None),
        ),
    )
    windows = calendar.series(calendar.list_days(session, access=me), "opioids", today)
    assert [w.end for w in windows] == [
        today - timedelta(days=60),
        today - timedelta(days=30),
        today,
    ]
    assert [w.days_of_use for w in windows] == [1, 1, 0]


@pytest.mark.parametrize(
    ("op", "target", "used", "recorded", "met"),
    [
        ("at_most", 0, 0, 30, True),  # abstinence, every day recorded
        ("at_most", 0, 0, 29, None),  # a missing day could be a day of use
        ("at_most", 0, 1, 10, False),  # already over, whatever the missing days hold
        ("at_most", 4, 4, 30, True),  # at the target
        ("at_most", 4, 5, 30, False),  # one over
        ("below", 4, 4, 30, False),
        ("at_least", 2, 2, 5, True),
    ],
)
def test_a_target_is_met_only_when_the_missing_days_cannot_change_it(
    op, target, used, recorded, met
):
    w = calendar.Window("cannabis", date(2026, 1, 1), date(2026, 1, 30), recorded, used, 0, 0)
    assert calendar.target_met(op, target, w, "days-of-use-30") is met


def test_drinks_per_drinking_day_targets_wait_for_a_whole_month():
    whole = calendar.Window("alcohol", date(2026, 1, 1), date(2026, 1, 30), 30, 4, 4, 12)
    part = calendar.Window("alcohol", date(2026, 1, 1), date(2026, 1, 30), 20, 4, 4, 12)
    assert calendar.target_met("at_most", 3, whole, "drinks-per-drinking-day") is True
    assert calendar.target_met("at_most", 2, whole, "drinks-per-drinking-day") is False
    assert calendar.target_met("at_most", 3, part, "drinks-per-drinking-day") is None


# --- recording ------------------------------------------------------------------------------


def test_the_same_days_again_change_nothing_and_a_new_answer_replaces_the_old(
    session, me, team, today
):
    first = act.record_days(session, access=me, data=_days("alcohol", (today, True, 2)))
    assert len(first.created) == 1 and first.created[0].by_patient
    again = act.record_days(session, access=me, data=_days("alcohol", (today, True, 2)))
    assert (again.created, again.changed, again.unchanged) == ([], [], 1)
    assert _count(session) == 1
    changed = act.record_days(session, access=team, data=_days("alcohol", (today, True, 5)))
    assert len(changed.changed) == 1
    row = session.scalar(select(SubstanceUseDay))
    assert (row.drinks, row.updated_by_id, row.created_by_id) == (
        5,
        team.by.id,
        me.by.id,
    )


@pytest.mark.parametrize(
    ("substance", "day", "field"),
    [
        ("alcohol", (1, True, None), "days.on"),  # tomorrow
        ("cannabis", (0, True, 2), "days.drinks"),  # drinks for alcohol only
        ("alcohol", (0, True, None), "days.drinks"),  # a drinking day says how many
        ("alcohol", (0, True, 0), "days.drinks"),
        ("alcohol", (0, False, 3), "days.drinks"),  # no drinks on a day without
        ("alcohol", (0, None, 3), "days.used"),  # drinks on a day not marked
        ("alcohol", (0, None, None), "days.used"),  # nothing marked at all
    ],
)
def test_bad_days_name_the_field_and_write_nothing(session, me, today, substance, day, field):
    offset, used, drinks = day
    with pytest.raises(InvalidInput) as caught:
        act.record_days(
            session,
            access=me,
            data=_days(substance, (today + timedelta(days=offset), used, drinks)),
        )
    assert field in caught.value.errors
    assert _count(session) == 0


def test_the_same_day_twice_in_one_post_is_refused(session, me, today):
    with pytest.raises(InvalidInput) as caught:
        act.record_days(
            session, access=me, data=_days("alcohol", (today, False, None), (today, True, 1))
        )
    assert "days.on" in caught.value.errors and _count(session) == 0


def test_the_schema_names_bad_input():
    with pytest.raises(ValueError, match="substance"):
        DaysIn.model_validate({"substance": "coffee", "days": [{"on": "2026-11-01"}]})
    with pytest.raises(ValueError, match="days"):
        DaysIn.model_validate({"substance": "alcohol", "days": []})
    with pytest.raises(ValueError, match="drinks"):
        DaysIn.model_validate(
            {"substance": "alcohol", "days": [{"on": "2026-11-01", "used": "true", "drinks": 101}]}
        )


# --- Part 2 and consent ---------------------------------------------------------------------


def _pcp_on_team(session, people):
    from concord.accounts.models import Role
    from concord.patients.models import CareTeam, CareTeamMember
    from tests.factories import create_staff

    pcp = create_staff(
        session, people.org, people.south, Role.primary_care_provider, "Pat Lee", "pcp@x.test"
    )
    care_team = session.scalar(select(CareTeam).where(CareTeam.patient_id == people.patient.id))
    session.add(
        CareTeamMember(care_team_id=care_team.id, user_id=pcp.id, role="primary_care_provider")
    )
    commit(session)
    return acc_for(session, pcp, people.patient)


def test_days_are_part2_for_a_program_patient_and_withheld_without_consent(
    session, people, team, me, today
):
    act.record_days(session, access=me, data=_days("opioids", (today, False, None)))
    row = session.scalar(select(SubstanceUseDay))
    assert row.data_category == "substance_use"
    assert not disclosure.label_of(session, team, row).part2
    part2_actions.set_part2_program(session, people.admin, people.north.id, True)
    enroll(session, access=team, data=Enrolment(program="co_occurring"))
    commit(session)
    assert disclosure.label_of(session, team, row).part2
    assert calendar.list_days(session, access=team) == [row]  # the program's own staff
    pcp = _pcp_on_team(session, people)
    assert calendar.list_days(session, access=pcp) == []
    view = act.calendar_view(session, access=pcp)
    assert view.days == [] and view.substances == []
    commit(session)  # the audit trail is written at commit
    denied = session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.outcome == "denied",
            AuditEvent.patient_id == people.patient.id,
            AuditEvent.object_type == "SubstanceUseDay",
            AuditEvent.actor_id == pcp.by.id,
        )
    )
    assert denied >= 1  # the withheld rows are in the trail
    # Nor may they overwrite a day they cannot see (nothing changes, the attempt audited).
    with pytest.raises(PermissionDenied):
        act.record_days(session, access=pcp, data=_days("opioids", (today, True, None)))
    session.refresh(row)
    assert row.used is False


def test_family_may_not_record_nor_read(session, people, today):
    family = acc_for(session, people.family, people.patient)
    with pytest.raises(PermissionDenied):
        act.record_days(session, access=family, data=_days("alcohol", (today, False, None)))
    with pytest.raises(Exception, match="[Nn]ot found|No such"):
        calendar.list_days(session, access=family)
    assert _count(session) == 0


# --- goals ----------------------------------------------------------------------------------


def test_an_abstinence_goal_targets_no_days_of_use(session, team):
    goal = _goal(
        session,
        team,
        statement="No more heroin, for my kids",
        substance="opioids",
        use_aim="abstinence",
    )
    assert (goal.measure_instrument, goal.measure_op, goal.measure_value) == (
        "days-of-use-30",
        "at_most",
        0,
    )
    with pytest.raises(InvalidInput) as caught:
        _goal(
            session,
            team,
            substance="opioids",
            use_aim="abstinence",
            measure_instrument="days-of-use-30",
            measure_op="at_most",
            measure_value=3,
        )
    assert "measure_value" in caught.value.errors


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"substance": "cannabis"}, "use_aim"),
        ({"use_aim": "reduction"}, "substance"),
        ({"substance": "alcohol", "use_aim": "reduction", "category": "wellbeing"}, "category"),
        (
            {
                "substance": "cannabis",
                "use_aim": "reduction",
                "measure_instrument": "drinks-per-drinking-day",
                "measure_op": "at_most",
                "measure_value": 2,
            },
            "measure_instrument",
        ),
        (
            {
                "substance": "alcohol",
                "use_aim": "reduction",
                "measure_instrument": "PHQ-9",
                "measure_op": "below",
                "measure_value": 10,
            },
            "measure_instrument",
        ),
        (
            {
                "substance": "alcohol",
                "use_aim": "reduction",
                "measure_instrument": "days-of-use-30",
                "measure_op": "at_most",
                "measure_value": 31,
            },
            "measure_value",
        ),
        (
            {
                "category": "wellbeing",
                "measure_instrument": "days-of-use-30",
                "measure_op": "at_most",
                "measure_value": 3,
            },
            "substance",
        ),
    ],
)
def test_a_substance_goal_names_what_is_wrong(session, team, fields, field):
    with pytest.raises(InvalidInput) as caught:
        _goal(session, team, **fields)
    assert field in caught.value.errors


def test_a_reduction_goal_is_read_against_the_last_30_days(session, team, me, today):
    goal = _goal(
        session,
        team,
        substance="alcohol",
        use_aim="reduction",
        measure_instrument="drinks-per-drinking-day",
        measure_op="at_most",
        measure_value=2,
    )
    act.record_days(
        session,
        access=me,
        data=_days(
            "alcohol",
            *[
                (today - timedelta(days=n), n % 3 == 0, 2 if n % 3 == 0 else None)
                for n in range(30)
            ],
        ),
    )
    view = act.calendar_view(session, access=team)
    (alcohol,) = view.substances
    (standing,) = alcohol.goals
    assert standing.goal.id == goal.id and standing.value == 2.0 and standing.met is True
    assert alcohol.current.days_of_use == 10 and alcohol.current.complete


# --- the JSON API ---------------------------------------------------------------------------


def test_the_api_records_once_and_reads_the_figures(client, session, people, today):
    me = bearer(session, people.patient_user)
    team = bearer(session, people.care_manager)
    url = f"/api/v1/patients/{people.patient.id}/substance-use"
    body = {
        "substance": "alcohol",
        "days": [
            {"on": today.isoformat(), "used": True, "drinks": 4},
            {"on": (today - timedelta(days=1)).isoformat(), "used": False},
        ],
    }
    made = client.post(f"{url}/days", json=body, headers={**me, "Idempotency-Key": "tlfb-0001"})
    assert made.status_code == 201, made.text
    assert made.json() == {"substance": "alcohol", "created": 2, "changed": 0, "unchanged": 0}
    again = client.post(f"{url}/days", json=body, headers={**me, "Idempotency-Key": "tlfb-0001"})
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == made.json()
    other = dict(body, substance="cannabis")
    clash = client.post(f"{url}/days", json=other, headers={**me, "Idempotency-Key": "tlfb-0001"})
    assert clash.status_code == 409
    assert _count(session) == 2
    read = client.get(url, headers=team)
    assert read.status_code == 200
    (alcohol,) = read.json()["substances"]
    assert alcohol["last_30_days"]["days_of_use"] == 1
    assert alcohol["last_30_days"]["days_recorded"] == 2
    assert alcohol["last_30_days"]["drinks_per_drinking_day"] == 4
    bad = client.post(
        f"{url}/days",
        json={"substance": "alcohol", "days": [{"on": today.isoformat(), "used": True}]},
        headers=team,
    )
    assert bad.status_code == 422 and "days.drinks" in bad.text
    assert _count(session) == 2
    for user in (people.family, people.outsider, people.other_patient_user):
        assert client.get(url, headers=bearer(session, user)).status_code == 404
        assert (
            client.post(f"{url}/days", json=body, headers=bearer(session, user)).status_code == 404
        )


# --- the pages ------------------------------------------------------------------------------


def test_the_team_page_charts_the_figure_against_the_goal(
    client, session, people, team, sign_in, today
):
    _goal(
        session,
        team,
        statement="Weed only on weekends",
        substance="cannabis",
        use_aim="reduction",
        measure_instrument="days-of-use-30",
        measure_op="at_most",
        measure_value=8,
    )
    commit(session)
    token = sign_in("cara@test.example.org")
    page = client.get(f"/patients/{people.patient.id}/substance-use")
    assert page.status_code == 200, page.text
    assert 'data-substance="cannabis"' in page.text and "Goal: at most 8" in page.text
    saved = client.post(
        f"/patients/{people.patient.id}/substance-use/days",
        data={
            "csrf_token": token,
            "idem": "page-tlfb-01",
            "substance": "cannabis",
            "days.on": [today.isoformat(), (today - timedelta(days=1)).isoformat()],
            "days.used": ["true", ""],
            "days.drinks": ["", ""],
        },
    )
    assert saved.status_code == 303, saved.text
    assert "cannabis" not in saved.headers["location"]  # nothing about the record in the URL
    assert _count(session) == 1
    bad = client.post(
        f"/patients/{people.patient.id}/substance-use/days",
        data={
            "csrf_token": token,
            "substance": "cannabis",
            "days.on": [today.isoformat()],
            "days.used": ["true"],
            "days.drinks": ["3"],
        },
    )
    assert bad.status_code == 422 and "drinks are counted for alcohol only" in bad.text
    assert _count(session) == 1
    plan_page = client.get(f"/patients/{people.patient.id}/plan")
    assert plan_page.status_code == 200 and 'data-substance-goal="cannabis"' in plan_page.text


def test_the_patient_fills_in_the_calendar_in_the_portal(client, session, people, sign_in, today):
    token = sign_in("pat@patients.example.org")
    page = client.get("/my/substance-use")
    assert page.status_code == 200 and "My days of use" in page.text
    assert client.get("/my/substance-use", headers={"Accept-Language": "es"}).status_code == 200
    saved = client.post(
        "/my/substance-use/days",
        data={
            "csrf_token": token,
            "form": "new",
            "substance": "alcohol",
            "days.on": [today.isoformat()],
            "days.used": ["true"],
            "days.drinks": ["2"],
        },
    )
    assert (
        saved.status_code == 303 and saved.headers["location"] == "/my/substance-use?done=recorded"
    )
    row = session.scalar(select(SubstanceUseDay))
    assert row.by_patient and row.drinks == 2

"""A row built for some flags only (build_rows(..., only=...), used by the check-in's task sync)
decides those flags as the whole row does, with fewer statements; the check-in's sync leaves
the tasks of other flags as they were."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from concord.dates import org_today
from concord.measures import service as measures
from concord.patients.models import Patient
from concord.registry.caseload import ALL_FACTS, FLAG_FACTS, build_rows, episode_flags
from concord.registry.jobs import CHECKIN_FLAGS, sync_all_tasks, sync_patient_tasks
from concord.registry.models import Episode, TaskStatus, WorkTask
from concord.registry.rules import FLAG_CODES
from concord.registry.tasks import FLAG_TASKS, flag_source
from tests.conftest import commit
from tests.factories import acc_for
from tests.registry.conftest import days_ago
from tests.registry.test_caseload import caseload  # noqa: F401 (fixture)


def test_every_flag_names_the_facts_it_is_decided_by():
    assert set(FLAG_FACTS) == set(FLAG_CODES)
    assert set().union(*FLAG_FACTS.values()) <= ALL_FACTS
    assert CHECKIN_FLAGS <= set(FLAG_TASKS)


def _rows(session, people, only=None):
    session.expire_all()
    pairs = [
        (e, p)
        for e, p in session.execute(
            select(Episode, Patient)
            .join(Patient, Patient.id == Episode.patient_id)
            .where(Episode.ended_on.is_(None))
        )
    ]
    return build_rows(
        session, pairs, today=org_today(people.org), tz=people.org.timezone, only=only
    )


def _count(session):
    seen = []

    def counted(*_args, **_kw):
        seen.append(1)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", counted)
    return seen, lambda: event.remove(engine, "before_cursor_execute", counted)


@pytest.mark.parametrize("code", FLAG_CODES)
def test_a_row_built_for_one_flag_decides_it_as_the_whole_row(session, people, caseload, code):  # noqa: F811
    whole = {r.patient.id: code in r.flag_codes for r in _rows(session, people)}
    seen, stop = _count(session)
    try:
        alone = _rows(session, people, only={code})
    finally:
        stop()
    assert {r.patient.id: code in r.flag_codes for r in alone} == whole
    assert all(r.flag_codes <= {code} for r in alone)
    if code in ("not_improving", "needs_initial_assessment", "no_follow_up_4_weeks"):
        assert any(whole.values())  # the fixture shows it, so the comparison can fail
    # The episodes' statement and at most the two of the flag's facts (plans read two tables).
    assert len(seen) <= len(alone) + 3


def test_the_check_in_sync_opens_and_closes_only_the_check_in_flags(session, people, caseload):  # noqa: F811
    pid = people.patient.id
    sync_patient_tasks(session, pid, only=CHECKIN_FLAGS)
    commit(session)
    session.expire_all()
    sources = {
        t.source.split(":")[1]
        for t in session.scalars(
            select(WorkTask).where(WorkTask.patient_id == pid, WorkTask.status == TaskStatus.open)
        )
    }
    # Pat is not improving at week 9 (the consultant's task), and has no contact in 30 days,
    # a flag the check-in's sync leaves to the actions that log contacts and the nightly run.
    assert sources == {"not_improving"}
    episode = session.scalar(select(Episode).where(Episode.patient_id == pid))
    assert flag_source("not_improving", episode.id).startswith("flag:not_improving:")
    assert sync_all_tasks(session) > 0  # the nightly run opens the rest
    commit(session)
    # Test1: initial assessment 35 days ago and nothing since (no follow-up, no contact).
    other = caseload[2].id

    def open_now():
        session.expire_all()
        return sorted(
            session.scalars(
                select(WorkTask.source).where(
                    WorkTask.patient_id == other, WorkTask.status == TaskStatus.open
                )
            )
        )

    before = open_now()
    assert {s.split(":")[1] for s in before} >= {"no_follow_up_4_weeks", "no_contact_30_days"}
    # The check-in's sync finds nothing of its own to do and closes none of the other tasks.
    assert sync_patient_tasks(session, other, only=CHECKIN_FLAGS) == 0
    commit(session)
    assert open_now() == before


def test_one_episodes_check_in_flags_are_those_of_its_row(session, people, caseload):  # noqa: F811
    # Test1 gets a monthly GAD-7 from 45 days ago, never done: overdue; Pat is not improving.
    measures.add_schedule(
        session,
        access=acc_for(session, people.care_manager, caseload[2]),
        instrument_code="GAD-7",
        every_days=30,
        start_on=days_ago(45),
    )
    commit(session)
    rows = _rows(session, people, only=CHECKIN_FLAGS)
    codes = {code for r in rows for code in r.flag_codes}
    assert codes == {"not_improving", "checkin_overdue"}  # the comparison can fail
    for row in rows:
        alone = episode_flags(
            session,
            row.episode,
            row.patient,
            today=org_today(people.org),
            tz=people.org.timezone,
            only=CHECKIN_FLAGS,
        )
        assert [f.code for f in alone.flags] == [f.code for f in row.flags]


def test_the_check_in_sync_opens_no_review_task_after_a_recent_review(session, people, caseload):  # noqa: F811
    from concord.registry import reviews as rv

    pid = people.patient.id
    rv.record_review(
        session,
        access=acc_for(session, people.consultant, people.patient),
        data=rv.ReviewIn(minutes=20, summary="Partial response at week 9", recommendations=[]),
    )
    commit(session)
    sync_patient_tasks(session, pid, only=CHECKIN_FLAGS)
    commit(session)
    session.expire_all()
    sources = session.scalars(
        select(WorkTask.source).where(
            WorkTask.patient_id == pid, WorkTask.status == TaskStatus.open
        )
    ).all()
    assert not any(s.startswith("flag:not_improving:") for s in sources)


# Local times of Test1's GAD-7 check-ins, in days from today's midnight, and whether the
# schedule is then overdue. The schedule's window of today ends at midnight (today is its
# last day), so a check-in dated just after midnight (a few minutes ahead of the clock) is
# not in it, and the check-in sync's two latest check-ins (registry.caseload._completed_bounds)
# must answer as every check-in does.
WINDOW_CASES = {
    "none": ([], True),
    "before the window only": ([-35, -34.5, -34], True),
    "one in the window": ([-35, -34, -10], False),
    "just after midnight only": ([-35, 1 + 2 / 1440], True),
    "in the window and after midnight": ([-35, -10, 1 + 2 / 1440], False),
}


@pytest.mark.parametrize("case", list(WINDOW_CASES))
def test_the_check_in_sync_reads_overdue_as_every_check_in_does(session, people, caseload, case):  # noqa: F811
    from datetime import datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from sqlalchemy import update

    from concord.measures.models import MeasureResponse

    offsets, overdue = WINDOW_CASES[case]
    test1 = caseload[2]
    today = org_today(people.org)
    midnight = datetime.combine(today, time.min, ZoneInfo(people.org.timezone))
    acc = acc_for(session, people.care_manager, test1)
    measures.add_schedule(
        session,
        access=acc,
        instrument_code="GAD-7",
        every_days=30,
        start_on=today - timedelta(days=26),  # due 26 days ago; its window ends tonight
    )
    for offset in offsets:
        done = measures.record_response(
            session,
            access=acc,
            instrument_code="GAD-7",
            submission=measures.Submission(
                answers={**{str(i): 0 for i in range(1, 8)}}, mode=measures.Mode.phone
            ),
        )
        session.execute(
            update(MeasureResponse)
            .where(MeasureResponse.id == done.response.id)
            .values(completed_at=midnight + timedelta(days=offset))
        )
    commit(session)
    (row,) = [r for r in _rows(session, people, only=CHECKIN_FLAGS) if r.patient.id == test1.id]
    assert ("checkin_overdue" in row.flag_codes) is overdue  # every check-in, read by the row
    alone = episode_flags(
        session,
        row.episode,
        row.patient,
        today=today,
        tz=people.org.timezone,
        only=CHECKIN_FLAGS,
    )
    assert [f.code for f in alone.flags] == [f.code for f in row.flags]

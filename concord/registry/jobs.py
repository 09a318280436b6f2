"""The registry's periodic work: tasks follow the flags as days pass."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from functools import partial
from typing import Any, NamedTuple

from sqlalchemy import (
    Date,
    Integer,
    String,
    Uuid,
    bindparam,
    cast,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session, lazyload

from concord.accounts.models import Organization
from concord.dates import org_today
from concord.db import core, isolated
from concord.measures.models import MeasureSchedule
from concord.patients.models import Patient
from concord.registry.caseload import EPISODE_FACTS, FLAG_FACTS, build_rows, episode_flags
from concord.registry.models import CaseReview, Episode, ReviewStatus, TaskStatus, WorkTask
from concord.registry.reviews import REREVIEW_DAYS, recently_reviewed
from concord.registry.tasks import FLAG_TASKS, sync_flag_tasks

BATCH = 500


def sync_tasks_for(
    session: Session,
    episodes: list[tuple[Episode, Patient]],
    org: Organization,
    only: Collection[str] | None = None,
) -> int:
    """`only`: flag codes; the tasks of those flags alone are brought up to date, reading only
    the facts they are decided by (concord.registry.caseload.FLAG_FACTS)."""
    on = org_today(org)
    rows = build_rows(session, episodes, today=on, tz=org.timezone, only=only)
    reviewed = (
        recently_reviewed(session, [r.episode.id for r in rows], on)
        if only is None or any(FLAG_TASKS.get(code, ("",))[0] == "consultant" for code in only)
        else {}
    )
    opened, closed = sync_flag_tasks(session, rows, today=on, recently_reviewed=reviewed, only=only)
    return opened + closed


def sync_all_tasks(session: Session) -> int:
    """Every organization's open episodes, a batch at a time."""
    changed = 0
    for org in session.scalars(select(Organization)).all():
        last = None
        while True:
            query = (
                select(Episode, Patient)
                .join(Patient, Patient.id == Episode.patient_id)
                .where(Episode.organization_id == org.id, Episode.ended_on.is_(None))
                .order_by(Episode.id)
                .limit(BATCH)
            )
            if last is not None:
                query = query.where(Episode.id > last)
            batch = [(e, p) for e, p in session.execute(query)]
            if not batch:
                break
            changed += _sync_isolated(session, batch, org)
            last = batch[-1][0].id
    return changed


def _sync_isolated(
    session: Session, batch: list[tuple[Episode, Patient]], org: Organization
) -> int:
    """A batch at once (one set of queries for 500 episodes), in a savepoint; if it fails,
    each episode on its own, so one bad record skips one patient (reported by
    concord.db.isolated), not the clinic's task list."""
    done = isolated(
        session,
        partial(sync_tasks_for, session, batch, org),
        job="registry_tasks",
        object_type="Organization",
        object_id=org.id,
        report=False,
    )
    if done is not None:
        return int(done)
    changed = 0
    for episode, patient in batch:
        changed += (
            isolated(
                session,
                partial(sync_tasks_for, session, [(episode, patient)], org),
                job="registry_tasks",
                object_type="Episode",
                object_id=episode.id,
            )
            or 0
        )
    return changed


# Built once: every check-in runs it (concord.actions.checkin), and for a patient with no open
# episode it is all the sync costs (docs/adr/0013-the-check-in-write-path-in-core-statements.md).
# The episode alone: its care manager and consultant (joined by default, each with their
# organization: four joins) are not read by the sync, which needs their ids only; they load
# on first use if anything later in the request reads them.
_OPEN_EPISODE = (
    select(Episode)
    .where(Episode.patient_id == bindparam("patient"), Episode.ended_on.is_(None))
    .options(lazyload(Episode.care_manager), lazyload(Episode.consultant))
)


# The same episode as a row of what a check-in's sync reads (episode_flags, sync_flag_tasks):
# every check-in asks, and the object is not needed.
class _EpisodeRow(NamedTuple):
    """What a check-in's sync reads of the open episode (the flags and the tasks)."""

    id: Any
    organization_id: Any
    patient_id: Any
    program: str
    status: str
    started_on: Any
    care_manager_id: Any
    consultant_id: Any


class _Schedule(NamedTuple):
    instrument: str
    every_days: int
    start_on: Any
    end_on: Any


def _checkin_facts() -> Any:
    """The open episode ("ep"), the active schedules ("sc") and the open flag tasks ("t") of
    one patient (bound `patient`), in one statement (a UNION ALL, one branch a kind): what a
    check-in's task sync reads before the scores, three statements before. Columns: kind,
    u0..u4 (ids), s0, s1 (text), i0 (a number), d0, d1 (dates); NULL where a branch has none,
    typed so both engines read the union's columns as the first branch's types."""
    episode, schedule, task = Episode.__table__, MeasureSchedule.__table__, WorkTask.__table__
    types = (Uuid(), Uuid(), Uuid(), Uuid(), Uuid(), String(), String(), Integer(), Date(), Date())

    def row(kind: str, **given: Any) -> list[Any]:
        names = ("u0", "u1", "u2", "u3", "u4", "s0", "s1", "i0", "d0", "d1")
        cols = [literal(kind, String()).label("kind")]
        for name, type_ in zip(names, types, strict=True):
            value = given.get(name)
            cols.append((cast(null(), type_) if value is None else value).label(name))
        return cols

    patient = bindparam("patient", type_=episode.c.patient_id.type)
    return union_all(
        select(
            *row(
                "ep",
                u0=episode.c.id,
                u1=episode.c.organization_id,
                u2=episode.c.patient_id,
                u3=episode.c.care_manager_id,
                u4=episode.c.consultant_id,
                s0=episode.c.program,
                s1=episode.c.status,
                d0=episode.c.started_on,
            )
        ).where(episode.c.patient_id == patient, episode.c.ended_on.is_(None)),
        select(
            *row(
                "sc",
                s0=schedule.c.instrument,
                i0=schedule.c.every_days,
                d0=schedule.c.start_on,
                d1=schedule.c.end_on,
            )
        ).where(schedule.c.patient_id == patient, schedule.c.stopped_at.is_(None)),
        select(*row("t", u0=task.c.id, u1=task.c.patient_id, s0=task.c.source)).where(
            task.c.patient_id == patient,
            task.c.status == TaskStatus.open,
            task.c.source.like("flag:%"),
        ),
    )


_CHECKIN_FACTS = _checkin_facts()


def _patient_and_org(session: Session, episode: Any) -> tuple[Patient, Organization]:
    # The patient is in the session already when an action calls this (its access check
    # loaded it), and so is the organization (the asker's): no statement then.
    patient = session.get(Patient, episode.patient_id)
    org = session.get(Organization, episode.organization_id)
    assert org is not None and patient is not None
    return patient, org


# Whether the consultant reviewed this episode lately (recently_reviewed, for one episode).
_LAST_REVIEW = select(func.max(CaseReview.reviewed_on)).where(
    CaseReview.episode_id == bindparam("episode"),
    CaseReview.status == ReviewStatus.reviewed,
    CaseReview.reviewed_on > bindparam("since"),
)


# The flags a check-in can change: those decided by the patient's scores (not improving) and
# by the check-ins done against their schedules (overdue). Every other flag is decided by
# contacts, alerts, plans, reviews and recommendations, which a check-in does not write (an
# alert it raises has its own task: concord.safety); their tasks follow the actions that do
# write them, and the nightly run (sync_all_tasks) as days pass.
CHECKIN_FLAGS = frozenset({"not_improving", "not_improving_escalate", "checkin_overdue"})


def sync_patient_tasks(
    session: Session, patient_id: object, only: Collection[str] | None = None
) -> int:
    """After a change to one patient's care (a check-in, a contact, a review, a plan change);
    called by concord.actions, so every door brings the tasks up to date. `only`: the flags
    the change can touch (CHECKIN_FLAGS for a check-in); by default every flag."""
    if only is None or not frozenset().union(*(FLAG_FACTS[c] for c in only)) <= EPISODE_FACTS:
        episode = session.scalars(_OPEN_EPISODE, {"patient": patient_id}).first()
        if episode is None:
            return 0
        patient, org = _patient_and_org(session, episode)
        return sync_tasks_for(session, [(episode, patient)], org, only)
    # Flags of scores and schedules alone (a check-in's): by statements built once, on the
    # session's connection; the episode, the schedules and the open flag tasks in one
    # (_CHECKIN_FACTS), the episode as a row of what the flags and the tasks read.
    episodes: list[_EpisodeRow] = []
    schedules: list[_Schedule] = []
    tasks: list[tuple[Any, Any, str]] = []
    for r in core(session).execute(_CHECKIN_FACTS, {"patient": patient_id}):
        if r.kind == "ep":
            episodes.append(_EpisodeRow(r.u0, r.u1, r.u2, r.s0, r.s1, r.d0, r.u3, r.u4))
        elif r.kind == "sc":
            schedules.append(_Schedule(r.s0, r.i0, r.d0, r.d1))
        else:
            tasks.append((r.u0, r.u1, r.s0))
    if not episodes:
        return 0
    found = episodes[0]
    patient, org = _patient_and_org(session, found)
    on = org_today(org)
    flagged = episode_flags(
        session, found, patient, today=on, tz=org.timezone, only=only, schedules=schedules
    )
    reviewed = {}
    # Whether the consultant reviewed lately matters only to a consultant's flag that applies
    # (sync_flag_tasks neither opens nor keeps its task then): most check-ins have none.
    if any(FLAG_TASKS.get(f.code, ("",))[0] == "consultant" for f in flagged.flags):
        last = (
            core(session)
            .execute(
                _LAST_REVIEW, {"episode": found.id, "since": on - timedelta(days=REREVIEW_DAYS)}
            )
            .scalar()
        )
        if last is not None:
            reviewed[found.id] = last
    opened, closed = sync_flag_tasks(
        session, [flagged], today=on, recently_reviewed=reviewed, only=only, open_tasks=tasks
    )
    return opened + closed

"""Tasks: work a named person must do for a patient, with a due date and a priority.

Rules open them where a person must act (a registry flag, a review to do, a recommendation to
decide, a follow-up after a safety alert) and close them when the work is done; a clinician can
give one to someone on the care team. A source has at most one open task (a partial unique
index), so running the rules again never doubles a task.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from concord import disclosure
from concord.access import PatientAccess, deny, parse_id, refuse_record, team_access
from concord.accounts.models import Role, User
from concord.audit.service import record
from concord.categories import Purpose
from concord.clock import now
from concord.db import core
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import N_, Msg
from concord.paging import Page, count
from concord.patients.models import CareTeam, CareTeamMember, Patient
from concord.registry.caseload import flag_records
from concord.registry.models import Episode, TaskStatus, WorkTask
from concord.safety.alerts import alert_records, team_alerts_query
from concord.safety.models import SafetyAlert

PRIORITIES = ("routine", "urgent", "asap", "stat")
# What each registry flag asks of whom (titles are stored in English and shown translated) (flags not listed are handled elsewhere: a safety alert
# has its own workflow; a recommendation waiting has its own task).
FLAG_TASKS: dict[str, tuple[str, str, str]] = {
    # flag: (who, title, priority)
    "needs_initial_assessment": ("care_manager", N_("Do the initial assessment"), "urgent"),
    "no_follow_up_4_weeks": (
        "care_manager",
        N_("Follow up with the patient: no follow-up within 4 weeks of the initial assessment"),
        "urgent",
    ),
    "no_contact_30_days": (
        "care_manager",
        N_("Contact the patient: no contact in 30 days"),
        "urgent",
    ),
    "checkin_overdue": (
        "care_manager",
        N_("Help the patient complete an overdue check-in"),
        "routine",
    ),
    "plan_review_overdue": ("care_manager", N_("Review the care plan with the patient"), "routine"),
    "plan_awaiting_agreement": (
        "care_manager",
        N_("Go over the care plan with the patient and agree it"),
        "routine",
    ),
    "not_improving": (
        "consultant",
        N_("Review at the psychiatric case review: not improving"),
        "urgent",
    ),
    "not_improving_escalate": (
        "consultant",
        N_("Review now: still not improving at week 10 or later"),
        "asap",
    ),
}


def flag_source(code: str, episode_id: uuid.UUID) -> str:
    return f"flag:{code}:{episode_id}"


def open_task(
    session: Session,
    *,
    organization_id: uuid.UUID,
    patient_id: uuid.UUID,
    owner_id: uuid.UUID | None,
    title: str,
    source: str,
    due_on: date | None,
    priority: str = "routine",
    detail: str | None = None,
    by: User | None = None,
) -> WorkTask:
    """The open task for `source`, created if there is none (never a second one)."""
    existing = session.scalar(
        select(WorkTask).where(
            WorkTask.patient_id == patient_id,
            WorkTask.source == source,
            WorkTask.status == TaskStatus.open,
        )
    )
    if existing is not None:
        return existing
    task = WorkTask(
        organization_id=organization_id,
        patient_id=patient_id,
        owner_id=owner_id,
        title=title[:300],
        detail=detail,
        source=source,
        priority=priority,
        due_on=due_on,
        status=TaskStatus.open,
        created_at=now(),
        created_by_id=by.id if by else None,
    )
    with session.begin_nested():
        session.add(task)
        session.flush()
    record(
        session,
        by=by,
        action="create",
        object_type="Task",
        object_id=task.id,
        patient_id=patient_id,
        organization_id=organization_id,
        detail={"source": source.split(":")[0]},
    )
    return task


def close_tasks(
    session: Session,
    *,
    patient_id: uuid.UUID,
    source: str,
    note: str,
    by: User | None = None,
) -> int:
    """Close the open task for `source` (the work is done). Returns how many were closed."""
    tasks = session.scalars(
        select(WorkTask).where(
            WorkTask.patient_id == patient_id,
            WorkTask.source == source,
            WorkTask.status == TaskStatus.open,
        )
    ).all()
    for task in tasks:
        task.status = TaskStatus.done
        task.closed_at = now()
        task.closed_by_id = by.id if by else None
        task.close_note = note[:1000]
        record(
            session,
            by=by,
            action="close",
            object_type="Task",
            object_id=task.id,
            patient_id=patient_id,
            organization_id=task.organization_id,
        )
    return len(tasks)


def _team_user(session: Session, patient_id: uuid.UUID, role: str) -> uuid.UUID | None:
    return session.scalar(
        select(CareTeamMember.user_id)
        .join(CareTeam, CareTeam.id == CareTeamMember.care_team_id)
        .where(
            CareTeam.patient_id == patient_id,
            CareTeamMember.ended_at.is_(None),
            CareTeamMember.role == role,
        )
        .order_by(CareTeamMember.is_lead.desc(), CareTeamMember.added_at)
        .limit(1)
    )


def care_manager_of(session: Session, patient_id: uuid.UUID) -> uuid.UUID | None:
    """The patient's care manager on their current team (the lead first), if any."""
    return _team_user(session, patient_id, "care_manager")


def owner_for(session: Session, episode: Episode, who: str) -> uuid.UUID | None:
    if who == "consultant":
        return episode.consultant_id or _team_user(
            session, episode.patient_id, Role.psychiatric_consultant
        )
    return episode.care_manager_id


# What the sync reads of the open flag tasks: which they are (a row each, not an object: every
# check-in asks, and the sync closes one only when its flag stops applying).
_FLAG_TASK_COLUMNS = (WorkTask.id, WorkTask.patient_id, WorkTask.source)
_OPEN_FLAG_TASKS = select(*_FLAG_TASK_COLUMNS).where(
    WorkTask.patient_id == bindparam("patient"),
    WorkTask.status == TaskStatus.open,
    WorkTask.source.like("flag:%"),
)
_CLOSE_FLAG_TASK = (
    update(WorkTask)
    .where(WorkTask.id == bindparam("task"), WorkTask.status == TaskStatus.open)
    .values(status=TaskStatus.done, closed_at=bindparam("at"), close_note=bindparam("note"))
)
_CLOSED = ("status", "closed_at", "close_note")


DONE = N_("Done: the flag no longer applies.")
NOT_YOURS = N_("Closed: its owner may not see the records it follows from.")


def _close_flag_task(session: Session, task_id: uuid.UUID, note: str = DONE) -> None:
    """Done, as its flag no longer applies: one UPDATE; a copy of the task the session holds
    (loaded earlier in the same unit of work) is expired, so it reads the change."""
    core(session).execute(_CLOSE_FLAG_TASK, {"task": task_id, "at": now(), "note": note})
    held = session.identity_map.get(identity_key(WorkTask, task_id))
    if held is not None:
        session.expire(held, _CLOSED)


def _owner_may_not_see(
    session: Session, episode: Any, code: str, owner_id: uuid.UUID | None
) -> bool:
    """Whether the disclosure decision (consent, 42 CFR Part 2: ADR 0021) withholds from the
    task's owner any record flag `code` follows from: the owner's decision, not the system's
    (a "not improving" task names no score, but it follows from scores its owner may not
    see). Decided as the owner's treatment read, with no trail of its own (nothing is shown;
    the owner's own reads decide and log as ever). No owner: nobody is told anything."""
    if owner_id is None:
        return False
    owner = session.get(User, owner_id)
    if owner is None:
        return True
    if not isinstance(episode, Episode):  # a row of the episode's columns (a check-in's sync)
        episode = session.get(Episode, episode.id)
        assert episode is not None
    records = flag_records(episode, code)
    pairs = [(r, episode.patient_id) for r in records]
    return bool(disclosure.withheld_among(session, owner, pairs, purpose=Purpose.treatment))


def sync_flag_tasks(
    session: Session,
    rows: list[Any],
    *,
    today: date,
    recently_reviewed: dict[uuid.UUID, date] | None = None,
    only: Collection[str] | None = None,
    open_tasks: Iterable[tuple[Any, Any, str]] | None = None,
) -> tuple[int, int]:
    """Open a task for each flag that asks someone to act, and close the tasks whose flag no
    longer applies. `rows` are caseload rows (concord.registry.caseload). `only`: flag codes
    (the rows were built for them alone): the tasks of other flags are left as they are.
    `open_tasks`: the rows' open flag tasks (id, patient id, source) when the caller read them
    already (a check-in's sync). Returns (opened, closed)."""
    opened = closed = 0
    if not rows:
        return 0, 0
    patient_ids = [r.patient.id for r in rows]
    connection = core(session)
    found = (
        open_tasks
        if open_tasks is not None
        # One patient (an action's sync): the statement built once.
        else connection.execute(_OPEN_FLAG_TASKS, {"patient": patient_ids[0]})
        if len(patient_ids) == 1
        else connection.execute(
            select(*_FLAG_TASK_COLUMNS).where(
                WorkTask.patient_id.in_(patient_ids),
                WorkTask.status == TaskStatus.open,
                WorkTask.source.like("flag:%"),
            )
        )
    )
    open_flag_tasks: dict[tuple[uuid.UUID, str], uuid.UUID] = {
        (patient_id, source): task_id for task_id, patient_id, source in found
    }
    reviewed = recently_reviewed or {}
    for row in rows:
        wanted: dict[str, tuple[str, str, str]] = {}
        # The flags whose records the task's owner may not see: no task for them, and an
        # open one is closed (ADR 0021: the owner's decision, not the system's).
        not_theirs: set[str] = set()
        for flag in row.flags:
            if flag.code not in FLAG_TASKS:
                continue
            who, title, priority = FLAG_TASKS[flag.code]
            if who == "consultant" and row.episode.id in reviewed:
                continue  # reviewed in the last 4 weeks: no new review task yet
            source = flag_source(flag.code, row.episode.id)
            # Decided when a task would open, and by the nightly run (no `only`) for the open
            # ones, so a consent revoked closes them; a check-in's sync decides only when it
            # opens one (most check-ins open none and keep their few statements).
            if (
                only is None or (row.patient.id, source) not in open_flag_tasks
            ) and _owner_may_not_see(
                session, row.episode, flag.code, owner_for(session, row.episode, who)
            ):
                not_theirs.add(source)
                continue
            wanted[source] = (who, title, priority)
        for source, (who, title, priority) in wanted.items():
            if (row.patient.id, source) in open_flag_tasks:
                continue
            open_task(
                session,
                organization_id=row.episode.organization_id,
                patient_id=row.patient.id,
                owner_id=owner_for(session, row.episode, who),
                title=title,
                source=source,
                due_on=today if priority != "routine" else today + timedelta(days=7),
                priority=priority,
            )
            opened += 1
        prefix = f":{row.episode.id}"
        for (patient_id, source), task_id in open_flag_tasks.items():
            if patient_id != row.patient.id or not source.endswith(prefix):
                continue
            if only is not None and source.split(":")[1] not in only:
                continue
            if source not in wanted:
                _close_flag_task(session, task_id, NOT_YOURS if source in not_theirs else DONE)
                closed += 1
    return opened, closed


# --- people's tasks ------------------------------------------------------------------------------


def create_task(
    session: Session,
    *,
    access: PatientAccess,
    owner_id: Any,
    title: str,
    due_on: date | None,
    priority: str,
    detail: str | None,
) -> WorkTask:
    """A clinician gives a task to someone on the patient's care team (or to themselves)."""
    if not (access.on_team and access.by.is_clinician):
        raise deny(
            session, access, action="create", object_type="Task", message="Only the care team."
        )
    errors: dict[str, str] = {}
    words = " ".join((title or "").split())
    if not words:
        errors["title"] = Msg("say what needs doing")
    elif len(words) > 300:
        errors["title"] = Msg("must be at most %(max)s characters", max=300)
    if priority not in PRIORITIES:
        errors["priority"] = Msg("must be one of: %(allowed)s", allowed=", ".join(PRIORITIES))
    owner = parse_id(owner_id) if owner_id else access.by.id
    members = {
        m.user_id
        for m in session.scalars(
            select(CareTeamMember)
            .join(CareTeam, CareTeam.id == CareTeamMember.care_team_id)
            .where(CareTeam.patient_id == access.patient.id, CareTeamMember.ended_at.is_(None))
        )
    }
    if owner not in members:
        errors["owner_id"] = Msg("must be someone on this patient's care team")
    if errors:
        raise InvalidInput(Msg("The task was not created."), errors=errors)
    return open_task(
        session,
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        owner_id=owner,
        title=words,
        source=f"person:{uuid.uuid4()}",
        due_on=due_on,
        priority=priority,
        detail=(detail or "").strip() or None,
        by=access.by,
    )


def complete_task(session: Session, *, by: User, task_id: Any, note: str | None) -> WorkTask:
    """Mark a task done: its owner, or anyone on the patient's care team."""
    tid = parse_id(task_id)
    task = session.get(WorkTask, tid) if tid is not None else None
    if task is None:
        raise NotFound(Msg("No such task."))
    access = team_access(session, by, task.patient_id, action="update", object_type="Task")
    if not by.is_clinician:
        raise refuse_record(
            session, access, action="update", object_type="Task", message=Msg("No such task.")
        )
    if task.status != TaskStatus.open:
        raise Conflict(Msg("This task is already closed."))
    task.status = TaskStatus.done
    task.closed_at = now()
    task.closed_by_id = by.id
    task.close_note = (note or "").strip()[:1000] or None
    record(
        session,
        by=by,
        action="close",
        object_type="Task",
        object_id=task.id,
        patient_id=task.patient_id,
    )
    return task


def my_tasks(
    session: Session, by: User, *, include_done: bool = False
) -> list[tuple[WorkTask, Patient]]:
    """The person's tasks, for patients whose care team they are still on, soonest due first."""
    if not by.is_clinician:
        return []
    query = (
        select(WorkTask, Patient)
        .join(Patient, Patient.id == WorkTask.patient_id)
        .join(CareTeam, CareTeam.patient_id == Patient.id)
        .join(CareTeamMember, CareTeamMember.care_team_id == CareTeam.id)
        .where(
            WorkTask.owner_id == by.id,
            CareTeamMember.user_id == by.id,
            CareTeamMember.ended_at.is_(None),
        )
    )
    if not include_done:
        query = query.where(WorkTask.status == TaskStatus.open)
    rows = [(t, p) for t, p in session.execute(query.limit(500))]
    order = {p: i for i, p in enumerate(reversed(PRIORITIES))}
    rows.sort(
        key=lambda r: (
            r[0].status != TaskStatus.open,
            r[0].due_on or date.max,
            order.get(r[0].priority, 9),
        )
    )
    for task, patient in rows:
        record(
            session,
            by=by,
            action="list",
            object_type="Task",
            object_id=task.id,
            patient_id=patient.id,
        )
    return rows


@disclosure.discloses("WorkTask")
def tasks_for_patient(session: Session, access: PatientAccess) -> list[WorkTask]:
    if not access.on_team:
        return []
    return list(
        session.scalars(
            select(WorkTask)
            .where(WorkTask.patient_id == access.patient.id)
            .order_by(WorkTask.status, WorkTask.due_on)
        )
    )


# --- reads for the FHIR API (access and audit applied here, once) -------------------------------


def get_team_task(session: Session, *, by: User, ident: str) -> tuple[WorkTask, PatientAccess]:
    """A task by its id, for its patient's care team only; NotFound for anyone else and for a
    missing one alike (a refusal is in the trail). The read is in the trail."""
    key = parse_id(ident)
    task = session.get(WorkTask, key) if key is not None else None
    if task is None:
        raise NotFound(Msg("No such task."))
    acc = team_access(session, by, task.patient_id, action="search", object_type="Task")
    record(
        session,
        by=by,
        action="read",
        object_type="Task",
        object_id=task.id,
        patient_id=acc.patient.id,
    )
    return task, acc


def list_team_tasks(
    session: Session,
    *,
    by: User,
    scope: list[PatientAccess] | None,
    alert_statuses: list[str] | None = None,
    task_statuses: list[str] | None = None,
    owners: list[uuid.UUID] | None = None,
    before: uuid.UUID | None = None,
    limit: int = 100,
    only_count: bool = False,
) -> Page[tuple[Any, Patient]]:
    """Safety alerts (as AlertRecords) and the registry's tasks of the patients in `scope`
    (None: every patient on `by`'s care teams), one list newest id first so a cursor (`before`)
    pages through both. Each returned is in the trail."""
    alerts, work = _decided(
        session,
        by,
        scope,
        team_alerts_query(by, scope, statuses=alert_statuses, owners=owners),
        _team_tasks_query(by, scope, task_statuses, owners),
    )
    total = count(session, alerts) + count(session, work)
    if only_count:
        return Page([], False, total)
    if before is not None:
        alerts = alerts.where(SafetyAlert.id < before)
        work = work.where(WorkTask.id < before)
    rows: list[tuple[Any, Patient]] = list(
        session.execute(alerts.order_by(SafetyAlert.id.desc()).limit(limit + 1)).all()
    )
    rows += list(session.execute(work.order_by(WorkTask.id.desc()).limit(limit + 1)).all())
    rows.sort(key=lambda r: r[0].id, reverse=True)
    more = len(rows) > limit
    rows = rows[:limit]
    records = iter(alert_records(session, [r for r in rows if isinstance(r[0], SafetyAlert)]))
    found: list[tuple[Any, Patient]] = []
    for item, patient in rows:
        record(
            session,
            by=by,
            action="search",
            object_type="Task",
            object_id=item.id,
            patient_id=patient.id,
        )
        found.append((next(records) if isinstance(item, SafetyAlert) else item, patient))
    return Page(found, more, total)


def _decided(
    session: Session, by: User, scope: list[PatientAccess] | None, alerts: Any, work: Any
) -> tuple[Any, Any]:
    """Both queries less the patients whose records of their kind (safety alerts, the
    registry's tasks) the disclosure decision withholds from `by` (a consent refusing them to
    this clinician), before the total and the paging, so the total counts only what is shown.
    One load of labels and consents for all the search's patients (ADR 0021); what is
    withheld is counted in one denied event."""
    if scope is not None:
        patients = [a.patient.id for a in scope]
    else:
        patients = sorted(
            set(session.scalars(alerts.with_only_columns(SafetyAlert.patient_id).distinct()))
            | set(session.scalars(work.with_only_columns(WorkTask.patient_id).distinct()))
        )
    kinds = ((SafetyAlert, alerts), (WorkTask, work))
    withheld, _ = disclosure.withheld_for_search(
        session, by, patients, sorted({model.data_category for model, _ in kinds})
    )
    decided = []
    hidden = 0
    for model, query in kinds:
        refused = sorted(withheld.get(model.data_category, set()))
        if refused:
            hidden += count(session, query.where(model.patient_id.in_(refused)))
            query = query.where(model.patient_id.not_in(refused))
        decided.append(query)
    if hidden:
        disclosure.audit_withheld_search(session, by, hidden, object_type="Task")
    return decided[0], decided[1]


def _team_tasks_query(
    by: User,
    scope: list[PatientAccess] | None,
    statuses: list[str] | None,
    owners: list[uuid.UUID] | None,
) -> Any:
    query = select(WorkTask, Patient).join(Patient, Patient.id == WorkTask.patient_id)
    if scope is None:
        query = query.where(
            exists().where(
                and_(
                    CareTeam.patient_id == WorkTask.patient_id,
                    CareTeamMember.care_team_id == CareTeam.id,
                    CareTeamMember.user_id == by.id,
                    CareTeamMember.ended_at.is_(None),
                )
            )
        )
    else:
        query = query.where(WorkTask.patient_id.in_([a.patient.id for a in scope]))
    if statuses is not None:
        query = query.where(WorkTask.status.in_(statuses))
    if owners is not None:
        query = query.where(WorkTask.owner_id.in_(owners))
    return query

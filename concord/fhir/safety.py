"""Safety alerts and the registry's tasks as FHIR `Task`s, and the patient's risk status as
`Flag`s.

A Task's owner is the person who holds the alert now, its restriction period ends at the
deadline to acknowledge, its focus is the questionnaire response that fired it, and its
output records the outcome once closed. A Flag (category "safety") covers each period the
patient spent at one risk tier; the current one is active. Both are for the care team only:
anyone else is answered as if there were nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord import access
from concord.accounts.models import User
from concord.audit.service import record
from concord.errors import InvalidInput, NotFound
from concord.fhir.mapping import SYSTEM, _drop_empty, _instant, _ref, person_ref
from concord.fhir.search import Query, allowed_codes, page_of
from concord.i18n import Msg, translate
from concord.patients.models import Patient
from concord.safety.models import AlertStatus, RiskStatus, SafetyAlert
from concord.safety.rules import RuleSet

TASK_STATUS = {
    AlertStatus.open: "requested",
    AlertStatus.acknowledged: "in-progress",
    AlertStatus.closed: "completed",
}
RULE_SYSTEM = f"{SYSTEM}/CodeSystem/risk-rule"
TIER_SYSTEM = f"{SYSTEM}/CodeSystem/risk-tier"
OUTCOME_SYSTEM = f"{SYSTEM}/CodeSystem/alert-outcome"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"


def _tier_name(rules: RuleSet, tier: str | None) -> str:
    if tier is None:
        return ""
    if rules.has_tier(tier):
        return rules.tier(tier).name["en"]
    return tier


def task_resource(
    alert: SafetyAlert,
    patient: Patient,
    rules: RuleSet,
    raised_by: User | None = None,
    outcomes: list[str] | None = None,
) -> dict[str, Any]:
    """`raised_by`: the user whose action raised the alert, if any; `outcomes`: everything
    done when it was closed (the alert's own column keeps only the main one)."""
    from concord.safety.routes import OUTCOME_LABELS

    tier = _tier_name(rules, alert.tier)
    names = [t.get("name", {}).get("en", t.get("rule", "")) for t in alert.triggers or []]
    priority = rules.tier(alert.tier).fhir_priority if rules.has_tier(alert.tier) else "stat"
    changed = max(
        t for t in (alert.created_at, alert.acknowledged_at, alert.closed_at) if t is not None
    )
    if alert.status == AlertStatus.open and alert.step:
        business = f"escalated {alert.step} time{'s' if alert.step > 1 else ''}"
    elif alert.status == AlertStatus.open:
        business = "waiting for acknowledgement"
    elif alert.status == AlertStatus.acknowledged:
        business = "acknowledged"
    else:
        business = "closed"
    output = []
    for outcome in outcomes or ([alert.outcome] if alert.outcome else []):
        output.append(
            {
                "type": {"text": "Outcome"},
                "valueCodeableConcept": {
                    "coding": [{"system": OUTCOME_SYSTEM, "code": outcome}],
                    "text": translate(OUTCOME_LABELS.get(outcome, outcome), "en"),
                },
            }
        )
    if alert.risk_after:
        output.append(
            {
                "type": {"text": "Risk level after assessment"},
                "valueCodeableConcept": {
                    "coding": [{"system": TIER_SYSTEM, "code": alert.risk_after}],
                    "text": _tier_name(rules, alert.risk_after)
                    if alert.risk_after != "none"
                    else "No current risk",
                },
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": str(alert.id),
        "identifier": [{"system": f"{SYSTEM}/safety-alert", "value": str(alert.id)}],
        "status": TASK_STATUS[AlertStatus(alert.status)],
        "businessStatus": {"text": business},
        "intent": "order",
        "priority": priority,
        "code": {
            "coding": [
                {
                    "system": RULE_SYSTEM,
                    "code": alert.rule_id,
                    "display": names[0] if names else alert.rule_id,
                }
            ],
            "text": f"Safety alert: {tier}",
        },
        "description": "; ".join(names) or None,
        "for": _ref("Patient", patient.id, patient.display_name),
        "authoredOn": _instant(alert.created_at),
        "lastModified": _instant(changed),
        "owner": person_ref(alert.owner, patient),
        "requester": person_ref(raised_by, patient),
        "focus": _ref("QuestionnaireResponse", alert.response_id) if alert.response_id else None,
        "restriction": {"period": {"end": _instant(alert.due_at)}}
        if alert.status == AlertStatus.open
        else None,
        "executionPeriod": _drop_empty(
            {
                "start": _instant(alert.acknowledged_at) if alert.acknowledged_at else None,
                "end": _instant(alert.closed_at) if alert.closed_at else None,
            }
        )
        or None,
        "note": [{"text": alert.note}] if alert.note else None,
        "output": output or None,
    }
    if alert.follow_up_of_id:
        resource["partOf"] = [_ref("Task", alert.follow_up_of_id)]
    return _drop_empty(resource)


WORK_STATUS = {"open": "ready", "done": "completed", "cancelled": "cancelled"}
SOURCE_TEXT = {
    "flag": "a registry flag",
    "review": "a psychiatric case review request",
    "recommendation": "a psychiatric case review recommendation",
    "alert": "a safety alert",
    "person": "a person on the care team",
}


def work_task_resource(task: Any, patient: Patient) -> dict[str, Any]:
    """A task of the registry (concord.registry.models.WorkTask)."""
    kind = task.source.split(":", 1)[0]
    return _drop_empty(
        {
            "resourceType": "Task",
            "id": str(task.id),
            "identifier": [{"system": f"{SYSTEM}/task", "value": str(task.id)}],
            "status": WORK_STATUS.get(task.status, "ready"),
            "businessStatus": {"text": f"opened by {SOURCE_TEXT.get(kind, kind)}"},
            "intent": "order",
            "priority": task.priority,
            "code": {
                "coding": [{"system": f"{SYSTEM}/CodeSystem/task-source", "code": kind}],
                "text": task.title,
            },
            "description": task.detail,
            "for": _ref("Patient", patient.id, patient.display_name),
            "authoredOn": _instant(task.created_at),
            "lastModified": _instant(task.closed_at or task.created_at),
            "owner": person_ref(task.owner, patient),
            "restriction": {"period": {"end": task.due_on.isoformat()}} if task.due_on else None,
            "executionPeriod": {"end": _instant(task.closed_at)} if task.closed_at else None,
            "note": [{"text": task.close_note}] if task.close_note else None,
        }
    )


def flag_resources(
    rows: list[RiskStatus], patient: Patient, rules: RuleSet
) -> list[dict[str, Any]]:
    """One Flag per period at a tier, newest first; the current period's Flag is active."""
    flags = []
    ordered = sorted(rows, key=lambda r: r.seq)
    for index, row in enumerate(ordered):
        if row.tier is None:
            continue
        end = ordered[index + 1].since if index + 1 < len(ordered) else None
        flags.append(
            _drop_empty(
                {
                    "resourceType": "Flag",
                    "id": str(row.id),
                    "status": "inactive" if end else "active",
                    "category": [
                        {
                            "coding": [
                                {"system": FLAG_CATEGORY, "code": "safety", "display": "Safety"}
                            ]
                        }
                    ],
                    "code": {
                        "coding": [
                            {
                                "system": TIER_SYSTEM,
                                "code": row.tier,
                                "display": _tier_name(rules, row.tier),
                            }
                        ],
                        "text": f"Suicide and safety risk: {_tier_name(rules, row.tier)}",
                    },
                    "subject": _ref("Patient", patient.id, patient.display_name),
                    "period": _drop_empty(
                        {"start": _instant(row.since), "end": _instant(end) if end else None}
                    ),
                    "author": person_ref(row.set_by, patient),
                }
            )
        )
    return list(reversed(flags))


# --- reads and searches -------------------------------------------------------------------------


def _team_access(session: Session, by: User, patient_id: Any) -> access.PatientAccess | None:
    try:
        # The team's only; anyone else's attempt (the patient's, family's) is audited.
        return access.team_access(session, by, patient_id, action="search", object_type="Task")
    except NotFound:
        return None


def read_task(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    from concord.registry.models import WorkTask
    from concord.safety.alerts import outcomes_by_alert
    from concord.safety.rulesets import rules_for

    aid = access.parse_id(ident)
    alert = session.get(SafetyAlert, aid) if aid is not None else None
    if alert is None and aid is not None:
        task = session.get(WorkTask, aid)
        acc = _team_access(session, by, task.patient_id) if task is not None else None
        if task is None or acc is None:
            raise NotFound(Msg("No such resource."))
        record(
            session,
            by=by,
            action="read",
            object_type="Task",
            object_id=task.id,
            patient_id=acc.patient.id,
        )
        return work_task_resource(task, acc.patient)
    acc = _team_access(session, by, alert.patient_id) if alert is not None else None
    if alert is None or acc is None:
        raise NotFound(Msg("No such resource."))
    record(
        session,
        by=by,
        action="read",
        object_type="Task",
        object_id=alert.id,
        patient_id=acc.patient.id,
    )
    return task_resource(
        alert,
        acc.patient,
        rules_for(session, acc.patient.organization_id),
        _raised_by(session, alert),
        outcomes_by_alert(session, [alert])[alert.id],
    )


def _raised_by(session: Session, alert: SafetyAlert) -> User | None:
    return session.get(User, alert.raised_by_id) if alert.raised_by_id else None


def _patients_in_scope(
    session: Session, by: User, q: Query
) -> list[access.PatientAccess] | None:
    """The patients named (those on the caller's teams), or None when none was named."""
    ids = q.patient_ids()
    if ids is None:
        return None
    found = [_team_access(session, by, ident) for ident in sorted(ids)]
    return [acc for acc in found if acc is not None]


TASK_STATUS_SYSTEM = "http://hl7.org/fhir/task-status"
TASK_STATUS_CODES = {
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
}
FLAG_STATUS_SYSTEM = "http://hl7.org/fhir/flag-status"


def _task_statuses(q: Query) -> set[str] | None:
    for group in q.groups("status"):
        unknown = sorted({t.code for t in group if t.code and t.code not in TASK_STATUS_CODES})
        if unknown:
            raise InvalidInput.field(
                "status",
                Msg(
                    "must be one of: %(allowed)s",
                    allowed=", ".join(sorted(TASK_STATUS_CODES)),
                ),
            )
    return allowed_codes(q.groups("status"), TASK_STATUS_SYSTEM, TASK_STATUS_CODES)


def _owners(q: Query) -> list[uuid.UUID | None] | None:
    ids = q.ids("owner", target="Practitioner")
    return None if ids is None else [access.parse_id(i) for i in sorted(ids)]


def search_tasks(
    session: Session, *, by: User, q: Query
) -> tuple[list[dict[str, Any]], str | None, int]:
    from concord.safety.alerts import outcomes_by_alert
    from concord.safety.rulesets import rules_for

    if not by.is_clinician:
        return [], None, 0
    scope = _patients_in_scope(session, by, q)
    if scope == []:
        return [], None, 0
    statuses = _task_statuses(q)
    owners = _owners(q)
    query = select(SafetyAlert, Patient).join(Patient, Patient.id == SafetyAlert.patient_id)
    if scope is None:
        from concord.safety.alerts import _on_my_teams

        query = query.where(_on_my_teams(by))
    else:
        query = query.where(SafetyAlert.patient_id.in_([a.patient.id for a in scope]))
    if statuses is not None:
        ours = [str(k) for k, v in TASK_STATUS.items() if v in statuses]
        query = query.where(SafetyAlert.status.in_(ours))
    if owners is not None:
        query = query.where(SafetyAlert.owner_id.in_([o for o in owners if o is not None]))
    work = _work_task_query(by, scope, statuses, owners)
    total = _count(session, query) + _count(session, work)
    if q.only_count:
        return [], None, total
    if q.cursor:
        last = access.parse_id(q.cursor)
        if last is None:
            raise InvalidInput.field("_cursor", Msg("is not a cursor this server gave out"))
        query = query.where(SafetyAlert.id < last)
        work = work.where(_work_task_model().id < last)
    count = q.count
    rows: list[tuple[Any, Patient]] = list(
        session.execute(query.order_by(SafetyAlert.id.desc()).limit(count + 1)).all()
    )
    rows += list(
        session.execute(work.order_by(_work_task_model().id.desc()).limit(count + 1)).all()
    )
    # One order for both kinds of task (by id), so a cursor pages through both.
    rows.sort(key=lambda r: r[0].id, reverse=True)
    next_cursor = str(rows[count - 1][0].id) if len(rows) > count else None
    resources = []
    outcomes = outcomes_by_alert(
        session, [item for item, _ in rows[:count] if isinstance(item, SafetyAlert)]
    )
    for item, patient in rows[:count]:
        record(
            session,
            by=by,
            action="search",
            object_type="Task",
            object_id=item.id,
            patient_id=patient.id,
        )
        if isinstance(item, SafetyAlert):
            resources.append(
                task_resource(
                    item,
                    patient,
                    rules_for(session, patient.organization_id),
                    _raised_by(session, item),
                    outcomes.get(item.id),
                )
            )
        else:
            resources.append(work_task_resource(item, patient))
    return resources, next_cursor, total


def _count(session: Session, query: Any) -> int:
    from sqlalchemy import func

    return int(session.scalar(select(func.count()).select_from(query.order_by(None).subquery())))


def _work_task_model() -> Any:
    from concord.registry.models import WorkTask

    return WorkTask


def _work_task_query(
    by: User,
    scope: list[access.PatientAccess] | None,
    statuses: set[str] | None,
    owners: list[uuid.UUID | None] | None,
) -> Any:
    WorkTask = _work_task_model()
    query = select(WorkTask, Patient).join(Patient, Patient.id == WorkTask.patient_id)
    if scope is None:
        from sqlalchemy import and_, exists

        from concord.patients.models import CareTeam, CareTeamMember

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
        query = query.where(
            WorkTask.status.in_([k for k, v in WORK_STATUS.items() if v in statuses])
        )
    if owners is not None:
        query = query.where(WorkTask.owner_id.in_([o for o in owners if o is not None]))
    return query


def read_flag(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    from concord.safety.rulesets import rules_for

    rid = access.parse_id(ident)
    row = session.get(RiskStatus, rid) if rid is not None else None
    acc = _team_access(session, by, row.patient_id) if row is not None else None
    if row is None or acc is None:
        raise NotFound(Msg("No such resource."))
    rows = list(session.scalars(select(RiskStatus).where(RiskStatus.patient_id == row.patient_id)))
    for flag in flag_resources(rows, acc.patient, rules_for(session, acc.patient.organization_id)):
        if flag["id"] == str(row.id):
            record(
                session,
                by=by,
                action="read",
                object_type="Flag",
                object_id=row.id,
                patient_id=acc.patient.id,
            )
            return flag
    raise NotFound(Msg("No such resource."))


def search_flags(
    session: Session, *, by: User, q: Query
) -> tuple[list[dict[str, Any]], str | None, int]:
    """Patients' risk flags, newest first (patient or subject is required)."""
    from concord.safety.rulesets import rules_for

    scope = _patients_in_scope(session, by, q)
    if scope is None:
        raise InvalidInput.field("patient", Msg("is required: Flag?patient=<id>"))
    if not scope or not by.is_clinician:
        return [], None, 0
    flags: list[dict[str, Any]] = []
    for acc in scope:
        patient = acc.patient
        rows = list(
            session.scalars(select(RiskStatus).where(RiskStatus.patient_id == patient.id))
        )
        flags += flag_resources(rows, patient, rules_for(session, patient.organization_id))
    wanted = allowed_codes(
        q.groups("status"), FLAG_STATUS_SYSTEM, {"active", "inactive", "entered-in-error"}
    )
    if wanted is not None:
        flags = [f for f in flags if f["status"] in wanted]
    page, next_cursor = page_of(flags, q)
    for flag in page:
        record(
            session,
            by=by,
            action="search",
            object_type="Flag",
            object_id=uuid.UUID(flag["id"]),
            patient_id=uuid.UUID(flag["subject"]["reference"].removeprefix("Patient/")),
        )
    return page, next_cursor, len(flags)

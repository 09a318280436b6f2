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

from sqlalchemy.orm import Session

from concord import access
from concord.accounts.models import User
from concord.errors import InvalidInput, NotFound
from concord.fhir.mapping import SYSTEM, _drop_empty, _instant, _ref, person_ref
from concord.fhir.search import Query, allowed_codes, offset_of
from concord.i18n import Msg, translate
from concord.patients.models import Patient
from concord.registry.tasks import get_team_task, list_team_tasks
from concord.safety.alerts import AlertRecord, get_team_alert
from concord.safety.models import AlertStatus, SafetyAlert
from concord.safety.risk import RiskPeriod, get_risk_period, list_risk_periods
from concord.safety.routes import OUTCOME_LABELS
from concord.safety.rules import RuleSet
from concord.safety.rulesets import rules_for

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


def flag_resource(period: RiskPeriod, rules: RuleSet) -> dict[str, Any]:
    """A period at a risk tier as a Flag: active while it is the current one."""
    row, patient = period.status, period.patient
    assert row.tier is not None
    return _drop_empty(
        {
            "resourceType": "Flag",
            "id": str(row.id),
            "status": "inactive" if period.end else "active",
            "category": [
                {"coding": [{"system": FLAG_CATEGORY, "code": "safety", "display": "Safety"}]}
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
                {
                    "start": _instant(row.since),
                    "end": _instant(period.end) if period.end else None,
                }
            ),
            "author": person_ref(row.set_by, patient),
        }
    )


# --- reads and searches -------------------------------------------------------------------------


def read_task(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    """A safety alert, or else a task of the registry, by its id (the care team's only)."""
    try:
        alert = get_team_alert(session, by=by, ident=ident)
        if alert is None:
            task, acc = get_team_task(session, by=by, ident=ident)
            return work_task_resource(task, acc.patient)
    except NotFound:
        raise NotFound(Msg("No such resource.")) from None
    return _alert_task(session, alert)


def _alert_task(session: Session, record: AlertRecord) -> dict[str, Any]:
    return task_resource(
        record.alert,
        record.patient,
        rules_for(session, record.patient.organization_id),
        record.raised_by,
        record.outcomes,
    )


def _patients_in_scope(session: Session, by: User, q: Query) -> list[access.PatientAccess] | None:
    """The patients named (those on the caller's teams), or None when none was named."""
    return access.records_among(session, by, q.patient_ids(), object_type="Task", team_only=True)


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


def _owners(q: Query) -> list[uuid.UUID] | None:
    ids = q.ids("owner", target="Practitioner")
    if ids is None:
        return None
    return [o for o in (access.parse_id(i) for i in sorted(ids)) if o is not None]


def search_tasks(
    session: Session, *, by: User, q: Query
) -> tuple[list[dict[str, Any]], str | None, int]:
    if not by.is_clinician:
        return [], None, 0
    scope = _patients_in_scope(session, by, q)
    if scope == []:
        return [], None, 0
    statuses = _task_statuses(q)
    before = None
    if q.cursor and not q.only_count:
        before = access.parse_id(q.cursor)
        if before is None:
            raise InvalidInput.field("_cursor", Msg("is not a cursor this server gave out"))
    page = list_team_tasks(
        session,
        by=by,
        scope=scope,
        alert_statuses=None
        if statuses is None
        else [str(k) for k, v in TASK_STATUS.items() if v in statuses],
        task_statuses=None
        if statuses is None
        else [k for k, v in WORK_STATUS.items() if v in statuses],
        owners=_owners(q),
        before=before,
        limit=q.count,
        only_count=q.only_count,
    )
    resources = [
        _alert_task(session, item)
        if isinstance(item, AlertRecord)
        else work_task_resource(item, patient)
        for item, patient in page.rows
    ]
    next_cursor = resources[-1]["id"] if page.more and resources else None
    return resources, next_cursor, page.total


def read_flag(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    try:
        period = get_risk_period(session, by=by, ident=ident)
    except NotFound:
        raise NotFound(Msg("No such resource.")) from None
    return flag_resource(period, rules_for(session, period.patient.organization_id))


def search_flags(
    session: Session, *, by: User, q: Query
) -> tuple[list[dict[str, Any]], str | None, int]:
    """Patients' risk flags, newest first (patient or subject is required)."""
    scope = _patients_in_scope(session, by, q)
    if scope is None:
        raise InvalidInput.field("patient", Msg("is required: Flag?patient=<id>"))
    if not scope or not by.is_clinician:
        return [], None, 0
    wanted = allowed_codes(
        q.groups("status"), FLAG_STATUS_SYSTEM, {"active", "inactive", "entered-in-error"}
    )
    current = None if wanted is None else {s == "active" for s in wanted if s != "entered-in-error"}
    offset = offset_of(q)
    page = list_risk_periods(
        session,
        by=by,
        scope=scope,
        current=current,
        offset=offset,
        limit=q.count,
        only_count=q.only_count,
    )
    resources = [flag_resource(p, rules_for(session, p.patient.organization_id)) for p in page.rows]
    return resources, (str(offset + q.count) if page.more else None), page.total

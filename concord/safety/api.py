"""Safety as JSON at /api/v1: alerts (list, raise a flag, acknowledge, close, follow up), the
patient's risk status, the safety plan, and the figures. The same services and rules as the
pages: a bad field gets a 422 naming it, and nothing is written."""

# No `from __future__ import annotations`: FastAPI reads the body models from the annotations.

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session, object_session

from concord import access
from concord.access import PatientAccess
from concord.audit.service import record
from concord.errors import InvalidInput, NotFound
from concord.i18n import Msg
from concord.safety import plans as safety_plans
from concord.safety.alerts import (
    Closing,
    alert_events,
    alerts_for_patient,
    get_alert,
    list_alerts,
    outcomes_by_alert,
    patient_of_alert,
    raise_manual_flag,
    record_follow_up,
)
from concord.safety.alerts import acknowledge as acknowledge_alert
from concord.safety.alerts import close as close_alert
from concord.safety.figures import TierFigures
from concord.safety.models import SafetyAlert
from concord.safety.notifications import mark_read
from concord.safety.risk import risk_history_for
from concord.safety.routes import _figures_for
from concord.safety.schemas import CloseIn, FlagIn, FollowUpIn, SafetyPlanIn, ShareIn
from concord.web.deps import ApiActor, ApiWriter, DbSession
from concord.web.idempotency import Idempotent, create_once

router = APIRouter(prefix="/api/v1", tags=["safety"])


def _team(session: Session, actor: Any, patient_id: str, action: str = "read") -> PatientAccess:
    return access.team_access(
        session, actor.user, patient_id, action=action, object_type="SafetyAlert"
    )


def _alert_access(session: Session, actor: Any, alert_id: str, action: str) -> PatientAccess:
    patient_id = patient_of_alert(session, alert_id)
    if patient_id is None:
        raise NotFound(Msg("No such alert."))
    try:
        return _team(session, actor, str(patient_id), action)
    except NotFound:
        raise NotFound(Msg("No such alert.")) from None


def alert_json(alert: SafetyAlert, outcomes: list[str] | None = None) -> dict[str, Any]:
    """`outcomes`: everything done when it was closed, when the caller has them at hand (a
    list reads them in one query); otherwise they are read here."""

    def at(value: Any) -> Any:
        return value.isoformat() if value else None

    if outcomes is None:
        held_by = object_session(alert)
        outcomes = (
            outcomes_by_alert(held_by, [alert])[alert.id]
            if held_by is not None and alert.outcome
            else ([alert.outcome] if alert.outcome else [])
        )

    return {
        "id": str(alert.id),
        "patient_id": str(alert.patient_id),
        "tier": alert.tier,
        "status": alert.status,
        "source": alert.source_kind,
        "rule": alert.rule_id,
        "rules_version": alert.rules_version,
        "triggers": alert.triggers,
        "reason": alert.reason,
        "response_id": str(alert.response_id) if alert.response_id else None,
        "created_at": at(alert.created_at),
        "owner_id": str(alert.owner_id) if alert.owner_id else None,
        "chain": alert.chain,
        "escalations": alert.step,
        "acknowledge_by": at(alert.due_at) if alert.status == "open" else None,
        "acknowledged_by": str(alert.acknowledged_by_id) if alert.acknowledged_by_id else None,
        "acknowledged_at": at(alert.acknowledged_at),
        "closed_by": str(alert.closed_by_id) if alert.closed_by_id else None,
        "closed_at": at(alert.closed_at),
        "outcome": alert.outcome,  # the main one (the one that sets the risk status)
        "outcomes": outcomes,  # everything that was done
        "risk_after": alert.risk_after,
        "note": alert.note,
        "follow_up_due_at": at(alert.follow_up_due_at),
        "follow_up_done_at": at(alert.follow_up_done_at),
        "follow_up_of": str(alert.follow_up_of_id) if alert.follow_up_of_id else None,
    }


@router.get("/patients/{patient_id}/alerts")
def patient_alerts(
    patient_id: str, session: DbSession, actor: ApiActor, closed: bool = False
) -> list[dict[str, Any]]:
    acc = _team(session, actor, patient_id)
    alerts = alerts_for_patient(session, access=acc, include_closed=closed)
    for alert in alerts:
        record(
            session,
            by=actor.user,
            action="list",
            object_type="SafetyAlert",
            object_id=alert.id,
            patient_id=acc.patient.id,
        )
    outcomes = outcomes_by_alert(session, alerts)
    return [alert_json(a, outcomes[a.id]) for a in alerts]


@router.post("/patients/{patient_id}/alerts", status_code=201)
def raise_flag(
    patient_id: str,
    body: FlagIn,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    """A clinician's risk flag (the manual-flag rule): an alert like any other."""
    acc = _team(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        alert = raise_manual_flag(session, access=acc, tier=body.tier, reason=body.reason)
        return str(alert.id), alert_json(alert)

    return create_once(
        session,
        actor,
        idem,
        create=create,
        replay=lambda result: alert_json(get_alert(session, access=acc, alert_id=result)),
    )


@router.get("/alerts")
def my_alerts(session: DbSession, actor: ApiActor, closed: bool = False) -> list[dict[str, Any]]:
    """The alerts on the caller's care teams, theirs first."""
    rows = list_alerts(session, by=actor.user, include_closed=closed)
    outcomes = outcomes_by_alert(session, [row.alert for row in rows])
    return [alert_json(row.alert, outcomes[row.alert.id]) for row in rows]


@router.get("/alerts/{alert_id}")
def read_alert(alert_id: str, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    acc = _alert_access(session, actor, alert_id, "read")
    alert = get_alert(session, access=acc, alert_id=alert_id)
    data = alert_json(alert)
    data["events"] = [
        {
            "kind": e.kind,
            "step": e.step,
            "at": e.at.isoformat(),
            "by": str(e.by_id) if e.by_id else None,
            "owner": str(e.owner_id) if e.owner_id else None,
        }
        for e in alert_events(session, alert.id)
    ]
    return data


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge(alert_id: str, session: DbSession, actor: ApiWriter) -> dict[str, Any]:
    acc = _alert_access(session, actor, alert_id, "update")
    return alert_json(acknowledge_alert(session, access=acc, alert_id=alert_id))


@router.post("/alerts/{alert_id}/close")
def close(alert_id: str, body: CloseIn, session: DbSession, actor: ApiWriter) -> dict[str, Any]:
    acc = _alert_access(session, actor, alert_id, "update")
    if body.follow_up_due_at is not None and body.follow_up_due_at.tzinfo is None:
        raise InvalidInput.field(
            "follow_up_due_at", Msg("needs a time zone, for example 2026-11-24T10:00:00-06:00")
        )
    alert = close_alert(
        session,
        access=acc,
        alert_id=alert_id,
        closing=Closing(
            outcome=body.outcome,
            note=body.note,
            risk_after=body.risk_after,
            follow_up_due_at=body.follow_up_due_at,
            no_follow_up=body.no_follow_up,
        ),
    )
    return alert_json(alert)


@router.post("/alerts/{alert_id}/follow-up")
def follow_up(
    alert_id: str, body: FollowUpIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    acc = _alert_access(session, actor, alert_id, "update")
    return alert_json(record_follow_up(session, access=acc, alert_id=alert_id, note=body.note))


@router.get("/patients/{patient_id}/risk-status")
def risk_status(patient_id: str, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    acc = _team(session, actor, patient_id)
    history = risk_history_for(session, acc)
    current = history[0] if history else None

    record(
        session,
        by=actor.user,
        action="read",
        object_type="RiskStatus",
        patient_id=acc.patient.id,
    )
    return {
        "tier": current.tier if current else None,
        "since": current.since.isoformat() if current and current.tier else None,
        "history": [
            {
                "tier": h.tier,
                "since": h.since.isoformat(),
                "reason": h.reason,
                "alert_id": str(h.alert_id) if h.alert_id else None,
                "set_by": str(h.set_by_id) if h.set_by_id else None,
            }
            for h in history
        ],
    }


def _plan_access(session: Session, actor: Any, patient_id: str, action: str) -> PatientAccess:
    acc = access.patient_for(
        session, actor.user, patient_id, action=action, object_type="SafetyPlan"
    )
    if not (acc.on_team or acc.is_self):
        # Family read a shared safety plan on their own page, not through the API.
        raise access.refuse_record(session, acc, action=action, object_type="SafetyPlan")
    return acc


def plan_json(session: Session, plan: Any, acc: PatientAccess, lang: str) -> dict[str, Any]:
    return {
        "patient_id": str(acc.patient.id),
        "version": plan.version if plan else 0,
        "updated_at": plan.updated_at.isoformat() if plan else None,
        "updated_by": str(plan.updated_by_id) if plan and plan.updated_by_id else None,
        "content": plan.content if plan else safety_plans.empty_content(),
        "sections": [{"key": s.key, "kind": s.kind, "step": s.step} for s in safety_plans.SECTIONS],
        "crisis_lines": safety_plans.crisis_lines(session, acc.patient.organization_id, lang),
    }


@router.get("/patients/{patient_id}/safety-plan")
def read_plan(patient_id: str, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    acc = _plan_access(session, actor, patient_id, "read")
    plan = safety_plans.plan_for(session, acc)
    return plan_json(session, plan, acc, actor.user.language)


@router.put("/patients/{patient_id}/safety-plan")
def write_plan(
    patient_id: str, body: SafetyPlanIn, request: Request, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """A new version. Send the version you started from: if someone saved since, 409."""
    acc = _plan_access(session, actor, patient_id, "update")
    plan = safety_plans.save(
        session,
        access=acc,
        content=body.content,
        reason=body.reason,
        base_version=body.base_version,
    )
    return plan_json(session, plan, acc, actor.user.language)


@router.get("/safety/figures")
def figures(request: Request, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    result = _figures_for(request, session, actor)

    def tier_json(t: TierFigures) -> dict[str, Any]:
        return {
            "tier": t.tier,
            "raised": t.raised,
            "acknowledged": t.acknowledged,
            "acknowledged_in_time": t.acknowledged_in_time,
            "median_minutes_to_acknowledge": t.median_minutes,
            "p90_minutes_to_acknowledge": t.p90_minutes,
            "escalated": t.escalated,
            "open_past_deadline": t.open_past_deadline,
        }

    return {
        "from": result.since.isoformat(),
        "until": result.until.isoformat(),
        "tiers": [tier_json(t) for t in result.tiers],
        "total": tier_json(result.total),
        "alerts": result.rows,
    }


# --- who the patient shares the safety plan with, and the caller's notifications ---------------


def person_json(person: safety_plans.Person) -> dict[str, Any]:
    return {
        "related_person_id": str(person.link.id),
        "name": person.link.user.name,
        "relationship": person.link.relationship_to_patient,
        "shared": person.shared,
        "shared_at": person.share.consented_at.isoformat() if person.share else None,
    }


@router.get("/patients/{patient_id}/safety-plan/people")
def plan_people(patient_id: str, session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """The patient's people, and whether each may see the safety plan."""
    acc = _plan_access(session, actor, patient_id, "read")
    return [person_json(p) for p in safety_plans.people(session, acc)]


@router.post("/patients/{patient_id}/safety-plan/people/{related_id}")
def share_plan(
    patient_id: str, related_id: str, body: ShareIn, session: DbSession, actor: ApiWriter
) -> list[dict[str, Any]]:
    """Share the plan with one of the patient's people (`share`: true) or stop: the patient,
    or a clinician of the team recording the patient's choice."""
    acc = _plan_access(session, actor, patient_id, "update")
    safety_plans.set_share(session, access=acc, related_person_id=related_id, share=body.share)
    return [person_json(p) for p in safety_plans.people(session, acc)]


@router.post("/alerts/notifications/read", status_code=204)
def notifications_read(session: DbSession, actor: ApiWriter) -> None:
    """Mark the caller's notifications read (the alerts page's "mark all read")."""
    mark_read(session, actor.user)

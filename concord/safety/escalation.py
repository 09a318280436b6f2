"""The worker's timers: alerts nobody acknowledged in time move on; missed follow-ups raise.

The deadline is read from the database, so it survives restarts, and an alert is moved on with a
conditional update, so two workers never fire the same step twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from concord.accounts.models import Organization
from concord.audit.service import record
from concord.clock import now
from concord.db import isolated
from concord.patients.models import Patient
from concord.safety.alerts import _create, _event
from concord.safety.chain import _active_members, _bring_onto_team, _everyone_on_chain, _next_owner
from concord.safety.models import (
    AlertSource,
    AlertStatus,
    SafetyAlert,
)
from concord.safety.notifications import _notify
from concord.safety.rulesets import rules_for


def escalate_due(session: Session, *, limit: int = 100) -> int:
    """Move every open alert past its deadline to the next person in its chain."""
    at = now()
    query = (
        select(SafetyAlert)
        .where(SafetyAlert.status == AlertStatus.open, SafetyAlert.due_at <= at)
        .order_by(SafetyAlert.due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=SafetyAlert)
    moved = 0
    for alert in session.scalars(query).all():
        # One alert at a time (concord.db.isolated): one that cannot be moved is reported
        # and the others still are.
        if isolated(
            session,
            partial(_escalate, session, alert, at),
            job="escalation",
            object_type="SafetyAlert",
            object_id=alert.id,
        ):
            moved += 1
    return moved


def _escalate(session: Session, alert: SafetyAlert, at: datetime) -> bool:
    org = session.get(Organization, alert.organization_id)
    assert org is not None
    rules = rules_for(session, alert.organization_id)
    within = (
        rules.tier(alert.tier).acknowledge_within
        if rules.has_tier(alert.tier)
        else rules.highest.acknowledge_within
    )
    previous_owner = alert.owner
    found = _next_owner(session, alert, org, alert.chain_position + 1)
    new_step = alert.step + 1
    if found is not None:
        position, owner = found
        new_owner_id: uuid.UUID | None = owner.id
        kind = "escalated"
    else:
        position, owner, new_owner_id = alert.chain_position, None, alert.owner_id
        kind = "reminder"  # the chain is used up: everyone on it is told again
    # Only the worker that moves the alert from this exact step wins; a second worker (or a
    # second pass over a stale read) updates nothing and sends nothing.
    result = session.execute(
        update(SafetyAlert)
        .where(
            SafetyAlert.id == alert.id,
            SafetyAlert.step == alert.step,
            SafetyAlert.status == AlertStatus.open,
        )
        .values(
            step=new_step,
            chain_position=position,
            owner_id=new_owner_id,
            due_at=at + within,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.expire(alert)
        return False
    session.expire(alert)
    session.refresh(alert)
    _event(
        session,
        alert,
        kind,
        detail={
            "from": str(previous_owner.id) if previous_owner else None,
            "chain_step": alert.chain[position] if alert.chain else None,
        },
    )
    if owner is not None:
        _bring_onto_team(session, alert, owner)
        _notify(session, [owner], kind="escalated", alert=alert)
        if previous_owner is not None:
            _notify(session, [previous_owner], kind="passed_on", alert=alert, email=False)
    else:
        people = _everyone_on_chain(session, alert, org) or [
            m.user for m in _active_members(session, alert.patient_id)
        ]
        _notify(session, people, kind="reminder", alert=alert)
    record(
        session,
        by=None,
        action="escalate",
        object_type="SafetyAlert",
        object_id=alert.id,
        patient_id=alert.patient_id,
        organization_id=alert.organization_id,
        detail={"step": new_step, "kind": kind},
    )
    return True


def raise_missed_follow_ups(session: Session, *, limit: int = 100) -> int:
    """A closed alert whose follow-up is past due with none recorded goes back to the team,
    once: the new alert names the old one, and that link is unique."""
    at = now()
    child = SafetyAlert.__table__.alias("child")
    query = (
        select(SafetyAlert)
        .where(
            SafetyAlert.status == AlertStatus.closed,
            SafetyAlert.follow_up_due_at.is_not(None),
            SafetyAlert.follow_up_due_at <= at,
            SafetyAlert.follow_up_done_at.is_(None),
            ~exists().where(child.c.follow_up_of_id == SafetyAlert.id),
        )
        .order_by(SafetyAlert.follow_up_due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=SafetyAlert)
    raised = 0
    for parent in session.scalars(query).all():
        # Each in its own savepoint (concord.db.isolated): one that fails is reported and
        # the others are still raised.
        if isolated(
            session,
            partial(_raise_missed_follow_up, session, parent),
            job="follow_ups",
            object_type="SafetyAlert",
            object_id=parent.id,
        ):
            raised += 1
    return raised


def _raise_missed_follow_up(session: Session, parent: SafetyAlert) -> bool:
    patient = session.get(Patient, parent.patient_id)
    org = session.get(Organization, parent.organization_id)
    assert patient is not None and org is not None
    rules = rules_for(session, org.id)
    rule = rules.event_rule("missed-follow-up")
    _create(
        session,
        org=org,
        patient=patient,
        rules=rules,
        rule=rule,
        tier=rule.tier,
        triggers=[
            {
                "rule": rule.id,
                "name": dict(rule.name),
                "follow_up_of": str(parent.id),
                "due": parent.follow_up_due_at.isoformat() if parent.follow_up_due_at else None,
            }
        ],
        source_kind=AlertSource.follow_up,
        by=None,
        follow_up_of=parent,
    )
    return True

"""The patient's risk status: raised by an alert, settled by the assessment that closes it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from concord.accounts.models import User
from concord.clock import now
from concord.patients.models import Patient
from concord.safety.models import (
    NO_RISK,
    AlertOutcome,
    AlertStatus,
    RiskStatus,
    SafetyAlert,
)
from concord.safety.rules import (
    RuleSet,
)


def current_risk(session: Session, patient_id: uuid.UUID) -> RiskStatus | None:
    return session.scalar(
        select(RiskStatus)
        .where(RiskStatus.patient_id == patient_id)
        .order_by(RiskStatus.seq.desc())
        .limit(1)
    )


def _write_risk(
    session: Session,
    *,
    patient: Patient,
    tier: str | None,
    reason: str,
    alert: SafetyAlert | None,
    by: User | None,
) -> None:
    # One writer at a time per patient, so the sequence has no gaps or repeats.
    session.execute(select(Patient.id).where(Patient.id == patient.id).with_for_update(of=Patient))
    current = current_risk(session, patient.id)
    if (current.tier if current else None) == tier:
        return
    at = now()
    session.add(
        RiskStatus(
            patient_id=patient.id,
            seq=(current.seq if current else 0) + 1,
            tier=tier,
            since=at,
            at=at,
            reason=reason,
            alert_id=alert.id if alert else None,
            set_by_id=by.id if by else None,
        )
    )
    session.flush()


def _raise_risk(
    session: Session,
    *,
    patient: Patient,
    rules: RuleSet,
    tier: str,
    alert: SafetyAlert,
    by: User | None,
) -> None:
    current = current_risk(session, patient.id)
    if current is None or rules.rank(tier) > rules.rank(current.tier):
        _write_risk(session, patient=patient, tier=tier, reason="alert", alert=alert, by=by)


def _settle_risk(
    session: Session,
    *,
    patient: Patient,
    rules: RuleSet,
    alert: SafetyAlert,
    by: User,
) -> None:
    """After a close: the assessed level, but never below an alert still open."""
    current = current_risk(session, patient.id)
    level = current.tier if current else None
    if alert.outcome == AlertOutcome.assessed:
        level = None if alert.risk_after in (None, NO_RISK) else alert.risk_after
    still_open = session.scalars(
        select(SafetyAlert.tier).where(
            SafetyAlert.patient_id == patient.id,
            SafetyAlert.status != AlertStatus.closed,
            SafetyAlert.id != alert.id,
        )
    ).all()
    for tier in still_open:
        if rules.rank(tier) > rules.rank(level):
            level = tier
    _write_risk(session, patient=patient, tier=level, reason="assessment", alert=alert, by=by)


def risk_history(session: Session, patient_id: uuid.UUID) -> list[RiskStatus]:
    return list(
        session.scalars(
            select(RiskStatus)
            .where(RiskStatus.patient_id == patient_id)
            .order_by(RiskStatus.seq.desc())
        )
    )


def current_risks(
    session: Session, patient_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, RiskStatus]:
    """Each patient's current risk status (patients with none are left out)."""
    if not patient_ids:
        return {}
    latest = (
        select(RiskStatus.patient_id, func.max(RiskStatus.seq).label("seq"))
        .where(RiskStatus.patient_id.in_(list(patient_ids)))
        .group_by(RiskStatus.patient_id)
        .subquery()
    )
    rows = session.scalars(
        select(RiskStatus).join(
            latest,
            and_(RiskStatus.patient_id == latest.c.patient_id, RiskStatus.seq == latest.c.seq),
        )
    ).all()
    return {row.patient_id: row for row in rows if row.tier is not None}

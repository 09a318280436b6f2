"""The patient's risk status: raised by an alert, settled by the assessment that closes it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import PatientAccess, parse_id, team_access
from concord.accounts.models import User
from concord.audit.service import record
from concord.clock import now
from concord.errors import NotFound
from concord.i18n import Msg
from concord.paging import Page, in_memory
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
    """The patient's current risk status, as the system reads it (the alert rules and their
    writers); a person reads it through `risk_for`, which decides."""
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


def risk_for(session: Session, access: PatientAccess) -> RiskStatus | None:
    """The patient's current risk status if `access` may see safety data (the disclosure
    decision: a consent refusing it to the reader withholds it, counted and audited); None
    otherwise, as for a patient with none."""
    row = current_risk(session, access.patient.id)
    if row is None:
        return None
    kept = disclosure.filter_records(
        session, access, [row], object_type="RiskStatus", action="read"
    )
    return kept[0] if kept else None


def risks_for(
    session: Session, by: User, patients: Sequence[Patient]
) -> dict[uuid.UUID, RiskStatus]:
    """`risk_for` for a list of patients `by` may reach (`access.readable_patients`): two
    queries for the statuses and one load of labels and consents for the decision, whatever
    the number of patients."""
    found = current_risks(session, [p.id for p in patients])
    kept = disclosure.filter_many(
        session,
        by,
        [(p, [found[p.id]]) for p in patients if p.id in found],
        object_type="RiskStatus",
    )
    return {patient_id: rows[0] for patient_id, rows in kept.items() if rows}


def risk_history_for(session: Session, access: PatientAccess) -> list[RiskStatus]:
    """The patient's risk history as `access` may see it (the disclosure decision)."""
    return disclosure.filter_records(
        session,
        access,
        risk_history(session, access.patient.id),
        object_type="RiskStatus",
        action="list",
    )


def risk_history(session: Session, patient_id: uuid.UUID) -> list[RiskStatus]:
    """The whole history as the system reads it; a person reads it through
    `risk_history_for`, which decides."""
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
    """Each patient's current risk status (patients with none are left out), as the system
    reads it; a person reads it through `risks_for`, which decides."""
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


# --- reads for the FHIR API (access and audit applied here, once) -------------------------------


@dataclass
class RiskPeriod:
    """A period the patient spent at one risk tier: until `end` (None: the current one)."""

    status: RiskStatus
    end: datetime | None
    patient: Patient


def risk_periods(rows: Sequence[RiskStatus], patient: Patient) -> list[RiskPeriod]:
    """The periods at a tier in a patient's risk history, newest first (a time with no current
    risk is no period)."""
    ordered = sorted(rows, key=lambda r: r.seq)
    periods = [
        RiskPeriod(row, ordered[i + 1].since if i + 1 < len(ordered) else None, patient)
        for i, row in enumerate(ordered)
        if row.tier is not None
    ]
    return list(reversed(periods))


def get_risk_period(session: Session, *, by: User, ident: str) -> RiskPeriod:
    """A period at a tier by its risk status's id: for the patient's care team only; NotFound
    for anyone else and for a missing one alike (a refusal is in the trail). The read is in the
    trail."""
    key = parse_id(ident)
    row = session.get(RiskStatus, key) if key is not None else None
    if row is None:
        raise NotFound(Msg("No such record."))
    acc = team_access(session, by, row.patient_id, action="search", object_type="Task")
    for period in risk_periods(risk_history_for(session, acc), acc.patient):
        if period.status.id == row.id:
            record(
                session,
                by=by,
                action="read",
                object_type="Flag",
                object_id=row.id,
                patient_id=acc.patient.id,
            )
            return period
    raise NotFound(Msg("No such record."))


def list_risk_periods(
    session: Session,
    *,
    by: User,
    scope: list[PatientAccess],
    current: set[bool] | None = None,
    offset: int = 0,
    limit: int = 100,
    only_count: bool = False,
) -> Page[RiskPeriod]:
    """The periods at a tier of the patients in `scope` (their care team's; `scope` from
    access.records_among with team_only), newest first for each patient; `current` keeps the
    current period (True), the past ones (False) or both. Each returned is in the trail."""
    periods: list[RiskPeriod] = []
    for acc in scope:
        periods += risk_periods(risk_history_for(session, acc), acc.patient)
    if current is not None:
        periods = [p for p in periods if (p.end is None) in current]
    page = in_memory(periods, offset=offset, limit=limit, only_count=only_count)
    for period in page.rows:
        record(
            session,
            by=by,
            action="search",
            object_type="Flag",
            object_id=period.status.id,
            patient_id=period.patient.id,
        )
    return page

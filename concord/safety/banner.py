"""The banner atop every clinician page: the alerts they own, how many others need their teams."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from concord.accounts.models import User
from concord.patients.models import CareTeam, CareTeamMember, Patient
from concord.safety.alerts import _on_my_teams
from concord.safety.models import (
    AlertStatus,
    SafetyAlert,
)


@dataclass(frozen=True)
class OwnedAlert:
    """An alert in the banner, as plain values: the banner is drawn even on an error page,
    after the request's transaction has been rolled back."""

    alert_id: uuid.UUID
    tier: str
    due_at: datetime
    patient_id: uuid.UUID
    patient_name: str


@dataclass
class Banner:
    """What the top of every clinician page shows: alerts this person owns (by patient), and
    how many others need their teams."""

    owned: list[OwnedAlert] = field(default_factory=list)
    team_count: int = 0


def banner_for(session: Session, user: User) -> Banner:
    if not user.is_clinician:
        return Banner()
    # Columns, not entities: the entities' joined relationships made a ten-table join whose
    # planning (2 ms) cost more than running it, on every clinician page.
    owned = [
        OwnedAlert(
            row.id,
            row.tier,
            row.due_at,
            row.patient_id,
            Patient.name_shown(row.first, row.given, row.family),
        )
        for row in session.execute(
            select(
                SafetyAlert.id,
                SafetyAlert.tier,
                SafetyAlert.due_at,
                SafetyAlert.patient_id,
                Patient.preferred_name.label("first"),
                Patient.given_name.label("given"),
                Patient.family_name.label("family"),
            )
            .join(Patient, Patient.id == SafetyAlert.patient_id)
            .where(
                SafetyAlert.status == AlertStatus.open,
                SafetyAlert.owner_id == user.id,
                _on_my_teams(user),
            )
            .order_by(SafetyAlert.due_at)
            .limit(5)
        )
    ]
    # From the person's own care teams to their patients' alerts (index on patient and
    # status): the cost follows the size of their caseload, not of the organization.
    team_count = (
        session.scalar(
            select(func.count())
            .select_from(CareTeamMember)
            .join(CareTeam, CareTeam.id == CareTeamMember.care_team_id)
            .join(SafetyAlert, SafetyAlert.patient_id == CareTeam.patient_id)
            .where(
                CareTeamMember.user_id == user.id,
                CareTeamMember.ended_at.is_(None),
                SafetyAlert.status != AlertStatus.closed,
                or_(
                    SafetyAlert.owner_id.is_(None),
                    SafetyAlert.owner_id != user.id,
                    SafetyAlert.status == AlertStatus.acknowledged,
                ),
            )
        )
        or 0
    )
    return Banner(owned=owned, team_count=team_count)


def count_open_alerts(session: Session, user: User) -> int:
    """How many alerts need the care teams this clinician is on (no patient named)."""
    if not user.is_clinician:
        return 0
    return (
        session.scalar(
            select(func.count())
            .select_from(SafetyAlert)
            .where(SafetyAlert.status != AlertStatus.closed, _on_my_teams(user))
        )
        or 0
    )

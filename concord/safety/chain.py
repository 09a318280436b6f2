"""Who owns an alert: the escalation chain's steps resolved to people on the patient's team."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from concord.accounts.models import Organization, Role, User
from concord.patients.models import CareTeamMember
from concord.patients.service import join_team, members_of_patient
from concord.safety.models import (
    SafetyAlert,
)


def _active_members(session: Session, patient_id: uuid.UUID) -> list[CareTeamMember]:
    """The patient's current care team, lead first, without anyone whose account is closed."""
    return [m for m in members_of_patient(session, patient_id=patient_id) if m.user.active]


def resolve_step(
    session: Session, step: str, patient_id: uuid.UUID, org: Organization
) -> User | None:
    """The one person a chain step names for this patient, or None when nobody fills it."""
    members = _active_members(session, patient_id)
    if step == "lead":
        return next((m.user for m in members if m.is_lead), None)
    if step == "on_call":
        if org.on_call_user_id is None:
            return None
        user = session.get(User, org.on_call_user_id)
        if user is None or not user.active or not user.is_clinician:
            return None
        return user
    return next((m.user for m in members if m.role == step), None)


def _next_owner(
    session: Session,
    alert: SafetyAlert,
    org: Organization,
    start: int,
) -> tuple[int, User] | None:
    """The first chain step from `start` that names someone other than the current owner."""
    for position in range(start, len(alert.chain)):
        user = resolve_step(session, alert.chain[position], alert.patient_id, org)
        if user is not None and user.id != alert.owner_id:
            return position, user
    return None


def _bring_onto_team(session: Session, alert: SafetyAlert, user: User) -> None:
    """An owner from outside the care team (the on-call clinician) joins it, so the usual
    access rules let them open the record and act. The change is audited and shows on the
    team page; the team lead can remove them afterwards."""
    join_team(
        session,
        patient_id=alert.patient_id,
        user=user,
        organization_id=alert.organization_id,
        why="on-call owner of a safety alert",
    )


def _everyone_on_chain(session: Session, alert: SafetyAlert, org: Organization) -> list[User]:
    people: dict[uuid.UUID, User] = {}
    for step in alert.chain:
        user = resolve_step(session, step, alert.patient_id, org)
        if user is not None:
            people.setdefault(user.id, user)
    return list(people.values())


def role_label(step: str) -> str:
    """A chain step in words (for pages)."""
    if step == "lead":
        return "team lead"
    if step == "on_call":
        return "on-call clinician"
    return Role(step).value.replace("_", " ")

"""42 CFR Part 2 actions: mark a clinic as a Part 2 program, correct a record's label, and open
withheld records in a medical emergency (break the glass). Each is audited; each refuses
(audited) anyone not entitled, before it writes anything.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord import access
from concord.access import PatientAccess
from concord.accounts.models import Clinic, User
from concord.audit.models import Outcome
from concord.audit.service import record as audit
from concord.clock import now
from concord.db import Base
from concord.errors import InvalidInput, NotFound, PermissionDenied
from concord.i18n import Msg
from concord.part2 import labels
from concord.part2.models import EmergencyAccess, LabelOverride
from concord.patients.models import Patient
from concord.safety.models import Notification
from concord.safety.notifications import EMERGENCY_NOTICE, mark_privacy_notices_read
from concord.settings import get_settings


def _reason(value: str | None) -> str:
    text = (value or "").strip()
    if len(text) < 5:
        raise InvalidInput.field("reason", Msg("is required: say why (at least 5 characters)"))
    return text[:500]


def set_part2_program(
    session: Session, by: User, clinic_id: str | uuid.UUID, part2: bool
) -> Clinic:
    """An administrator marks (or unmarks) a clinic of their organization as a Part 2 program."""
    cid = access.parse_id(clinic_id)
    clinic = session.get(Clinic, cid) if cid is not None else None
    if not by.active or not by.can_administer:
        audit(session, by=by, action="update", object_type="Clinic", outcome=Outcome.denied)
        raise PermissionDenied(Msg("Only an administrator can change this."))
    if clinic is None or clinic.organization_id != by.organization_id:
        raise NotFound(Msg("No such clinic."))
    before = clinic.part2_program
    clinic.part2_program = bool(part2)
    session.flush()
    audit(
        session,
        by=by,
        action="part2_program",
        object_type="Clinic",
        object_id=clinic.id,
        detail={"from": before, "to": clinic.part2_program},
    )
    return clinic


def may_correct_labels(acc: PatientAccess) -> bool:
    """A team lead, or the privacy officer or an administrator who is on the team."""
    if not acc.on_team:
        return False
    clinic = acc.by.clinic_id
    officer = False
    if clinic is not None:
        found = Session.object_session(acc.patient)
        row = found.get(Clinic, clinic) if found is not None else None
        officer = row is not None and row.privacy_officer_id == acc.by.id
    return acc.is_lead or acc.by.can_administer or officer


def correct_label(
    session: Session,
    acc: PatientAccess,
    *,
    record_type: str,
    record_id: str | uuid.UUID,
    part2: bool,
    reason: str | None,
) -> LabelOverride:
    """Correct one record's Part 2 label, with a reason (a new row; the newest wins)."""
    if not may_correct_labels(acc):
        raise access.deny(
            session,
            acc,
            action="label_correct",
            object_type="Part2Label",
            message="Only a team lead or the privacy officer can correct a label.",
        )
    text = _reason(reason)
    table = Base.metadata.tables.get(record_type)
    rid = access.parse_id(record_id)
    if table is None or "patient_id" not in table.c and record_type not in _PLAN_TABLES:
        raise InvalidInput.field("record_type", Msg("is not a kind of record that is labelled"))
    if rid is None:
        raise InvalidInput.field("record_id", Msg("is not a record id"))
    if "patient_id" in table.c:
        owner = session.scalar(select(table.c.patient_id).where(table.c.id == rid))
    else:
        plan = Base.metadata.tables["care_plan"]
        owner = session.scalar(
            select(plan.c.patient_id)
            .join(table, table.c.plan_id == plan.c.id)
            .where(table.c.id == rid)
        )
    if owner != acc.patient.id:
        raise NotFound(Msg("No such record."))
    row = LabelOverride(
        organization_id=acc.patient.organization_id,
        patient_id=acc.patient.id,
        record_type=record_type,
        record_id=rid,
        part2=bool(part2),
        reason=text,
        by_id=acc.by.id,
        at=now(),
    )
    session.add(row)
    session.flush()
    audit(
        session,
        by=acc.by,
        action="label_correct",
        object_type="Part2Label",
        object_id=row.id,
        patient_id=acc.patient.id,
        detail={"record_type": record_type, "part2": row.part2},
    )
    return row


_PLAN_TABLES = frozenset(
    {
        "concern",
        "goal",
        "milestone",
        "intervention",
        "action_step",
        "strength",
        "barrier",
        "contingency",
        "plan_comment",
    }
)


def _officers(session: Session, acc: PatientAccess) -> list[User]:
    """The privacy officers of the Part 2 programs treating the patient, else the
    organization's administrators."""
    ctx = labels.context(session, acc.patient.organization_id, [acc.patient.id])
    programs = ctx.patient_programs.get(acc.patient.id, frozenset())
    ids = set()
    if programs:
        ids = {
            i
            for i in session.scalars(
                select(Clinic.privacy_officer_id).where(Clinic.id.in_(sorted(programs)))
            )
            if i is not None
        }
    if ids:
        return list(session.scalars(select(User).where(User.id.in_(sorted(ids)))))
    return [
        u
        for u in session.scalars(
            select(User).where(
                User.organization_id == acc.patient.organization_id, User.active.is_(True)
            )
        )
        if u.can_administer
    ]


def break_glass(session: Session, acc: PatientAccess, reason: str | None) -> EmergencyAccess:
    """A clinician on the team opens the records the patient's consent withholds, in a medical
    emergency (42 CFR 2.51), for `emergency_access_minutes`: recorded, audited as an
    emergency disclosure, shown to the patient, told to the privacy officer (no patient data
    in the notice)."""
    if not (acc.on_team and acc.by.is_clinician):
        raise access.deny(
            session,
            acc,
            action="emergency_access",
            object_type="EmergencyAccess",
            message="Only a clinician on the care team can do this.",
        )
    text = _reason(reason)
    started = now()
    grant = EmergencyAccess(
        organization_id=acc.patient.organization_id,
        patient_id=acc.patient.id,
        user_id=acc.by.id,
        reason=text,
        started_at=started,
        expires_at=started + timedelta(minutes=get_settings().emergency_access_minutes),
    )
    session.add(grant)
    session.flush()
    audit(
        session,
        by=acc.by,
        action="emergency_access",
        object_type="EmergencyAccess",
        object_id=grant.id,
        patient_id=acc.patient.id,
        detail={"expires_at": grant.expires_at.isoformat()},
    )
    for officer in _officers(session, acc):
        # The notice names no patient: the officer reads the access log for who and why.
        session.add(Notification(user_id=officer.id, kind=EMERGENCY_NOTICE, created_at=started))
    session.flush()
    return grant


def emergency_accesses(session: Session, acc: PatientAccess) -> list[EmergencyAccess]:
    """Every emergency access to the patient's records, newest first (the patient and the
    team see them)."""
    if not acc.can_read_record:
        raise access.refuse_record(session, acc, object_type="EmergencyAccess")
    return list(
        session.scalars(
            select(EmergencyAccess)
            .where(EmergencyAccess.patient_id == acc.patient.id)
            .order_by(EmergencyAccess.started_at.desc())
        )
    )


# --- the privacy officer ---------------------------------------------------------------------


def officer_candidates(session: Session, by: User) -> list[User]:
    """Who an administrator may name as a clinic's privacy officer: the organization's active
    staff (never a patient or a family member)."""
    return [
        u
        for u in session.scalars(
            select(User)
            .where(User.organization_id == by.organization_id, User.active.is_(True))
            .order_by(User.name)
        )
        if not u.is_patient and not u.is_related_person
    ]


def set_privacy_officer(
    session: Session, by: User, clinic_id: str | uuid.UUID, user_id: uuid.UUID | None
) -> Clinic:
    """An administrator names (or clears, with None) a clinic's privacy officer: a member of
    the organization's staff. The officer reads the program's emergency-access notices
    (`privacy_notices`) and may correct labels on teams they are on. Audited."""
    cid = access.parse_id(clinic_id)
    clinic = session.get(Clinic, cid) if cid is not None else None
    if not by.active or not by.can_administer:
        audit(session, by=by, action="update", object_type="Clinic", outcome=Outcome.denied)
        raise PermissionDenied(Msg("Only an administrator can change this."))
    if clinic is None or clinic.organization_id != by.organization_id:
        raise NotFound(Msg("No such clinic."))
    if user_id is not None and user_id not in {u.id for u in officer_candidates(session, by)}:
        raise InvalidInput.field("user_id", Msg("must name an active member of staff here"))
    before = clinic.privacy_officer_id
    clinic.privacy_officer_id = user_id
    session.flush()
    audit(
        session,
        by=by,
        action="privacy_officer",
        object_type="Clinic",
        object_id=clinic.id,
        detail={
            "from": str(before) if before else None,
            "to": str(user_id) if user_id else None,
        },
    )
    return clinic


@dataclass(frozen=True)
class PrivacyNotice:
    """One emergency access, as its privacy officer reads it (42 CFR 2.51(c): who received
    the records, who opened them, when, and the nature of the emergency)."""

    id: uuid.UUID
    patient_id: uuid.UUID
    patient_name: str
    clinician: str
    clinic: str
    programs: str
    reason: str | None  # None: an administrator standing in reads who and when, not why
    started_at: datetime
    expires_at: datetime
    open_now: bool
    officer_named: bool


def privacy_notices(session: Session, by: User, *, limit: int = 100) -> list[PrivacyNotice]:
    """The emergency accesses whose notice went to `by` (the same rule as `_officers`): those to
    patients of a Part 2 program that names `by` its privacy officer; for an administrator,
    also those of programs with no privacy officer named (without the reason: administrators
    read no clinical records). Anyone else: not found, audited. Each row shown is audited as a
    read of that patient's emergency access."""
    officer_of = set(session.scalars(select(Clinic.id).where(Clinic.privacy_officer_id == by.id)))
    if not by.active or (not officer_of and not by.can_administer):
        audit(session, by=by, action="list", object_type="EmergencyAccess", outcome=Outcome.denied)
        raise NotFound(Msg("This page is for privacy officers."))
    grants = list(
        session.scalars(
            select(EmergencyAccess)
            .where(EmergencyAccess.organization_id == by.organization_id)
            .order_by(EmergencyAccess.started_at.desc())
            .limit(limit)
        )
    )
    # Reading the page is reading the notices (as opening the alerts page is for alerts).
    mark_privacy_notices_read(session, by)
    if not grants:
        audit(session, by=by, action="list", object_type="EmergencyAccess", detail={"count": 0})
        return []
    pids = sorted({g.patient_id for g in grants})
    ctx = labels.context(session, by.organization_id, pids)
    clinics = {
        c.id: c
        for c in session.scalars(select(Clinic).where(Clinic.organization_id == by.organization_id))
    }
    patients = {p.id: p for p in session.scalars(select(Patient).where(Patient.id.in_(pids)))}
    users = {
        u.id: u
        for u in session.scalars(
            select(User).where(User.id.in_(sorted({g.user_id for g in grants})))
        )
    }
    at = now()
    shown = []
    for g in grants:
        programs = ctx.patient_programs.get(g.patient_id, frozenset())
        officers = {clinics[c].privacy_officer_id for c in programs if c in clinics} - {None}
        mine = by.id in officers
        if not mine and not (not officers and by.can_administer):
            continue
        clinician = users.get(g.user_id)
        shown.append(
            PrivacyNotice(
                id=g.id,
                patient_id=g.patient_id,
                patient_name=patients[g.patient_id].full_name,
                clinician=clinician.name if clinician else "",
                clinic=clinics[clinician.clinic_id].name
                if clinician and clinician.clinic_id in clinics
                else "",
                programs=", ".join(sorted(clinics[c].name for c in programs if c in clinics)),
                reason=g.reason if mine else None,
                started_at=g.started_at,
                expires_at=g.expires_at,
                open_now=g.active(at),
                officer_named=bool(officers),
            )
        )
        audit(
            session,
            by=by,
            action="read",
            object_type="EmergencyAccess",
            object_id=g.id,
            patient_id=g.patient_id,
        )
    return shown

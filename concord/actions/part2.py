"""42 CFR Part 2 actions: mark a clinic as a Part 2 program, correct a record's label, and open
withheld records in a medical emergency (break the glass). Each is audited; each refuses
(audited) anyone not entitled, before it writes anything.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

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
from concord.safety.models import Notification
from concord.settings import get_settings

EMERGENCY_NOTICE = "emergency_access"


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

"""Read the disclosure log: the patient (their own) and the care team; nobody else.

A family member or carer, another patient, or a clinician off the team gets the stranger's
answer (NotFound, audited), as for any part of the record beyond the care plan."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.access import PatientAccess, refuse_record
from concord.audit.service import record as audit
from concord.disclosures.models import DisclosureLog

OBJECT = "DisclosureLog"
LIMIT = 500


def list_disclosures(
    session: Session, *, access: PatientAccess, limit: int = LIMIT
) -> list[DisclosureLog]:
    """The patient's disclosure log, newest first (audited)."""
    if not (access.is_self or access.on_team):
        raise refuse_record(session, access, object_type=OBJECT)
    rows = list(
        session.scalars(
            select(DisclosureLog)
            .where(DisclosureLog.patient_id == access.patient.id)
            .order_by(DisclosureLog.disclosed_at.desc(), DisclosureLog.id)
            .limit(limit)
        )
    )
    audit(
        session,
        by=access.by,
        action="list",
        object_type=OBJECT,
        patient_id=access.patient.id,
        detail={"count": len(rows)},
    )
    return rows

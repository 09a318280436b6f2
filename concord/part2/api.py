"""42 CFR Part 2 as JSON at /api/v1: mark a clinic as a Part 2 program (administrators), break
the glass and list emergency accesses, correct a record's label (the same actions as the
pages, audited)."""

# No `from __future__ import annotations`: FastAPI reads the body models from the annotations.

from typing import Any

from fastapi import APIRouter

from concord import access
from concord.actions import part2 as actions
from concord.part2.models import EmergencyAccess
from concord.part2.schemas import LabelIn, Part2ProgramIn, PrivacyOfficerIn, ReasonIn
from concord.web.deps import ApiActor, ApiWriter, DbSession

router = APIRouter(prefix="/api/v1", tags=["part2"])


def _grant(g: EmergencyAccess) -> dict[str, Any]:
    return {
        "id": str(g.id),
        "user_id": str(g.user_id),
        "reason": g.reason,
        "started_at": g.started_at.isoformat(),
        "expires_at": g.expires_at.isoformat(),
    }


@router.put("/clinics/{clinic_id}/part2-program")
def part2_program(
    clinic_id: str, body: Part2ProgramIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Mark (or unmark) a clinic as a 42 CFR Part 2 program (an administrator)."""
    clinic = actions.set_part2_program(session, actor.user, clinic_id, body.part2_program)
    return {"id": str(clinic.id), "part2_program": clinic.part2_program}


@router.post("/patients/{patient_id}/emergency-access", status_code=201)
def break_glass(
    patient_id: str, body: ReasonIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Open the records the patient's consent withholds, in a medical emergency, for a short
    time (a clinician on the care team; the reason is required)."""
    acc = access.team_access(session, actor.user, patient_id, object_type="EmergencyAccess")
    return _grant(actions.break_glass(session, acc, body.reason))


@router.get("/patients/{patient_id}/emergency-access")
def emergency_accesses(patient_id: str, session: DbSession, actor: ApiActor) -> list[Any]:
    acc = access.record_access(session, actor.user, patient_id, object_type="EmergencyAccess")
    return [_grant(g) for g in actions.emergency_accesses(session, acc)]


@router.post("/patients/{patient_id}/part2-labels", status_code=201)
def correct_label(
    patient_id: str, body: LabelIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Correct one record's Part 2 label, with a reason (a team lead or the privacy officer)."""
    acc = access.team_access(session, actor.user, patient_id, object_type="Part2Label")
    row = actions.correct_label(
        session,
        acc,
        record_type=body.record_type,
        record_id=body.record_id,
        part2=body.part2,
        reason=body.reason,
    )
    return {"id": str(row.id), "record_type": row.record_type, "part2": row.part2}


@router.put("/clinics/{clinic_id}/privacy-officer")
def privacy_officer(
    clinic_id: str, body: PrivacyOfficerIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Name (or clear) a clinic's privacy officer (an administrator)."""
    clinic = actions.set_privacy_officer(session, actor.user, clinic_id, body.user_id)
    officer = clinic.privacy_officer_id
    return {"id": str(clinic.id), "privacy_officer_id": str(officer) if officer else None}


@router.get("/privacy/notices")
def privacy_notices(session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """The emergency accesses told to the privacy officer asking (see the page)."""
    return [
        {
            "id": str(n.id),
            "patient_id": str(n.patient_id),
            "patient_name": n.patient_name,
            "clinician": n.clinician,
            "clinic": n.clinic,
            "programs": n.programs,
            "reason": n.reason,
            "started_at": n.started_at.isoformat(),
            "expires_at": n.expires_at.isoformat(),
            "open_now": n.open_now,
            "privacy_officer_named": n.officer_named,
        }
        for n in actions.privacy_notices(session, actor.user)
    ]

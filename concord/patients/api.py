"""Patients and care teams as JSON at /api/v1."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from concord import access
from concord.careplans import service as plans
from concord.dates import org_today
from concord.patients import service as patients
from concord.patients.models import Patient
from concord.web.deps import ApiActor, DbSession

router = APIRouter(prefix="/api/v1", tags=["patients"])


def patient_json(patient: Patient) -> dict[str, Any]:
    return {
        "id": str(patient.id),
        "mrn": patient.mrn,
        "given_name": patient.given_name,
        "family_name": patient.family_name,
        "preferred_name": patient.preferred_name,
        "pronouns": patient.pronouns,
        "birth_date": patient.birth_date.isoformat(),
        "gender": patient.gender,
        "language": patient.language,
        "clinic": {"id": str(patient.clinic_id), "name": patient.clinic.name},
    }


def shared_json(patient: Patient) -> dict[str, Any]:
    """A patient whose plan is shared with the caller: what /shared shows, no more."""
    return {
        "id": str(patient.id),
        "given_name": patient.given_name,
        "family_name": patient.family_name,
        "preferred_name": patient.preferred_name,
    }


@router.get("/patients")
def list_patients(session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """Every patient the caller may open, with their plan's state."""
    mine = patients.list_my_patients(session, by=actor.user)
    summaries = plans.plan_summaries(session, mine, org_today(actor.user.organization))
    result = []
    whole = access.sees_whole_record(actor.user)
    for patient in mine:
        summary = summaries[patient.id]
        entry = patient_json(patient) if whole else shared_json(patient)
        entry["care_plan"] = (
            None
            if summary.plan is None
            else {
                "id": str(summary.plan.id),
                "status": summary.plan.status,
                "review_state": summary.review,
                "agreed": bool(summary.agreement and summary.agreement.agreed),
            }
        )
        result.append(entry)
    return result


@router.get("/patients/{patient_id}")
def get_patient(patient_id: str, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    acc = access.record_access(session, actor.user, patient_id)
    return patient_json(acc.patient)


@router.get("/patients/{patient_id}/care-team")
def get_care_team(patient_id: str, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    acc = access.record_access(session, actor.user, patient_id, object_type="CareTeam")
    team, members = patients.read_care_team(session, access=acc)
    return {
        "id": str(team.id),
        "name": team.name,
        "members": [
            {
                "user_id": str(m.user_id),
                "name": m.user.name,
                "role": m.role,
                "lead": m.is_lead,
                "since": m.added_at.isoformat(),
            }
            for m in members
        ],
    }

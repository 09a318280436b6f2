"""Held patient matches as JSON at /api/v1 (the twin of /ehr/matches)."""

# No `from __future__ import annotations`: FastAPI reads the annotations.

import dataclasses
from typing import Any

from fastapi import APIRouter

from concord.actions import ehr_import
from concord.ehr import service as ehr
from concord.ehr.schemas import MatchDecisionIn
from concord.web.deps import ApiActor, ApiWriter, DbSession

router = APIRouter(prefix="/api/v1", tags=["EHR import"])


def _json(view: ehr.MatchView) -> dict[str, Any]:
    data = dataclasses.asdict(view)
    for key in ("id", "patient_id", "patient_birth_date", "created_at"):
        data[key] = str(data[key]) if key != "created_at" else view.created_at.isoformat()
    return data


@router.get("/ehr/matches")
def list_matches(session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """Imported patients that look like a patient on your care teams (same name and birth
    date) without the medical record number to prove it: waiting for a person to decide."""
    return [_json(v) for v in ehr.list_matches(session, by=actor.user)]


@router.post("/ehr/matches/{match_id}")
def decide_match(
    match_id: str, body: MatchDecisionIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Decide a held match: the same patient (the imported record joins theirs) or a
    different one (registered as a new patient)."""
    view = ehr_import.decide_match(
        session, by=actor.user, match_id=match_id, same=body.decision == "same"
    )
    return _json(view)

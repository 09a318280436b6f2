"""The disclosure log as JSON at /api/v1 (read only): the patient and the care team."""

# No `from __future__ import annotations`: FastAPI reads the annotations.

from typing import Any

from fastapi import APIRouter

from concord import access
from concord.disclosures import service as ds
from concord.disclosures.labels import as_json
from concord.web.deps import ApiActor, DbSession

router = APIRouter(prefix="/api/v1", tags=["disclosures"])


@router.get("/patients/{patient_id}/disclosures")
def disclosures(patient_id: str, session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """Who received the patient's 42 CFR Part 2 records, and emergency disclosures, newest
    first: who, what kind and how many (no content), when, purpose, consent, door."""
    acc = access.patient_for(session, actor.user, patient_id, object_type=ds.OBJECT)
    return [as_json(r) for r in ds.list_disclosures(session, access=acc)]

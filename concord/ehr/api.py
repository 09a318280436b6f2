"""Held patient matches and imports as JSON at /api/v1 (the twins of /ehr/matches and
/ehr/imports)."""

# No `from __future__ import annotations`: FastAPI reads the annotations.

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from concord.accounts.models import ClientScope
from concord.accounts.tokens import token_scopes
from concord.actions import ehr_import
from concord.ehr import service as ehr
from concord.ehr.schemas import MatchDecisionIn, UndoImportIn
from concord.web.deps import Actor, ApiActor, ApiWriter, DbSession, api_actor, writer

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


# No I/O, so async (as concord.web.deps.api_writer).
async def import_writer(actor: Actor = Depends(api_actor)) -> Actor:
    """A token that may write, or an integration client's token scoped `import`: it writes
    imports, so it may undo its own (the domain decides which)."""
    if actor.user.is_client and ClientScope.import_ in token_scopes(actor.token):
        return actor
    return writer(actor)


ImportWriter = Annotated[Actor, Depends(import_writer)]


def import_json(view: ehr.ImportView) -> dict[str, Any]:
    return {
        "id": str(view.id),
        "source": view.source,
        "kind": view.kind,
        "entries": view.entries,
        "created": view.created,
        "changed": view.changed,
        "patients_registered": view.patients,
        "created_at": view.created_at.isoformat(),
        "undone_at": view.undone_at.isoformat() if view.undone_at else None,
        "undone_by": view.undone_by or None,
        "undo_reason": view.undo_reason or None,
    }


@router.get("/ehr/imports")
def list_imports(session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """The organization's EHR imports, newest first (an administrator: every one; an
    integration client with the import scope: its own), with what each created and changed."""
    views = ehr.list_imports(session, by=actor.user, scopes=token_scopes(actor.token))
    return [import_json(v) for v in views]


@router.post("/ehr/imports/{import_id}/undo")
def undo_import(
    import_id: str, body: UndoImportIn, session: DbSession, actor: ImportWriter
) -> dict[str, Any]:
    """Undo one import (its id is the `identifier` of the Bundle `POST /fhir` answered): what
    it created is deleted, what it changed goes back, its medication orders come off the
    list. Refused with 409, naming the record and what was done with it, if anything was
    done since with what it brought; 409 too if it was already undone."""
    view = ehr_import.undo_import(
        session,
        by=actor.user,
        import_id=import_id,
        reason=body.reason,
        scopes=token_scopes(actor.token),
    )
    return import_json(view)

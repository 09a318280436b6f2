"""The pages where a person decides the patient matches an EHR import could not (/ehr/matches),
and where an administrator sees the imports and undoes one (/ehr/imports)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from concord.actions import ehr_import
from concord.ehr import service as ehr
from concord.ehr.schemas import MatchDecisionIn, UndoImportIn
from concord.web.deps import DbSession, PostedBy, WebActor
from concord.web.forms import FormOf, Posted
from concord.web.templating import render

router = APIRouter()


@router.get("/ehr/matches")
def matches(request: Request, session: DbSession, actor: WebActor) -> Response:
    views = ehr.list_matches(session, by=actor.user)
    return render(
        request,
        "ehr/matches.html",
        {"matches": views, "done": request.query_params.get("done")},
    )


@router.post("/ehr/matches/{match_id}")
def decide(
    match_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[MatchDecisionIn], FormOf(MatchDecisionIn)],
    actor: PostedBy,
) -> Response:
    data = form.read()
    ehr_import.decide_match(session, by=actor.user, match_id=match_id, same=data.decision == "same")
    return RedirectResponse("/ehr/matches?done=decided", status_code=303)


@router.get("/ehr/imports")
def imports(request: Request, session: DbSession, actor: WebActor) -> Response:
    views = ehr.list_imports(session, by=actor.user)
    return render(
        request,
        "ehr/imports.html",
        {"imports": views, "done": request.query_params.get("done")},
    )


@router.post("/ehr/imports/{import_id}/undo")
def undo(
    import_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[UndoImportIn], FormOf(UndoImportIn)],
    actor: PostedBy,
) -> Response:
    data = form.read()
    ehr_import.undo_import(session, by=actor.user, import_id=import_id, reason=data.reason)
    return RedirectResponse("/ehr/imports?done=undone", status_code=303)

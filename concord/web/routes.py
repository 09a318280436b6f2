"""The front door: where each person lands, and a health check for operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import text
from starlette.responses import JSONResponse, RedirectResponse, Response

from concord.web.deps import Actor, DbSession, optional_actor

router = APIRouter()


@router.get("/")
def home(
    request: Request, session: DbSession, actor: Annotated[Actor | None, Depends(optional_actor)]
) -> Response:
    if actor is None:
        return RedirectResponse("/sign-in", status_code=303)
    user = actor.user
    if user.is_patient:
        return RedirectResponse("/my", status_code=303)
    if user.is_related_person:
        return RedirectResponse("/shared", status_code=303)
    if user.is_clinician:
        return RedirectResponse("/patients", status_code=303)
    return RedirectResponse("/admin/users", status_code=303)


@router.get("/healthz")
def health(session: DbSession) -> Response:
    session.execute(text("SELECT 1"))
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    """Browsers ask for this on pages that name no icon (a JSON answer opened in a tab)."""
    return RedirectResponse("/static/icon.svg", status_code=301)

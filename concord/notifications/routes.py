"""The bell (a person's notices) and their notification choices, as pages (issue 22)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from concord.errors import InvalidInput
from concord.notifications import service as notices
from concord.notifications.schemas import PreferencesIn, ReadIn
from concord.web.deps import DbSession, PostedBy, WebActor
from concord.web.forms import FormOf, Posted
from concord.web.templating import render

router = APIRouter()


@router.get("/notices")
def bell(request: Request, session: DbSession, actor: WebActor) -> Response:
    context = {
        "notices": notices.list_notices(session, actor.user),
        "unread": notices.unread_count(session, actor.user),
        "texts": notices.BELL,
    }
    return render(request, "notifications/bell.html", context)


@router.post("/notices/read")
def read(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ReadIn], FormOf(ReadIn)],
    actor: PostedBy,
) -> Response:
    data = form.read()
    notices.mark_read(session, by=actor.user, notice_id=data.notice_id)
    return RedirectResponse(data.next or "/notices", status_code=303)


def _settings_context(session: DbSession, actor: Any, **extra: Any) -> dict[str, Any]:
    prefs = notices.preferences(session, actor.user)
    return {
        "prefs": prefs,
        "values": {
            "channels": prefs.channels,
            "phone": prefs.phone or "",
            "quiet_from": "" if prefs.quiet_from is None else prefs.quiet_from,
            "quiet_until": "" if prefs.quiet_until is None else prefs.quiet_until,
        },
        "errors": {},
        "done": None,
        **extra,
    }


@router.get("/notifications/settings")
def settings_page(request: Request, session: DbSession, actor: WebActor) -> Response:
    context = _settings_context(session, actor, done=request.query_params.get("done"))
    return render(request, "notifications/settings.html", context)


@router.post("/notifications/settings")
def save_settings(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[PreferencesIn], FormOf(PreferencesIn)],
    actor: PostedBy,
) -> Response:
    try:
        data = form.read()
        notices.set_preferences(
            session,
            by=actor.user,
            channels=data.channels,
            phone=data.phone,
            quiet_from=data.quiet_from,
            quiet_until=data.quiet_until,
        )
    except InvalidInput as exc:
        values = dict(form.values)
        channels = values.get("channels") or []
        values["channels"] = channels if isinstance(channels, list) else [channels]
        context = _settings_context(
            session, actor, values=values, errors=exc.errors, message=exc.message
        )
        return render(request, "notifications/settings.html", context, status_code=422)
    return RedirectResponse("/notifications/settings?done=saved", status_code=303)

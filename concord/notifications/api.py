"""The bell and a person's notification choices as JSON at /api/v1 (issue 22)."""

# No `from __future__ import annotations`: FastAPI reads the body models from the annotations.

from typing import Any

from fastapi import APIRouter

from concord.i18n import gettext
from concord.notifications import service as notices
from concord.notifications.models import Notice
from concord.notifications.schemas import PreferencesIn, ReadIn
from concord.web.deps import ApiActor, ApiWriter, DbSession

router = APIRouter(prefix="/api/v1", tags=["notifications"])


def notice_json(n: Notice, lang: str) -> dict[str, Any]:
    return {
        "id": str(n.id),
        "kind": n.kind,
        "text": gettext(lang, notices.BELL[n.kind]),
        "link": n.link,
        "created_at": n.created_at.isoformat(),
        "read_at": n.read_at.isoformat() if n.read_at else None,
    }


def preferences_json(p: notices.Preferences) -> dict[str, Any]:
    return {
        "channels": p.channels,
        "phone": p.phone,
        "quiet_from": p.quiet_from,
        "quiet_until": p.quiet_until,
    }


@router.get("/notices")
def my_notices(session: DbSession, actor: ApiActor) -> dict[str, Any]:
    """The signed-in person's notices, newest first, and how many are unread."""
    lang = actor.user.language or "en"
    return {
        "unread": notices.unread_count(session, actor.user),
        "notices": [notice_json(n, lang) for n in notices.list_notices(session, actor.user)],
    }


@router.post("/notices/read")
def read(body: ReadIn, session: DbSession, actor: ApiWriter) -> dict[str, Any]:
    marked = notices.mark_read(session, by=actor.user, notice_id=body.notice_id)
    return {"marked": marked, "unread": notices.unread_count(session, actor.user)}


@router.get("/notification-preferences")
def get_preferences(session: DbSession, actor: ApiActor) -> dict[str, Any]:
    return preferences_json(notices.preferences(session, actor.user))


@router.put("/notification-preferences")
def put_preferences(body: PreferencesIn, session: DbSession, actor: ApiWriter) -> dict[str, Any]:
    done = notices.set_preferences(
        session,
        by=actor.user,
        channels=body.channels,
        phone=body.phone,
        quiet_from=body.quiet_from,
        quiet_until=body.quiet_until,
    )
    return preferences_json(done)

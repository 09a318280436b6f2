"""The patient's view of their own audit trail: who looked at or changed their record."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from concord.audit.labels import (
    ACTION_LABELS,
    CHANNEL_LABELS,
    OBJECT_LABELS,
    SYSTEM_ACTOR,
    UNKNOWN_OBJECT,
)
from concord.audit.service import access_log, group_access_log, record
from concord.careplans.routes import _self_access
from concord.web.deps import DbSession, WebActor
from concord.web.templating import render

router = APIRouter()

PAGE = 200  # events; repeated views are grouped, so a page holds a few days


@router.get("/my/access-log")
def my_access_log(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _self_access(session, actor)
    before_raw = request.query_params.get("before")
    before = int(before_raw) if before_raw and before_raw.isdigit() else None
    rows = access_log(session, patient_id=acc.patient.id, before=before, limit=PAGE)
    record(session, by=actor.user, action="read", object_type="AuditLog", patient_id=acc.patient.id)
    return render(
        request,
        "audit/access_log.html",
        {
            "acc": acc,
            "rows": rows,
            "days": group_access_log(rows, actor.user.organization),
            "older": rows[-1].event.seq if len(rows) == PAGE else None,
            "actions": ACTION_LABELS,
            "objects": OBJECT_LABELS,
            "channels": CHANNEL_LABELS,
            "system_actor": SYSTEM_ACTOR,
            "unknown_object": UNKNOWN_OBJECT,
        },
    )

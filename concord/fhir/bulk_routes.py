"""/fhir Bulk Data export routes ($export kick-off, status, cancel, files) and Group reads.

Mounted before the /fhir router, whose `/{kind}` routes would otherwise take `$export`.
Authentication is the bearer token /fhir already resolves (concord.web.deps.bearer_actor).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, JSONResponse, Response

from concord.bulk.models import ExportStatus
from concord.errors import InvalidInput, NotSupported
from concord.fhir import bulk, mapping
from concord.i18n import Msg
from concord.web.deps import BearerActor, DbSession

router = APIRouter(prefix="/fhir", tags=["FHIR R4 Bulk Data"])
FHIR_JSON = "application/fhir+json"
RETRY_AFTER = "2"


def _base(request: Request) -> str:
    return request.app.state.settings.base_url.rstrip("/") + "/fhir"


def _schedule(request: Request) -> bulk.BulkSchedule:
    return bulk.BulkSchedule.from_settings(request.app.state.settings)


def _prefer(request: Request) -> tuple[bool, bool]:
    parts = {p.strip().lower() for p in request.headers.get("prefer", "").split(",")}
    return "respond-async" in parts, "handling=lenient" in parts


def _check_headers(request: Request) -> bool:
    accept = request.headers.get("accept")
    if not accept or not any(
        a.split(";", 1)[0].strip() in (FHIR_JSON, "application/json", "*/*")
        for a in accept.split(",")
    ):
        raise InvalidInput.field("Accept", Msg("must be application/fhir+json"))
    async_, lenient = _prefer(request)
    if not async_:
        raise InvalidInput.field("Prefer", Msg("must contain respond-async"))
    return lenient


LENIENT_IGNORED = {"includeAssociatedData", "_typeFilter", "_elements", "patient"}


def _pairs_from_parameters(raw: bytes) -> list[tuple[str, str]]:
    """A POST kick-off's Parameters resource as (name, value) pairs."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise InvalidInput.field("body", Msg("must be a FHIR Parameters resource")) from None
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidInput.field("body", Msg("must be a FHIR Parameters resource"))
    pairs = []
    for param in body.get("parameter") or []:
        if not isinstance(param, dict) or not isinstance(param.get("name"), str):
            raise InvalidInput.field("parameter", Msg("each needs a name and a value"))
        values = [v for k, v in param.items() if k.startswith("value")]
        if "resource" in param or len(values) != 1 or not isinstance(values[0], str):
            raise NotSupported.field(param["name"][:80], Msg("must have one string value"))
        pairs.append((param["name"], values[0]))
    return pairs


async def _kick_off(
    request: Request, session: DbSession, actor: Any, level: str, group_id: str | None
) -> Response:
    lenient = _check_headers(request)
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        pairs += _pairs_from_parameters(await request.body())
    if lenient:
        # The client asked the server to leave out what it does not support (Prefer:
        # handling=lenient): those parameters are dropped, the others still checked.
        pairs = [(k, v) for k, v in pairs if k not in LENIENT_IGNORED]
    export = await run_in_threadpool(
        bulk.kick_off,
        session,
        user=actor.user,
        token=actor.token,
        level=level,
        group_id=group_id,
        pairs=pairs,
        request_url=str(request.url),
    )
    return Response(
        status_code=202,
        headers={"Content-Location": f"{_base(request)}/bulk-status/{export.id}"},
    )


@router.get("/$export", status_code=202)
async def export_system(request: Request, session: DbSession, actor: BearerActor) -> Response:
    return await _kick_off(request, session, actor, "system", None)


@router.post("/$export", status_code=202)
async def export_system_post(request: Request, session: DbSession, actor: BearerActor) -> Response:
    return await _kick_off(request, session, actor, "system", None)


@router.get("/Patient/$export", status_code=202)
async def export_patients(request: Request, session: DbSession, actor: BearerActor) -> Response:
    return await _kick_off(request, session, actor, "patient", None)


@router.post("/Patient/$export", status_code=202)
async def export_patients_post(
    request: Request, session: DbSession, actor: BearerActor
) -> Response:
    return await _kick_off(request, session, actor, "patient", None)


@router.get("/Group/{group_id}/$export", status_code=202)
async def export_group(
    group_id: str, request: Request, session: DbSession, actor: BearerActor
) -> Response:
    return await _kick_off(request, session, actor, "group", group_id[:80])


@router.post("/Group/{group_id}/$export", status_code=202)
async def export_group_post(
    group_id: str, request: Request, session: DbSession, actor: BearerActor
) -> Response:
    return await _kick_off(request, session, actor, "group", group_id[:80])


@router.get("/bulk-status/{export_id}")
def export_status(
    export_id: str, request: Request, session: DbSession, actor: BearerActor
) -> Response:
    export, files = bulk.export_status(session, token=actor.token, export_id=export_id)
    if export.status in (ExportStatus.queued, ExportStatus.running):
        return Response(
            status_code=202,
            headers={
                "X-Progress": export.progress or str(export.status),
                "Retry-After": RETRY_AFTER,
            },
        )
    if export.status == ExportStatus.failed:
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "exception",
                    "diagnostics": str(
                        Msg("The export failed (%(reason)s). Start a new one.", reason=export.error)
                    ),
                }
            ],
        }
        return JSONResponse(outcome, status_code=500, media_type=FHIR_JSON)
    base = _base(request)
    manifest = {
        "transactionTime": mapping._instant(export.started_at or export.created_at),
        "request": export.request_url,
        "requiresAccessToken": True,
        "output": [
            {"type": f.resource_type, "url": f"{base}/bulk-files/{f.id}", "count": f.count}
            for f in files
        ],
        "error": [],
    }
    expires = export.expires_at
    headers = {"Expires": expires.strftime("%a, %d %b %Y %H:%M:%S GMT")} if expires else {}
    return JSONResponse(manifest, headers=headers)


@router.delete("/bulk-status/{export_id}", status_code=202)
def export_cancel(
    export_id: str, request: Request, session: DbSession, actor: BearerActor
) -> Response:
    bulk.cancel_export(
        session,
        user=actor.user,
        token=actor.token,
        export_id=export_id,
        schedule=_schedule(request),
    )
    return Response(status_code=202)


@router.get("/bulk-files/{file_id}")
def export_download(
    file_id: str, request: Request, session: DbSession, actor: BearerActor
) -> Response:
    path = bulk.export_file(
        session, user=actor.user, token=actor.token, file_id=file_id, schedule=_schedule(request)
    )
    return FileResponse(path, media_type=bulk.NDJSON, headers={"Cache-Control": "no-store"})


@router.get("/Group")
def search_groups(request: Request, session: DbSession, actor: BearerActor) -> Response:
    if request.query_params:
        name = next(iter(request.query_params.keys()))
        raise NotSupported.field(name[:80], Msg("Group searches take no parameters here"))
    groups = bulk.search_groups(session, by=actor.user)
    base = _base(request)
    return JSONResponse(
        mapping.bundle(groups, base, f"{base}/Group", None, len(groups)),
        media_type=FHIR_JSON,
    )


@router.get("/Group/{group_id}")
def read_group(group_id: str, request: Request, session: DbSession, actor: BearerActor) -> Response:
    return JSONResponse(
        bulk.read_group(session, by=actor.user, group_id=group_id[:80]), media_type=FHIR_JSON
    )

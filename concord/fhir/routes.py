"""/fhir: the standard interface for EHRs and apps (FHIR R4, JSON, bearer tokens)."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from concord import __version__
from concord.errors import InvalidInput, NotFound
from concord.fhir import mapping
from concord.fhir import service as fhir
from concord.i18n import Msg
from concord.web.deps import (
    BearerActor,
    DbSession,
    Form,
    bearer_actor,
    finish_request,
    writer,
)

router = APIRouter(prefix="/fhir", tags=["FHIR R4"])

READABLE = {
    "Patient",
    "CareTeam",
    "CarePlan",
    "Goal",
    "Practitioner",
    "Questionnaire",
    "QuestionnaireResponse",
    "Observation",
    "Task",
    "Flag",
}
SEARCHABLE = {
    "Patient",
    "CareTeam",
    "CarePlan",
    "Goal",
    "Questionnaire",
    "QuestionnaireResponse",
    "Observation",
    "Task",
    "Flag",
}
FHIR_JSON = "application/fhir+json"


def _validating(request: Request) -> bool:
    return bool(request.app.state.settings.validate_fhir_output)


def fhir_response(request: Request, resource: dict[str, Any], status_code: int = 200) -> Response:
    """A FHIR answer; checked against the R4 models first unless the settings turn that off
    (see docs/adr/0005-fhir-r4-validated-with-r4b-models.md)."""
    if _validating(request):
        mapping.validate(resource)
    return JSONResponse(resource, status_code=status_code, media_type=FHIR_JSON)


def _base(request: Request) -> str:
    return request.app.state.settings.base_url.rstrip("/") + "/fhir"


@router.get("/metadata")
def metadata(request: Request) -> Response:
    return fhir_response(request, mapping.capability_statement(_base(request), __version__))


def _kind(kind: str, allowed: set[str]) -> str:
    if kind not in allowed:
        raise NotFound(Msg("This server does not offer %(kind)s.", kind=kind[:40]))
    return kind


def _search(
    request: Request, session: DbSession, actor: BearerActor, kind: str, params: dict[str, str]
) -> Response:
    _kind(kind, SEARCHABLE)
    base = _base(request)
    if kind == "Questionnaire":
        page = fhir.search_questionnaires(params)
    elif kind == "QuestionnaireResponse":
        page = fhir.search_questionnaire_responses(session, by=actor.user, params=params)
    elif kind == "Observation":
        page = fhir.search_observations(session, by=actor.user, params=params)
    elif kind in ("Task", "Flag"):
        page = fhir.search_safety(session, by=actor.user, kind=kind, params=params)
    else:
        page = fhir.search(session, by=actor.user, kind=kind, params=params, base=base)
    query = {k: v for k, v in params.items() if k != "_cursor"}
    self_url = f"{base}/{kind}" + (f"?{urlencode(query)}" if query else "")
    next_url = None
    if page.next_cursor:
        next_url = f"{base}/{kind}?{urlencode({**query, '_cursor': page.next_cursor})}"
    # Checking the Bundle checks each entry's resource too.
    return fhir_response(request, mapping.bundle(page.resources, base, self_url, next_url))


@router.get("/{kind}")
def search(kind: str, request: Request, session: DbSession, actor: BearerActor) -> Response:
    return _search(request, session, actor, kind, dict(request.query_params))


@router.post("/{kind}/_search")
def search_post(
    kind: str, request: Request, session: DbSession, form: Form, actor: BearerActor
) -> Response:
    """Search with the parameters in a form body, keeping identifiers out of URLs and logs."""
    params = {k: (v if isinstance(v, str) else ",".join(v)) for k, v in form.items()}
    return _search(request, session, actor, kind, params)


@router.post(
    "/QuestionnaireResponse",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
        }
    },
)
async def create_questionnaire_response(request: Request, session: DbSession) -> Response:
    """Accept a completed response from an app or EHR; it is scored like any other. The same
    request sent twice is stored once (200 with the stored resource); the same identifier
    with different content is 409 unless its status is "amended" (a new version, scored and
    checked again); If-None-Exist (identifier=[system]|value) is honoured."""
    raw = await request.body()  # already read (concord.web.deps.db): no wait here

    def submit() -> tuple[dict[str, Any], str]:
        # The token, the submit and the commit in one worker thread: the check-in is the
        # busiest write, and each hand-off between the event loop and a thread costs it.
        actor = writer(bearer_actor(request, session))
        try:
            body = json.loads(raw)
        except ValueError:
            raise InvalidInput.field("body", Msg("must be a FHIR resource in JSON")) from None
        resource, outcome = fhir.submit_questionnaire_response(
            session,
            by=actor.user,
            body=body,
            body_hash=hashlib.sha256(raw).hexdigest(),
            if_none_exist=request.headers.get("If-None-Exist"),
        )
        # The answer is checked before the commit: an answer that cannot be sent must leave
        # nothing behind (a response dated year 0001 was stored, then answered with a 500).
        if _validating(request):
            mapping.validate(resource)
        finish_request(request, session)
        return resource, outcome

    resource, outcome = await run_in_threadpool(submit)
    created = outcome in ("created", "amended")
    response = JSONResponse(resource, status_code=201 if created else 200, media_type=FHIR_JSON)
    response.headers["Location"] = f"{_base(request)}/QuestionnaireResponse/{resource['id']}"
    if outcome == "replayed":
        response.headers["Idempotent-Replayed"] = "true"
    return response


@router.get("/{kind}/{ident}")
def read(
    kind: str, ident: str, request: Request, session: DbSession, actor: BearerActor
) -> Response:
    _kind(kind, READABLE)
    if kind == "Questionnaire":
        return fhir_response(request, fhir.read_questionnaire(ident))
    if kind == "QuestionnaireResponse":
        return fhir_response(
            request, fhir.read_questionnaire_response(session, by=actor.user, ident=ident)
        )
    if kind == "Observation":
        return fhir_response(request, fhir.read_observation(session, by=actor.user, ident=ident))
    if kind == "Task":
        from concord.fhir.safety import read_task

        return fhir_response(request, read_task(session, by=actor.user, ident=ident))
    if kind == "Flag":
        from concord.fhir.safety import read_flag

        return fhir_response(request, read_flag(session, by=actor.user, ident=ident))
    return fhir_response(
        request,
        fhir.read_resource(session, by=actor.user, kind=kind, ident=ident, base=_base(request)),
    )

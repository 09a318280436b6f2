"""/fhir: the standard interface for EHRs and apps (FHIR R4, JSON, bearer tokens)."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, JSONResponse, Response

from concord import __version__
from concord.bulk.models import ExportStatus
from concord.errors import InvalidInput, NotFound, NotSupported
from concord.fhir import bulk, mapping, search
from concord.fhir import ehr as ehr_door
from concord.fhir import everything as everything_door
from concord.fhir import medications as fhir_meds
from concord.fhir import messaging as fhir_messages
from concord.fhir import moud as moud_door
from concord.fhir import patients as fhir_patients
from concord.fhir import provenance as fhir_provenance
from concord.fhir import quality as quality_door
from concord.fhir import service as fhir
from concord.fhir import social as social_door
from concord.fhir.appointments import read_appointment, search_appointments
from concord.fhir.consents import read_consent, search_consents
from concord.fhir.safety import read_flag, read_task
from concord.i18n import Msg
from concord.smart import enforce as smart_scope
from concord.smart.service import capability_security, is_backend
from concord.web.deps import (
    BearerActor,
    DbSession,
    Form,
    bearer_actor,
    finish_request,
    request_session,
    writer,
)
from concord.web.errors import OPERATION_OUTCOME_BODY as _OPERATION_OUTCOME
from concord.web.idempotency import claim, remember_result, request_hash

router = APIRouter(prefix="/fhir", tags=["FHIR R4"])

READABLE = {
    *ehr_door.IMPORTED_TYPES,
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
    "Consent",
    "MedicationRequest",
    "MedicationStatement",
    "Measure",
    "Communication",
    "Provenance",
    "Appointment",
}
SEARCHABLE = {
    *ehr_door.IMPORTED_TYPES,
    "Patient",
    "CareTeam",
    "CarePlan",
    "Goal",
    "Questionnaire",
    "QuestionnaireResponse",
    "Observation",
    "Task",
    "Flag",
    "Consent",
    "MedicationRequest",
    "MedicationStatement",
    "Measure",
    "Communication",
    "Appointment",
}
FHIR_JSON = "application/fhir+json"


def _validating(request: Request) -> bool:
    return bool(request.app.state.settings.validate_fhir_output)


def fhir_response(
    request: Request, resource: dict[str, Any], status_code: int = 200, pretty: bool = False
) -> Response:
    """A FHIR answer; checked against the R4 models first unless the settings turn that off
    (see docs/adr/0005-fhir-r4-validated-with-r4b-models.md)."""
    if _validating(request):
        mapping.validate(resource)
    if pretty:
        body = json.dumps(resource, ensure_ascii=False, indent=2)
        return Response(body, status_code=status_code, media_type=FHIR_JSON)
    return JSONResponse(resource, status_code=status_code, media_type=FHIR_JSON)


def _mrn(request: Request) -> str:
    return str(request.app.state.settings.fhir_mrn_system)


def _site(request: Request) -> str:
    return str(request.app.state.settings.base_url.rstrip("/"))


def _base(request: Request) -> str:
    return request.app.state.settings.base_url.rstrip("/") + "/fhir"


@router.get("/metadata")
def metadata(request: Request) -> Response:
    pairs = request.query_params.multi_items()
    search.check_accept(request.headers.get("accept"), pairs)
    query = search.parse_read(pairs)
    if query.elements is not None:
        search.check_elements("CapabilityStatement", query.elements)
    statement = mapping.capability_statement(_base(request), __version__)
    for rest in statement.get("rest", []):
        rest["security"] = {
            **rest.get("security", {}),
            **capability_security(request.app.state.settings.base_url.rstrip("/")),
        }
    return fhir_response(request, search.shape(statement, query), pretty=query.pretty)


# --- Bulk Data export ($export, docs/bulk-export.md) and Groups: before `/{kind}`, which
# would otherwise take them.

RETRY_AFTER = "2"


def _schedule(request: Request) -> bulk.BulkSchedule:
    return bulk.BulkSchedule.from_settings(request.app.state.settings)


def _prefer(request: Request) -> tuple[bool, bool]:
    parts = {p.strip().lower() for p in request.headers.get("prefer", "").split(",")}
    return "respond-async" in parts, "handling=lenient" in parts


def _check_headers(request: Request) -> bool:
    # The IG: Accept "Currently, only application/fhir+json is supported" (for the
    # OperationOutcome a refused kick-off answers with).
    accept = request.headers.get("accept") or ""
    if FHIR_JSON not in {a.split(";", 1)[0].strip() for a in accept.split(",")}:
        raise InvalidInput.field("Accept", Msg("must be application/fhir+json"))
    async_, lenient = _prefer(request)
    if not async_:
        raise InvalidInput.field("Prefer", Msg("must contain respond-async"))
    return lenient


# (`patient` is honoured: with lenient handling, a patient the requester may not read is left
# out rather than refused; concord.fhir.bulk.kick_off.)
# (`includeAssociatedData`: its unsupported values are left out there too.)
LENIENT_IGNORED = {"_typeFilter"}


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
        if param["name"] == "patient" and set(param) == {"name", "valueReference"}:
            # The IG's `patient`: a Reference (Patient- and Group-level POST).
            ref = param["valueReference"]
            if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
                raise InvalidInput.field("patient", Msg("must be a Reference to a Patient"))
            pairs.append(("patient", ref["reference"]))
            continue
        if "resource" in param or len(values) != 1 or not isinstance(values[0], str):
            raise NotSupported.field(param["name"][:80], Msg("must have one string value"))
        pairs.append((param["name"], values[0]))
    return pairs


async def _kick_off(
    request: Request, session: DbSession, actor: Any, level: str, group_id: str | None
) -> Response:
    # A SMART token exports only with scopes that read patients' records beyond one patient
    # (user/ Patient read; a backend service's system/ scopes narrow the types instead, in
    # bulk.kick_off); what each file holds is still the requester's access.
    if not is_backend(actor.smart):
        smart_scope.check_system_wide(session, actor.smart, "Patient")
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
        smart=actor.smart,
        lenient=lenient,
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
    export, files = bulk.export_status(
        session, user=actor.user, token=actor.token, export_id=export_id, smart=actor.smart
    )
    if export.status in (ExportStatus.queued, ExportStatus.running):
        return Response(
            status_code=202,
            headers={
                "X-Progress": "in progress" if export.status == ExportStatus.running else "queued",
                "Retry-After": RETRY_AFTER,
            },
        )
    if export.status == ExportStatus.failed and export.error == bulk.WITHDRAWN:
        # The app was disabled, or now acts for someone else, while the export ran (or
        # before its files were fetched): its files are deleted (concord.fhir.bulk).
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "forbidden",
                    "diagnostics": str(
                        Msg(
                            "The export was stopped and its files deleted: the access it read "
                            "with was withdrawn (the app disabled or the token revoked)."
                        )
                    ),
                }
            ],
        }
        return JSONResponse(outcome, status_code=403, media_type=FHIR_JSON)
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
        smart=actor.smart,
    )
    return Response(status_code=202)


@router.get("/bulk-files/{file_id}")
def export_download(
    file_id: str, request: Request, session: DbSession, actor: BearerActor
) -> Response:
    path = bulk.export_file(
        session,
        user=actor.user,
        token=actor.token,
        file_id=file_id,
        schedule=_schedule(request),
        smart=actor.smart,
    )
    return FileResponse(path, media_type=bulk.NDJSON, headers={"Cache-Control": "no-store"})


@router.post("/Group/_search")
def search_groups_post(
    request: Request, session: DbSession, form: Form, actor: BearerActor
) -> Response:
    return _groups(request, session, actor, [*request.query_params.keys(), *form.keys()])


@router.get("/Group")
def search_groups(request: Request, session: DbSession, actor: BearerActor) -> Response:
    return _groups(request, session, actor, list(request.query_params.keys()))


def _groups(request: Request, session: Any, actor: Any, names: list[str]) -> Response:
    # Groups list many patients: not for a SMART token kept to one patient.
    smart_scope.check_system_wide(session, actor.smart, "Group")
    if names:
        raise NotSupported.field(names[0][:80], Msg("Group searches take no parameters here"))
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


def _kind(kind: str, allowed: set[str]) -> str:
    if kind not in allowed:
        raise NotFound(Msg("This server does not offer %(kind)s.", kind=kind[:40]))
    return kind


def _search(
    request: Request,
    session: DbSession,
    actor: BearerActor,
    kind: str,
    pairs: list[tuple[str, str]],
) -> Response:
    _kind(kind, SEARCHABLE)
    pairs = smart_scope.narrow_search(session, actor.smart, kind, list(pairs), search.SEARCH_PARAMS)
    base = _base(request)
    search.check_accept(request.headers.get("accept"), pairs)
    if kind in ehr_door.IMPORTED_TYPES or (kind == "Observation" and actor.user.is_client):
        # An integration client (quality scope) reads the imported Observations only.
        asked, categories = pairs, []
        if kind in social_door.CATEGORY_KINDS:
            asked, categories = social_door.category_groups(pairs)
        filters = moud_door.Filters()
        if kind == "Procedure":
            asked, filters = moud_door.filters_of(asked)
        found = ehr_door.search_imported(
            session, by=actor.user, token=actor.token, kind=kind, pairs=asked
        )
        if not actor.user.is_client:
            # Concord's own health concerns, referrals and PDMP checks, after the EHR's.
            found += social_door.search_by_patient(session, by=actor.user, kind=kind, pairs=asked)
            if kind == "Procedure":
                found += moud_door.search_by_patient(session, by=actor.user, pairs=asked)
        found = [
            r
            for r in found
            if social_door.in_categories(r, categories) and moud_door.matches(r, filters)
        ]
        self_url = f"{base}/{kind}" + (f"?{urlencode(pairs)}" if pairs else "")
        return fhir_response(request, mapping.bundle(found, base, self_url, None, len(found)))
    q = search.parse(kind, pairs, base=base)
    if q.elements is not None:
        search.check_elements(kind, q.elements)
    if kind == "Questionnaire":
        page = fhir.search_questionnaires(q)
    elif kind == "Measure":
        page = fhir.SearchPage(*quality_door.search_measures(q))
    elif kind == "QuestionnaireResponse":
        page = fhir.search_questionnaire_responses(session, by=actor.user, q=q, base=base)
    elif kind == "Observation":
        page = fhir.search_observations(session, by=actor.user, q=q)
    elif kind in ("Task", "Flag"):
        page = fhir.search_safety(session, by=actor.user, q=q)
    elif kind == "Consent":
        page = fhir.SearchPage(*search_consents(session, by=actor.user, q=q))
    elif kind == "Communication":
        page = fhir.SearchPage(
            *fhir_messages.search_communications(
                session, by=actor.user, q=q, base_url=_site(request)
            )
        )
    elif kind == "Appointment":
        page = fhir.SearchPage(*search_appointments(session, by=actor.user, q=q))
    elif kind in fhir_meds.KINDS:
        page = fhir.SearchPage(
            *fhir_meds.search_medications(session, by=actor.user, kind=kind, q=q)
        )
    else:
        page = fhir.search(session, by=actor.user, q=q, mrn=_mrn(request))
    self_url = f"{base}/{kind}" + (f"?{urlencode(q.pairs)}" if q.pairs else "")
    next_url = None
    if page.next_cursor:
        next_url = f"{base}/{kind}?{urlencode([*q.pairs, ('_cursor', page.next_cursor)])}"
    entries = [search.shape(r, q) for r in page.resources]
    extra: list[dict[str, Any]] = []
    issues: list[dict[str, Any]] = []
    if (q.includes or q.revincludes) and not q.only_count:
        # A SMART token's scopes must cover what is included beside the page too (its
        # Provenance, a patient's Observations): refused (403, audited) otherwise, as a
        # search of that type would be.
        for included_kind in dict.fromkeys(v.split(":", 1)[0] for v in q.revincludes):
            smart_scope.check(session, actor.smart, included_kind, "s")
        if q.includes:
            smart_scope.check(session, actor.smart, "Patient", "r")
        extra, issues = fhir.included(
            session, by=actor.user, q=q, found=page.resources, mrn=_mrn(request)
        )
    # Checking the Bundle checks each entry's resource too.
    return fhir_response(
        request,
        mapping.bundle(
            entries,
            base,
            self_url,
            next_url,
            page.total if q.total and page.total >= 0 else None,
            included=extra,
            issues=issues,
        ),
        pretty=q.pretty,
    )


@router.get("/{kind}")
def search_get(kind: str, request: Request, session: DbSession, actor: BearerActor) -> Response:
    return _search(request, session, actor, kind, request.query_params.multi_items())


@router.post("/{kind}/_search")
def search_post(
    kind: str, request: Request, session: DbSession, form: Form, actor: BearerActor
) -> Response:
    """Search with the parameters in a form body, keeping identifiers out of URLs and logs;
    parameters in the URL count too (R4: both together are the search)."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded" and (
        content_type or request.headers.get("content-length", "0") != "0"
    ):
        raise NotSupported.field(
            "Content-Type", Msg("a search's body must be application/x-www-form-urlencoded")
        )
    pairs = list(request.query_params.multi_items())
    for name, value in form.items():
        pairs += [(name, v) for v in (value if isinstance(value, list) else [value])]
    return _search(request, session, actor, kind, pairs)


@router.post(
    "/QuestionnaireResponse",
    status_code=201,
    responses={
        201: {
            "description": "Created (or amended: status amended under the same identifier); "
            "Location names the stored response",
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
        },
        200: {
            "description": "The same request sent again, or If-None-Exist matched a stored "
            "response: nothing new is stored",
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
        },
        409: {
            "description": "The identifier is already used by a response with different "
            "content (send status amended to amend it)",
            "content": _OPERATION_OUTCOME,
        },
        # Declared here: the route opens its session itself (request_session), which the
        # OpenAPI document's check for the database dependency does not see.
        503: {
            "description": "The system is busy: try again in a moment",
            "content": _OPERATION_OUTCOME,
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
        }
    },
)
async def create_questionnaire_response(request: Request) -> Response:
    """Accept a completed response from an app or EHR; it is scored like any other. The same
    request sent twice is stored once (200 with the stored resource); the same identifier
    with different content is 409 unless its status is "amended" (a new version, scored and
    checked again); If-None-Exist (identifier=[system]|value) is honoured."""
    # The request's session as DbSession gives it, opened here (the busiest write: no
    # dependency machinery); it reads the whole body before it takes a database slot.
    async with request_session(request) as session:
        resource, outcome, issues = await _submit_questionnaire_response(request, session)
    created = outcome in ("created", "amended")
    status_code = 201 if created else 200
    prefer = request.headers.get("prefer", "").replace(" ", "").lower()
    if "return=operationoutcome" in prefer or (issues and "return=representation" not in prefer):
        # A response stored but not scored says so: the answer is an OperationOutcome with the
        # warning (the resource is at Location), unless the client asked for the resource.
        answer = {
            "resourceType": "OperationOutcome",
            "issue": issues
            or [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": "Stored and scored.",
                }
            ],
        }
        response = fhir_response(request, answer, status_code=status_code)
    else:
        response = fhir_response(request, resource, status_code=status_code)
    response.headers["Location"] = f"{_base(request)}/QuestionnaireResponse/{resource['id']}"
    if outcome == "replayed":
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def _submit_questionnaire_response(
    request: Request, session: Session
) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    raw = await request.body()  # already read (concord.web.deps.db): no wait here
    issues: list[dict[str, Any]] = []

    def submit() -> tuple[dict[str, Any], str]:
        # The token, the submit and the commit in one worker thread: the check-in is the
        # busiest write, and each hand-off between the event loop and a thread costs it.
        actor = writer(bearer_actor(request, session))
        try:
            body = json.loads(raw)
        except ValueError:
            raise InvalidInput.field("body", Msg("must be a FHIR resource in JSON")) from None
        smart_scope.check(session, actor.smart, "QuestionnaireResponse", "c")
        resource, outcome = fhir.submit_questionnaire_response(
            session,
            by=actor.user,
            body=body,
            body_hash=hashlib.sha256(raw).hexdigest(),
            if_none_exist=request.headers.get("If-None-Exist"),
            issues=issues,
        )
        smart_scope.check_resource(session, actor.smart, "QuestionnaireResponse", resource)
        # The answer is checked before the commit: an answer that cannot be sent must leave
        # nothing behind (a response dated year 0001 was stored, then answered with a 500).
        if _validating(request):
            mapping.validate(resource)
        finish_request(request, session)
        return resource, outcome

    resource, outcome = await run_in_threadpool(submit)
    return resource, outcome, issues


_MEDICATION_CREATE: dict[str, Any] = {
    "status_code": 201,
    "responses": {
        201: {
            "description": "Stored, and the patient's whole medication list checked: the "
            "findings as an OperationOutcome (Location names the stored resource), or the "
            "resource with Prefer: return=representation",
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
        },
        200: {
            "description": "The same identifier sent again: nothing new is stored",
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
        },
    },
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
        }
    },
}


async def _create_medication(request: Request, session: DbSession, kind: str) -> Response:
    raw = await request.body()

    def submit() -> tuple[dict[str, Any], str, list[Any]]:
        actor = writer(bearer_actor(request, session))
        try:
            body = json.loads(raw)
        except ValueError:
            raise InvalidInput.field("body", Msg("must be a FHIR resource in JSON")) from None
        smart_scope.check(session, actor.smart, kind, "c")
        resource, outcome, findings = fhir_meds.create_medication(
            session, by=actor.user, kind=kind, body=body
        )
        smart_scope.check_resource(session, actor.smart, kind, resource)
        if _validating(request):
            mapping.validate(resource)
        finish_request(request, session)
        return resource, outcome, findings

    resource, outcome, findings = await run_in_threadpool(submit)
    status_code = 201 if outcome == "created" else 200
    prefer = request.headers.get("prefer", "").replace(" ", "").lower()
    if outcome == "created" and "return=representation" not in prefer:
        response = fhir_response(
            request, fhir_meds.findings_outcome(findings), status_code=status_code
        )
    else:
        response = fhir_response(request, resource, status_code=status_code)
    response.headers["Location"] = f"{_base(request)}/{kind}/{resource['id']}"
    if outcome == "replayed":
        response.headers["Idempotent-Replayed"] = "true"
    return response


@router.post(
    "",
    responses={
        200: {
            "description": "A transaction-response or batch-response Bundle: each entry's "
            "status, location (Type/id/_history/version), etag and lastModified; for a batch, "
            "an OperationOutcome for each entry refused",
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
        },
        400: {
            "description": "A transaction refused as a whole: one issue per invalid entry, "
            "its expression naming the entry and field (Bundle.entry[3].resource.subject); "
            "nothing was written",
            "content": _OPERATION_OUTCOME,
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
        }
    },
)
async def import_bundle(request: Request, session: DbSession) -> Response:
    """Import an EHR's data: a transaction (all or nothing) or batch Bundle of Patient,
    Encounter, Condition, Observation, Procedure, ServiceRequest, MedicationRequest, Coverage,
    Organization and Practitioner, entries by POST or PUT Type/id (the sender's ids kept).
    For an integration client's token with the import scope (docs/ehr-import.md). With an
    Idempotency-Key, the same request sent again creates nothing new (POST entries get the
    ids the first one gave) and is answered with the Idempotent-Replayed header; the key with
    a different Bundle is 409."""
    raw = await request.body()
    key = request.headers.get("Idempotency-Key")

    def submit() -> tuple[dict[str, Any], bool]:
        actor = bearer_actor(request, session)
        smart_scope.check(session, actor.smart, "Bundle", "c")
        try:
            body = json.loads(raw)
        except ValueError:
            raise InvalidInput.field("body", Msg("must be a FHIR Bundle in JSON")) from None
        earlier = (
            claim(session, actor, key, request_hash(request.method, request.url.path, raw))
            if key
            else None
        )
        answer = ehr_door.import_bundle(
            session,
            by=actor.user,
            token=actor.token,
            body=body,
            mrn_system=_mrn(request),
            seed=f"{actor.user.id}:{key}" if key else None,
        )
        if _validating(request):
            mapping.validate(answer)
        finish_request(request, session)
        return answer, earlier is not None

    answer, replayed = await run_in_threadpool(submit)
    response = fhir_response(request, answer)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


_PATIENT_WRITE: dict[str, Any] = {
    "responses": {
        412: {
            "description": "If-Match names a version that is not the stored one",
            "content": _OPERATION_OUTCOME,
        },
    },
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
        }
    },
}


def _versioned(response: Response, base: str, resource: dict[str, Any]) -> Response:
    version = resource["meta"]["versionId"]
    response.headers["ETag"] = f'W/"{version}"'
    response.headers["Last-Modified"] = resource["meta"]["lastUpdated"]
    response.headers["Location"] = (
        f"{base}/{resource['resourceType']}/{resource['id']}/_history/{version}"
    )
    return response


@router.post("/Patient", status_code=201, **_PATIENT_WRITE)
async def create_patient(request: Request, session: DbSession) -> Response:
    """Enrol a patient from an EHR (a clinician's or administrator's token, as registering on
    the page): 201 with the Patient, Location and ETag. If-None-Exist: identifier=[system|]MRN
    answers 200 with the patient already enrolled (one the caller may read); an
    Idempotency-Key makes a retry answer the first result. Elements Concord does not keep
    are refused (400 not-supported), never dropped."""
    raw = await request.body()
    key = request.headers.get("Idempotency-Key")

    def submit() -> tuple[dict[str, Any], bool, bool]:
        actor = writer(bearer_actor(request, session))
        try:
            body = json.loads(raw)
        except ValueError:
            raise InvalidInput.field("body", Msg("must be a FHIR Patient in JSON")) from None
        earlier = (
            claim(session, actor, key, request_hash(request.method, request.url.path, raw))
            if key
            else None
        )
        if earlier is not None:
            resource = fhir.read_patient(
                session, by=actor.user, ident=earlier.result or "", mrn=_mrn(request)
            )
            created = False
        else:
            resource, patient, created = fhir_patients.create(
                session,
                by=actor.user,
                body=body,
                mrn_template=_mrn(request),
                if_none_exist=request.headers.get("If-None-Exist"),
            )
            if key:
                remember_result(session, str(patient.id))
        if _validating(request):
            mapping.validate(resource)
        finish_request(request, session)
        return resource, created, earlier is not None

    resource, created, replayed = await run_in_threadpool(submit)
    response = fhir_response(request, resource, status_code=201 if created else 200)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _versioned(response, _base(request), resource)


@router.put("/Patient/{ident}", **_PATIENT_WRITE)
async def update_patient(ident: str, request: Request, session: DbSession) -> Response:
    """Update a patient's demographics (a clinician on the care team). If-Match: W/"n"
    (the ETag of a read) makes it conditional: another version stored is 412, nothing
    changed. The MRN cannot change; an update to a patient that does not exist, or is not
    the caller's, is 404 (no create by PUT)."""
    raw = await request.body()

    def submit() -> dict[str, Any]:
        actor = writer(bearer_actor(request, session))
        try:
            body = json.loads(raw)
        except ValueError:
            raise InvalidInput.field("body", Msg("must be a FHIR Patient in JSON")) from None
        if search.has_control_characters(ident):
            raise NotFound(Msg("No such resource."))
        with fhir.missing():
            resource, _ = fhir_patients.update(
                session,
                by=actor.user,
                ident=ident,
                body=body,
                mrn_template=_mrn(request),
                if_match=request.headers.get("If-Match"),
            )
        if _validating(request):
            mapping.validate(resource)
        finish_request(request, session)
        return resource

    resource = await run_in_threadpool(submit)
    return _versioned(fhir_response(request, resource), _base(request), resource)


@router.post("/MedicationRequest", **_MEDICATION_CREATE)
async def create_medication_request(request: Request, session: DbSession) -> Response:
    """Accept a prescription from an EHR (the care team's token); the whole list is checked."""
    return await _create_medication(request, session, "MedicationRequest")


@router.post("/MedicationStatement", **_MEDICATION_CREATE)
async def create_medication_statement(request: Request, session: DbSession) -> Response:
    """Accept what an EHR records the patient takes; the whole list is checked."""
    return await _create_medication(request, session, "MedicationStatement")


@router.get("/Measure/{measure_id}/$evaluate-measure")
def evaluate_measure_get(
    measure_id: str, request: Request, session: DbSession, actor: BearerActor
) -> Response:
    """A MeasureReport of CMS159 or CMS2 (docs/quality-measures.md): periodStart, periodEnd
    (dates), and subject=Patient/[id] (one patient: Concord's id or the EHR's) or
    reportType=population|subject-list (every patient the caller may read: an integration
    client with the quality scope, the organization's; a clinician, their care teams')."""
    pairs = request.query_params.multi_items()
    search.check_accept(request.headers.get("accept"), pairs)
    smart_scope.check_system_wide(session, actor.smart, "MeasureReport")
    report = quality_door.evaluate(
        session, by=actor.user, token=actor.token, measure_id=measure_id, pairs=pairs
    )
    return fhir_response(request, report)


@router.post(
    "/Measure/{measure_id}/$evaluate-measure",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/fhir+json": {"schema": {"type": "object"}}},
        }
    },
)
async def evaluate_measure_post(measure_id: str, request: Request, session: DbSession) -> Response:
    """The same as GET, with the parameters in a Parameters resource (valueDate,
    valueString or valueReference), keeping the patient out of the URL."""
    raw = await request.body()

    def evaluate() -> dict[str, Any]:
        actor = bearer_actor(request, session)
        smart_scope.check_system_wide(session, actor.smart, "MeasureReport")
        try:
            body = json.loads(raw)
        except ValueError:
            raise InvalidInput.field("body", Msg("must be a FHIR Parameters in JSON")) from None
        pairs = quality_door.parameters_pairs(body)
        report = quality_door.evaluate(
            session, by=actor.user, token=actor.token, measure_id=measure_id, pairs=pairs
        )
        if _validating(request):
            mapping.validate(report)
        finish_request(request, session)
        return report

    return fhir_response(request, await run_in_threadpool(evaluate))


@router.get("/Patient/{ident}/$everything")
def patient_everything(
    ident: str, request: Request, session: DbSession, actor: BearerActor
) -> Response:
    """The patient's record in one searchset Bundle: the Patient and their CareTeam,
    CarePlan, Goal, Observation, QuestionnaireResponse, Consent, MedicationRequest,
    MedicationStatement, Flag and Task, each read as its own search reads it (the same
    access, consent and audit). _type narrows the types, _count caps each type (default and
    most: 200; a type cut says so in an OperationOutcome entry)."""
    pairs = request.query_params.multi_items()
    search.check_accept(request.headers.get("accept"), pairs)
    if search.has_control_characters(ident):
        raise NotFound(Msg("No such resource."))
    smart_scope.check(session, actor.smart, "Patient", "r")
    smart_scope.check_resource(session, actor.smart, "Patient", {"id": ident})
    found, issues = everything_door.everything(
        session, by=actor.user, ident=ident, mrn=_mrn(request), pairs=pairs
    )
    if actor.smart is not None:
        # A SMART token's scopes narrow what comes back: only the types it may read.
        found = [r for r in found if actor.smart.scopes.allows(r["resourceType"], "r")]
    shown = search.parse_read([(k, v) for k, v in pairs if k in ("_format", "_pretty")])
    base = _base(request)
    self_url = f"{base}/Patient/{ident}/$everything" + (f"?{urlencode(pairs)}" if pairs else "")
    pretty = shown.pretty
    return fhir_response(
        request,
        mapping.bundle(found, base, self_url, None, len(found), issues=issues),
        pretty=pretty,
    )


@router.get("/{kind}/{ident}/_history")
def history(
    kind: str, ident: str, request: Request, session: DbSession, actor: BearerActor
) -> Response:
    """Every version of a care plan, newest first (the care team's, as the plan's history
    page): the current one with its resource, each earlier one by version, time and ETag;
    their Provenance (who, when, why) by _revinclude=Provenance:target or
    Provenance/[id]-r[n]. The other types keep no earlier versions: refused, not faked."""
    _kind(kind, READABLE)
    smart_scope.check(session, actor.smart, kind, "r")
    if kind != "CarePlan":
        raise NotSupported.field(
            "_history",
            Msg("%(kind)s keeps no earlier versions here; CarePlan/[id]/_history does", kind=kind),
        )
    pairs = request.query_params.multi_items()
    search.check_accept(request.headers.get("accept"), pairs)
    query = search.parse_read(pairs)
    if query.summary or query.elements:
        raise NotSupported.field("_history", Msg("_summary and _elements are not offered here"))
    bundle = fhir.plan_history(session, by=actor.user, ident=ident, base=_base(request))
    for entry in bundle.get("entry") or []:
        if "resource" in entry:
            smart_scope.check_resource(session, actor.smart, kind, entry["resource"])
    return fhir_response(request, bundle, pretty=query.pretty)


@router.get("/{kind}/{ident}/_history/{version}")
def vread(
    kind: str,
    ident: str,
    version: str,
    request: Request,
    session: DbSession,
    actor: BearerActor,
) -> Response:
    """The version a Patient, CarePlan or Goal is at now, by its versionId (ETag)."""
    _kind(kind, READABLE)
    pairs = request.query_params.multi_items()
    search.check_accept(request.headers.get("accept"), pairs)
    query = search.parse_read(pairs)
    if query.elements is not None:
        search.check_elements(kind, query.elements)
    if search.has_control_characters(ident) or search.has_control_characters(version):
        raise NotFound(Msg("No such resource."))
    smart_scope.check(session, actor.smart, kind, "r")
    resource = fhir.read_version(
        session, by=actor.user, kind=kind, ident=ident, version=version, mrn=_mrn(request)
    )
    smart_scope.check_resource(session, actor.smart, kind, resource)
    response = fhir_response(request, search.shape(resource, query), pretty=query.pretty)
    response.headers["ETag"] = f'W/"{version}"'
    return response


@router.get("/{kind}/{ident}")
def read(
    kind: str, ident: str, request: Request, session: DbSession, actor: BearerActor
) -> Response:
    _kind(kind, READABLE)
    pairs = request.query_params.multi_items()
    search.check_accept(request.headers.get("accept"), pairs)
    query = search.parse_read(pairs)
    if query.elements is not None:
        search.check_elements(kind, query.elements)
    if search.has_control_characters(ident):
        # No resource has such an id, and PostgreSQL cannot store one in the audit trail.
        raise NotFound(Msg("No such resource."))
    smart_scope.check(session, actor.smart, kind, "r")
    resource = _read(kind, ident, session, actor, request)
    smart_scope.check_resource(session, actor.smart, kind, resource)
    response = fhir_response(request, search.shape(resource, query), pretty=query.pretty)
    version = (resource.get("meta") or {}).get("versionId")
    if version:
        response.headers["ETag"] = f'W/"{version}"'
    return response


def _read(
    kind: str, ident: str, session: DbSession, actor: BearerActor, request: Request
) -> dict[str, Any]:
    if kind == "Questionnaire":
        return fhir.read_questionnaire(ident)
    if kind == "Measure":
        return quality_door.read_measure(ident)
    if kind == "QuestionnaireResponse":
        return fhir.read_questionnaire_response(session, by=actor.user, ident=ident)
    if kind == "Observation" and not actor.user.is_client:
        return fhir.read_observation(session, by=actor.user, ident=ident)
    if social_door.is_social(kind, ident):
        return social_door.read(session, by=actor.user, kind=kind, ident=ident)
    if moud_door.is_moud(kind, ident):
        return moud_door.read(session, by=actor.user, ident=ident)
    if kind == "Task":
        return read_task(session, by=actor.user, ident=ident)
    if kind == "Flag":
        return read_flag(session, by=actor.user, ident=ident)
    if kind == "Consent":
        return read_consent(session, by=actor.user, ident=ident)
    if kind == "Communication":
        return fhir_messages.read_communication(
            session, by=actor.user, ident=ident, base_url=_site(request)
        )
    if kind == "Provenance":
        target = fhir_provenance.target_of(ident)
        if target is None:
            return fhir.read_provenance(session, by=actor.user, ident=ident)
        # Its target read first, through the same door, scopes and access decision (and
        # audited): a Provenance says no more than its target's reader may know.
        smart_scope.check(session, actor.smart, target[0], "r")
        about = _read(target[0], target[1], session, actor, request)
        smart_scope.check_resource(session, actor.smart, target[0], about)
        for made in fhir_provenance.latest(session, [about]):
            return made
        raise NotFound(Msg("No such resource."))
    if kind == "Appointment":
        return read_appointment(session, by=actor.user, ident=ident)
    if kind in fhir_meds.KINDS:
        return fhir_meds.read_medication(session, by=actor.user, kind=kind, ident=ident)
    if kind in ehr_door.IMPORTED_TYPES or kind == "Observation":
        return ehr_door.read_imported(
            session, by=actor.user, token=actor.token, kind=kind, ident=ident
        )
    return fhir.read_resource(session, by=actor.user, kind=kind, ident=ident, mrn=_mrn(request))

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
from concord.errors import InvalidInput, NotFound, NotSupported
from concord.fhir import ehr as ehr_door
from concord.fhir import mapping, search
from concord.fhir import medications as fhir_meds
from concord.fhir import quality as quality_door
from concord.fhir import service as fhir
from concord.fhir.appointments import read_appointment, search_appointments
from concord.fhir.consents import read_consent, search_consents
from concord.fhir.safety import read_flag, read_task
from concord.i18n import Msg
from concord.web.deps import (
    BearerActor,
    DbSession,
    Form,
    bearer_actor,
    finish_request,
    writer,
)
from concord.web.errors import OPERATION_OUTCOME_BODY as _OPERATION_OUTCOME
from concord.web.idempotency import claim, request_hash

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
    return fhir_response(request, search.shape(statement, query), pretty=query.pretty)


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
    base = _base(request)
    search.check_accept(request.headers.get("accept"), pairs)
    if kind in ehr_door.IMPORTED_TYPES:
        found = ehr_door.search_imported(
            session, by=actor.user, token=actor.token, kind=kind, pairs=pairs
        )
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
    # Checking the Bundle checks each entry's resource too.
    return fhir_response(
        request,
        mapping.bundle(entries, base, self_url, next_url, page.total),
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
    },
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
    issues: list[dict[str, Any]] = []

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
            issues=issues,
        )
        # The answer is checked before the commit: an answer that cannot be sent must leave
        # nothing behind (a response dated year 0001 was stored, then answered with a 500).
        if _validating(request):
            mapping.validate(resource)
        finish_request(request, session)
        return resource, outcome

    resource, outcome = await run_in_threadpool(submit)
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
        resource, outcome, findings = fhir_meds.create_medication(
            session, by=actor.user, kind=kind, body=body
        )
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
    resource = _read(kind, ident, session, actor, request)
    return fhir_response(request, search.shape(resource, query), pretty=query.pretty)


def _read(
    kind: str, ident: str, session: DbSession, actor: BearerActor, request: Request
) -> dict[str, Any]:
    if kind == "Questionnaire":
        return fhir.read_questionnaire(ident)
    if kind == "Measure":
        return quality_door.read_measure(ident)
    if kind == "QuestionnaireResponse":
        return fhir.read_questionnaire_response(session, by=actor.user, ident=ident)
    if kind == "Observation":
        return fhir.read_observation(session, by=actor.user, ident=ident)
    if kind == "Task":
        return read_task(session, by=actor.user, ident=ident)
    if kind == "Flag":
        return read_flag(session, by=actor.user, ident=ident)
    if kind == "Consent":
        return read_consent(session, by=actor.user, ident=ident)
    if kind == "Appointment":
        return read_appointment(session, by=actor.user, ident=ident)
    if kind in fhir_meds.KINDS:
        return fhir_meds.read_medication(session, by=actor.user, kind=kind, ident=ident)
    if kind in ehr_door.IMPORTED_TYPES:
        return ehr_door.read_imported(
            session, by=actor.user, token=actor.token, kind=kind, ident=ident
        )
    return fhir.read_resource(session, by=actor.user, kind=kind, ident=ident, mrn=_mrn(request))

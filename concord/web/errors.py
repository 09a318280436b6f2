"""One handler renders every error for whoever asked: an HTML page, an HTMX fragment, JSON for
/api, or a FHIR OperationOutcome for /fhir."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response

from concord.errors import ConcordError, InvalidInput, NotAuthenticated
from concord.i18n import Msg, translate
from concord.validation import errors_from_fastapi
from concord.web.deps import Redirect, db
from concord.web.templating import render

log = logging.getLogger("concord")


class BodyTooLarge(StarletteHTTPException):
    """413, raised by concord.web.limits as a body arrives (defined here, below the middleware
    that raises it, so the two do not import each other). An HTTPException, so FastAPI's own
    body reader passes it on instead of turning it into "error parsing the body" (400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail="Content Too Large")
        self.limit = limit

    @property
    def message(self) -> Msg:
        return Msg(
            "The request is too large. At most %(limit)s bytes are accepted.", limit=self.limit
        )

    @property
    def fields(self) -> dict[str, str]:
        return {"body": Msg("must be at most %(limit)s bytes", limit=self.limit)}


FHIR_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    412: "conflict",
    413: "too-long",
    422: "invalid",
    429: "throttled",
    503: "transient",
    500: "exception",
}


class FieldProblem(BaseModel):
    field: str = Field(description="The field, as sent (a dotted path for nested input)")
    problem: str = Field(description="What is wrong with it and what is allowed")


class ApiError(BaseModel):
    """Every /api error's body (error_response below)."""

    model_config = ConfigDict(extra="allow")  # a 409 may say more, e.g. the current version

    error: str = Field(
        description="invalid, not_found, conflict, not_authenticated, forbidden, "
        "too_many_attempts, unavailable or error",
        examples=["invalid"],
    )
    detail: str = Field(examples=["Some fields need attention."])
    fields: list[FieldProblem] | None = Field(
        None, description="With 422: each field that needs attention"
    )


# Declared on every /api/v1 route (app.py), so the OpenAPI document shows the bodies a client
# really gets, not FastAPI's default 422.
API_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ApiError, "description": "The request could not be read"},
    401: {"model": ApiError, "description": "No token, or a token that is not valid"},
    404: {
        "model": ApiError,
        "description": "Not found, or outside what the caller may see (never 403)",
    },
    409: {
        "model": ApiError,
        "description": "A stale version, or a change that conflicts with the record",
    },
    422: {"model": ApiError, "description": "Bad input: each field named with what is allowed"},
}


_OPERATION_OUTCOME = {
    "application/fhir+json": {
        "schema": {
            "type": "object",
            "description": "A FHIR R4 OperationOutcome: one issue per problem, each with "
            "severity, code (invalid, not-found, conflict, not-supported...), diagnostics and, "
            "for a field, its expression",
            "required": ["resourceType", "issue"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
                "issue": {"type": "array", "items": {"type": "object"}},
            },
        }
    }
}
# Declared on every /fhir route: FHIR errors are OperationOutcomes.
FHIR_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": _OPERATION_OUTCOME}
    for status, description in (
        (400, "A search or read Concord does not support, or cannot read"),
        (401, "No token, or a token that is not valid"),
        (404, "Not found, or outside what the caller may see"),
        (409, "A conflict with what is stored"),
        (422, "A resource that is not valid"),
    )
}


# Answers a route gives beyond its router's common ones (API_ERRORS, FHIR_ERRORS), by what it
# takes: every request that carries a body can be too large (413, the body limit, checked
# while it streams) or be a change the caller may not make (403: a read-only token, a family
# member's change to a plan they can only read); any request using the database can find it
# busy (503); a FHIR read or search can ask for a format Concord does not offer (406).
_EXTRA_ANSWERS = {
    403: "A change the caller may not make: a read-only token, or a record they can only read",
    406: "A format (_format, Accept) Concord does not offer",
    413: "The request body is larger than the limit (CONCORD_MAX_BODY_BYTES)",
    503: "The system is busy: try again in a moment",
}


OPERATION_OUTCOME_BODY = _OPERATION_OUTCOME


def _uses_database(dependant: Any) -> bool:
    return any(d.call is db or _uses_database(d) for d in dependant.dependencies)


def declare_answers(app: Any) -> None:
    """Add to each /api/v1 and /fhir route of the OpenAPI document the answers it really gives
    besides its router's common ones, so a route added tomorrow is described the same way."""
    from fastapi.routing import APIRoute

    routes = []
    for entry in app.routes:
        # An included router keeps its own routes (FastAPI 0.165: _IncludedRouter).
        included = getattr(entry, "original_router", None)
        routes += list(included.routes) if included is not None else [entry]
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        if route.path.startswith("/api/v1"):
            declare = lambda d: {"model": ApiError, "description": d}  # noqa: E731
        elif route.path.startswith("/fhir"):
            declare = lambda d: {"description": d, "content": _OPERATION_OUTCOME}  # noqa: E731
        else:
            continue
        statuses = [503] if _uses_database(route.dependant) else []
        if route.methods & {"POST", "PUT", "PATCH"}:
            statuses += [403, 413]
        if route.path.startswith("/fhir") and "GET" in route.methods:
            statuses.append(406)
        for status in statuses:
            route.responses.setdefault(status, declare(_EXTRA_ANSWERS[status]))


def operation_outcome(
    status: int,
    message: str,
    fields: dict[str, str] | None = None,
    issue_code: str | None = None,
) -> dict[str, Any]:
    issues = []
    if fields:
        for name, problem in fields.items():
            issues.append(
                {
                    "severity": "error",
                    "code": issue_code or FHIR_ISSUE_CODES.get(status, "processing"),
                    "diagnostics": f"{name}: {problem}",
                    "expression": [name],
                }
            )
    else:
        issues.append(
            {
                "severity": "error",
                "code": issue_code or FHIR_ISSUE_CODES.get(status, "processing"),
                "diagnostics": message,
            }
        )
    return {"resourceType": "OperationOutcome", "issue": issues}


def _lang(request: Request) -> str:
    return getattr(request.state, "lang", "en")


def error_response(
    request: Request,
    status: int,
    message: str,
    fields: dict[str, str] | None = None,
    data: dict[str, Any] | None = None,
    code: str = "error",
    headers: dict[str, str] | None = None,
) -> Response:
    path = request.url.path
    headers = dict(headers or {})
    if path.startswith("/cds-services"):
        # CDS Hooks: JSON as /api, and a request that cannot be read is a 400 (the spec's
        # "malformed request"), the field named.
        path, status = "/api", 400 if status == 422 else status
    if status == 401 and (path.startswith("/api") or path.startswith("/fhir")):
        headers["WWW-Authenticate"] = 'Bearer realm="concord"'
    if path.startswith("/fhir"):
        return JSONResponse(
            operation_outcome(
                status,
                str(message),
                fields,
                "not-supported" if code == "not_supported" else None,
            ),
            status_code=status,
            media_type="application/fhir+json",
            headers=headers,
        )
    if path.startswith("/api"):
        body: dict[str, Any] = {"error": code, "detail": str(message)}
        if fields:
            body["fields"] = [{"field": k, "problem": str(v)} for k, v in fields.items()]
        if data:
            body.update(data)
        return JSONResponse(body, status_code=status, headers=headers)
    lang = _lang(request)
    context = {
        "status": status,
        "message": translate(message, lang),
        "fields": {k: translate(v, lang) for k, v in (fields or {}).items()},
    }
    return render(
        request, "error.html", context, status_code=status, block="error_box", headers=headers
    )


def redirect_response(request: Request, url: str) -> Response:
    if request.headers.get("HX-Request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def install(app: FastAPI) -> None:
    @app.exception_handler(Redirect)
    async def _redirect(request: Request, exc: Redirect) -> Response:
        return redirect_response(request, exc.url)

    @app.exception_handler(ConcordError)
    async def _concord(request: Request, exc: ConcordError) -> Response:
        if isinstance(exc, NotAuthenticated) and not (
            request.url.path.startswith(("/api", "/fhir", "/cds-services"))
        ):
            return await _redirect(request, Redirect("/sign-in"))
        fields = exc.errors if isinstance(exc, InvalidInput) else None
        return error_response(
            request, exc.status_code, exc.message, fields, data=exc.data or None, code=exc.code
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        fields = errors_from_fastapi(exc.errors())
        return error_response(
            request, 422, Msg("Some fields need attention."), fields, code="invalid"
        )

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> Response:
        response = error_response(request, 413, exc.message, exc.fields, code="too_large")
        # The rest of the body is left unread: the connection cannot carry another request.
        response.headers["Connection"] = "close"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_response(
                request, 404, Msg("There is no page at this address."), code="not_found"
            )
        if exc.status_code == 405:
            # RFC 9110: a 405 names the methods the address does allow.
            return error_response(
                request,
                405,
                Msg("That action is not available here."),
                code="method_not_allowed",
                headers=dict(exc.headers or {}),
            )
        return error_response(request, exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Log the type and where, never the request's data: it may hold patient information.
        log.error(
            "unexpected error on %s %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
            exc_info=exc,
        )
        return error_response(
            request,
            500,
            Msg(
                "Something went wrong on our side. Nothing was "
                "saved. Please try again; if it keeps happening, "
                "tell your administrator."
            ),
        )

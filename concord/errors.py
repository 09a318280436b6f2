"""The few errors a service raises. One handler (concord.web.errors) renders each as an HTML
page, an HTMX fragment, JSON for /api, or a FHIR OperationOutcome for /fhir.

    ConcordError                 500  a bug if it escapes as itself
     +-- InvalidInput            422  malformed input; names the field(s)
     |    +-- NotSupported        400  a request understood but not offered (FHIR: not-supported)
     |    +-- NotAcceptable       406  a format not offered (FHIR _format)
     +-- NotFound                404  missing, or outside the actor's scope (existence never leaks)
     +-- Conflict                409  stale version, duplicate, wrong state
     |    +-- StaleVersion       409  the version quoted is not the stored one (FHIR's
     |                                If-Match answers it as PreconditionFailed, 412)
     +-- PreconditionFailed      412  a FHIR If-Match that names another version
     +-- PermissionDenied        403  only where existence is already known (e.g. a patient
     |                                trying a clinician-only action on their own plan)
     +-- NotAuthenticated        401  no valid session or token
     +-- TooManyAttempts         429  sign-in throttled
     +-- Unavailable             503  database busy or a query over its time limit
"""

from __future__ import annotations

from typing import Any


class ConcordError(Exception):
    status_code = 500
    code = "error"

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.message, **self.data}


class InvalidInput(ConcordError):
    status_code = 422
    code = "invalid"

    def __init__(self, message: str, *, errors: dict[str, str] | None = None) -> None:
        """errors maps a field name to what is wrong with it and what is allowed."""
        super().__init__(message)
        self.errors = errors or {}

    @classmethod
    def field(cls, name: str, problem: str) -> InvalidInput:
        return cls(f"{name}: {problem}", errors={name: problem})

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.code,
            "detail": self.message,
            "fields": [{"field": k, "problem": v} for k, v in self.errors.items()],
        }


class NotSupported(InvalidInput):
    """A question Concord understands but does not answer (a FHIR search parameter, modifier
    or option it does not offer): refused, never ignored, so no one gets a different answer."""

    status_code = 400
    code = "not_supported"


class NotAcceptable(InvalidInput):
    status_code = 406
    code = "not_supported"


class NotFound(ConcordError):
    status_code = 404
    code = "not_found"


class Conflict(ConcordError):
    status_code = 409
    code = "conflict"


class PermissionDenied(ConcordError):
    status_code = 403
    code = "forbidden"


class NotAuthenticated(ConcordError):
    status_code = 401
    code = "not_authenticated"


class TooManyAttempts(ConcordError):
    status_code = 429
    code = "too_many_attempts"


class Unavailable(ConcordError):
    status_code = 503
    code = "unavailable"


class StaleVersion(Conflict):
    """The version an edit quoted is not the stored one; `version` in the data is."""


class PreconditionFailed(ConcordError):
    status_code = 412
    code = "precondition_failed"

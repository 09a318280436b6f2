"""What a request may send before Concord takes it in: a body of at most
CONCORD_MAX_BODY_BYTES, and, for a write to /api or /fhir, valid credentials before any of the
body is read (issue 16, item 5: unauthenticated 300 MB posts grew the server to 1.8 GB).

A plain ASGI middleware, like concord.web.headers. A body announced larger than the limit
(Content-Length) is refused at once, unread; a body sent in chunks is counted as it arrives and
refused as soon as it passes the limit, by an error the app's handler answers in the door's
format (HTML, `{error, detail, fields}` for /api, an OperationOutcome for /fhir).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from concord.errors import ConcordError
from concord.i18n import Msg


class BodyTooLarge(HTTPException):
    """413. An HTTPException, so FastAPI's own body reader passes it on instead of turning it
    into "error parsing the body" (400)."""

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


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from concord.web.deps import WRITE_METHODS, check_credentials_first

        limit = self.max_bytes
        length = _content_length(scope)
        if length is not None and length > limit:
            await self._answer(scope, receive, send, BodyTooLarge(limit))
            return
        path: str = scope["path"]
        if scope["method"] in WRITE_METHODS and (
            path.startswith("/api/") or path.startswith("/fhir/")
        ):
            try:
                await check_credentials_first(Request(scope, receive))
            except ConcordError as exc:
                await self._answer(scope, receive, send, exc)
                return

        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, exc: BodyTooLarge | ConcordError
    ) -> None:
        """Answer here, before the app: in the door's format, and closing the connection when
        the body is left unread."""
        from concord.errors import InvalidInput
        from concord.web.errors import error_response

        request = Request(scope, receive)
        if isinstance(exc, BodyTooLarge):
            response = error_response(request, 413, exc.message, exc.fields, code="too_large")
        else:
            fields = exc.errors if isinstance(exc, InvalidInput) else None
            response = error_response(
                request, exc.status_code, exc.message, fields, data=exc.data or None, code=exc.code
            )
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

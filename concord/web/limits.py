"""What a request may send before Concord takes it in (issue 16, item 5: unauthenticated 300 MB
posts grew the server to 1.8 GB; deep JSON was a 500; a NUL reached the database).
docs/adr/0015-what-a-request-may-send-checked-before-its-body.md.

A plain ASGI middleware, like concord.web.headers, in front of every door:
- a control character in the address: 404 in the path, 422 naming a query parameter;
- a body announced larger than CONCORD_MAX_BODY_BYTES (Content-Length) is refused at once,
  unread; a body sent in chunks is counted as it arrives and refused as soon as it passes the
  limit (413);
- for a write, the sender before the body: the token (or browser session and CSRF header) on
  /api and /fhir, the session on pages, the CSRF cookie on the sign-in form;
- a JSON body on /api or /fhir is read here whole and checked for what no schema should have
  to meet (nesting, list lengths, text lengths and control characters:
  concord.validation.json_problems), each problem named by its field or FHIR path.
Every refusal is in the door's format (HTML, `{error, detail, fields}` for /api, an
OperationOutcome for /fhir).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from concord.errors import ConcordError, InvalidInput, NotFound
from concord.fhir.limits import column_limits
from concord.i18n import Msg
from concord.validation import CONTROL_CHARACTERS, json_problems, text_problem
from concord.web.deps import (
    WRITE_METHODS,
    Redirect,
    check_credentials_first,
    check_session_first,
)
from concord.web.errors import BodyTooLarge, error_response, redirect_response


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


# A control character can reach the address only percent-encoded (%00-%1F, %7F).
_ENCODED_CONTROL = re.compile(rb"%(?:[01][0-9a-fA-F]|7[fF])")


def _address_problems(scope: Scope) -> ConcordError | None:
    """A control character in the path or a query parameter: NUL cannot even be compared with
    a PostgreSQL text column (a search for one was a 500). Tab and line breaks are let through
    as in any text."""
    path: str = scope["path"]
    if CONTROL_CHARACTERS.search(path):
        return NotFound(Msg("There is no page at this address."))
    query: bytes = scope.get("query_string", b"")
    if not _ENCODED_CONTROL.search(query):
        return None
    problems: dict[str, str] = {}
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, errors="replace")
    for name, value in pairs:
        problem = text_problem(name) or text_problem(value)
        if problem is not None:
            problems[CONTROL_CHARACTERS.sub("?", name)[:100] or "query"] = problem
    if not problems:
        return None
    return InvalidInput(Msg("Some fields need attention."), errors=problems)


_FORMS = (b"application/x-www-form-urlencoded", b"multipart/form-data")


def _is_json(scope: Scope) -> bool:
    """A body /api or /fhir reads as JSON: anything but a form there (FastAPI reads a body with
    no content type as JSON; the FHIR create reads any body as JSON)."""
    path: str = scope["path"]
    if not (path.startswith("/api/") or path.startswith("/fhir/") or path == "/fhir"):
        return False
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return not value.lower().startswith(_FORMS)
    return True


async def _json_problems(body: bytes, fhir: bool) -> dict[str, str] | None:
    limits = column_limits() if fhir else None
    if len(body) < 65536:  # the usual case: quicker here than a hand-off to a thread
        return json_problems(body, fhir=fhir, max_lengths=limits)
    return await anyio.to_thread.run_sync(
        lambda: json_problems(body, fhir=fhir, max_lengths=limits)
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, handed to the app as if it were arriving now."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class RequestLimits:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = _address_problems(scope)
        if refused is not None:
            await self._answer(scope, receive, send, refused)
            return
        limit = self.max_bytes
        length = _content_length(scope)
        if length is not None and length > limit:
            await self._answer(scope, receive, send, BodyTooLarge(limit))
            return
        path: str = scope["path"]
        if scope["method"] in WRITE_METHODS and not path.startswith("/static/"):
            program = path.startswith("/api/") or path.startswith("/fhir/") or path == "/fhir"
            request = Request(scope, receive)
            try:
                if program:
                    await check_credentials_first(request)
                else:
                    await check_session_first(request)
            except Redirect as exc:
                response = redirect_response(request, exc.url)
                response.headers["Connection"] = "close"  # the body is left unread
                await response(scope, receive, send)
                return
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

        if scope["method"] in WRITE_METHODS and _is_json(scope):
            buffer = bytearray()
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                buffer += message.get("body", b"")
                more = message.get("more_body", False)
                if len(buffer) > limit:
                    await self._answer(scope, receive, send, BodyTooLarge(limit))
                    return
            body = bytes(buffer)
            problems = await _json_problems(body, path.startswith("/fhir"))
            if problems:
                await self._answer(
                    scope,
                    receive,
                    send,
                    InvalidInput(Msg("The request body cannot be accepted."), errors=problems),
                )
                return
            await self.app(scope, _replay(body, receive), send)
            return

        await self.app(scope, counted, send)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, exc: BodyTooLarge | ConcordError
    ) -> None:
        """Answer here, before the app: in the door's format, and closing the connection when
        the body is left unread."""
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

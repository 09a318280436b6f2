"""Security headers on every answer, as a plain ASGI middleware (Starlette's BaseHTTPMiddleware
runs each request through an extra task and memory stream; this only edits the start message)."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from concord.disclosures.notice import notice_text
from concord.web.deps import ANON_CSRF_COOKIE

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'"
)


# The headers every answer carries, as raw pairs built once: a request adds them with one list
# operation instead of a header-by-header search of the answer's headers.
_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
_CSP = [(b"content-security-policy", CSP.encode())]
_HSTS = [(b"strict-transport-security", b"max-age=31536000; includeSubDomains")]
# 42 CFR 2.32(a): an answer that disclosed Part 2 records outside the program carries the
# notice, whatever the door (the JSON API above all: its bodies are lists and objects of many
# shapes, a header is the one place every answer has; ADR 0022). The rule's text is English.
NOTICE_HEADER = b"part2-redisclosure-notice"
_NOTICE = [(NOTICE_HEADER, notice_text("en").encode("ascii"))]


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, secure_cookies: bool) -> None:
        self.app = app
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self.add(
                    list(message.get("headers", [])), path, scope.get("state") or {}
                )
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def add(
        self, headers: list[tuple[bytes, bytes]], path: str, state: dict[str, Any]
    ) -> list[tuple[bytes, bytes]]:
        ours = list(_COMMON)
        if path.startswith("/static/"):
            if not any(name.lower() == b"cache-control" for name, _ in headers):
                ours.append((b"cache-control", b"public, max-age=3600"))
        else:
            # Pages and API answers may hold patient data: never keep them in a cache.
            ours += _NO_STORE
        if not path.startswith("/api/docs"):
            ours += _CSP
        if self.secure_cookies:
            ours += _HSTS
        # Ours replace any the endpoint set.
        replaced = {name for name, _ in ours}
        kept = [(n, v) for n, v in headers if n.lower() not in replaced]
        if state.get("part2_notice"):
            kept += _NOTICE
            # § 2.32(b): the consent each disclosure was made under, to read (its JSON holds
            # the plain summary and every element).
            for consent in state.get("part2_consents") or []:
                link = f"</api/v1/patients/{consent.patient_id}/consents/{consent.id}>"
                kept.append((b"link", f'{link}; rel="describedby"; title="consent"'.encode()))
        anon = state.get("set_anon_csrf")
        if anon:
            cookie: SimpleCookie = SimpleCookie()
            cookie[ANON_CSRF_COOKIE] = anon
            morsel = cookie[ANON_CSRF_COOKIE]
            morsel["httponly"] = True
            morsel["samesite"] = "lax"
            morsel["path"] = "/"
            if self.secure_cookies:
                morsel["secure"] = True
            kept.append((b"set-cookie", morsel.OutputString().encode("latin-1")))
        return kept + ours

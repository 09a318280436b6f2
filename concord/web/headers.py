"""Security headers on every answer, as a plain ASGI middleware (Starlette's BaseHTTPMiddleware
runs each request through an extra task and memory stream; this only edits the start message)."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'"
)


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
                self.add(MutableHeaders(scope=message), path, scope.get("state") or {})
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def add(self, headers: MutableHeaders, path: str, state: dict[str, Any]) -> None:
        if path.startswith("/static/"):
            headers.setdefault("Cache-Control", "public, max-age=3600")
        else:
            # Pages and API answers may hold patient data: never keep them in a cache.
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
        if not path.startswith("/api/docs"):
            headers["Content-Security-Policy"] = CSP
        if self.secure_cookies:
            headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        anon = state.get("set_anon_csrf")
        if anon:
            from concord.web.deps import ANON_CSRF_COOKIE

            cookie: SimpleCookie = SimpleCookie()
            cookie[ANON_CSRF_COOKIE] = anon
            morsel = cookie[ANON_CSRF_COOKIE]
            morsel["httponly"] = True
            morsel["samesite"] = "lax"
            morsel["path"] = "/"
            if self.secure_cookies:
                morsel["secure"] = True
            headers.append("set-cookie", morsel.OutputString())

"""Security headers on every answer, as a plain ASGI middleware (Starlette's BaseHTTPMiddleware
runs each request through an extra task and memory stream; this only edits the start message)."""

from __future__ import annotations

from collections.abc import Callable
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


# Where a registered browser app may call from another origin (SMART App Launch): the FHIR API,
# the token endpoint and discovery, nothing else.
CORS_PATHS = ("/fhir", "/oauth2/token", "/.well-known/smart-configuration")
CORS_PREFLIGHT = [
    (b"access-control-allow-methods", b"GET, POST, PUT, OPTIONS"),
    (
        b"access-control-allow-headers",
        b"Authorization, Content-Type, Accept, Prefer, If-None-Exist, If-Match, "
        b"X-Purpose-Of-Use, Idempotency-Key",
    ),
    (b"access-control-max-age", b"600"),
]
CORS_EXPOSE = (b"access-control-expose-headers", b"Location, ETag, Content-Location")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


class SecurityHeaders:
    def __init__(
        self,
        app: ASGIApp,
        *,
        secure_cookies: bool,
        origins: Callable[[], frozenset[str]] | None = None,
    ) -> None:
        self.app = app
        self.secure_cookies = secure_cookies
        # The origins of registered SMART apps and EHRs (concord.smart): CORS on CORS_PATHS,
        # and frame-ancestors for an EHR that opens Concord inside its own page.
        self.origins = origins or (lambda: frozenset())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        registered = self.origins()
        origin = _header(scope, b"origin")
        cors = origin is not None and origin.lower() in registered and path.startswith(CORS_PATHS)
        if (
            cors
            and scope["method"] == "OPTIONS"
            and _header(scope, b"access-control-request-method")
        ):
            headers = [
                (b"access-control-allow-origin", origin.encode("latin-1")),  # type: ignore[union-attr]
                (b"vary", b"Origin"),
                *CORS_PREFLIGHT,
            ]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = self.add(list(message.get("headers", [])), path, scope.get("state") or {})
                if registered and not path.startswith("/static/"):
                    headers = _framed_by(headers, registered)
                if cors:
                    headers += [
                        (b"access-control-allow-origin", origin.encode("latin-1")),  # type: ignore[union-attr]
                        (b"vary", b"Origin"),
                        CORS_EXPOSE,
                    ]
                message["headers"] = headers
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
            target = state.get("form_action")
            if target:
                # A SMART consent page: its form's answer redirects to the registered app.
                policy = CSP.replace("form-action 'self'", f"form-action 'self' {target}")
                ours.append((b"content-security-policy", policy.encode("latin-1")))
            else:
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


def _framed_by(
    headers: list[tuple[bytes, bytes]], origins: frozenset[str]
) -> list[tuple[bytes, bytes]]:
    """Registered EHRs may show Concord inside their page (a SMART EHR launch): CSP's
    frame-ancestors names them, and X-Frame-Options (which cannot name several) goes."""
    allowed = " ".join(["'self'", *sorted(origins)]).encode("latin-1")
    out = []
    for name, value in headers:
        if name == b"x-frame-options":
            continue
        if name == b"content-security-policy":
            value = value.replace(b"frame-ancestors 'none'", b"frame-ancestors " + allowed)
        out.append((name, value))
    return out

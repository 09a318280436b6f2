"""Single sign-on for staff with the clinic's OpenID Connect provider (docs/sso.md).

Authorization code flow with PKCE (S256), `state` and `nonce`; the provider's endpoints and
keys come from its discovery document. The ID token is checked with joserfc (signature against
the provider's JWKS, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`), never by hand. The person is
matched to an existing Concord account by a claim (email by default, or one named in
CONCORD_OIDC_MATCH_CLAIM matched against the account's email); their role stays the one
granted in Concord, and no account is made from a sign-in. Only staff sign in this way.

The pending sign-in (state, nonce, PKCE verifier, where to go next) is kept in a short-lived
HttpOnly cookie signed with the installation's secret key, so it is bound to the browser
that started it and nothing is stored before the person comes back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from concord.accounts.models import Role, User
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.i18n import Msg
from concord.settings import Settings

PENDING_COOKIE = "concord_sso"
PENDING_SECONDS = 600
# Asymmetric algorithms only: a shared-secret (HS256) ID token would be signed with the
# client secret, which Concord does not accept for identity.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
STAFF_EXCLUDED = {Role.patient, Role.related_person, Role.client}
DISCOVERY_SECONDS = 3600


class SsoError(Exception):
    """A sign-in that cannot go on; `message` is for the person, `reason` for the trail."""

    def __init__(self, message: Msg, reason: str) -> None:
        super().__init__(reason)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


def configured(settings: Settings) -> bool:
    return bool(settings.oidc_issuer and settings.oidc_client_id)


_cache: dict[str, tuple[float, Provider]] = {}
_lock = threading.Lock()


def _http(settings: Settings) -> httpx.Client:
    return httpx.Client(timeout=10.0, follow_redirects=False)


def provider(settings: Settings) -> Provider:
    """The provider's endpoints, from its discovery document (kept for an hour)."""
    issuer = str(settings.oidc_issuer).rstrip("/")
    with _lock:
        cached = _cache.get(issuer)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
    try:
        with _http(settings) as client:
            answer = client.get(issuer + "/.well-known/openid-configuration")
        answer.raise_for_status()
        doc = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SsoError(
            Msg("The sign-in service cannot be reached. Try again, or ask your administrator."),
            f"discovery: {type(exc).__name__}",
        ) from None
    if str(doc.get("issuer", "")).rstrip("/") != issuer:
        # OpenID Connect Discovery 1.0 section 4.3: the issuer must be the one asked.
        raise SsoError(Msg("The sign-in service is misconfigured."), "discovery: issuer mismatch")
    found = Provider(
        issuer=doc["issuer"],
        authorization_endpoint=doc["authorization_endpoint"],
        token_endpoint=doc["token_endpoint"],
        jwks_uri=doc["jwks_uri"],
    )
    with _lock:
        _cache[issuer] = (time.monotonic() + DISCOVERY_SECONDS, found)
    return found


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sign(settings: Settings, payload: bytes) -> str:
    key = hashlib.sha256(("concord-sso|" + settings.effective_secret_key()).encode()).digest()
    return _b64(hmac.new(key, payload, hashlib.sha256).digest())


def redirect_uri(settings: Settings) -> str:
    return settings.base_url.rstrip("/") + "/sign-in/sso/callback"


def begin(settings: Settings, *, next_path: str) -> tuple[str, str]:
    """The provider's authorization URL to send the browser to, and the pending cookie."""
    found = provider(settings)
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    challenge = _b64(hashlib.sha256(verifier.encode()).digest())
    pending = json.dumps(
        {
            "state": state,
            "nonce": nonce,
            "verifier": verifier,
            "next": next_path,
            "until": int(time.time()) + PENDING_SECONDS,
        },
        separators=(",", ":"),
    ).encode()
    cookie = _b64(pending) + "." + _sign(settings, pending)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.oidc_client_id,
            "redirect_uri": redirect_uri(settings),
            "scope": settings.oidc_scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{found.authorization_endpoint}?{query}", cookie


def _pending(settings: Settings, cookie: str | None, state: str | None) -> dict[str, Any]:
    lost = SsoError(
        Msg("That sign-in link has expired or was opened in another browser. Please start again."),
        "state",
    )
    if not cookie or not state or "." not in cookie:
        raise lost
    body, signature = cookie.rsplit(".", 1)
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        data = json.loads(payload)
    except ValueError:
        raise lost from None
    if not hmac.compare_digest(signature, _sign(settings, payload)):
        raise lost
    if not isinstance(data, dict) or data.get("until", 0) < time.time():
        raise lost
    if not hmac.compare_digest(str(data.get("state")), state):
        raise lost
    return data


def _id_token_claims(settings: Settings, found: Provider, id_token: str, nonce: str) -> dict:
    failed = SsoError(Msg("The sign-in service's answer could not be verified."), "id_token")
    try:
        with _http(settings) as client:
            answer = client.get(found.jwks_uri)
        answer.raise_for_status()
        keys = KeySet.import_key_set(answer.json())
        token = jwt.decode(id_token, keys, algorithms=list(ALGORITHMS))
        jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": found.issuer},
            sub={"essential": True},
            nonce={"essential": True, "value": nonce},
            exp={"essential": True},
            iat={"essential": True},
        ).validate(token.claims)
    except (httpx.HTTPError, ValueError, JoseError) as exc:
        failed.reason = f"id_token: {type(exc).__name__}"
        raise failed from None
    claims = dict(token.claims)
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if settings.oidc_client_id not in audiences:
        failed.reason = "id_token: aud"
        raise failed
    # OpenID Connect Core 1.0 section 3.1.3.7: with several audiences, azp names us.
    if len(audiences) > 1 and claims.get("azp") != settings.oidc_client_id:
        failed.reason = "id_token: azp"
        raise failed
    return claims


def _exchange(settings: Settings, found: Provider, code: str, verifier: str) -> str:
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else ""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri(settings),
        "code_verifier": verifier,
        "client_id": str(settings.oidc_client_id),
    }
    auth = (str(settings.oidc_client_id), secret) if secret else None
    try:
        with _http(settings) as client:
            answer = client.post(found.token_endpoint, data=form, auth=auth)
        answer.raise_for_status()
        id_token = answer.json().get("id_token")
    except (httpx.HTTPError, ValueError) as exc:
        raise SsoError(
            Msg("The sign-in service did not accept the sign-in. Please start again."),
            f"token: {type(exc).__name__}",
        ) from None
    if not isinstance(id_token, str):
        raise SsoError(Msg("The sign-in service sent no identity."), "token: no id_token")
    return id_token


def finish(
    session: Session,
    settings: Settings,
    *,
    code: str | None,
    state: str | None,
    error: str | None,
    cookie: str | None,
) -> tuple[User, str]:
    """The Concord account the provider vouched for, and where to go next. Every refusal is
    in the audit trail (the provider's answer itself is not kept)."""
    try:
        data = _pending(settings, cookie, state)
        if error or not code:
            raise SsoError(Msg("The sign-in was cancelled or refused."), "provider error")
        found = provider(settings)
        id_token = _exchange(settings, found, code, data["verifier"])
        claims = _id_token_claims(settings, found, id_token, data["nonce"])
        user = _match(session, settings, claims)
    except SsoError as exc:
        record(
            session,
            by=None,
            action="sign_in",
            object_type="User",
            outcome=Outcome.denied,
            detail={"method": "sso", "reason": exc.reason[:60]},
        )
        raise
    record(
        session,
        by=user,
        action="sign_in",
        object_type="User",
        object_id=user.id,
        detail={"method": "sso"},
    )
    return user, str(data.get("next") or "/")


def _match(session: Session, settings: Settings, claims: dict[str, Any]) -> User:
    claim = settings.oidc_match_claim
    value = claims.get(claim)
    if claim == "email" and claims.get("email_verified") is False:
        # An address the provider has not verified identifies nobody.
        value = None
    if not isinstance(value, str) or not value.strip():
        raise SsoError(
            Msg("The sign-in service did not say who you are (%(claim)s).", claim=claim),
            "no claim",
        )
    user = session.scalar(select(User).where(func.lower(User.email) == value.strip().lower()))
    if user is None or not user.active or Role(user.role) in STAFF_EXCLUDED:
        raise SsoError(
            Msg("There is no active staff account in Concord for you. Ask your administrator."),
            "no account",
        )
    return user


def sso_required_for(user: User) -> bool:
    """Whether this person must sign in with the provider: staff (administrators excepted,
    so an organization keeps a way in when its provider is down) of an organization that
    requires it."""
    return (
        user.organization.sso_required
        and Role(user.role) not in STAFF_EXCLUDED
        and Role(user.role) != Role.admin
    )

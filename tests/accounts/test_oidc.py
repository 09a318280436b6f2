"""The ID token checks of staff single sign-on (concord.accounts.oidc), against a real HTTP
server playing the provider (discovery, JWKS, token endpoint) with tokens signed here by
joserfc: a good token passes; a wrong nonce, audience, issuer, an expired token, another key's
signature or an HS256 token are refused, and the refusal is audited. The whole flow through a
real provider process and a browser is tests/browser/test_sso.py."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from sqlalchemy import select

from concord.accounts import oidc
from concord.audit.models import AuditEvent
from concord.settings import Settings
from tests.conftest import commit

KEY = RSAKey.generate_key(2048, parameters={"kid": "good"})
OTHER = RSAKey.generate_key(2048, parameters={"kid": "good"})  # same kid, another key


class Provider(BaseHTTPRequestHandler):
    issuer = ""
    next_token = ""

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/.well-known/openid-configuration":
            self._json(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": self.issuer + "/auth",
                    "token_endpoint": self.issuer + "/token",
                    "jwks_uri": self.issuer + "/jwks",
                }
            )
        elif self.path == "/jwks":
            self._json({"keys": [KEY.as_dict(private=False)]})
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        assert form["grant_type"] == ["authorization_code"] and form["code_verifier"]
        self._json({"access_token": "x", "token_type": "Bearer", "id_token": Provider.next_token})


@pytest.fixture(scope="module")
def provider_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    Provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Provider.issuer
    server.shutdown()
    server.server_close()


@pytest.fixture
def sso_settings(provider_url, database_url, tmp_path):
    oidc._cache.clear()
    return Settings(
        env="test",
        database_url=database_url,
        instance_dir=tmp_path,
        base_url="http://testserver",
        oidc_issuer=provider_url,
        oidc_client_id="concord",
        oidc_client_secret="secret-0123456789",
    )


def _claims(issuer: str, asked_nonce: str, address: str, **changes: Any) -> dict[str, Any]:
    at = int(time.time())
    claims = {
        "iss": issuer,
        "sub": "u1",
        "aud": "concord",
        "iat": at,
        "exp": at + 300,
        "nonce": asked_nonce,
        "email": address,
        "email_verified": True,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign_in(session, settings, claims_for, key=KEY, alg="RS256"):
    url, cookie = oidc.begin(settings, next_path="/patients")
    query = parse_qs(urlparse(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    claims = claims_for(query["nonce"][0])
    Provider.next_token = jwt.encode({"alg": alg, "kid": "good"}, claims, key)
    return oidc.finish(
        session, settings, code="c", state=query["state"][0], error=None, cookie=cookie
    )


def test_a_good_id_token_signs_the_person_in(session, people, sso_settings):
    email = people.care_manager.email.upper()
    user, target = _sign_in(
        session, sso_settings, lambda n: _claims(sso_settings.oidc_issuer, n, email)
    )
    assert user.id == people.care_manager.id and target == "/patients"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"nonce": "not-the-one"}, "id_token"),
        ({"aud": "someone-else"}, "id_token: aud"),
        ({"aud": ["concord", "other"]}, "id_token: azp"),
        ({"iss": "http://evil.example"}, "id_token"),
        ({"exp": int(time.time()) - 3600}, "id_token"),
        ({"email_verified": False}, "no claim"),
        ({"email": "nobody@nowhere.example"}, "no account"),
    ],
)
def test_a_bad_id_token_is_refused_and_audited(session, people, sso_settings, change, reason):
    email = people.care_manager.email

    def claims(nonce: str) -> dict[str, Any]:
        fixed = {**change}
        return _claims(sso_settings.oidc_issuer, nonce, email, **fixed)

    with pytest.raises(oidc.SsoError) as raised:
        _sign_in(session, sso_settings, claims)
    assert raised.value.reason.startswith(reason)
    commit(session)  # the trail is written at commit
    denied = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "sign_in", AuditEvent.outcome == "denied")
    ).all()
    assert any((e.detail or {}).get("method") == "sso" for e in denied)


@pytest.mark.parametrize("signer", ["other-key", "hs256"])
def test_a_token_not_signed_by_the_provider_is_refused(session, people, sso_settings, signer):
    key, alg = (OTHER, "RS256") if signer == "other-key" else (OctKey.generate_key(256), "HS256")
    email = people.care_manager.email
    with pytest.raises(oidc.SsoError) as raised:
        _sign_in(
            session,
            sso_settings,
            lambda n: _claims(sso_settings.oidc_issuer, n, email),
            key=key,
            alg=alg,
        )
    assert raised.value.reason.startswith("id_token")


def test_a_patient_cannot_sign_in_as_staff(session, people, sso_settings):
    email = people.patient_user.email
    with pytest.raises(oidc.SsoError) as raised:
        _sign_in(session, sso_settings, lambda n: _claims(sso_settings.oidc_issuer, n, email))
    assert raised.value.reason == "no account"


def test_a_tampered_pending_cookie_is_refused(session, sso_settings):
    url, cookie = oidc.begin(sso_settings, next_path="/")
    state = parse_qs(urlparse(url).query)["state"][0]
    body, signature = cookie.rsplit(".", 1)
    with pytest.raises(oidc.SsoError):
        oidc.finish(
            session, sso_settings, code="c", state=state, error=None, cookie=body + ".x" + signature
        )
    with pytest.raises(oidc.SsoError):
        oidc.finish(session, sso_settings, code="c", state="other", error=None, cookie=cookie)

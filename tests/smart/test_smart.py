"""SMART App Launch 2.x (issue 21): the authorization code with PKCE, refresh tokens, backend
services, and scopes that narrow, never widen, what the token's person may see."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import select

from concord.accounts.tokens import create_client_token
from concord.audit.models import AuditEvent
from concord.smart import scopes as sc
from concord.smart import service
from tests.careplans.test_api import bearer
from tests.conftest import commit, csrf_of
from tests.fhir.test_fhir_measures import ehr_response
from tests.fhir.test_fhir_part2 import story  # noqa: F401 (a fixture)

FHIR = {"Accept": "application/fhir+json"}


@pytest.fixture(autouse=True)
def _fresh_origins():
    """The registered origins are cached per process; each test's are rolled back."""
    yield
    service._ORIGINS.forget()


BASE = "http://testserver/fhir"
REDIRECT = "https://app.example/callback"


def _register(
    session,
    people,
    scopes="launch launch/patient openid fhirUser offline_access patient/*.rs user/*.rs",
    **kw,
):
    client, secret = service.register_client(
        session, by=people.admin, name="Mood app", redirect_uris=[REDIRECT], scopes=scopes, **kw
    )
    commit(session)
    return client, secret


def _pkce():
    verifier = base64.urlsafe_b64encode(uuid.uuid4().bytes * 3).rstrip(b"=").decode()
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge


def _params(app, scope, challenge, **extra):
    return {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "s-1",
        "aud": BASE,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def _code(client, app, scope, challenge, patient=None, **extra):
    params = _params(app, scope, challenge, **extra)
    page = client.get("/oauth2/authorize", params=params)
    assert page.status_code == 200, page.text
    form = {**params, "csrf_token": csrf_of(page.text), "decision": "allow"}
    if patient is not None:
        form["patient"] = str(patient)
    answer = client.post("/oauth2/authorize", data=form)
    assert answer.status_code == 303, answer.text
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == ["s-1"]
    return query["code"][0], page


def _token(client, app, code, verifier, redirect=REDIRECT):
    return client.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "code_verifier": verifier,
            "client_id": app.client_id,
        },
    )


def _observations(client, session, people):
    """Two PHQ-9s: the patient's, and the other patient's (their own team)."""
    mine = bearer(session, people.care_manager)
    assert (
        client.post(
            "/fhir/QuestionnaireResponse",
            json=ehr_response(people.patient.id, [1] * 9),
            headers={"Content-Type": "application/fhir+json", **mine},
        ).status_code
        == 201
    )
    theirs = bearer(session, people.outsider)
    assert (
        client.post(
            "/fhir/QuestionnaireResponse",
            json=ehr_response(people.other_patient.id, [2] * 9, identifier="v2"),
            headers={"Content-Type": "application/fhir+json", **theirs},
        ).status_code
        == 201
    )


def test_discovery_advertises_pkce_and_private_key_jwt(client):
    for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
        conf = client.get(path).json()
        assert conf["code_challenge_methods_supported"] == ["S256"]
        assert "private_key_jwt" in conf["token_endpoint_auth_methods_supported"]
        assert {"RS384", "ES384"} <= set(conf["token_endpoint_auth_signing_alg_values_supported"])
        assert conf["authorization_endpoint"] == "http://testserver/oauth2/authorize"
    meta = client.get("/fhir/metadata").json()
    ext = meta["rest"][0]["security"]["extension"][0]
    assert ext["url"].endswith("oauth-uris")
    assert {e["url"] for e in ext["extension"]} >= {"authorize", "token"}


def test_scopes_narrow_to_the_registration():
    asked = sc.parse("patient/*.cruds user/Observation.rs system/*.rs launch openid bogus/x")
    allowed = sc.parse("patient/Observation.rs user/*.r launch")
    granted = sc.narrow(asked, allowed)
    assert str(granted) == "launch patient/Observation.rs user/Observation.r"
    with pytest.raises(Exception):
        sc.parse("patient/*.rs nonsense", strict=True)
    assert str(sc.parse("patient/Observation.read")) == "patient/Observation.rs"


def test_staff_standalone_launch_reads_only_the_chosen_patient(client, session, people, sign_in):
    _observations(client, session, people)
    app, _ = _register(session, people)
    sign_in(people.care_manager.email)
    verifier, challenge = _pkce()
    code, page = _code(
        client,
        app,
        "launch/patient openid fhirUser offline_access patient/Observation.rs",
        challenge,
        patient=people.patient.id,
        nonce="n-1",
    )
    assert "Mood app" in page.text and "Observation of the chosen patient only" in page.text
    answer = _token(client, app, code, verifier)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["patient"] == str(people.patient.id)
    assert body["scope"] == "fhirUser launch/patient offline_access openid patient/Observation.rs"
    claims = jwt.decode(body["id_token"], service_keys(client), algorithms=["ES384"]).claims
    assert claims["nonce"] == "n-1" and claims["aud"] == app.client_id
    assert claims["fhirUser"] == f"{BASE}/Practitioner/{people.care_manager.id}"
    auth = {"Authorization": f"Bearer {body['access_token']}", **FHIR}
    found = client.get("/fhir/Observation", headers=auth).json()
    subjects = {e["resource"]["subject"]["reference"] for e in found["entry"]}
    assert subjects == {f"Patient/{people.patient.id}"}
    # Outside the scopes: another type, and a write.
    assert client.get("/fhir/CarePlan", headers=auth).status_code == 403
    assert client.get(f"/fhir/Patient/{people.patient.id}", headers=auth).status_code == 403
    # Outside the patient context: another patient named is simply not found.
    other = client.get(f"/fhir/Observation?patient={people.other_patient.id}", headers=auth).json()
    assert other.get("total", 0) == 0 and not other.get("entry")
    # Not /api: the token is for /fhir only.
    assert client.get("/api/v1/patients", headers=auth).status_code == 403
    events = session.scalars(select(AuditEvent.action)).all()
    assert "smart_token_issue" in events and "smart_authorize" in events


def service_keys(client):
    from joserfc.jwk import KeySet

    return KeySet.import_key_set(client.get("/oauth2/jwks").json())


def test_a_token_never_reaches_past_its_person(client, session, people, sign_in):
    """user/*.rs for a clinician: their teams' patients, not the other team's."""
    _observations(client, session, people)
    app, _ = _register(session, people)
    sign_in(people.care_manager.email)
    verifier, challenge = _pkce()
    code, _ = _code(client, app, "user/*.rs", challenge)
    auth = {
        "Authorization": f"Bearer {_token(client, app, code, verifier).json()['access_token']}",
        **FHIR,
    }
    found = client.get("/fhir/Observation", headers=auth).json()
    assert {e["resource"]["subject"]["reference"] for e in found["entry"]} == {
        f"Patient/{people.patient.id}"
    }
    assert client.get(f"/fhir/Patient/{people.other_patient.id}", headers=auth).status_code == 404


def test_pkce_failure_wrong_redirect_and_a_used_code(client, session, people, sign_in):
    app, _ = _register(session, people)
    sign_in(people.patient_user.email)
    verifier, challenge = _pkce()
    # No PKCE: the app is told, at its own registered redirect URI.
    no_pkce = client.get(
        "/oauth2/authorize",
        params={**_params(app, "patient/*.rs", challenge), "code_challenge_method": "plain"},
    )
    assert no_pkce.status_code == 303 and "error=invalid_request" in no_pkce.headers["location"]
    # A redirect URI it did not register: no redirect at all.
    wrong = client.get(
        "/oauth2/authorize",
        params={
            **_params(app, "patient/*.rs", challenge),
            "redirect_uri": "https://evil.example/cb",
        },
    )
    assert wrong.status_code == 400 and "evil" not in wrong.headers.get("location", "")
    code, _ = _code(client, app, "patient/*.rs", challenge)
    bad = _token(client, app, code, verifier[:-1] + ("A" if verifier[-1] != "A" else "B"))
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    assert (
        _token(client, app, code, verifier, redirect="https://app.example/other").json()["error"]
        == "invalid_grant"
    )
    good = _token(client, app, code, verifier)
    assert good.status_code == 200, good.text
    assert good.json()["patient"] == str(people.patient.id)
    # The same code again: refused, and the grant made with it ends (its token too).
    again = _token(client, app, code, verifier)
    assert again.json()["error"] == "invalid_grant"
    auth = {"Authorization": f"Bearer {good.json()['access_token']}", **FHIR}
    assert client.get("/fhir/Observation", headers=auth).status_code == 401


def test_refresh_rotates_and_an_old_one_revokes(client, session, people, sign_in):
    app, _ = _register(session, people)
    sign_in(people.patient_user.email)
    verifier, challenge = _pkce()
    code, _ = _code(client, app, "offline_access patient/*.rs", challenge)
    first = _token(client, app, code, verifier).json()
    refresh = {"grant_type": "refresh_token", "client_id": app.client_id}
    second = client.post("/oauth2/token", data={**refresh, "refresh_token": first["refresh_token"]})
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
    # The old one sent again: someone copied it. Everything under the grant stops.
    stolen = client.post("/oauth2/token", data={**refresh, "refresh_token": first["refresh_token"]})
    assert stolen.json()["error"] == "invalid_grant"
    newest = client.post(
        "/oauth2/token", data={**refresh, "refresh_token": second.json()["refresh_token"]}
    )
    assert newest.json()["error"] == "invalid_grant"
    auth = {"Authorization": f"Bearer {second.json()['access_token']}", **FHIR}
    assert client.get("/fhir/Observation", headers=auth).status_code == 401


def test_expired_token_is_refused(client, session, people, sign_in, clock):
    app, _ = _register(session, people)
    sign_in(people.patient_user.email)
    verifier, challenge = _pkce()
    code, _ = _code(client, app, "patient/*.rs", challenge)
    auth = {
        "Authorization": f"Bearer {_token(client, app, code, verifier).json()['access_token']}",
        **FHIR,
    }
    assert client.get("/fhir/Observation", headers=auth).status_code == 200
    clock.advance(hours=1, seconds=1)
    assert client.get("/fhir/Observation", headers=auth).status_code == 401


def test_a_patient_sees_and_revokes_an_app(client, session, people, sign_in):
    app, _ = _register(session, people)
    csrf = sign_in(people.patient_user.email)
    verifier, challenge = _pkce()
    code, _ = _code(client, app, "offline_access patient/*.rs", challenge)
    tokens = _token(client, app, code, verifier).json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}", **FHIR}
    assert client.get(f"/fhir/Patient/{people.patient.id}", headers=auth).status_code == 200
    page = client.get("/my/apps")
    assert page.status_code == 200 and "Mood app" in page.text
    grant_id = client.get("/api/v1/my/apps").json()[0]["id"]
    done = client.post(f"/my/apps/{grant_id}/revoke", data={"csrf_token": csrf})
    assert done.status_code == 303
    assert client.get(f"/fhir/Patient/{people.patient.id}", headers=auth).status_code == 401
    again = client.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": app.client_id,
            "refresh_token": tokens["refresh_token"],
        },
    )
    assert again.json()["error"] == "invalid_grant"
    assert "Mood app" not in client.get("/my/apps").text


def test_ehr_launch_maps_the_patient_by_identifier(client, session, people, sign_in, settings):
    _observations(client, session, people)
    app, _ = _register(session, people)
    launch = client.post(
        "/api/v1/smart/launches",
        json={
            "system": settings.fhir_mrn_system.replace("{organization}", people.org.slug),
            "value": people.patient.mrn,
        },
        headers=bearer(session, people.care_manager),
    )
    assert launch.status_code == 201, launch.text
    assert launch.json()["iss"] == BASE
    sign_in(people.care_manager.email)
    verifier, challenge = _pkce()
    code, page = _code(
        client, app, "launch patient/Observation.rs", challenge, launch=launch.json()["launch"]
    )
    assert "open in your EHR" in page.text
    body = _token(client, app, code, verifier).json()
    assert body["patient"] == str(people.patient.id)
    # The EHR's own account (an integration client of the organization) may register one.
    ehr_token, _ = create_client_token(
        session, organization=people.org, name="ehr-feed", scopes=["import"]
    )
    commit(session)
    by_ehr = client.post(
        "/api/v1/smart/launches",
        json={
            "system": settings.fhir_mrn_system.replace("{organization}", people.org.slug),
            "value": people.patient.mrn,
        },
        headers={"Authorization": f"Bearer {ehr_token}"},
    )
    assert by_ehr.status_code == 201, by_ehr.text
    # An unknown MRN, and one of a patient outside the clinician's teams: not found alike.
    for mrn in ("no-such", people.other_patient.mrn):
        miss = client.post(
            "/api/v1/smart/launches",
            json={
                "system": settings.fhir_mrn_system.replace("{organization}", people.org.slug),
                "value": mrn,
            },
            headers=bearer(session, people.care_manager),
        )
        assert miss.status_code == 404


def test_backend_service_with_private_key_jwt(client, session, people):
    key = ECKey.generate_key("P-384", private=True)
    public = {**key.as_dict(private=False), "kid": "k1"}
    app, secret = _register(session, people, scopes="system/*.rs", jwks={"keys": [public]})
    assert secret is None and app.service_user_id is not None

    def assertion(jti):
        claims = {
            "iss": app.client_id,
            "sub": app.client_id,
            "aud": "http://testserver/oauth2/token",
            "exp": int(time.time()) + 240,
            "jti": jti,
        }
        return jwt.encode({"alg": "ES384", "kid": "k1"}, claims, key, algorithms=["ES384"])

    form = {
        "grant_type": "client_credentials",
        "scope": "system/Observation.rs",
        "client_assertion_type": service.ASSERTION_TYPE,
    }
    answer = client.post("/oauth2/token", data={**form, "client_assertion": assertion("a1")})
    assert answer.status_code == 200, (answer.text, answer.headers)
    assert answer.json()["expires_in"] == 300 and answer.json()["scope"] == "system/Observation.rs"
    found = service.resolve_bearer(session, answer.json()["access_token"])
    assert found is not None and found.client.id == app.id and found.scopes.system
    # The same assertion again, or one signed by another key: refused.
    assert (
        client.post("/oauth2/token", data={**form, "client_assertion": assertion("a1")}).status_code
        == 401
    )
    other = ECKey.generate_key("P-384", private=True)
    forged = jwt.encode(
        {"alg": "ES384", "kid": "k1"},
        {
            "iss": app.client_id,
            "sub": app.client_id,
            "aud": "http://testserver/oauth2/token",
            "exp": int(time.time()) + 60,
            "jti": "f",
        },
        other,
        algorithms=["ES384"],
    )
    assert (
        client.post("/oauth2/token", data={**form, "client_assertion": forged}).status_code == 401
    )


def test_registration_refuses_bad_input_and_non_admins(client, session, people):
    admin = bearer(session, people.admin)
    bad = client.post(
        "/api/v1/smart/clients",
        json={"name": "x", "redirect_uris": ["http://evil.example/cb"], "scopes": "patient/*.rs"},
        headers=admin,
    )
    assert bad.status_code == 422 and "redirect_uris" in bad.text
    bad = client.post(
        "/api/v1/smart/clients",
        json={"name": "x", "redirect_uris": [REDIRECT], "scopes": "everything"},
        headers=admin,
    )
    assert bad.status_code == 422 and "scope" in bad.text
    ok = client.post(
        "/api/v1/smart/clients",
        json={
            "name": "Chart",
            "redirect_uris": [REDIRECT],
            "scopes": "patient/*.rs",
            "confidential": True,
            "origins": ["https://ehr.example"],
        },
        headers=admin,
    )
    assert ok.status_code == 201 and ok.json()["client_secret"]
    assert (
        client.post(
            "/api/v1/smart/clients",
            json={"name": "y", "redirect_uris": [REDIRECT], "scopes": "patient/*.rs"},
            headers=bearer(session, people.care_manager),
        ).status_code
        == 403
    )


def test_registered_origins_get_cors_and_may_frame_concord(client, session, people):
    _register(session, people, origins=["https://ehr.example"])
    pre = client.options(
        "/fhir/Observation",
        headers={
            "Origin": "https://ehr.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "https://ehr.example"
    assert "Authorization" in pre.headers["access-control-allow-headers"]
    meta = client.get("/fhir/metadata", headers={"Origin": "https://ehr.example"})
    assert meta.headers["access-control-allow-origin"] == "https://ehr.example"
    # Not for another origin, and not on the JSON API or the pages.
    other = client.get("/fhir/metadata", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    page = client.get("/sign-in", headers={"Origin": "https://ehr.example"})
    assert "access-control-allow-origin" not in page.headers
    assert "frame-ancestors 'self' https://ehr.example" in page.headers["content-security-policy"]
    assert "x-frame-options" not in page.headers


def test_part2_still_applies_to_a_smart_token(client, session, people, sign_in, story):  # noqa: F811
    """A primary care provider's app (user/*.rs) sees the PHQ-9s but not the AUDIT-Cs a Part 2
    program recorded, exactly as the provider's own token does (tests/fhir/test_fhir_part2)."""
    app, _ = _register(session, people)
    sign_in("pia@n.example")
    verifier, challenge = _pkce()
    code, _ = _code(client, app, "user/*.rs", challenge)
    token = _token(client, app, code, verifier).json()["access_token"]
    found = client.get(
        f"/fhir/Observation?patient={people.patient.id}",
        headers={"Authorization": f"Bearer {token}", **FHIR},
    ).json()
    ids = {e["resource"]["id"] for e in found.get("entry", [])}
    assert story["observations"]["PHQ-9"] <= ids
    assert not story["observations"]["AUDIT-C"] & ids


def test_signed_out_the_app_is_sent_through_sign_in_and_back(client, session, people):
    app, _ = _register(session, people)
    _, challenge = _pkce()
    params = _params(app, "patient/*.rs", challenge)
    first = client.get("/oauth2/authorize", params=params)
    assert first.status_code == 303 and first.headers["location"].startswith("/sign-in?next=")
    page = client.get(first.headers["location"])
    back = client.post(
        "/sign-in",
        data={
            "email": people.patient_user.email,
            "password": "correct horse battery",
            "csrf_token": csrf_of(page.text),
            "next": parse_qs(urlsplit(first.headers["location"]).query)["next"][0],
        },
    )
    assert back.status_code == 303 and back.headers["location"].startswith("/oauth2/authorize?")
    consent = client.get(back.headers["location"])
    assert consent.status_code == 200 and "Mood app" in consent.text


def test_backend_service_keys_by_url_rs384(client, session, people):
    """A service registered with its jwks_url: the keys are fetched from a real HTTP server."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, private=True)
    body = json.dumps({"keys": [{**key.as_dict(private=False), "kid": "r1"}]}).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/jwks.json"
        app, _ = _register(session, people, scopes="system/*.rs", jwks_url=url)
        claims = {
            "iss": app.client_id,
            "sub": app.client_id,
            "aud": "http://testserver/oauth2/token",
            "exp": int(time.time()) + 120,
            "jti": uuid.uuid4().hex,
        }
        assertion = jwt.encode({"alg": "RS384", "kid": "r1"}, claims, key, algorithms=["RS384"])
        answer = client.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "scope": "system/*.rs",
                "client_assertion_type": service.ASSERTION_TYPE,
                "client_assertion": assertion,
            },
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["scope"] == "system/*.rs"
    finally:
        server.shutdown()
        server.server_close()


# Answers that hold no patient's data, for anyone.
OPEN_FHIR_ROUTES = {"/fhir/metadata", "/fhir/.well-known/smart-configuration"}


def test_every_fhir_read_route_asks_the_token_scopes(client, session, people, sign_in):
    """A token whose scopes cover only Questionnaire is refused on every other /fhir route
    that reads: a new route that forgets the scope check fails here the day it is written."""
    from fastapi.routing import APIRoute

    _observations(client, session, people)
    app, _ = _register(session, people)
    sign_in(people.care_manager.email)
    verifier, challenge = _pkce()
    code, _ = _code(client, app, "user/Questionnaire.rs", challenge)
    auth = {
        "Authorization": f"Bearer {_token(client, app, code, verifier).json()['access_token']}",
        **FHIR,
    }
    fill = {"kind": "Patient", "ident": str(people.patient.id), "measure_id": "cms2"}
    checked = 0
    routes = []
    for top in client.app.routes:
        router = getattr(top, "original_router", None)
        routes += router.routes if router is not None else [top]
    for route in routes:
        if not isinstance(route, APIRoute) or not route.path.startswith("/fhir"):
            continue
        if "GET" not in route.methods or route.path in OPEN_FHIR_ROUTES:
            continue
        path = route.path
        for name in route.param_convertors:
            path = path.replace("{%s}" % name, fill.get(name, str(people.patient.id)))
        answer = client.get(path, headers=auth)
        assert answer.status_code in (403, 404), f"{path}: {answer.status_code} {answer.text[:200]}"
        checked += 1
    assert checked >= 3

"""Bulk Data export by a SMART backend service (issue 21, ADR 0028): the app reads as the
clinician its registration names, its system/ scopes narrow the types, every read is in the
trail as that person with the app named; the `patient` kick-off parameter; discovery."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from joserfc.jws import JWSRegistry
from sqlalchemy import select

from concord.audit.models import AuditEvent
from concord.bulk.models import BulkExport
from concord.fhir.bulk import run_exports
from concord.smart import service
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.fhir.test_bulk_export import KICK, _finish, _kick, _lines
from tests.fhir.test_bulk_export import bulk_dir as bulk_dir  # noqa: F401 (fixtures)
from tests.fhir.test_bulk_export import schedule as schedule  # noqa: F401
from tests.fhir.test_bulk_export import settings as settings  # noqa: F401
from tests.fhir.test_fhir_part2 import _consent
from tests.fhir.test_fhir_part2 import story as story  # noqa: F401 (a fixture)

TOKEN_URL = "http://testserver/oauth2/token"


@pytest.fixture(autouse=True)
def _fresh_origins():
    yield
    service._ORIGINS.forget()


class Backend:
    """A registered backend service and its private key: asks the token endpoint as the
    Bulk Data client would (client_credentials + private_key_jwt)."""

    def __init__(self, session, people, scopes="system/*.rs", acts_for=None):
        self.key = ECKey.generate_key("P-384", private=True)
        public = {**self.key.as_dict(private=False), "kid": "k1"}
        self.app, _ = service.register_client(
            session,
            by=people.admin,
            name="Registry feed",
            redirect_uris=[],
            scopes=scopes,
            jwks={"keys": [public]},
            acts_for=acts_for,
        )
        commit(session)

    def headers(self, client, scope="system/*.rs"):
        claims = {
            "iss": self.app.client_id,
            "sub": self.app.client_id,
            "aud": TOKEN_URL,
            "exp": int(time.time()) + 240,
            "jti": uuid.uuid4().hex,
        }
        assertion = jwt.encode({"alg": "ES384", "kid": "k1"}, claims, self.key, ["ES384"])
        answer = client.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "scope": scope,
                "client_assertion_type": service.ASSERTION_TYPE,
                "client_assertion": assertion,
            },
        )
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_a_backend_service_exports_as_the_clinician_it_names(
    client, session, people, factory, schedule
):
    feed = Backend(session, people, acts_for=people.care_manager.email)
    assert feed.app.acts_for_id == people.care_manager.id
    first = feed.headers(client)
    status = _kick(client, first)
    # Its tokens last five minutes: a later token of the same app follows the export.
    later = feed.headers(client)
    manifest = _finish(client, later, status, factory, schedule)
    ids = {p["id"] for p in _lines(client, later, manifest, "Patient")}
    # The care manager's patient, not the other team's: the clinician's reach, no more.
    assert str(people.patient.id) in ids and str(people.other_patient.id) not in ids
    # A later token of the app whose scopes no longer cover the file's type: refused.
    patients_file = next(o for o in manifest["output"] if o["type"] == "Patient")
    narrower = feed.headers(client, scope="system/Observation.rs")
    got = client.get(patients_file["url"].removeprefix("http://testserver"), headers=narrower)
    assert got.status_code == 403 and "insufficient_scope" in got.text
    # Another app, or a clinician's own token, does not reach the export or its files.
    other = Backend(session, people, acts_for=people.care_manager.email)
    url = manifest["output"][0]["url"].removeprefix("http://testserver")
    assert client.get(url, headers=other.headers(client)).status_code == 404
    assert client.get(status, headers=bearer(session, people.care_manager)).status_code == 404
    # Every read is in the trail as the clinician, with the app acting for them named.
    searches = session.scalars(
        select(AuditEvent).where(
            AuditEvent.actor_id == people.care_manager.id, AuditEvent.action == "search"
        )
    ).all()
    assert searches and all(e.detail.get("smart_client") == str(feed.app.id) for e in searches)
    asked = session.scalars(
        select(AuditEvent).where(AuditEvent.action.in_(("export_request", "export")))
    ).all()
    assert {e.action for e in asked} == {"export_request", "export"}
    assert all(
        e.actor_id == people.care_manager.id and e.detail.get("smart_client") == str(feed.app.id)
        for e in asked
    )


def test_a_backend_service_naming_no_clinician_is_refused(client, session, people):
    feed = Backend(session, people)
    before = session.scalar(select(BulkExport.id).limit(1))
    refused = client.get("/fhir/$export", headers={**feed.headers(client), **KICK})
    assert refused.status_code == 403
    assert "acts for no clinician" in refused.text
    assert session.scalar(select(BulkExport.id).limit(1)) == before
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "export_request", AuditEvent.outcome == "denied"
        )
    ).all()
    assert any(e.detail.get("smart_client") == str(feed.app.id) for e in denied)


def test_a_clinician_who_left_takes_the_apps_reach_with_them(client, session, people):
    feed = Backend(session, people, acts_for=people.care_manager.email)
    people.care_manager.active = False
    commit(session)
    assert client.get("/fhir/$export", headers={**feed.headers(client), **KICK}).status_code == 403


def test_system_scopes_narrow_the_types(client, session, people, factory, schedule):
    feed = Backend(
        session, people, scopes="system/Observation.rs", acts_for=people.care_manager.email
    )
    headers = feed.headers(client, scope="system/Observation.rs")
    manifest = _finish(client, headers, _kick(client, headers), factory, schedule)
    assert {o["type"] for o in manifest["output"]} <= {"Observation"}
    refused = client.get("/fhir/$export?_type=Patient", headers={**headers, **KICK})
    assert refused.status_code == 403 and "insufficient_scope" in refused.text


def test_part2_applies_to_the_borrowed_access(client, story, people, session, factory, schedule):  # noqa: F811
    feed = Backend(session, people, acts_for="pia@n.example")  # the story's primary care
    headers = feed.headers(client)
    status = _kick(client, headers, "/fhir/$export?_type=Observation")
    ids = {
        o["id"]
        for o in _lines(
            client, headers, _finish(client, headers, status, factory, schedule), "Observation"
        )
    }
    assert story["observations"]["PHQ-9"] <= ids
    assert not (story["observations"]["AUDIT-C"] & ids)
    _consent(client, story, people)
    status = _kick(client, headers, "/fhir/$export?_type=Observation")
    ids = {
        o["id"]
        for o in _lines(
            client, headers, _finish(client, headers, status, factory, schedule), "Observation"
        )
    }
    assert story["observations"]["AUDIT-C"] <= ids


def _parameters(*patients, kind="Patient"):
    params = [
        {"name": "patient", "valueReference": {"reference": f"Patient/{p}"}} for p in patients
    ]
    return {
        "resourceType": "Parameters",
        "parameter": [*params, {"name": "_type", "valueString": kind}],
    }


def test_the_patient_parameter(client, session, people, factory, schedule):
    manager = bearer(session, people.care_manager)
    body = json.dumps(_parameters(people.patient.id))
    kicked = client.post("/fhir/Patient/$export", headers={**manager, **KICK}, content=body)
    assert kicked.status_code == 202, kicked.text
    status = kicked.headers["Content-Location"].removeprefix("http://testserver")
    manifest = _finish(client, manager, status, factory, schedule)
    assert [p["id"] for p in _lines(client, manager, manifest, "Patient")] == [
        str(people.patient.id)
    ]
    # Another team's patient, or one that does not exist: the same 403, nothing written.
    before = session.scalar(select(BulkExport.id).order_by(BulkExport.created_at.desc()).limit(1))
    for stranger in (people.other_patient.id, uuid.uuid4()):
        body = json.dumps(_parameters(people.patient.id, stranger))
        refused = client.post("/fhir/Patient/$export", headers={**manager, **KICK}, content=body)
        assert refused.status_code == 403 and "patient" in refused.text
    last = session.scalar(select(BulkExport.id).order_by(BulkExport.created_at.desc()).limit(1))
    assert last == before
    # With lenient handling the unreadable one is left out.
    lenient = {**manager, **KICK, "Prefer": "respond-async, handling=lenient"}
    body = json.dumps(_parameters(people.patient.id, people.other_patient.id))
    kicked = client.post("/fhir/Patient/$export", headers=lenient, content=body)
    assert kicked.status_code == 202, kicked.text
    status = kicked.headers["Content-Location"].removeprefix("http://testserver")
    manifest = _finish(client, manager, status, factory, schedule)
    assert [p["id"] for p in _lines(client, manager, manifest, "Patient")] == [
        str(people.patient.id)
    ]
    # Not at system level (the IG).
    body = json.dumps(_parameters(people.patient.id))
    refused = client.post("/fhir/$export", headers={**manager, **KICK}, content=body)
    assert refused.status_code in (400, 422) and "patient" in refused.text


def test_the_patient_parameter_in_a_group(client, session, people, factory, schedule):
    from concord.registry import service as reg
    from tests.factories import acc_for

    reg.enroll(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        data=reg.Enrolment(program="depression"),
    )
    commit(session)
    manager = bearer(session, people.care_manager)
    body = json.dumps(_parameters(people.patient.id, kind="Patient,CareTeam"))
    url = "/fhir/Group/program-anxiety/$export"  # a program the patient is not in
    refused = client.post(url, headers={**manager, **KICK}, content=body)
    assert refused.status_code == 403
    url = "/fhir/Group/program-depression/$export"
    kicked = client.post(url, headers={**manager, **KICK}, content=body)
    assert kicked.status_code == 202, kicked.text
    status = kicked.headers["Content-Location"].removeprefix("http://testserver")
    manifest = _finish(client, manager, status, factory, schedule)
    teams = _lines(client, manager, manifest, "CareTeam")
    assert teams and {t["subject"]["reference"] for t in teams} == {f"Patient/{people.patient.id}"}
    assert run_exports(factory, schedule) == 0


def test_registration_names_an_active_clinician_for_a_backend_only(client, session, people):
    admin = bearer(session, people.admin)
    keys = {"keys": [{**ECKey.generate_key("P-384").as_dict(private=False), "kid": "k"}]}
    base = {"name": "Feed", "scopes": "system/*.rs", "jwks": keys}
    for acts_for in (people.admin.email, people.patient_user.email, "nobody@x.example"):
        answer = client.post(
            "/api/v1/smart/clients", headers=admin, json={**base, "acts_for": acts_for}
        )
        assert answer.status_code == 422 and "acts_for" in answer.text
    answer = client.post(
        "/api/v1/smart/clients",
        headers=admin,
        json={
            "name": "Mood app",
            "scopes": "patient/*.rs",
            "redirect_uris": ["https://app.example/cb"],
            "acts_for": people.care_manager.email,
        },
    )
    assert answer.status_code == 422 and "acts_for" in answer.text
    answer = client.post(
        "/api/v1/smart/clients",
        headers=admin,
        json={**base, "acts_for": people.care_manager.email.upper()},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["acts_for"] == str(people.care_manager.id)
    made = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "smart_client_register")
    ).all()
    assert made[-1].detail["acts_for"] == str(people.care_manager.id)


def test_discovery_advertises_backend_services(client):
    config = client.get("/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == TOKEN_URL
    assert "client_credentials" in config["grant_types_supported"]
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
    assert {"RS384", "ES384"} <= set(config["token_endpoint_auth_signing_alg_values_supported"])
    assert "system/*.rs" in config["scopes_supported"]
    assert "client-confidential-asymmetric" in config["capabilities"]
    statement = client.get("/fhir/metadata", headers={"Accept": "application/fhir+json"}).json()
    security = statement["rest"][0]["security"]
    uris = next(
        e
        for e in security["extension"]
        if e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    )
    assert {"url": "token", "valueUri": TOKEN_URL} in uris["extension"]
    assert "client_credentials" in security["description"]
    assert "system/" in security["description"]


def test_the_page_registers_a_backend_service_acting_for_a_clinician(
    client, session, people, sign_in
):
    csrf = sign_in(people.admin.email)
    page = client.get("/admin/smart-apps")
    assert page.status_code == 200 and 'name="acts_for"' in page.text
    keys = {"keys": [{**ECKey.generate_key("P-384").as_dict(private=False), "kid": "k"}]}
    form = {
        "csrf_token": csrf,
        "name": "Registry feed",
        "scopes": "system/*.rs",
        "jwks": json.dumps(keys),
        "acts_for": people.admin.email,
    }
    refused = client.post("/admin/smart-apps", data=form)
    assert refused.status_code == 422 and "active clinician" in refused.text
    made = client.post("/admin/smart-apps", data={**form, "acts_for": people.care_manager.email})
    assert made.status_code == 200 and "acts for a clinician" in made.text
    from concord.smart.models import SmartClient

    app = session.scalar(select(SmartClient).where(SmartClient.name == "Registry feed"))
    assert app.acts_for_id == people.care_manager.id


def test_assertion_headers_as_bulk_data_clients_send_them(client, session, people):
    # The Bulk Data Tester adds `kty` to the assertion's header: ignored, not refused. A
    # `jku` must be the app's registered JWKS URL (it has none here): refused.
    feed = Backend(session, people, acts_for=people.care_manager.email)

    def ask(header):
        claims = {
            "iss": feed.app.client_id,
            "sub": feed.app.client_id,
            "aud": TOKEN_URL,
            "exp": int(time.time()) + 240,
            "jti": uuid.uuid4().hex,
        }
        signed = jwt.encode(
            {"alg": "ES384", "kid": "k1", **header},
            claims,
            feed.key,
            ["ES384"],
            registry=JWSRegistry(algorithms=["ES384"], strict_check_header=False),
        )
        return client.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "scope": "system/*.read",
                "client_assertion_type": service.ASSERTION_TYPE,
                "client_assertion": signed,
            },
        )

    answer = ask({"typ": "JWT", "kty": "EC"})
    assert answer.status_code == 200, answer.text
    # Asked in the v1 form, answered in it (what the token may do is the same: read, search).
    assert answer.json()["scope"] == "system/*.read"
    refused = ask({"jku": "https://elsewhere.example/jwks"})
    assert refused.status_code == 401 and "jku" in refused.text


def test_a_scope_naming_an_unknown_type_is_refused(client, session, people):
    feed = Backend(session, people, acts_for=people.care_manager.email)
    for scope in ("system/UnknownResource.read", "system/Patient.rs system/Nope.rs"):
        claims = {
            "iss": feed.app.client_id,
            "sub": feed.app.client_id,
            "aud": TOKEN_URL,
            "exp": int(time.time()) + 240,
            "jti": uuid.uuid4().hex,
        }
        answer = client.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "scope": scope,
                "client_assertion_type": service.ASSERTION_TYPE,
                "client_assertion": jwt.encode(
                    {"alg": "ES384", "kid": "k1"}, claims, feed.key, ["ES384"]
                ),
            },
        )
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_scope"

"""Consents through /api/v1 (list, record, revoke with an Idempotency-Key) and as FHIR R4
Consent resources (read, search by patient, valid, in the CapabilityStatement); nothing for
anyone outside the patient's record."""

from __future__ import annotations

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent as FhirConsent
from sqlalchemy import func, select

from concord.consents.models import Consent
from tests.careplans.test_api import bearer

FHIR = {"Accept": "application/fhir+json"}
SUD = {
    "grantee_kind": "organization",
    "grantee_name": "Dr Ana Ruiz, Riverside Primary Care",
    "discloser": "The Addiction Service",
    "categories": ["substance_use"],
    "purposes": ["treatment"],
    "period_end": "2027-06-01",
    "method": "paper_scanned",
    "signed_name": "Pat Ient",
    "signed_on": "2026-11-20",
    "document_reference": "scan-0001",
}


def count(session):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Consent))


def test_record_list_and_revoke_through_the_api(client, session, people):
    cm = bearer(session, people.care_manager)
    me = bearer(session, people.patient_user)
    base = f"/api/v1/patients/{people.patient.id}/consents"
    before = count(session)
    bad = client.post(base, json={**SUD, "method": "verbal"}, headers=cm)
    assert bad.status_code == 422
    assert "method" in {f["field"] for f in bad.json()["fields"]}
    assert count(session) == before
    key = {"Idempotency-Key": "consent-key-0001"}
    made = client.post(base, json=SUD, headers={**cm, **key})
    assert made.status_code == 201, made.text
    again = client.post(base, json=SUD, headers={**cm, **key})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == made.json()["id"] and count(session) == before + 1
    consent = made.json()
    assert consent["part2"] and consent["state"] == "active"
    assert consent["summary"] == (
        "The Addiction Service may share your substance-use treatment records with "
        "Dr Ana Ruiz, Riverside Primary Care for treatment until Jun 1, 2027."
    )
    listed = client.get(base, headers=me).json()
    assert consent["id"] in [c["id"] for c in listed]
    revoke = f"{base}/{consent['id']}/revoke"
    # The team's key, already used to record, sent with another request: a conflict.
    assert client.post(revoke, json={}, headers={**cm, **key}).status_code == 409
    mine = {**me, "Idempotency-Key": "revoke-key-0001"}
    done = client.post(revoke, json={"reason": "No longer seeing them"}, headers=mine)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "revoked" and done.json()["revoked_reason"]
    replay = client.post(revoke, json={"reason": "No longer seeing them"}, headers=mine)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    twice = client.post(revoke, json={}, headers=me)
    assert twice.status_code == 409  # already revoked


def test_the_api_shows_nothing_to_others_and_family_only_their_own(client, session, people):
    cm = bearer(session, people.care_manager)
    base = f"/api/v1/patients/{people.patient.id}/consents"
    client.post(base, json=SUD, headers=cm)
    for user in (
        people.outsider,
        people.other_patient_user,
        people.admin,
        people.family_no_consent,
    ):
        answer = client.get(base, headers=bearer(session, user))
        assert answer.status_code == 404, user.email
        assert "Addiction" not in answer.text
    sister = client.get(base, headers=bearer(session, people.family)).json()
    assert sister and all(c["grantee"]["user_id"] == str(people.family.id) for c in sister)
    assert all("Addiction" not in c["summary"] for c in sister)


def test_fhir_consent_read_and_search_are_valid_r4(client, session, people):
    cm = bearer(session, people.care_manager)
    made = client.post(f"/api/v1/patients/{people.patient.id}/consents", json=SUD, headers=cm)
    cid = made.json()["id"]
    read = client.get(f"/fhir/Consent/{cid}", headers={**cm, **FHIR})
    assert read.status_code == 200, read.text
    resource = FhirConsent.model_validate(read.json())
    assert resource.status == "active"
    assert resource.scope.coding[0].code == "patient-privacy"
    assert resource.category[0].coding[0].code == "59284-0"
    assert resource.patient.reference == f"Patient/{people.patient.id}"
    assert resource.policyRule.coding[0].code == "42CFRPart2"
    assert resource.policy[0].uri.endswith("section-2.31")
    assert resource.sourceReference.identifier.value == "scan-0001"
    provision = resource.provision
    assert provision.type == "permit" and str(provision.period.end) == "2027-06-01"
    assert provision.purpose[0].code == "TREAT"
    assert {c.code for c in provision.securityLabel} == {"substance_use", "ETH"}
    assert provision.actor[0].role.coding[0].code == "IRCP"

    search = client.get(f"/fhir/Consent?patient={people.patient.id}", headers={**cm, **FHIR})
    bundle = Bundle.model_validate(search.json())
    ids = [e.resource.id for e in bundle.entry]
    assert cid in ids and bundle.total == len(ids)
    family = [e.resource for e in bundle.entry if e.resource.id != cid]
    assert family and family[0].policyRule.coding[0].code == "OPTIN"

    client.post(f"/api/v1/patients/{people.patient.id}/consents/{cid}/revoke", json={}, headers=cm)
    inactive = client.get(
        f"/fhir/Consent?patient={people.patient.id}&status=inactive", headers={**cm, **FHIR}
    ).json()
    assert [e["resource"]["id"] for e in inactive["entry"]] == [cid]


def test_fhir_consents_are_not_found_outside_the_record(client, session, people):
    cm = bearer(session, people.care_manager)
    cid = client.post(
        f"/api/v1/patients/{people.patient.id}/consents", json=SUD, headers=cm
    ).json()["id"]
    for user in (people.outsider, people.other_patient_user, people.family):
        token = {**bearer(session, user), **FHIR}
        assert client.get(f"/fhir/Consent/{cid}", headers=token).status_code == 404
        found = client.get(f"/fhir/Consent?patient={people.patient.id}", headers=token).json()
        assert found.get("entry", []) == [] and found["total"] == 0
    needs = client.get("/fhir/Consent", headers={**cm, **FHIR})
    assert needs.status_code in (400, 422) and "patient" in needs.text


def test_the_capability_statement_offers_consent(client, session, people):
    cm = bearer(session, people.care_manager)
    statement = client.get("/fhir/metadata", headers={**cm, **FHIR}).json()
    (consent,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Consent"]
    assert {p["name"] for p in consent["searchParam"]} >= {"patient", "status"}
    assert {i["code"] for i in consent["interaction"]} == {"read", "search-type"}

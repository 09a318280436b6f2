"""Social needs through /fhir (issue 23): a health concern as a Condition, a referral as a
ServiceRequest and its Task, read and searched by patient behind the record's access, the
disclosure decision and the trail; their ids never meet an imported one's."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from concord.audit.models import AuditEvent
from concord.fhir import mapping
from concord.social import service as social
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.ehr.test_import import bundle, client_token, condition, patient, put, send
from tests.social.test_referrals import FOOD_AND_HOUSING, SECRET, cm, me, screen
from tests.social.test_referrals import send as send_referral

FHIR = {"Accept": "application/fhir+json"}
SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
US_CORE = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"


@pytest.fixture
def food_bank(session, people):
    return social.add_service(
        session,
        by=people.care_manager,
        data={
            "provider_name": "Riverside Food Bank",
            "name": "Weekly groceries",
            "categories": ["food-insecurity"],
        },
    )


def _world(client, session, people, food_bank):
    """A screen with food and housing needs, the food need confirmed in the patient's words, a
    referral for it declined by the food bank and one re-sent, and an EHR's diagnosis."""
    screen(session, cm(session, people), FOOD_AND_HOUSING)
    concerns = {c.domain: c for c in social.list_concerns(session, access=me(session, people))}
    food = concerns["food-insecurity"]
    social.decide_concern(
        session,
        access=me(session, people),
        concern_id=food.id,
        decision="confirm",
        words="I worry about food at the end of the month",
    )
    declined, token = send_referral(session, people, food_bank, concern_id=food.id)
    social.partner_transition(
        session, token=token, secret=SECRET, to="rejected", reason="Outside our area"
    )
    resent, _ = send_referral(session, people, food_bank, concern_id=food.id)
    commit(session)
    imported = bundle(
        put("Patient", "p1", patient(mrn="N-1", given="Pat", family="Ient", birth="1985-05-17")),
        put("Condition", "c1", condition("F32.1", "Patient/p1")),
    )
    assert send(client, imported, client_token(session, people)).status_code == 200
    return concerns, declined, resent


def _get(client, url, headers):
    return client.get(url, headers={**FHIR, **headers})


def _ids(response):
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json().get("entry", [])]


def test_read_a_concern_a_referral_and_its_task(client, session, people, food_bank):
    concerns, declined, resent = _world(client, session, people, food_bank)
    food = concerns["food-insecurity"]
    for who in (people.care_manager, people.patient_user):
        token = bearer(session, who)
        got = _get(client, f"/fhir/Condition/concord-sdoh-{food.id}", token)
        assert got.status_code == 200, got.text
        c = got.json()
        mapping.validate(c)
        categories = {(x["coding"][0]["system"], x["coding"][0]["code"]) for x in c["category"]}
        assert categories == {(US_CORE, "health-concern"), (SDOHCC, "food-insecurity")}
        codes = {(x["system"], x["code"]) for x in c["code"]["coding"]}
        assert ("http://hl7.org/fhir/sid/icd-10-cm", "Z59.41") in codes
        assert ("http://snomed.info/sct", "733423003") in codes
        assert c["code"]["text"] == "I worry about food at the end of the month"
        assert c["verificationStatus"]["coding"][0]["code"] == "confirmed"
        assert c["clinicalStatus"]["coding"][0]["code"] == "active"
        assert c["subject"]["reference"] == f"Patient/{people.patient.id}"

        sr = _get(client, f"/fhir/ServiceRequest/concord-referral-{declined.id}", token).json()
        mapping.validate(sr)
        assert sr["status"] == "revoked" and sr["intent"] == "order"
        assert sr["category"][0]["coding"][0]["code"] == "food-insecurity"
        assert sr["reasonReference"] == [{"reference": f"Condition/concord-sdoh-{food.id}"}]
        assert "Riverside Food Bank" in sr["performer"][0]["display"]
        assert sr["requester"]["reference"] == f"Practitioner/{people.care_manager.id}"

        task = _get(client, f"/fhir/Task/concord-referral-{declined.id}", token).json()
        mapping.validate(task)
        assert task["status"] == "rejected"
        assert task["statusReason"] == {"text": "Outside our area"}
        assert task["focus"] == {"reference": f"ServiceRequest/concord-referral-{declined.id}"}
        assert task["for"]["reference"] == f"Patient/{people.patient.id}"
        assert task["owner"]["display"].startswith("Riverside Food Bank")
        waiting = _get(client, f"/fhir/Task/concord-referral-{resent.id}", token).json()
        assert waiting["status"] == "requested" and "restriction" in waiting
    # A concern the patient declined is refuted and no longer active.
    housing = next(c for d, c in concerns.items() if d != "food-insecurity")
    social.decide_concern(
        session, access=me(session, people), concern_id=housing.id, decision="decline"
    )
    commit(session)
    c = _get(
        client, f"/fhir/Condition/concord-sdoh-{housing.id}", bearer(session, people.care_manager)
    )
    assert c.json()["verificationStatus"]["coding"][0]["code"] == "refuted"
    assert c.json()["clinicalStatus"]["coding"][0]["code"] == "inactive"
    # Every read is in the trail.
    reads = session.scalars(
        select(AuditEvent.object_type).where(
            AuditEvent.action == "read",
            AuditEvent.object_id.in_([str(food.id), str(declined.id)]),
            AuditEvent.outcome == "success",
        )
    ).all()
    assert set(reads) == {"SocialConcern", "Referral"}


def test_search_by_patient_returns_the_imported_and_concord_s_own(
    client, session, people, food_bank
):
    concerns, declined, resent = _world(client, session, people, food_bank)
    pid = people.patient.id
    team = bearer(session, people.care_manager)
    conditions = _ids(_get(client, f"/fhir/Condition?patient={pid}", team))
    assert "c1" in conditions
    assert {f"concord-sdoh-{c.id}" for c in concerns.values()} <= set(conditions)
    # US Core's health-concern category, or the SDOHCC domain: Concord's own; the EHR's c1
    # (no such category) is left out.
    concern_ids = {f"concord-sdoh-{c.id}" for c in concerns.values()}
    for category in (f"{US_CORE}|health-concern", "food-insecurity,housing-instability"):
        shown = _ids(_get(client, f"/fhir/Condition?patient={pid}&category={category}", team))
        assert "c1" not in shown and set(shown) <= concern_ids and shown, category
    both = f"category=health-concern&category={SDOHCC}|food-insecurity"
    assert _ids(_get(client, f"/fhir/Condition?patient={pid}&{both}", team)) == [
        f"concord-sdoh-{concerns['food-insecurity'].id}"
    ]
    bad = _get(client, f"/fhir/Condition?patient={pid}&category=a|b|c", team)
    assert bad.status_code == 422 and "category" in bad.text
    requests = _ids(_get(client, f"/fhir/ServiceRequest?subject=Patient/{pid}", team))
    assert set(requests) == {f"concord-referral-{declined.id}", f"concord-referral-{resent.id}"}
    tasks = _ids(_get(client, f"/fhir/Task?patient={pid}", team))
    assert {f"concord-referral-{declined.id}", f"concord-referral-{resent.id}"} <= set(tasks)
    rejected = _ids(_get(client, f"/fhir/Task?patient={pid}&status=rejected", team))
    assert rejected == [f"concord-referral-{declined.id}"]
    # An owner is a person on the other Tasks: no referral's Task matches one.
    owned = _ids(_get(client, f"/fhir/Task?patient={pid}&owner={people.care_manager.id}", team))
    assert not any(i.startswith("concord-referral-") for i in owned)
    bad = _get(client, f"/fhir/Task?patient={pid}&status=done", team)
    assert bad.status_code == 422 and "status" in bad.text
    # Naming no patient: every patient the caller may read.
    assert {f"concord-sdoh-{c.id}" for c in concerns.values()} <= set(
        _ids(_get(client, "/fhir/Condition", team))
    )
    assert f"concord-referral-{resent.id}" in _ids(_get(client, "/fhir/Task", team))
    # $everything reads Task through the same search.
    everything = _ids(_get(client, f"/fhir/Patient/{pid}/$everything?_type=Task", team))
    assert f"concord-referral-{resent.id}" in everything
    # The patient: their own referrals' Tasks, not the team's safety work.
    mine = _ids(_get(client, f"/fhir/Task?patient={pid}", bearer(session, people.patient_user)))
    assert set(mine) == {f"concord-referral-{declined.id}", f"concord-referral-{resent.id}"}


def test_referral_tasks_page_after_the_others(client, session, people, food_bank):
    _, declined, resent = _world(client, session, people, food_bank)
    team = bearer(session, people.care_manager)
    first = _get(client, f"/fhir/Task?patient={people.patient.id}&_count=1", team).json()
    assert first["total"] == 2 and len(first["entry"]) == 1
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    assert "referral.1" in following
    second = _get(client, following.split("/fhir", 1)[1].join(["/fhir", ""]), team).json()
    assert len(second["entry"]) == 1
    seen = {first["entry"][0]["resource"]["id"], second["entry"][0]["resource"]["id"]}
    assert seen == {f"concord-referral-{declined.id}", f"concord-referral-{resent.id}"}
    assert not [link for link in second["link"] if link["relation"] == "next"]
    forged = _get(client, f"/fhir/Task?patient={people.patient.id}&_cursor=referral.x", team)
    assert forged.status_code == 422 and "_cursor" in forged.text


def test_off_team_is_not_found_and_searches_are_empty(client, session, people, food_bank):
    concerns, declined, _ = _world(client, session, people, food_bank)
    food = concerns["food-insecurity"]
    pid = people.patient.id
    urls = (
        f"/fhir/Condition/concord-sdoh-{food.id}",
        f"/fhir/ServiceRequest/concord-referral-{declined.id}",
        f"/fhir/Task/concord-referral-{declined.id}",
    )
    for who in (people.outsider, people.other_patient_user, people.family):
        token = bearer(session, who)
        for url in urls:
            got = _get(client, url, token)
            assert got.status_code in (403, 404), (who.email, url, got.text)
            assert "Riverside" not in got.text and "worry" not in got.text
        for kind in ("Condition", "ServiceRequest", "Task"):
            for url in (f"/fhir/{kind}?patient={pid}", f"/fhir/{kind}"):
                got = _get(client, url, token)
                if got.status_code == 200:
                    ours = [
                        i for i in _ids(got) if i.startswith(("concord-sdoh-", "concord-referral-"))
                    ]
                    assert ours == [], (who.email, url)
    # A malformed or unknown id is the same answer.
    team = bearer(session, people.care_manager)
    for url in ("/fhir/Condition/concord-sdoh-nope", f"/fhir/Task/concord-referral-{food.id}"):
        assert _get(client, url, team).status_code == 404
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.outcome == "denied", AuditEvent.actor_id == people.outsider.id
        )
    ).all()
    assert denied


def test_the_disclosure_decision_still_decides(client, session, people, food_bank):
    """Read for payment, the team gets no social-needs record (the disclosure table permits
    billing only registration and mental-health data): not found, and left out of searches."""
    concerns, declined, _ = _world(client, session, people, food_bank)
    food = concerns["food-insecurity"]
    payment = {**bearer(session, people.care_manager), "X-Purpose-Of-Use": "HPAYMT"}
    assert _get(client, f"/fhir/Condition/concord-sdoh-{food.id}", payment).status_code == 404
    assert _get(client, f"/fhir/Task/concord-referral-{declined.id}", payment).status_code == 404
    found = _ids(_get(client, f"/fhir/ServiceRequest?patient={people.patient.id}", payment))
    assert not any(i.startswith("concord-referral-") for i in found)


def test_an_ehr_cannot_send_an_id_concord_keeps(client, session, people):
    token = client_token(session, people)
    for kind, ident in (("Condition", "concord-sdoh-1"), ("ServiceRequest", "concord-referral-2")):
        resource = condition("F32.1", "Patient/p1")
        if kind == "ServiceRequest":
            resource = {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": "Patient/p1"},
            }
        refused = send(
            client,
            bundle(put("Patient", "p1", patient(mrn="N-1")), put(kind, ident, resource)),
            token,
        )
        assert refused.status_code == 400, refused.text
        assert "request.url" in refused.text and "Concord" in refused.text
    # Any other id is the EHR's, as before (an official eCQM deck has referral-for-...).
    fine = send(client, bundle(put("Patient", "p1", patient()), put("Condition", "sdoh-1",
                condition("F32.1", "Patient/p1"))), token)  # fmt: skip
    assert fine.status_code == 200, fine.text


def test_the_capability_statement_says_so(client):
    statement = client.get("/fhir/metadata", headers=FHIR).json()
    kinds = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for kind, prefix in (("Condition", "concord-sdoh-"), ("ServiceRequest", "concord-referral-")):
        assert prefix in kinds[kind]["documentation"]
        assert {"patient", "category"} <= {p["name"] for p in kinds[kind]["searchParam"]}
    assert "concord-referral-" in kinds["Task"]["documentation"]

"""POST /fhir: an integration client imports an EHR's Bundles (issue 20)."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import func, select

from concord.accounts.models import User
from concord.accounts.tokens import create_client_token
from concord.audit.models import AuditEvent
from concord.ehr import service as ehr
from concord.ehr.models import EhrMatch, EhrResource
from concord.errors import PermissionDenied
from concord.measures import service as measures
from concord.measures.models import MeasureObservation, MeasureResponse
from concord.patients.models import Patient
from concord.safety.models import SafetyAlert
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for

FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
MRN = "https://concord-care.org/fhir/sid/mrn/test-health"
PAT = "urn:uuid:6b1f6e0c-2d0b-4b7e-9a53-1f0c2b9f0a11"


def client_token(session, people, scopes=("import", "quality"), name="ehr-feed"):
    token, _ = create_client_token(
        session, organization=people.org, name=name, scopes=list(scopes), clinic=people.north
    )
    commit(session)
    return {"Authorization": f"Bearer {token}"}


def patient(mrn="E-100", given="Rosa", family="Imported", birth="1970-03-04", ident="p1"):
    resource = {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "gender": "female",
        "birthDate": birth,
    }
    if mrn:
        resource["identifier"] = [{"system": MRN, "value": mrn}]
    return resource


def condition(code="F32.1", subject=PAT, onset="2026-01-10"):
    return {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}],
            "text": "Major depressive disorder, single episode, moderate",
        },
        "subject": {"reference": subject},
        "onsetDateTime": onset,
    }


def put(kind, ident, resource, full_url=None):
    entry = {
        "resource": {**resource, "id": ident},
        "request": {"method": "PUT", "url": f"{kind}/{ident}"},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def post(resource, full_url=None):
    entry = {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def bundle(*entries, kind="transaction"):
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def send(client, body, token):
    return client.post("/fhir", json=body, headers={**FHIR, **token})


def count(session, model=EhrResource):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def test_a_transaction_registers_the_patient_and_resolves_references(client, session, people):
    token = client_token(session, people)
    body = bundle(
        post(patient(), PAT),
        post(condition(), "urn:uuid:0d1e2f30-0000-4000-8000-000000000001"),
        put(
            "Encounter",
            "enc-1",
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "AMB",
                },
                "subject": {"reference": PAT},
                "period": {"start": "2026-01-10T09:00:00Z", "end": "2026-01-10T09:30:00Z"},
            },
        ),
    )
    response = send(client, body, token)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in answer["entry"]]
    assert statuses == ["201 Created"] * 3
    assert answer["entry"][2]["response"]["location"] == "Encounter/enc-1/_history/1"
    assert answer["entry"][2]["response"]["etag"] == 'W/"1"'
    registered = session.scalar(select(Patient).where(Patient.mrn == "E-100"))
    assert registered is not None and registered.family_name == "Imported"
    assert registered.organization_id == people.org.id
    rows = session.scalars(select(EhrResource).where(EhrResource.patient_id == registered.id)).all()
    assert {r.resource_type for r in rows} == {"Patient", "Condition", "Encounter"}
    pat_row = next(r for r in rows if r.resource_type == "Patient")
    cond = next(r for r in rows if r.resource_type == "Condition")
    # The urn:uuid reference now names the Patient by the id the server gave it.
    assert cond.resource["subject"]["reference"] == f"Patient/{pat_row.sender_id}"
    assert cond.category == "mental_health"
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "import")).all()
    assert len(events) == 4  # three entries and the Bundle
    assert {e.actor_role for e in events} == {"client"}


def test_an_invalid_entry_refuses_the_whole_transaction(client, session, people):
    token = client_token(session, people)
    before = (count(session), count(session, Patient))
    bad = condition(onset="yesterday")
    response = send(client, bundle(post(patient(), PAT), post(bad)), token)
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    expressions = [e for issue in outcome["issue"] for e in issue.get("expression", [])]
    assert "Bundle.entry[1].resource.onsetDateTime" in expressions
    assert (count(session), count(session, Patient)) == before


def test_a_reference_to_an_unknown_patient_is_named(client, session, people):
    token = client_token(session, people)
    response = send(client, bundle(post(condition(subject="Patient/nobody"))), token)
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[0].resource.subject"]
    assert "Patient/nobody is not known" in issue["diagnostics"]


def test_a_batch_answers_each_entry(client, session, people):
    token = client_token(session, people)
    body = bundle(
        put("Patient", "p1", patient()),
        put("Condition", "c1", condition(subject="Patient/p1")),
        put("Condition", "c2", condition(subject="Patient/p1", onset="nope")),
        kind="batch",
    )
    response = send(client, body, token)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in answer["entry"]]
    assert statuses == ["201 Created", "201 Created", "400 Bad Request"]
    issue = answer["entry"][2]["response"]["outcome"]["issue"][0]
    assert issue["expression"] == ["Bundle.entry[2].resource.onsetDateTime"]
    assert {r.sender_id for r in session.scalars(select(EhrResource))} == {"p1", "c1"}


def test_put_keeps_the_senders_ids_and_a_re_import_is_idempotent(client, session, people):
    token = client_token(session, people)
    body = bundle(
        put("Patient", "p1", patient()), put("Condition", "c1", condition("F32.1", "Patient/p1"))
    )
    first = send(client, body, token)
    assert first.status_code == 200, first.text
    rows, patients = count(session), count(session, Patient)
    again = send(client, copy.deepcopy(body), token)
    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK", "200 OK"]
    assert [e["response"]["etag"] for e in again.json()["entry"]] == ['W/"1"', 'W/"1"']
    assert (count(session), count(session, Patient)) == (rows, patients)
    changed = bundle(put("Condition", "c1", condition("F33.1", "Patient/p1")))
    third = send(client, changed, token)
    assert third.json()["entry"][0]["response"]["location"] == "Condition/c1/_history/2"
    row = session.scalar(select(EhrResource).where(EhrResource.sender_id == "c1"))
    assert row.version == 2 and row.resource["code"]["coding"][0]["code"] == "F33.1"


def test_a_patient_is_matched_by_mrn_not_name(client, session, people):
    token = client_token(session, people)
    # The persona Pat Ient has MRN N-1: the EHR sends another name for the same MRN.
    response = send(
        client,
        bundle(put("Patient", "p9", patient(mrn="N-1", given="Patricia", family="Ient-Smith"))),
        token,
    )
    assert response.status_code == 200, response.text
    row = session.scalar(select(EhrResource).where(EhrResource.sender_id == "p9"))
    assert row.patient_id == people.patient.id
    assert count(session, EhrMatch) == 0


def test_a_doubtful_match_waits_for_a_person(client, session, people):
    token = client_token(session, people)
    patients = count(session, Patient)
    same_person = patient(mrn="X-77", given="Pat", family="Ient", birth="1985-05-17")
    body = bundle(
        put("Patient", "p2", same_person), put("Condition", "c2", condition(subject="Patient/p2"))
    )
    assert send(client, body, token).status_code == 200
    assert count(session, Patient) == patients  # nobody registered, nobody linked
    held = session.scalars(select(EhrResource).where(EhrResource.patient_ref == "p2")).all()
    assert len(held) == 2 and all(r.patient_id is None for r in held)
    # Off the team: the match is not listed, and deciding it is a stranger's 404 (audited).
    outsider = bearer(session, people.outsider)
    assert client.get("/api/v1/ehr/matches", headers=outsider).json() == []
    match = session.scalar(select(EhrMatch))
    # The patient's page says a match waits (the team only), though nothing imported is theirs
    # yet: the count comes with the (here no) rows of their imported record.
    team_view = ehr.imported_record(
        session, access=acc_for(session, people.care_manager, people.patient)
    )
    assert (team_view.pending_matches, team_view.diagnoses) == (1, [])
    family_view = ehr.imported_record(
        session, access=acc_for(session, people.family, people.patient)
    )
    assert family_view.pending_matches == 0
    refused = client.post(
        f"/api/v1/ehr/matches/{match.id}", json={"decision": "same"}, headers=outsider
    )
    assert refused.status_code == 404
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.outcome == "denied", AuditEvent.object_type == "EhrMatch"
        )
    ).all()
    assert denied
    # On the team: listed, decided, and everything that came with it joins the record.
    cm = bearer(session, people.care_manager)
    listed = client.get("/api/v1/ehr/matches", headers=cm).json()
    assert [m["reason"] for m in listed] == ["mrn_differs"]
    decided = client.post(f"/api/v1/ehr/matches/{match.id}", json={"decision": "same"}, headers=cm)
    assert decided.status_code == 200, decided.text
    session.expire_all()
    assert all(
        r.patient_id == people.patient.id
        for r in session.scalars(select(EhrResource).where(EhrResource.patient_ref == "p2"))
    )
    again = client.post(f"/api/v1/ehr/matches/{match.id}", json={"decision": "same"}, headers=cm)
    assert again.status_code == 409


def test_a_different_patient_is_registered_when_a_person_says_so(client, session, people):
    token = client_token(session, people)
    send(
        client,
        bundle(
            put("Patient", "p3", patient(mrn=None, given="Pat", family="Ient", birth="1985-05-17"))
        ),
        token,
    )
    match = session.scalar(select(EhrMatch))
    assert match.reason == "mrn_missing"
    cm = bearer(session, people.care_manager)
    answer = client.post(
        f"/api/v1/ehr/matches/{match.id}", json={"decision": "different"}, headers=cm
    )
    assert answer.status_code == 200, answer.text
    row = session.scalar(select(EhrResource).where(EhrResource.sender_id == "p3"))
    session.refresh(row)
    assert row.patient_id not in (None, people.patient.id)


def test_only_a_client_token_with_the_import_scope_imports(client, session, people):
    body = bundle(put("Patient", "p1", patient()))
    for token in (bearer(session, people.care_manager), bearer(session, people.admin)):
        refused = send(client, body, token)
        assert refused.status_code == 403, refused.text
    quality_only = client_token(session, people, scopes=("quality",), name="quality-tool")
    assert send(client, body, quality_only).status_code == 403
    assert count(session) == 0
    denied = session.scalars(
        select(AuditEvent).where(AuditEvent.outcome == "denied", AuditEvent.object_type == "Bundle")
    ).all()
    assert len(denied) == 3


def test_the_care_team_reads_imported_data_and_others_do_not(client, session, people):
    token = client_token(session, people)
    body = bundle(
        put("Patient", "p1", patient(mrn="N-1", given="Pat", family="Ient", birth="1985-05-17")),
        put("Condition", "c1", condition(subject="Patient/p1")),
    )
    assert send(client, body, token).status_code == 200
    pid = people.patient.id
    cm = bearer(session, people.care_manager)
    found = client.get(f"/fhir/Condition?patient={pid}", headers={**FHIR, **cm}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["c1"]
    assert found["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    read = client.get("/fhir/Condition/c1", headers={**FHIR, **cm})
    assert read.status_code == 200 and read.json()["meta"]["tag"][0]["code"] == "imported"
    outsider = bearer(session, people.outsider)
    empty = client.get(f"/fhir/Condition?patient={pid}", headers={**FHIR, **outsider}).json()
    assert "entry" not in empty
    assert client.get("/fhir/Condition/c1", headers={**FHIR, **outsider}).status_code == 404
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.outcome == "denied", AuditEvent.actor_id == people.outsider.id
        )
    ).all()
    assert denied


def test_substance_use_diagnoses_are_their_own_category(client, session, people):
    token = client_token(session, people)
    body = bundle(
        put("Patient", "p1", patient()),
        put("Condition", "c1", condition("F32.1", "Patient/p1")),
        put("Condition", "c2", condition("F10.20", "Patient/p1")),
    )
    assert send(client, body, token).status_code == 200
    cats = {r.sender_id: r.category for r in session.scalars(select(EhrResource))}
    assert cats == {"p1": "general", "c1": "mental_health", "c2": "substance_use"}
    # The integration client reads for operations: never the substance-use record.
    client_user = session.scalar(select(EhrResource.source_id).where(EhrResource.sender_id == "p1"))
    me = session.get(User, client_user)
    got = dict(ehr.organization_patients(session, access=me, scopes=frozenset({"quality"})))
    ids = sorted(r["id"] for rows in got.values() for r in rows)
    assert ids == ["c1", "p1"]
    with pytest.raises(PermissionDenied):
        list(ehr.organization_patients(session, access=me, scopes=frozenset({"import"})))


def test_patient_resources_for_the_team(client, session, people):
    token = client_token(session, people)
    body = bundle(
        put("Patient", "p1", patient(mrn="N-1", given="Pat", family="Ient", birth="1985-05-17")),
        put("Condition", "c1", condition(subject="Patient/p1")),
        put(
            "Observation",
            "o1",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": "2026-02-01",
                "valueInteger": 31,
            },
        ),
    )
    assert send(client, body, token).status_code == 200
    got = ehr.patient_resources(
        session, access=people.care_manager, patient_id=people.patient.id, types=["Condition"]
    )
    assert [r["id"] for r in got] == ["c1"]
    shown = ehr.imported_record(
        session, access=acc_for(session, people.care_manager, people.patient)
    )
    assert [d.code for d in shown.diagnoses] == ["F32.1"]
    # Kept as sent (31 is outside the PHQ-9's 0-27): flagged, never re-scored.
    assert [(s.score, s.out_of_range) for s in shown.scores] == [(31.0, True)]


def test_the_patients_page_shows_what_the_ehr_sent(client, session, people, sign_in):
    token = client_token(session, people)
    body = bundle(
        put("Patient", "p1", patient(mrn="N-1", given="Pat", family="Ient", birth="1985-05-17")),
        put("Condition", "c1", condition(subject="Patient/p1")),
        put(
            "Observation",
            "o1",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": "2026-02-01",
                "valueInteger": 31,
            },
        ),
        put(
            "Observation",
            "o2",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": "2026-03-01",
                "valueInteger": 12,
            },
        ),
        put(
            "Encounter",
            "e1",
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"code": "AMB"},
                "type": [{"text": "Office visit"}],
                "subject": {"reference": "Patient/p1"},
                "period": {"start": "2026-02-01T09:00:00Z"},
            },
        ),
    )
    assert send(client, body, token).status_code == 200
    # A PHQ-9 answered in Concord, so the patient has a PHQ-9 chart.
    measures.record_response(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        instrument_code="PHQ-9",
        submission=measures.Submission(
            answers={**{str(i): 1 for i in range(1, 10)}, "difficulty": 1},
            mode=measures.Mode.in_person,
        ),
    )
    commit(session)
    sign_in(people.care_manager.email)
    page = client.get(f"/patients/{people.patient.id}")
    assert page.status_code == 200
    text = page.text
    assert "From the EHR" in text and "F32.1" in text
    assert "outside 0-27 as sent" in text and "31" in text
    assert "Office visit" in text
    # On the PHQ-9 chart's page: the EHR's totals in their own table, marked imported.
    measures_page = client.get(f"/patients/{people.patient.id}/measures").text
    assert "PHQ-9 from the EHR" in measures_page
    assert '"imported": [{"x": "Mar 1, 2026", "y": 12' in measures_page  # 31 is off the chart
    assert "PHQ-9 from the EHR" in text  # the overview's chart too


def test_an_idempotency_key_makes_a_repeat_create_nothing(client, session, people):
    token = client_token(session, people)
    body = bundle(post(patient(), PAT), post(condition()))
    headers = {**FHIR, **token, "Idempotency-Key": "feed-2026-12-07-001"}
    first = client.post("/fhir", json=body, headers=headers)
    rows = count(session)
    again = client.post("/fhir", json=body, headers=headers)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert count(session) == rows
    locations = [e["response"]["location"] for e in first.json()["entry"]]
    assert [e["response"]["location"] for e in again.json()["entry"]] == locations
    other = client.post("/fhir", json=bundle(post(patient(mrn="E-2"), PAT)), headers=headers)
    assert other.status_code == 409


def test_the_team_decides_a_match_on_its_page(client, session, people, sign_in):
    token = client_token(session, people)
    held = patient(mrn="X-5", given="Pat", family="Ient", birth="1985-05-17")
    assert send(client, bundle(put("Patient", "p5", held)), token).status_code == 200
    csrf = sign_in(people.care_manager.email)
    overview = client.get(f"/patients/{people.patient.id}").text
    assert "may be this patient" in overview and 'href="/ehr/matches"' in overview
    page = client.get("/ehr/matches")
    assert page.status_code == 200
    assert "Pat Ient" in page.text and "A different medical record number" in page.text
    match = session.scalar(select(EhrMatch))
    done = client.post(f"/ehr/matches/{match.id}", data={"decision": "same", "csrf_token": csrf})
    assert done.status_code == 303, done.text
    session.refresh(match)
    assert match.status == "same" and match.decided_by_id == people.care_manager.id
    assert "No patients are waiting" in client.get("/ehr/matches").text


def test_an_out_of_range_total_is_kept_as_sent_and_flagged_not_fixed(
    client, session, people, sign_in
):
    """A PHQ-9 total of 31 (the PHQ-9's range is 0-27) is a data error in the EHR: Concord keeps
    it exactly as sent, serves it as sent, flags it on the patient's page, and never scores it,
    clamps it, or turns it into a response of its own (no score, no alert)."""
    token = client_token(session, people)
    sent = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-02-01",
        "valueInteger": 31,
    }
    body = bundle(
        put("Patient", "p1", patient(mrn="N-1", given="Pat", family="Ient", birth="1985-05-17")),
        put("Observation", "o1", sent),
    )
    assert send(client, body, token).status_code == 200
    session.expire_all()
    row = session.scalar(select(EhrResource).where(EhrResource.sender_id == "o1"))
    assert row.resource == {**sent, "id": "o1"}  # stored byte for byte, 31 and all
    mine = {MeasureResponse: 0, MeasureObservation: 0, SafetyAlert: 0}
    for model in mine:
        mine[model] = session.scalar(
            select(func.count()).select_from(model).where(model.patient_id == people.patient.id)
        )
    assert mine == {MeasureResponse: 0, MeasureObservation: 0, SafetyAlert: 0}
    # Served as sent through FHIR, with its imported tag.
    served = client.get(
        "/fhir/Observation/o1", headers={**FHIR, **bearer(session, people.care_manager)}
    ).json()
    assert served["valueInteger"] == 31
    assert served["meta"]["tag"][-1]["code"] == "imported"
    # Flagged on the patient's page, beside the value as sent.
    sign_in(people.care_manager.email)
    page = client.get(f"/patients/{people.patient.id}").text
    section = page.split('id="ehr-h"', 1)[1].split("</section>", 1)[0]
    assert "<strong>31</strong>" in section
    assert "outside 0-27 as sent: check in the EHR" in section

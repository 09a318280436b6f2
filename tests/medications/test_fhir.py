"""FHIR MedicationRequest and MedicationStatement (issue 19): read, search by patient, create
from an EHR (the whole list checked on this door too), validated with fhir.resources, in the
CapabilityStatement, and labelled 42 CFR Part 2 where the record is."""

from __future__ import annotations

from sqlalchemy import select

from concord.actions import medications as act
from concord.actions import part2 as part2_actions
from concord.fhir.mapping import validate
from concord.medications.models import Medication, MedicationSource
from concord.medications.schemas import MedicationIn, ReportedIn
from concord.registry.service import Enrolment, enroll
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for

BUPRENORPHINE, SERTRALINE, CLONAZEPAM = "1819", "36437", "2598"
MOUD_BENZO = "moud-benzodiazepine-or-cns-depressant"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _list(session, people):
    team = acc_for(session, people.care_manager, people.patient)
    me = acc_for(session, people.patient_user, people.patient)
    bup = act.add(session, access=team, data=MedicationIn(rxcui=BUPRENORPHINE, dose="8 mg"))
    benzo = act.report_new(session, access=me, data=ReportedIn(rxcui=CLONAZEPAM))
    commit(session)
    return bup.medication, benzo.medication


def test_read_and_search_by_patient(client, session, people):
    bup, benzo = _list(session, people)
    team = bearer(session, people.care_manager)
    got = client.get(f"/fhir/MedicationRequest/{bup.id}", headers=team)
    assert got.status_code == 200, got.text
    resource = validate(got.json())
    assert resource["medicationCodeableConcept"]["coding"][0] == {
        "system": RXNORM,
        "code": BUPRENORPHINE,
        "display": "buprenorphine",
    }
    assert resource["requester"]["reference"] == f"Practitioner/{people.care_manager.id}"
    statement = client.get(f"/fhir/MedicationStatement/{benzo.id}", headers=team).json()
    assert statement["informationSource"]["reference"] == f"Patient/{people.patient.id}"
    # Each id answers as its own kind only.
    assert client.get(f"/fhir/MedicationStatement/{bup.id}", headers=team).status_code == 404
    found = client.get(f"/fhir/MedicationRequest?patient={people.patient.id}", headers=team)
    assert found.status_code == 200 and found.json()["total"] == 1
    stated = client.get(
        f"/fhir/MedicationStatement?patient={people.patient.id}&status=active", headers=team
    ).json()
    assert [e["resource"]["id"] for e in stated["entry"]] == [str(benzo.id)]
    assert client.get("/fhir/MedicationRequest", headers=team).status_code == 422
    # Not found for anyone outside the record.
    for user in (people.outsider, people.family):
        headers = bearer(session, user)
        assert client.get(f"/fhir/MedicationRequest/{bup.id}", headers=headers).status_code == 404
        empty = client.get(f"/fhir/MedicationRequest?patient={people.patient.id}", headers=headers)
        assert empty.json().get("entry") is None


def test_an_ehr_prescription_is_checked_with_the_whole_list(client, session, people):
    _list(session, people)
    team = bearer(session, people.care_manager)
    body = {
        "resourceType": "MedicationRequest",
        "identifier": [{"system": "urn:ehr:rx", "value": "rx-42"}],
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": SERTRALINE, "display": "sertraline"}]
        },
        "subject": {"reference": f"Patient/{people.patient.id}"},
        "authoredOn": "2026-11-20",
        "dosageInstruction": [{"text": "50 mg once a day"}],
    }
    made = client.post("/fhir/MedicationRequest", json=body, headers=team)
    assert made.status_code == 201, made.text
    assert made.json()["resourceType"] == "OperationOutcome"
    stored = session.scalar(select(Medication).where(Medication.rxcui == SERTRALINE))
    assert stored.source == MedicationSource.ehr and stored.dose == "50 mg once a day"
    assert made.headers["Location"].endswith(f"/fhir/MedicationRequest/{stored.id}")
    again = client.post("/fhir/MedicationRequest", json=body, headers=team)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    # A benzodiazepine from the EHR beside the buprenorphine: the finding in the answer.
    benzo = {
        **body,
        "identifier": [{"system": "urn:ehr:rx", "value": "rx-43"}],
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "596"}]},
    }
    known = client.post("/fhir/MedicationRequest", json=benzo, headers=team)
    assert known.status_code == 201
    assert MOUD_BENZO in known.text


def test_a_bad_create_names_the_field_and_stores_nothing(client, session, people):
    team = bearer(session, people.care_manager)
    base = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": {"text": "Melatonin"},
        "subject": {"reference": f"Patient/{people.patient.id}"},
    }
    for change, field in (
        ({"status": "draft"}, "status"),
        ({"subject": {"reference": "Group/1"}}, "subject"),
        ({"medicationCodeableConcept": {"coding": []}}, "medicationCodeableConcept"),
        ({"resourceType": "Observation"}, "resourceType"),
    ):
        got = client.post("/fhir/MedicationStatement", json={**base, **change}, headers=team)
        assert got.status_code in (400, 422), (change, got.text)
        assert field in got.text, (field, got.text)
    assert session.scalar(select(Medication)) is None
    ok = client.post(
        "/fhir/MedicationStatement",
        json=base,
        headers={**team, "Prefer": "return=representation"},
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["resourceType"] == "MedicationStatement"
    # The patient's own token may not import from an EHR; a stranger's patient is not found.
    mine = client.post(
        "/fhir/MedicationStatement", json=base, headers=bearer(session, people.patient_user)
    )
    assert mine.status_code == 404
    other = client.post(
        "/fhir/MedicationStatement", json=base, headers=bearer(session, people.outsider)
    )
    assert other.status_code == 404


def test_the_capability_statement_lists_both(client):
    statement = client.get("/fhir/metadata").json()
    kinds = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for kind in ("MedicationRequest", "MedicationStatement"):
        assert {"read", "search-type", "create"} <= {i["code"] for i in kinds[kind]["interaction"]}


def test_moud_carries_the_part2_labels(client, session, people):
    part2_actions.set_part2_program(session, people.admin, people.north.id, True)
    team_acc = acc_for(session, people.care_manager, people.patient)
    enroll(session, access=team_acc, data=Enrolment(program="co_occurring"))
    bup, _ = _list(session, people)
    got = client.get(
        f"/fhir/MedicationRequest/{bup.id}", headers=bearer(session, people.care_manager)
    )
    assert got.status_code == 200, got.text
    codes = {c["code"] for c in got.json()["meta"]["security"]}
    assert codes == {"42CFRPart2", "NORDSCLCD", "R"}

"""An EHR's MedicationRequest in a Bundle onto the medication list, as "Imported from the EHR",
checked by the interaction rules like any other (issue 20)."""

from __future__ import annotations

from sqlalchemy import select

from concord.ehr.models import EhrMatch
from concord.medications.models import Medication, MedicationFinding
from tests.careplans.test_api import bearer
from tests.ehr.test_import import FHIR, bundle, client_token, patient, put, send

BUPRENORPHINE, CLONAZEPAM = "1819", "2598"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
MOUD_BENZO = "moud-benzodiazepine-or-cns-depressant"


def order(rxcui, name, status="active", intent="order"):
    return {
        "resourceType": "MedicationRequest",
        "status": status,
        "intent": intent,
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": rxcui, "display": name}]
        },
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-10-01",
        "dosageInstruction": [{"text": "as directed"}],
    }


def the_patient():
    return put("Patient", "p1", patient(mrn="N-1", given="Pat", family="Ient", birth="1985-05-17"))


def meds(session):
    session.expire_all()
    return {m.rxcui: m for m in session.scalars(select(Medication))}


def findings(session):
    return {f.rule_id: f.resolved_at for f in session.scalars(select(MedicationFinding))}


def test_imported_orders_go_on_the_list_and_are_checked(client, session, people, sign_in):
    token = client_token(session, people)
    body = bundle(
        the_patient(),
        put("MedicationRequest", "m1", order(BUPRENORPHINE, "buprenorphine")),
        put("MedicationRequest", "m2", order(CLONAZEPAM, "clonazepam")),
        put("MedicationRequest", "m3", order("36437", "sertraline", intent="proposal")),
    )
    assert send(client, body, token).status_code == 200
    listed = meds(session)
    assert set(listed) == {BUPRENORPHINE, CLONAZEPAM}  # a proposal is not an order
    assert {m.source for m in listed.values()} == {"ehr"}
    assert all(m.patient_id == people.patient.id for m in listed.values())
    assert listed[CLONAZEPAM].dose == "as directed"
    # The interaction rules ran over the whole list.
    assert findings(session) == {MOUD_BENZO: None}
    # Served by /fhir/MedicationRequest and shown on the list page, marked imported.
    team = {**FHIR, **bearer(session, people.care_manager)}
    found = client.get(f"/fhir/MedicationRequest?patient={people.patient.id}", headers=team)
    assert found.json()["total"] == 2
    sign_in(people.care_manager.email)
    page = client.get(f"/patients/{people.patient.id}/medications").text
    assert "Imported from the EHR" in page and "clonazepam" in page
    # The same Bundle again changes nothing; the EHR stopping one stops it and the finding
    # resolves.
    assert send(client, body, token).status_code == 200
    assert {m.version for m in meds(session).values()} == {1}
    stopped = bundle(
        the_patient(), put("MedicationRequest", "m2", order(CLONAZEPAM, "clonazepam", "stopped"))
    )
    assert send(client, stopped, token).status_code == 200
    now = meds(session)
    assert now[CLONAZEPAM].status == "stopped" and now[CLONAZEPAM].version == 2
    assert now[CLONAZEPAM].status_reason == "stopped in the EHR"
    assert findings(session)[MOUD_BENZO] is not None


def test_a_refused_transaction_puts_nothing_on_the_list(client, session, people):
    token = client_token(session, people)
    bad = order(CLONAZEPAM, "clonazepam")
    bad["authoredOn"] = "not a date"
    body = bundle(
        the_patient(),
        put("MedicationRequest", "m1", order(BUPRENORPHINE, "buprenorphine")),
        put("MedicationRequest", "m2", bad),
    )
    assert send(client, body, token).status_code == 400
    assert meds(session) == {}
    # A held patient (a doubtful match) gets nothing on anyone's list.
    held = bundle(
        put("Patient", "p9", patient(mrn="X-9", given="Pat", family="Ient", birth="1985-05-17")),
        {
            "resource": {
                **order(BUPRENORPHINE, "buprenorphine"),
                "subject": {"reference": "Patient/p9"},
            },
            "request": {"method": "PUT", "url": "MedicationRequest/m9"},
        },
    )
    assert send(client, held, token).status_code == 200
    assert meds(session) == {}


def test_orders_of_a_held_patient_join_the_list_when_a_person_decides(client, session, people):
    token = client_token(session, people)
    held = bundle(
        put("Patient", "p9", patient(mrn="X-9", given="Pat", family="Ient", birth="1985-05-17")),
        {
            "resource": {
                **order(BUPRENORPHINE, "buprenorphine"),
                "subject": {"reference": "Patient/p9"},
            },
            "request": {"method": "PUT", "url": "MedicationRequest/m9"},
        },
    )
    assert send(client, held, token).status_code == 200
    assert meds(session) == {}
    match_id = session.scalar(select(EhrMatch.id))
    team = bearer(session, people.care_manager)
    decided = client.post(
        f"/api/v1/ehr/matches/{match_id}", json={"decision": "same"}, headers=team
    )
    assert decided.status_code == 200, decided.text
    listed = meds(session)
    assert set(listed) == {BUPRENORPHINE}
    assert listed[BUPRENORPHINE].patient_id == people.patient.id
    assert listed[BUPRENORPHINE].source == "ehr"

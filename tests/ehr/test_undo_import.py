"""Undoing one EHR import (issue 20): what it created is deleted and what it changed goes back,
by an administrator (page and JSON) or the integration client that sent it; refused, naming the
record and why, when anything was done since with what it brought; audited; never twice."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from concord.actions import registry as registry_actions
from concord.audit.models import AuditEvent, Outcome
from concord.ehr.models import EhrImport, EhrResource
from concord.medications.models import Medication
from concord.patients.models import Patient
from concord.registry import service as reg
from tests.careplans.test_api import bearer
from tests.conftest import commit, csrf_of
from tests.ehr.test_import import bundle, client_token, condition, patient, put, send
from tests.ehr.test_imported_medications import BUPRENORPHINE, order
from tests.factories import acc_for

OURS = patient(mrn="N-1", given="Pat", family="Ient", birth="1985-05-17")  # people.patient


def _import_id(response) -> str:
    assert response.status_code == 200, response.text
    ident = response.json()["identifier"]
    assert ident["system"] == "https://concord-care.org/fhir/sid/ehr-import"
    return ident["value"]


def _rows(session) -> dict[str, EhrResource]:
    session.expire_all()
    return {r.sender_id: r for r in session.scalars(select(EhrResource))}


def _undo(client, token, import_id, reason="Sent to the wrong clinic"):
    return client.post(
        f"/api/v1/ehr/imports/{import_id}/undo", json={"reason": reason}, headers=token
    )


def test_the_client_undoes_its_import_and_a_patient_it_registered(client, session, people):
    token = client_token(session, people)
    before = session.scalar(select(func.count()).select_from(Patient))
    first = _import_id(
        send(
            client,
            bundle(
                put("Patient", "new", patient(mrn="E-9", given="Nora", family="New")),
                put("Condition", "cn", condition("F32.1", "Patient/new")),
            ),
            token,
        )
    )
    assert session.scalar(select(func.count()).select_from(Patient)) == before + 1
    listed = client.get("/api/v1/ehr/imports", headers=token).json()
    assert [(i["id"], i["created"], i["changed"], i["patients_registered"]) for i in listed] == [
        (first, 2, 0, 1)
    ]
    done = _undo(client, token, first)
    assert done.status_code == 200, done.text
    assert done.json()["undone_at"] and done.json()["undo_reason"] == "Sent to the wrong clinic"
    assert _rows(session) == {}
    assert session.scalar(select(func.count()).select_from(Patient)) == before
    events = session.scalars(
        select(AuditEvent.object_type).where(
            AuditEvent.action == "undo", AuditEvent.outcome == Outcome.success
        )
    ).all()
    assert sorted(events) == ["Condition", "EhrImport", "Patient", "Patient"]
    # Never twice; a bad reason names the field and writes nothing.
    again = _undo(client, token, first)
    assert again.status_code == 409 and "already undone" in again.text
    assert _undo(client, token, first, reason="  ").status_code == 422


def test_changed_rows_go_back_and_only_in_the_reverse_order(client, session, people):
    token = client_token(session, people)
    first = _import_id(
        send(
            client,
            bundle(
                put("Patient", "p1", OURS), put("Condition", "c1", condition(subject="Patient/p1"))
            ),
            token,
        )
    )
    moved = condition(subject="Patient/p1", onset="2026-02-20")
    second = _import_id(
        send(client, bundle(put("Patient", "p1", OURS), put("Condition", "c1", moved)), token)
    )
    assert _rows(session)["c1"].resource["onsetDateTime"] == "2026-02-20"
    # The first cannot be undone while the second's change stands.
    refused = _undo(client, token, first)
    assert refused.status_code == 409
    assert "Condition/c1" in refused.text and "a later import changed it" in refused.text
    assert set(_rows(session)) == {"p1", "c1"}
    # The second goes back to what the first sent (a new version, so ETags move on).
    assert _undo(client, token, second).status_code == 200
    rows = _rows(session)
    assert rows["c1"].resource["onsetDateTime"] == "2026-01-10" and rows["c1"].version == 3
    assert rows["c1"].patient_id == people.patient.id
    # Then the first; the existing patient it was matched to by MRN stays.
    last = _undo(client, token, first)
    assert last.status_code == 200, last.text
    assert _rows(session) == {}
    assert session.get(Patient, people.patient.id) is not None


def test_a_diagnosis_made_an_episodes_qualifying_diagnosis_blocks_the_undo(client, session, people):
    token = client_token(session, people)
    first = _import_id(
        send(
            client,
            bundle(
                put("Patient", "p1", OURS), put("Condition", "c1", condition(subject="Patient/p1"))
            ),
            token,
        )
    )
    episode = registry_actions.enroll(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        data=reg.Enrolment(program="depression"),
    )
    commit(session)
    url = f"/api/v1/patients/{people.patient.id}/episodes/{episode.id}/diagnosis"
    cm = bearer(session, people.care_manager)
    chosen = client.post(url, json={"diagnosis": "c1", "version": episode.version}, headers=cm)
    assert chosen.status_code == 200, chosen.text
    refused = _undo(client, token, first)
    assert refused.status_code == 409
    assert "Condition/c1" in refused.text
    assert "qualifying diagnosis of an episode of care" in refused.text
    assert set(_rows(session)) == {"p1", "c1"}  # nothing undone
    assert session.get(EhrImport, uuid.UUID(first)).undone_at is None
    denied = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "undo", AuditEvent.outcome == Outcome.denied)
    ).all()
    assert denied


def test_an_imported_order_comes_off_the_list(client, session, people):
    token = client_token(session, people)
    first = _import_id(
        send(
            client,
            bundle(
                put("Patient", "p1", OURS),
                put("MedicationRequest", "m1", order(BUPRENORPHINE, "buprenorphine")),
            ),
            token,
        )
    )
    session.expire_all()
    med = session.scalar(select(Medication).where(Medication.rxcui == BUPRENORPHINE))
    assert med.status == "active"
    assert _undo(client, token, first).status_code == 200
    session.expire_all()
    med = session.scalar(select(Medication).where(Medication.rxcui == BUPRENORPHINE))
    assert med.status == "stopped"
    assert med.status_reason == "the import that brought it was undone"


def test_who_may_undo(client, session, people, sign_in):
    token = client_token(session, people)
    first = _import_id(
        send(
            client,
            bundle(
                put("Patient", "p1", OURS), put("Condition", "c1", condition(subject="Patient/p1"))
            ),
            token,
        )
    )
    # Another client of the organization, a clinician: not theirs to see or undo.
    other = client_token(session, people, name="lab-feed")
    assert _undo(client, other, first).status_code == 404
    assert client.get("/api/v1/ehr/imports", headers=other).json() == []
    cm = bearer(session, people.care_manager)
    assert _undo(client, cm, first).status_code == 404
    assert client.get("/api/v1/ehr/imports", headers=cm).status_code == 403
    assert set(_rows(session)) == {"p1", "c1"}
    # The administrator, on the page.
    sign_in(people.admin.email)
    page = client.get("/ehr/imports")
    assert page.status_code == 200 and f'data-import="{first}"' in page.text
    form = {"csrf_token": csrf_of(page.text), "reason": "Duplicate feed"}
    done = client.post(f"/ehr/imports/{first}/undo", data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/ehr/imports?done=undone"
    assert _rows(session) == {}
    listed = client.get("/ehr/imports?done=undone").text
    assert "Duplicate feed" in listed and "The import was undone." in listed


def test_a_registered_patient_with_records_of_their_own_blocks_the_undo(client, session, people):
    token = client_token(session, people)
    first = _import_id(
        send(
            client,
            bundle(
                put("Patient", "new", patient(mrn="E-9", given="Nora", family="New")),
                put("Condition", "cn", condition("F32.1", "Patient/new")),
            ),
            token,
        )
    )
    registered = session.scalar(select(Patient).where(Patient.mrn == "E-9"))
    # Someone joins the new patient's care team: a record made since, by a person.
    admin = bearer(session, people.admin)
    added = client.post(
        f"/api/v1/patients/{registered.id}/care-team/members",
        json={"user_id": str(people.care_manager.id), "role": "care_manager"},
        headers=admin,
    )
    assert added.status_code in (200, 201), added.text
    refused = _undo(client, token, first)
    assert refused.status_code == 409
    assert "Patient/E-9" in refused.text
    assert "someone was added to the patient's care team" in refused.text
    assert set(_rows(session)) == {"new", "cn"}


def test_the_imports_page_is_in_the_administrators_tabs(client, session, people, sign_in):
    sign_in(people.admin.email)
    users = client.get("/admin/users").text
    assert 'href="/ehr/imports"' in users
    page = client.get("/ehr/imports").text
    assert 'href="/ehr/imports" aria-current="page"' in page
    assert "Nothing was imported yet." in page

"""An EHR enrols and updates patients through FHIR (issue 21): POST /fhir/Patient and PUT
/fhir/Patient/[id], through the same registration rules as the page, conditional on the
MRN (If-None-Exist) and on the version (If-Match), audited; what Concord does not keep is
refused, never dropped."""

from __future__ import annotations

import copy

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from sqlalchemy import select

from concord.audit.models import AuditEvent
from concord.patients.models import Patient
from tests.careplans.test_api import bearer
from tests.conftest import commit

MRN_SYSTEM = "urn:concord:mrn:"


@pytest.fixture
def token(session, people):
    return bearer(session, people.care_manager)


@pytest.fixture
def system(client, session, people, token):
    """The MRN system this server gives its patients (read from one)."""
    read = client.get(f"/fhir/Patient/{people.patient.id}", headers=token).json()
    return read["identifier"][0]["system"]


def enrolment(system, mrn="EHR-100", **extra):
    return {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": mrn}],
        "name": [
            {"use": "official", "family": "Nguyen", "given": ["Lan"]},
            {"use": "usual", "given": ["Lanny"]},
        ],
        "gender": "female",
        "birthDate": "1979-08-30",
        "telecom": [{"system": "phone", "value": "555-0100"}],
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}}],
        **extra,
    }


def post(client, body, headers, **more):
    return client.post("/fhir/Patient", json=body, headers={**headers, **more})


def issue(response):
    return OperationOutcome.model_validate(response.json()).issue[0]


class TestCreate:
    def test_enrols_with_location_etag_and_audit(self, client, session, people, token, system):
        response = post(client, enrolment(system), token)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["meta"]["versionId"] == "1" and response.headers["ETag"] == 'W/"1"'
        assert response.headers["Location"].endswith(f"/fhir/Patient/{body['id']}/_history/1")
        stored = session.scalar(select(Patient).where(Patient.mrn == "EHR-100"))
        assert (stored.given_name, stored.preferred_name, stored.language) == ("Lan", "Lanny", "es")
        created = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "create",
                AuditEvent.object_type == "Patient",
                AuditEvent.patient_id == stored.id,
            )
        ).all()
        assert len(created) == 1 and created[0].actor_id == people.care_manager.id
        # The enrolling clinician leads the new care team, so reads and searches find it.
        found = client.get("/fhir/Patient?identifier=EHR-100", headers=token).json()
        assert found["total"] == 1

    def test_if_none_exist_returns_the_patient_already_enrolled(self, client, token, system):
        first = post(client, enrolment(system), token)
        again = post(
            client, enrolment(system), token, **{"If-None-Exist": f"identifier={system}|EHR-100"}
        )
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        other = post(
            client,
            enrolment(system, mrn="EHR-101"),
            token,
            **{"If-None-Exist": "identifier=EHR-101"},
        )
        assert other.status_code == 201
        bad = post(
            client, enrolment(system, mrn="EHR-102"), token, **{"If-None-Exist": "name=Nguyen"}
        )
        assert bad.status_code == 422 and "If-None-Exist" in issue(bad).diagnostics

    def test_the_same_mrn_without_the_condition_is_refused(self, client, token, system):
        assert post(client, enrolment(system), token).status_code == 201
        again = post(client, enrolment(system), token)
        assert again.status_code == 422 and "mrn" in issue(again).diagnostics

    def test_idempotency_key_replays_and_a_different_body_conflicts(
        self, client, session, token, system
    ):
        key = {"Idempotency-Key": "enrol-0001"}
        first = post(client, enrolment(system), token, **key)
        second = post(client, enrolment(system), token, **key)
        assert first.status_code == 201 and second.status_code == 200, (first.text, second.text)
        assert second.headers["Idempotent-Replayed"] == "true"
        assert second.json()["id"] == first.json()["id"]
        changed = post(client, enrolment(system, mrn="EHR-999"), token, **key)
        assert changed.status_code == 409
        commit(session)
        assert session.scalar(select(Patient).where(Patient.mrn == "EHR-999")) is None

    @pytest.mark.parametrize(
        ("change", "status", "field"),
        [
            ({"address": [{"city": "Springfield"}]}, 400, "address"),
            ({"identifier": [{"system": "urn:other", "value": "1"}]}, 400, "identifier"),
            ({"identifier": []}, 422, "identifier"),
            ({"birthDate": "1979"}, 422, "birthDate"),
            ({"birthDate": "2999-01-01"}, 422, "birth_date"),
            ({"gender": "robot"}, 422, "gender"),
            ({"name": [{"family": "Only"}]}, 422, "name"),
            ({"resourceType": "Person"}, 422, "resourceType"),
            ({"id": "chosen"}, 422, "id"),
        ],
    )
    def test_bad_input_names_the_field_and_writes_nothing(
        self, client, session, token, system, change, status, field
    ):
        body = {**enrolment(system, mrn="EHR-BAD"), **change}
        response = post(client, body, token)
        assert response.status_code == status, response.text
        assert field in issue(response).diagnostics
        commit(session)
        assert session.scalar(select(Patient).where(Patient.mrn == "EHR-BAD")) is None

    def test_who_may_enrol(self, client, session, people, system):
        for user in (people.patient_user, people.family):
            response = post(
                client, enrolment(system, mrn=f"EHR-{user.role}"), bearer(session, user)
            )
            assert response.status_code == 403, response.text
        assert post(client, enrolment(system), {}).status_code == 401


class TestUpdate:
    def put(self, client, body, headers, **more):
        return client.put(f"/fhir/Patient/{body['id']}", json=body, headers={**headers, **more})

    def test_update_with_if_match(self, client, session, people, token):
        read = client.get(f"/fhir/Patient/{people.patient.id}", headers=token)
        assert read.headers["ETag"] == 'W/"1"'
        body = copy.deepcopy(read.json())
        body["name"][0]["family"] = "Renamed"
        updated = self.put(client, body, token, **{"If-Match": read.headers["ETag"]})
        assert updated.status_code == 200, updated.text
        assert updated.json()["meta"]["versionId"] == "2" and updated.headers["ETag"] == 'W/"2"'
        stale = self.put(client, {**body, "gender": "male"}, token, **{"If-Match": 'W/"1"'})
        assert stale.status_code == 412 and issue(stale).code == "conflict"
        commit(session)
        assert session.get(Patient, people.patient.id).gender != "male"
        event = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "update", AuditEvent.object_type == "Patient"
            )
        ).one()
        assert event.detail["fields"] == ["family_name"]  # names, never the values

    def test_the_same_body_changes_nothing(self, client, people, token):
        read = client.get(f"/fhir/Patient/{people.patient.id}", headers=token).json()
        again = self.put(client, read, token)
        assert again.status_code == 200 and again.json()["meta"]["versionId"] == "1"

    def test_the_mrn_cannot_change_and_the_id_must_match(self, client, people, token):
        read = client.get(f"/fhir/Patient/{people.patient.id}", headers=token).json()
        changed = copy.deepcopy(read)
        changed["identifier"][0]["value"] = "NEW-1"
        assert self.put(client, changed, token).status_code == 422
        wrong = client.put(
            f"/fhir/Patient/{people.patient.id}", json={**read, "id": "x"}, headers=token
        )
        assert wrong.status_code == 422

    def test_off_team_is_not_found(self, client, session, people, token):
        outsider = bearer(session, people.outsider)
        read = client.get(f"/fhir/Patient/{people.patient.id}", headers=token).json()
        assert self.put(client, read, outsider).status_code == 404
        assert (
            client.put(
                "/fhir/Patient/nobody", json={**read, "id": "nobody"}, headers=token
            ).status_code
            == 404
        )

"""The EHR's Observations (e.g. its PHQ-9 totals) on /fhir/Observation, with their provenance,
behind the same access rules; and counted by the process measures (issue 20)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from concord.ehr.models import EhrResource
from tests.careplans.test_api import bearer
from tests.ehr.test_import import FHIR, bundle, client_token, patient, put, send
from tests.registry.conftest import TODAY, contact, enroll, phq9


def observation(value, on, code="44261-6"):
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": on,
        "valueInteger": value,
    }


def _import(client, session, people, *observations):
    token = client_token(session, people)
    body = bundle(
        put("Patient", "p1", patient(mrn="N-1", given="Pat", family="Ient", birth="1985-05-17")),
        *observations,
    )
    assert send(client, body, token).status_code == 200, send(client, body, token).text
    return token


def test_imported_observations_are_searched_and_read_with_their_source(client, session, people):
    _import(
        client,
        session,
        people,
        put("Observation", "o1", observation(16, "2026-03-02")),
        put("Observation", "o2", observation(9, "2026-06-02")),
    )
    phq9(session, people, 12)  # one score answered in Concord
    pid = people.patient.id
    cm = {**FHIR, **bearer(session, people.care_manager)}
    found = client.get(f"/fhir/Observation?patient={pid}", headers=cm).json()
    assert found["total"] == 3
    ids = [e["resource"]["id"] for e in found["entry"]]
    assert ids[1:] == ["o2", "o1"]  # Concord's own score first, then the EHR's, newest first
    imported = found["entry"][1]["resource"]
    assert imported["meta"]["tag"][-1]["code"] == "imported"
    source = session.scalar(select(EhrResource.source_id).where(EhrResource.sender_id == "o2"))
    assert imported["meta"]["source"] == f"urn:uuid:{source}"
    assert imported["subject"]["reference"] == f"Patient/{pid}"
    # Paged: Concord's scores, then the EHR's under their own cursor.
    first = client.get(f"/fhir/Observation?patient={pid}&_count=2", headers=cm).json()
    assert [e["resource"]["id"] for e in first["entry"]][1:] == ["o2"]
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = client.get("/fhir" + following.split("/fhir", 1)[1], headers=cm).json()
    assert [e["resource"]["id"] for e in second["entry"]] == ["o1"]
    assert not [link for link in second["link"] if link["relation"] == "next"]
    # By code, and read by the EHR's id.
    by_code = client.get(
        f"/fhir/Observation?patient={pid}&code=http://loinc.org|44261-6", headers=cm
    ).json()
    assert {"o1", "o2"} <= {e["resource"]["id"] for e in by_code["entry"]}
    read = client.get("/fhir/Observation/o1", headers=cm)
    assert read.status_code == 200 and read.json()["valueInteger"] == 16
    # Off the team: an empty search and not found.
    outsider = {**FHIR, **bearer(session, people.outsider)}
    empty = client.get(f"/fhir/Observation?patient={pid}", headers=outsider).json()
    assert not empty.get("entry")
    assert client.get("/fhir/Observation/o1", headers=outsider).status_code == 404
    assert client.get("/fhir/Observation?_count=1&_cursor=ehr.x", headers=cm).status_code == 422


def test_the_integration_client_reads_imported_observations(client, session, people):
    token = _import(
        client, session, people, put("Observation", "o1", observation(16, "2026-03-02"))
    )
    pid = people.patient.id
    found = client.get(f"/fhir/Observation?patient={pid}", headers={**FHIR, **token}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["o1"]
    assert client.get("/fhir/Observation/o1", headers={**FHIR, **token}).status_code == 200


def _process(client) -> dict:
    body = client.get("/api/v1/quality?start=2026-01-01&end=2026-12-31").json()
    return {m["measure"]: m["overall"] for m in body["process_measures"]}


def test_an_imported_phq9_counts_in_phq9_utilization(client, session, people, sign_in):
    enroll(session, people, started_on=TODAY - timedelta(days=20))
    contact(session, people, "initial_assessment", TODAY - timedelta(days=18))
    sign_in("cara@test.example.org")
    before = _process(client)["phq9_utilization"]
    assert (before["numerator"], before["performance_denominator"]) == (0, 1)
    on = (TODAY - timedelta(days=10)).isoformat()
    _import(
        client,
        session,
        people,
        put("Observation", "o1", observation(16, on)),
        put("Observation", "bad", observation(40, on)),
    )
    after = _process(client)["phq9_utilization"]
    assert (after["numerator"], after["performance_denominator"]) == (1, 1)


def test_an_out_of_range_imported_total_is_not_counted(client, session, people, sign_in):
    enroll(session, people, started_on=TODAY - timedelta(days=20))
    contact(session, people, "initial_assessment", TODAY - timedelta(days=18))
    on = (TODAY - timedelta(days=10)).isoformat()
    _import(client, session, people, put("Observation", "bad", observation(40, on)))
    sign_in("cara@test.example.org")
    found = _process(client)["phq9_utilization"]
    assert (found["numerator"], found["performance_denominator"]) == (0, 1)

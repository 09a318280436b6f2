"""fhirpy (a FHIR client EHR integrations use, not Concord's own) against a live Concord
server: its sort, include, elements and count, and its iteration through next links
(issue 21)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from concord.accounts.tokens import create_api_token
from concord.audit.service import set_context, write_pending
from concord.patients.service import NewPatient, register_patient
from tests.browser.conftest import live, module_clock, server_db  # noqa: F401
from tests.safety.conftest import phq9, respond

fhirpy = pytest.importorskip("fhirpy")


@pytest.fixture(scope="module")
def client(live: dict[str, Any]) -> Any:  # noqa: F811
    """A fhirpy client with the care manager's token, and three more patients on their team,
    each with a PHQ-9 (the patient already has none)."""
    people = live["people"]
    with live["factory"]() as session:
        set_context(session, channel="system")
        for given, family, born in (
            ("Zoe", "Adams", date(1970, 1, 2)),
            ("Yan", "Brown", date(2000, 6, 7)),
            ("Xia", "Clark", date(1985, 3, 4)),
        ):
            patient, _ = register_patient(
                session,
                by=session.merge(people.care_manager),
                organization=session.merge(people.org),
                data=NewPatient(
                    given_name=given,
                    family_name=family,
                    birth_date=born,
                    mrn=f"FP-{family}",
                    clinic_id=people.north.id,
                ),
            )
            session.flush()
            respond(
                session,
                people,
                "PHQ-9",
                phq9([1, 0, 1, 0, 1, 0, 0, 0, 0]),
                patient=patient,
                by=session.merge(people.care_manager),
            )
        token, _ = create_api_token(session, user=session.merge(people.care_manager), by=None)
        write_pending(session)
        session.commit()
    return fhirpy.SyncFHIRClient(f"{live['url']}/fhir", authorization=f"Bearer {token}")


def test_sort_and_iteration_through_next_links(client: Any) -> None:
    found = client.resources("Patient").sort("-birthdate").limit(2).fetch_all()
    births = [p["birthDate"] for p in found]
    assert len(found) == 4 and births == sorted(births, reverse=True)
    by_family = client.resources("Patient").sort("family", "given").fetch()
    families = [p["name"][0]["family"] for p in by_family]
    assert families[:3] == ["Adams", "Brown", "Clark"]


def test_search_by_name_and_birthdate(client: Any) -> None:
    found = client.resources("Patient").search(name="ya").fetch()
    assert [p["name"][0]["given"][0] for p in found] == ["Yan"]
    older = client.resources("Patient").search(birthdate__lt="1980").fetch()
    assert [p["name"][0]["family"] for p in older] == ["Adams"]


def test_include(client: Any) -> None:
    bundle = (
        client.resources("Observation")
        .search(code="http://loinc.org|44261-6")
        .include("Observation", "patient")
        .fetch_raw()
    )
    kinds = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]]
    assert kinds.count(("Observation", "match")) == 3
    assert kinds.count(("Patient", "include")) == 3


def test_elements(client: Any) -> None:
    found = client.resources("Patient").elements("birthDate").sort("birthdate").fetch()
    assert found and all(set(p) <= {"resourceType", "id", "meta", "birthDate"} for p in found)
    assert all({"code": "SUBSETTED"}.items() <= p["meta"]["tag"][0].items() for p in found)


def test_count(client: Any) -> None:
    assert client.resources("Patient").count() == 4
    assert client.resources("Patient").search(family="Clark").count() == 1
    assert client.resources("Observation").search(category="survey").count() == 3

"""Versions through FHIR (issue 21): vread by versionId, a care plan's _history from its
revisions (ADR 0003), and a Provenance for each revision Concord wrote."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import create_plan


@pytest.fixture
def token(session, people):
    return bearer(session, people.care_manager)


@pytest.fixture
def plan(session, people):
    plan = create_plan(session, people, goals=2, activate=True)
    commit(session)
    return plan


def get(client, path, headers):
    return client.get(f"/fhir/{path}", headers=headers)


def test_vread_serves_the_current_version_and_says_where_earlier_ones_are(
    client, people, plan, token
):
    current = get(client, f"CarePlan/{plan.id}", token)
    version = current.json()["meta"]["versionId"]
    assert current.headers["ETag"] == f'W/"{version}"' and int(version) > 1
    same = get(client, f"CarePlan/{plan.id}/_history/{version}", token)
    assert same.status_code == 200 and same.json() == current.json()
    older = get(client, f"CarePlan/{plan.id}/_history/1", token)
    assert older.status_code == 404 and "_history" in older.text
    patient = get(client, f"Patient/{people.patient.id}/_history/1", token)
    assert patient.status_code == 200 and patient.json()["meta"]["versionId"] == "1"


def test_vread_off_the_team_is_not_found(client, session, people, plan):
    outsider = bearer(session, people.outsider)
    assert get(client, f"CarePlan/{plan.id}/_history/1", outsider).status_code == 404
    assert get(client, f"Patient/{people.patient.id}/_history/1", outsider).status_code == 404


def test_plan_history_lists_every_revision_newest_first(client, plan, token):
    bundle = get(client, f"CarePlan/{plan.id}/_history", token).json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "history"
    etags = [e["response"]["etag"] for e in bundle["entry"]]
    assert etags == [f'W/"{n}"' for n in range(len(etags), 0, -1)] and len(etags) > 2
    assert "resource" in bundle["entry"][0] and "resource" not in bundle["entry"][-1]
    assert bundle["entry"][-1]["request"]["method"] == "POST"


def test_history_is_the_care_teams(client, session, people, plan):
    """As on the plan's history page: the patient reads the plan, not its history."""
    mine = bearer(session, people.patient_user)
    assert get(client, f"CarePlan/{plan.id}", mine).status_code == 200
    assert get(client, f"CarePlan/{plan.id}/_history", mine).status_code == 404


def test_history_of_other_types_is_refused_not_faked(client, people, token):
    refused = get(client, f"Patient/{people.patient.id}/_history", token)
    assert refused.status_code == 400
    assert OperationOutcome.model_validate(refused.json()).issue[0].code == "not-supported"


def test_provenance_for_each_revision(client, people, plan, token):
    bundle = get(
        client, f"CarePlan?patient={people.patient.id}&_revinclude=Provenance:target", token
    ).json()
    Bundle.model_validate(bundle)
    provenance = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"
    ]
    version = int(bundle["entry"][0]["resource"]["meta"]["versionId"])
    assert len(provenance) == version
    first = [p for p in provenance if p["id"].endswith("-r1")][0]
    assert first["target"] == [{"reference": f"CarePlan/{plan.id}/_history/1"}]
    assert first["agent"][0]["who"]["reference"] == f"Practitioner/{people.care_manager.id}"
    assert first["activity"]["coding"][0]["code"] == "CREATE"
    read = get(client, f"Provenance/{first['id']}", token)
    assert read.status_code == 200 and read.json() == first
    assert get(client, f"Provenance/{plan.id}-r999", token).status_code == 404


def test_provenance_is_not_included_for_the_patient(client, session, people, plan):
    mine = bearer(session, people.patient_user)
    bundle = get(client, "CarePlan?_revinclude=Provenance:target", mine).json()
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert kinds == {"CarePlan"}


class TestEverything:
    def test_the_whole_record_in_one_bundle(self, client, session, people, plan, token):
        from tests.safety.conftest import phq9, respond

        respond(session, people, "PHQ-9", phq9([1, 1, 0, 0, 0, 0, 0, 0, 0]))
        commit(session)
        response = get(client, f"Patient/{people.patient.id}/$everything", token)
        assert response.status_code == 200, response.text
        Bundle.model_validate(response.json())
        kinds = [e["resource"]["resourceType"] for e in response.json()["entry"]]
        assert kinds[0] == "Patient"
        assert {"CareTeam", "CarePlan", "Goal", "Observation", "QuestionnaireResponse"} <= set(
            kinds
        )
        assert kinds.count("Goal") == 2
        # Nothing of another patient.
        assert str(people.other_patient.id) not in response.text

    def test_type_and_count(self, client, people, plan, token):
        only = get(client, f"Patient/{people.patient.id}/$everything?_type=Goal&_count=1", token)
        entries = only.json()["entry"]
        assert [e["resource"]["resourceType"] for e in entries] == ["Goal", "OperationOutcome"]
        assert "Goal?patient=" in entries[1]["resource"]["issue"][0]["diagnostics"]

    def test_what_is_not_offered_is_refused(self, client, people, token):
        for param in ("start=2026-01-01", "_since=2026-01-01T00:00:00Z", "_type=Device"):
            response = get(client, f"Patient/{people.patient.id}/$everything?{param}", token)
            assert response.status_code == 400, param
            assert OperationOutcome.model_validate(response.json()).issue[0].code == (
                "not-supported"
            )

    def test_off_the_team_is_not_found(self, client, session, people):
        outsider = bearer(session, people.outsider)
        response = get(client, f"Patient/{people.patient.id}/$everything", outsider)
        assert response.status_code == 404

"""/fhir as a FHIR client uses it: every resource validates with fhir.resources, every error
is an OperationOutcome, and the same access rules hold."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.goal import Goal
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from sqlalchemy import func, select

from concord.audit.models import AuditEvent
from concord.careplans import service as plans
from concord.careplans.schemas import (
    BarrierIn,
    ConcernIn,
    ContingencyIn,
    InterventionIn,
    MilestoneIn,
    StrengthIn,
)
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for, create_plan

MODELS = {"Patient": Patient, "CareTeam": CareTeam, "CarePlan": CarePlan, "Goal": Goal}


@pytest.fixture
def plan(session, people):
    plan = create_plan(session, people, activate=True)
    a = acc_for(session, people.care_manager, people.patient)
    goal = plans.load_contents(session, plan).goals[0]
    plans.add_item(
        session,
        access=a,
        section="concerns",
        data=ConcernIn(description="Low mood", code_system="icd10", code="F32.1"),
    )
    plans.add_item(
        session,
        access=a,
        section="milestones",
        data=MilestoneIn(
            goal_id=goal.id,
            description="First walk",
            target_on=date(2026, 12, 1),
            reached_on=date(2026, 11, 20),
        ),
    )
    plans.add_item(
        session,
        access=a,
        section="interventions",
        data=InterventionIn(
            kind="psychotherapy",
            description="CBT",
            responsible_id=people.therapist.id,
            frequency="weekly",
            status="in_progress",
            goal_id=goal.id,
        ),
    )
    plans.add_item(session, access=a, section="strengths", data=StrengthIn(description="Kind"))
    plans.add_item(
        session,
        access=a,
        section="barriers",
        data=BarrierIn(kind="money", description="Bus fare", way_around="Pass"),
    )
    plans.add_item(
        session,
        access=a,
        section="contingencies",
        data=ContingencyIn(if_this="side effects", then_we="call the nurse"),
    )
    commit(session)
    return plan


@pytest.fixture
def token(session, people):
    return bearer(session, people.care_manager)


def fhir(client, path, headers):
    response = client.get(f"/fhir/{path}", headers=headers)
    assert response.headers["content-type"].startswith("application/fhir+json")
    return response


def test_metadata_is_a_valid_capability_statement(client):
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    statement = CapabilityStatement.model_validate(response.json())
    assert statement.fhirVersion == "4.0.1"
    offered = {r.type for r in statement.rest[0].resource}
    assert {"Patient", "CareTeam", "CarePlan", "Goal"} <= offered


@pytest.mark.parametrize("kind", ["Patient", "CareTeam", "CarePlan", "Goal"])
def test_search_by_patient_returns_valid_resources(client, people, plan, token, kind):
    param = "_id" if kind == "Patient" else "patient"
    response = fhir(client, f"{kind}?{param}={people.patient.id}", token)
    assert response.status_code == 200
    bundle = Bundle.model_validate(response.json())
    assert bundle.type == "searchset"
    assert len(bundle.entry) == 1
    resource = response.json()["entry"][0]["resource"]
    MODELS[kind].model_validate(resource)
    # And the same resource is readable by its id.
    read = fhir(client, f"{kind}/{resource['id']}", token)
    assert read.status_code == 200
    assert read.json() == resource


def test_the_care_plan_carries_the_whole_plan(client, people, plan, token):
    resource = fhir(client, f"CarePlan?patient=Patient/{people.patient.id}", token).json()["entry"][
        0
    ]["resource"]
    assert resource["status"] == "active" and resource["intent"] == "plan"
    assert resource["subject"] == {"reference": f"Patient/{people.patient.id}"}
    [condition] = resource["contained"]
    assert condition["code"]["coding"] == [
        {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F32.1"}
    ]
    assert resource["addresses"][0]["reference"] == "#concern1"
    details = [a["detail"] for a in resource["activity"]]
    assert {d["description"] for d in details} == {"CBT", "Walk ten minutes"}
    cbt = next(d for d in details if d["description"] == "CBT")
    assert cbt["status"] == "in-progress" and cbt["scheduledString"] == "weekly"
    notes = [n["text"] for n in resource["note"]]
    assert "Strength: Kind" in notes and "If side effects: call the nurse" in notes
    assert resource["meta"]["versionId"] == str(plan.revision_number)


def test_the_goal_carries_its_smart_parts_and_milestones(client, people, plan, token):
    goal = fhir(client, f"Goal?patient={people.patient.id}", token).json()["entry"][0]["resource"]
    assert goal["lifecycleStatus"] == "accepted"
    assert goal["description"]["text"] == "I want to feel better, part 1"
    assert goal["target"] == [
        {"measure": {"text": "PHQ-9 score"}, "detailString": "under 10", "dueDate": "2027-03-01"}
    ]
    assert goal["expressedBy"]["reference"] == f"Practitioner/{people.care_manager.id}"
    [milestone] = goal["extension"]
    assert {"url": "reachedDate", "valueDate": "2026-11-20"} in milestone["extension"]


def test_the_care_team_lists_members_and_the_lead(client, people, plan, token):
    team = fhir(client, f"CareTeam?patient={people.patient.id}", token).json()["entry"][0][
        "resource"
    ]
    members = {
        p["member"]["display"]: [r["coding"][0]["code"] for r in p["role"]]
        for p in team["participant"]
    }
    assert members["Cara Manager"] == ["care_manager", "lead"]
    assert members["Theo Therapist"] == ["therapist"]


def test_a_practitioner_reference_resolves(client, people, plan, token):
    response = fhir(client, f"Practitioner/{people.therapist.id}", token)
    assert response.status_code == 200 and response.json()["name"][0]["text"] == "Theo Therapist"


class TestAccess:
    def test_no_token_is_401_operation_outcome(self, client, people, plan):
        response = client.get(f"/fhir/Patient/{people.patient.id}")
        assert response.status_code == 401
        outcome = OperationOutcome.model_validate(response.json())
        assert outcome.issue[0].code == "login"

    def test_outside_the_team_a_read_is_not_found(self, client, session, people, plan):
        headers = bearer(session, people.outsider)
        for path in (f"Patient/{people.patient.id}", f"CarePlan/{plan.id}"):
            response = fhir(client, path, headers)
            assert response.status_code == 404
            assert OperationOutcome.model_validate(response.json()).issue[0].code == "not-found"
        for kind, real_id in (("CarePlan", plan.id), ("Patient", people.patient.id)):
            missing = fhir(client, f"{kind}/{uuid.uuid4()}", headers)
            assert missing.status_code == 404
            assert missing.json() == fhir(client, f"{kind}/{real_id}", headers).json()

    def test_outside_the_team_a_search_is_empty_and_audited(self, client, session, people, plan):
        headers = bearer(session, people.outsider)
        response = fhir(client, f"CarePlan?patient={people.patient.id}", headers)
        assert response.status_code == 200 and response.json().get("entry", []) == []
        denied = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.actor_id == people.outsider.id,
                AuditEvent.outcome == "denied",
                AuditEvent.patient_id == people.patient.id,
            )
        )
        assert denied == 1

    def test_a_search_without_a_patient_covers_only_the_callers_patients(
        self, client, session, people, plan
    ):
        create_plan(session, people, patient=people.other_patient, by=people.outsider)
        commit(session)
        mine = fhir(client, "CarePlan", bearer(session, people.care_manager)).json()
        theirs = fhir(client, "CarePlan", bearer(session, people.outsider)).json()
        assert [e["resource"]["subject"]["reference"] for e in mine["entry"]] == [
            f"Patient/{people.patient.id}"
        ]
        assert [e["resource"]["subject"]["reference"] for e in theirs["entry"]] == [
            f"Patient/{people.other_patient.id}"
        ]

    def test_a_patient_reads_their_own_record(self, client, session, people, plan):
        headers = bearer(session, people.patient_user)
        assert fhir(client, f"CarePlan/{plan.id}", headers).status_code == 200
        assert fhir(client, f"Patient/{people.other_patient.id}", headers).status_code == 404

    def test_an_administrator_reads_nothing(self, client, session, people, plan):
        headers = bearer(session, people.admin)
        assert fhir(client, f"Patient/{people.patient.id}", headers).status_code == 404
        assert fhir(client, "Patient", headers).json().get("entry", []) == []

    def test_each_read_is_audited(self, client, session, people, plan, token):
        fhir(client, f"CarePlan/{plan.id}", token)
        event = session.scalar(
            select(AuditEvent).where(
                AuditEvent.channel == "fhir",
                AuditEvent.object_type == "CarePlan",
                AuditEvent.action == "read",
            )
        )
        assert event.actor_id == people.care_manager.id
        assert event.patient_id == people.patient.id


class TestSearchParameters:
    def test_an_unknown_parameter_is_refused_not_ignored(self, client, people, plan, token):
        response = fhir(client, f"CarePlan?patient={people.patient.id}&intent=plan", token)
        assert response.status_code == 400
        issue = OperationOutcome.model_validate(response.json()).issue[0]
        assert "intent" in issue.diagnostics and issue.code == "not-supported"

    def test_status_filters(self, client, people, plan, token):
        active = fhir(client, f"CarePlan?patient={people.patient.id}&status=active", token)
        draft = fhir(client, f"CarePlan?patient={people.patient.id}&status=draft", token)
        assert len(active.json()["entry"]) == 1 and draft.json().get("entry", []) == []
        goals = fhir(client, f"Goal?patient={people.patient.id}&lifecycle-status=proposed", token)
        assert goals.json().get("entry", []) == []

    def test_paging_with_count_and_next(self, client, session, people, token):
        create_plan(session, people, goals=5)
        commit(session)
        first = fhir(client, f"Goal?patient={people.patient.id}&_count=2", token).json()
        assert len(first["entry"]) == 2
        seen = [e["resource"]["id"] for e in first["entry"]]
        next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
        while next_url:
            page = client.get(next_url.replace("http://testserver", ""), headers=token).json()
            seen += [e["resource"]["id"] for e in page.get("entry", [])]
            next_url = next(
                (link["url"] for link in page["link"] if link["relation"] == "next"), None
            )
        assert len(seen) == len(set(seen)) == 5

    def test_search_by_identifier(self, client, people, plan, token):
        response = fhir(client, "Patient?identifier=N-1", token).json()
        assert [e["resource"]["id"] for e in response["entry"]] == [str(people.patient.id)]

    def test_post_search_keeps_identifiers_out_of_the_url(self, client, people, plan, token):
        response = client.post("/fhir/Patient/_search", data={"identifier": "N-1"}, headers=token)
        assert response.status_code == 200
        assert len(response.json()["entry"]) == 1

    @pytest.mark.parametrize("value", ["-1", "abc", "1.5"])
    def test_a_bad_count_is_refused(self, client, people, token, value):
        assert fhir(client, f"Goal?_count={value}", token).status_code == 422

    def test_count_zero_is_the_total_alone(self, client, people, plan, token):
        """R4: _count=0 returns no resources (fhirpy's count() sends it)."""
        bundle = fhir(client, "Goal?_count=0", token).json()
        assert bundle["total"] == 1 and "entry" not in bundle

    def test_writing_is_not_offered(self, client, people, plan, token):
        response = client.post("/fhir/CarePlan", json={"resourceType": "CarePlan"}, headers=token)
        assert response.status_code == 405
        OperationOutcome.model_validate(response.json())

    def test_an_unknown_resource_type_is_not_found(self, client, token):
        response = fhir(client, "Medication", token)
        assert response.status_code == 404
        OperationOutcome.model_validate(response.json())

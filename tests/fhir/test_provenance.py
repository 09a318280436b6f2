"""Provenance for what a person wrote beyond care plans (issue 21): Goals, the Observations
scored from a check-in, MedicationRequests and MedicationStatements, each made by the one
function (mapping.provenance), by `_revinclude=Provenance:target` and read by id through its
target's access decision."""

from __future__ import annotations

from fhir.resources.R4B.bundle import Bundle

from concord.fhir.mapping import validate
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import create_plan
from tests.medications.test_fhir import _list
from tests.safety.conftest import phq9, respond

PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def _search(client, headers, query):
    got = client.get(f"/fhir/{query}", headers=headers)
    assert got.status_code == 200, got.text
    bundle = got.json()
    Bundle.model_validate(bundle)
    found = [e["resource"] for e in bundle.get("entry", [])]
    return (
        [r for r in found if r["resourceType"] != "Provenance"],
        {r["target"][0]["reference"]: r for r in found if r["resourceType"] == "Provenance"},
    )


def _agents(provenance):
    return [
        (a["type"]["coding"][0]["code"], a["who"].get("reference")) for a in provenance["agent"]
    ]


def test_goals_carry_their_last_writer(client, session, people):
    create_plan(session, people, goals=2, activate=True)
    commit(session)
    team = bearer(session, people.care_manager)
    goals, provenance = _search(
        client, team, f"Goal?patient={people.patient.id}&_revinclude=Provenance:target"
    )
    assert len(goals) == 2 and len(provenance) == 2
    for goal in goals:
        made = provenance[f"Goal/{goal['id']}/_history/{goal['meta']['versionId']}"]
        validate(made)
        assert made["id"] == f"goal-{goal['id']}"
        assert _agents(made) == [("author", f"Practitioner/{people.care_manager.id}")]
        assert made["agent"][0]["type"]["coding"][0]["system"] == PARTICIPANT
        read = client.get(f"/fhir/Provenance/{made['id']}", headers=team)
        assert read.status_code == 200 and read.json() == made
    # Not the caller's goal: its Provenance is not found either (and the try is audited as
    # the read of the goal would be).
    outsider = bearer(session, people.outsider)
    assert (
        client.get(f"/fhir/Provenance/goal-{goals[0]['id']}", headers=outsider).status_code == 404
    )
    # Without _revinclude, none.
    _, none = _search(client, team, f"Goal?patient={people.patient.id}")
    assert none == {}


def test_a_scored_observation_names_who_entered_and_who_answered(client, session, people):
    respond(session, people, "PHQ-9", phq9([1, 1, 0, 0, 0, 0, 0, 0, 0]))
    commit(session)
    team = bearer(session, people.care_manager)
    observations, provenance = _search(
        client, team, f"Observation?patient={people.patient.id}&_revinclude=Provenance:target"
    )
    assert observations
    made = provenance[f"Observation/{observations[0]['id']}"]
    validate(made)
    # Entered by the care manager in clinic; the patient answered.
    assert _agents(made) == [
        ("enterer", f"Practitioner/{people.care_manager.id}"),
        ("informant", f"Patient/{people.patient.id}"),
    ]
    assert made["entity"] == [{"role": "source", "what": observations[0]["derivedFrom"][0]}]
    assert made["activity"]["coding"][0]["code"] == "CREATE"
    got = client.get(f"/fhir/Provenance/obs-{observations[0]['id']}", headers=team)
    assert got.status_code == 200 and got.json() == made


def test_medications_name_the_clinician_or_the_patient(client, session, people):
    prescribed, reported = _list(session, people)
    team = bearer(session, people.care_manager)
    _, requests = _search(
        client,
        team,
        f"MedicationRequest?patient={people.patient.id}&_revinclude=Provenance:target",
    )
    made = requests[f"MedicationRequest/{prescribed.id}"]
    validate(made)
    assert made["id"] == f"medreq-{prescribed.id}"
    assert _agents(made) == [("author", f"Practitioner/{people.care_manager.id}")]
    _, statements = _search(
        client,
        team,
        f"MedicationStatement?patient={people.patient.id}&_revinclude=Provenance:target",
    )
    stated = statements[f"MedicationStatement/{reported.id}"]
    assert _agents(stated) == [("author", f"Patient/{people.patient.id}")]
    # A Provenance id of the other kind, or of nothing, is not found.
    assert client.get(f"/fhir/Provenance/medstmt-{prescribed.id}", headers=team).status_code == 404
    assert client.get(f"/fhir/Provenance/medreq-{reported.id}", headers=team).status_code == 404
    assert client.get("/fhir/Provenance/goal-nothing", headers=team).status_code == 404


def test_a_smart_token_needs_provenance_in_its_scopes(client, session, people, sign_in):
    from tests.smart.test_smart import FHIR, _code, _pkce, _register, _token

    create_plan(session, people, goals=1, activate=True)
    commit(session)
    app, _ = _register(session, people)
    sign_in(people.care_manager.email)

    def token(scopes):
        verifier, challenge = _pkce()
        code, _ = _code(client, app, scopes, challenge)
        answer = _token(client, app, code, verifier).json()
        return {"Authorization": f"Bearer {answer['access_token']}", **FHIR}

    query = f"/fhir/Goal?patient={people.patient.id}&_revinclude=Provenance:target"
    goals_only = token("user/Goal.rs")
    refused = client.get(query, headers=goals_only)
    assert refused.status_code == 403 and "insufficient_scope" in refused.text
    assert (
        client.get(f"/fhir/Goal?patient={people.patient.id}", headers=goals_only).status_code == 200
    )
    both = token("user/Goal.rs user/Provenance.rs")
    kinds = [e["resource"]["resourceType"] for e in client.get(query, headers=both).json()["entry"]]
    assert kinds == ["Goal", "Provenance"]
    # A Provenance read by id needs its target's scope as well.
    goal_id = client.get(query, headers=both).json()["entry"][0]["resource"]["id"]
    provenance_only = token("user/Provenance.rs")
    answer = client.get(f"/fhir/Provenance/goal-{goal_id}", headers=provenance_only)
    assert answer.status_code == 403
    assert client.get(f"/fhir/Provenance/goal-{goal_id}", headers=both).status_code == 200

"""Safety alerts as FHIR Tasks and risk status as Flags, searchable by patient, for the care
team only."""

from __future__ import annotations

from datetime import timedelta

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.task import Task

from concord.safety.alerts import Closing, close
from concord.safety.risk import current_risk
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for
from tests.fhir.test_fhir_measures import ehr_response, post
from tests.safety.conftest import asq, respond

FHIR = {"Accept": "application/fhir+json"}


def entries(response):
    assert response.status_code == 200, response.text
    bundle = Bundle.model_validate(response.json())
    return [e.resource for e in bundle.entry or []]


def test_an_alert_raised_from_outside_is_a_task_with_owner_deadline_and_focus(
    client, session, people, clock
):
    token = bearer(session, people.care_manager)
    created = post(client, ehr_response(people.patient.id, [0, 0, 0, 0, 0, 0, 0, 0, 3]), token)
    response_id = created.json()["id"]
    (task,) = entries(client.get(f"/fhir/Task?patient={people.patient.id}", headers=token))
    assert isinstance(task, Task)
    assert (task.status, task.intent, task.priority) == ("requested", "order", "asap")
    assert task.owner.reference == f"Practitioner/{people.care_manager.id}"
    assert task.focus.reference == f"QuestionnaireResponse/{response_id}"
    assert task.for_fhir.reference == f"Patient/{people.patient.id}"
    deadline = task.restriction.period.end
    assert deadline.isoformat().startswith(
        (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    )
    assert task.code.coding[0].code == "phq9-item9-half-the-days-or-more"
    read = client.get(f"/fhir/Task/{task.id}", headers=token)
    assert read.status_code == 200 and read.json()["id"] == task.id


def test_a_closed_alert_is_a_completed_task_with_its_outcome(client, session, people):
    alert = respond(session, people, "ASQ", asq(2)).alert
    close(
        session,
        access=acc_for(session, people.therapist, people.patient),
        alert_id=alert.id,
        closing=Closing(outcome="assessed", risk_after="moderate", note="BSSA done."),
    )
    commit(session)
    token = bearer(session, people.therapist)
    task = Task.model_validate(client.get(f"/fhir/Task/{alert.id}", headers=token).json())
    assert task.status == "completed" and task.restriction is None
    assert task.output[0].valueCodeableConcept.coding[0].code == "assessed"
    assert task.output[1].valueCodeableConcept.coding[0].code == "moderate"
    assert task.note[0].text == "BSSA done."
    open_tasks = entries(
        client.get(f"/fhir/Task?patient={people.patient.id}&status=requested", headers=token)
    )
    assert open_tasks == []
    refused = client.get(f"/fhir/Task?patient={people.patient.id}&status=nope", headers=token)
    assert refused.status_code == 422 and "status" in refused.text


def test_the_risk_status_is_a_flag_current_and_past(client, session, people, clock):
    alert = respond(session, people, "ASQ", asq(2)).alert  # urgent
    commit(session)
    clock.advance(hours=2)
    close(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        alert_id=alert.id,
        closing=Closing(outcome="assessed", risk_after="moderate", note="Seen."),
    )
    commit(session)
    token = bearer(session, people.care_manager)
    flags = entries(client.get(f"/fhir/Flag?patient={people.patient.id}", headers=token))
    assert all(isinstance(f, Flag) for f in flags)
    assert [(f.status, f.code.coding[0].code) for f in flags] == [
        ("active", "moderate"),
        ("inactive", "urgent"),
    ]
    assert flags[0].category[0].coding[0].code == "safety"
    assert flags[1].period.end == flags[0].period.start
    active = entries(
        client.get(f"/fhir/Flag?patient={people.patient.id}&status=active", headers=token)
    )
    assert [f.id for f in active] == [flags[0].id]
    assert client.get(f"/fhir/Flag/{flags[1].id}", headers=token).status_code == 200
    assert client.get("/fhir/Flag", headers=token).status_code == 422  # patient is required


def test_nobody_off_the_team_sees_tasks_or_flags(client, session, people):
    alert = respond(session, people, "ASQ", asq(2)).alert
    commit(session)
    flag_id = current_risk(session, people.patient.id).id
    for user in (people.outsider, people.patient_user, people.admin):
        token = bearer(session, user)
        assert entries(client.get(f"/fhir/Task?patient={people.patient.id}", headers=token)) == []
        assert entries(client.get("/fhir/Task", headers=token)) == []
        assert entries(client.get(f"/fhir/Flag?patient={people.patient.id}", headers=token)) == []
        assert client.get(f"/fhir/Task/{alert.id}", headers=token).status_code == 404
        assert client.get(f"/fhir/Flag/{flag_id}", headers=token).status_code == 404


def test_the_capability_statement_lists_task_and_flag(client):
    kinds = {r["type"] for r in client.get("/fhir/metadata").json()["rest"][0]["resource"]}
    assert {"Task", "Flag"} <= kinds


def test_registry_tasks_are_tasks_too(client, session, people):
    from concord.registry import service as reg
    from concord.registry.jobs import sync_all_tasks

    reg.enroll(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        data=reg.Enrolment(program="depression"),
    )
    sync_all_tasks(session)
    commit(session)
    token = bearer(session, people.care_manager)
    search = f"/fhir/Task?patient={people.patient.id}&status=ready"
    tasks = entries(client.get(search, headers=token))
    assert [t.code.text for t in tasks] == ["Do the initial assessment"]
    (task,) = tasks
    assert task.owner.reference == f"Practitioner/{people.care_manager.id}"
    assert task.code.coding[0].code == "flag" and task.priority == "urgent"
    assert client.get(f"/fhir/Task/{task.id}", headers=token).json()["status"] == "ready"
    outsider = bearer(session, people.outsider)
    assert client.get(f"/fhir/Task/{task.id}", headers=outsider).status_code == 404
    assert entries(client.get("/fhir/Task", headers=outsider)) == []

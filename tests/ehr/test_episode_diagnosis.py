"""An imported EHR diagnosis becomes an episode's qualifying diagnosis (issue 20): through the
registry action, from the page and the JSON API, shown on the patient's pages."""

from __future__ import annotations

from sqlalchemy import select

from concord.actions import registry as registry_actions
from concord.audit.models import AuditEvent
from concord.ehr.models import EhrResource
from concord.registry import service as reg
from concord.registry.models import Episode
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.ehr.test_import import bundle, client_token, condition, patient, put, send
from tests.factories import acc_for


def _setup(client, session, people, program="depression"):
    token = client_token(session, people)
    body = bundle(
        put("Patient", "p1", patient(mrn="N-1", given="Pat", family="Ient", birth="1985-05-17")),
        put("Condition", "c1", condition("F32.1", "Patient/p1")),
        put("Condition", "c2", condition("F10.20", "Patient/p1")),
    )
    assert send(client, body, token).status_code == 200
    episode = registry_actions.enroll(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        data=reg.Enrolment(program=program),
    )
    commit(session)
    refs = {r.sender_id: str(r.id) for r in session.scalars(select(EhrResource))}
    return episode, refs


def test_the_api_sets_an_imported_diagnosis_on_the_episode(client, session, people):
    episode, refs = _setup(client, session, people)
    url = f"/api/v1/patients/{people.patient.id}/episodes/{episode.id}/diagnosis"
    cm = bearer(session, people.care_manager)
    # By the FHIR id the EHR gave it (GET /fhir/Condition/c1).
    done = client.post(url, json={"diagnosis": "c1", "version": episode.version}, headers=cm)
    assert done.status_code == 200, done.text
    got = done.json()["qualifying_diagnosis"]
    assert got["code"] == "F32.1" and got["source"] == "ehr"
    assert got["imported_id"] == refs["c1"]
    assert got["set_by_id"] == str(people.care_manager.id)
    listed = client.get(f"/api/v1/patients/{people.patient.id}/episodes", headers=cm).json()
    assert listed[0]["qualifying_diagnosis"]["code"] == "F32.1"
    assert session.scalar(
        select(AuditEvent).where(
            AuditEvent.object_type == "Episode", AuditEvent.object_id == str(episode.id)
        )
    )
    # A stale version is a conflict; nothing changes.
    stale = client.post(url, json={"diagnosis": "c1", "version": episode.version}, headers=cm)
    assert stale.status_code == 409


def test_bad_choices_are_refused_naming_the_field(client, session, people):
    episode, refs = _setup(client, session, people)
    url = f"/api/v1/patients/{people.patient.id}/episodes/{episode.id}/diagnosis"
    cm = bearer(session, people.care_manager)
    unknown = client.post(url, json={"diagnosis": "nope"}, headers=cm)
    assert unknown.status_code == 422 and "diagnosis" in unknown.text
    # A substance-use diagnosis does not qualify a depression episode (42 CFR Part 2 records
    # stay with a Part 2 program's episode).
    sud = client.post(url, json={"diagnosis": refs["c2"]}, headers=cm)
    assert sud.status_code == 422 and "substance" in sud.text
    session.expire_all()
    assert session.get(Episode, episode.id).diagnosis_code is None
    # Someone off the team: not found, and nothing written.
    outsider = bearer(session, people.outsider)
    assert client.post(url, json={"diagnosis": "c1"}, headers=outsider).status_code == 404
    session.expire_all()
    assert session.get(Episode, episode.id).diagnosis_code is None


def test_a_substance_use_episode_takes_a_substance_use_diagnosis(client, session, people):
    episode, refs = _setup(client, session, people, program="substance_use")
    url = f"/api/v1/patients/{people.patient.id}/episodes/{episode.id}/diagnosis"
    cm = bearer(session, people.care_manager)
    done = client.post(url, json={"diagnosis": "c2"}, headers=cm)
    assert done.status_code == 200, done.text
    assert done.json()["qualifying_diagnosis"]["code"] == "F10.20"


def test_the_page_chooses_it_and_the_patient_pages_show_it(client, session, people, sign_in):
    episode, refs = _setup(client, session, people)
    sign_in(people.care_manager.email)
    page = client.get(f"/patients/{people.patient.id}/registry")
    assert "Choose the qualifying diagnosis" in page.text and refs["c1"] in page.text
    form = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    sent = client.post(
        f"/patients/{people.patient.id}/registry/episodes/{episode.id}/diagnosis",
        data={"csrf_token": form, "diagnosis": refs["c1"], "version": str(episode.version)},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    page = client.get(sent.headers["location"]).text
    assert "Qualifying diagnosis set." in page and "F32.1" in page and "from the EHR" in page
    overview = client.get(f"/patients/{people.patient.id}").text
    assert "qualifying diagnosis of the episode of care" in overview
    # The same form with an unknown diagnosis: the page again, the field named.
    refused = client.post(
        f"/patients/{people.patient.id}/registry/episodes/{episode.id}/diagnosis",
        data={"csrf_token": form, "diagnosis": "x"},
        follow_redirects=False,
    )
    assert refused.status_code == 422

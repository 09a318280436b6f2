"""Registering patients, the care team and family members through /api/v1: the same schemas,
rules and audit as the pages; a denied caller writes nothing; a retry is not recorded twice."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from concord.audit.models import AuditEvent
from concord.patients.models import CareTeamMember, Patient, RelatedPerson
from tests.careplans.test_api import bearer


def _count(session, model, *where):
    return session.scalar(select(func.count()).select_from(model).where(*where))


def _key():
    return {"Idempotency-Key": uuid.uuid4().hex}


def _denied(session, user):
    return _count(
        session, AuditEvent, AuditEvent.actor_id == user.id, AuditEvent.outcome == "denied"
    )


NEW = {
    "given_name": "Ana",
    "family_name": "Nueva",
    "birth_date": "1991-03-04",
    "mrn": "N-900",
}


def test_a_clinician_registers_a_patient_once_and_reads_them_back(client, session, people):
    cm = bearer(session, people.care_manager)
    body = {**NEW, "clinic_id": str(people.north.id), "portal_email": "ana@example.org"}
    key = _key()
    made = client.post("/api/v1/patients", json=body, headers={**cm, **key})
    assert made.status_code == 201, made.text
    assert made.json()["portal_password"]
    again = client.post("/api/v1/patients", json=body, headers={**cm, **key})
    assert again.status_code == 200 and again.json()["id"] == made.json()["id"]
    assert "portal_password" not in again.json()
    assert _count(session, Patient, Patient.mrn == "N-900") == 1
    read = client.get(f"/api/v1/patients/{made.json()['id']}", headers=cm)
    assert read.status_code == 200 and read.json()["mrn"] == "N-900"
    # The registering clinician leads the new team, as on the page.
    team = client.get(f"/api/v1/patients/{made.json()['id']}/care-team", headers=cm).json()
    assert [m["lead"] for m in team["members"]] == [True]


def test_registering_needs_a_clinician_and_names_the_bad_field(client, session, people):
    body = {**NEW, "clinic_id": str(people.north.id)}
    for user in (people.patient_user, people.family):
        denials = _denied(session, user)
        refused = client.post("/api/v1/patients", json=body, headers=bearer(session, user))
        assert refused.status_code in (403, 404), refused.text
        assert _denied(session, user) > denials
    assert _count(session, Patient, Patient.mrn == "N-900") == 0
    cm = bearer(session, people.care_manager)
    bad = client.post("/api/v1/patients", json={**body, "birth_date": "1850-01-01"}, headers=cm)
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "birth_date"
    assert _count(session, Patient, Patient.mrn == "N-900") == 0


def test_the_lead_adds_a_member_makes_them_lead_and_removes_them(client, session, people):
    cm = bearer(session, people.care_manager)
    pid = people.patient.id
    body = {"user_id": str(people.outsider.id), "role": "therapist"}
    key = _key()
    made = client.post(
        f"/api/v1/patients/{pid}/care-team/members", json=body, headers={**cm, **key}
    )
    assert made.status_code == 201, made.text
    again = client.post(
        f"/api/v1/patients/{pid}/care-team/members", json=body, headers={**cm, **key}
    )
    assert again.status_code == 200
    read = client.get(f"/api/v1/patients/{pid}/care-team", headers=cm).json()
    added = [m for m in read["members"] if m["user_id"] == str(people.outsider.id)]
    assert len(added) == 1 and added[0]["role"] == "therapist"
    member = next(m for m in made.json()["members"] if m["user_id"] == str(people.outsider.id))
    therapist = next(m for m in read["members"] if m["user_id"] == str(people.therapist.id))
    # Someone on the team but not its lead may not change it: 403, audited, nothing changed.
    denials = _denied(session, people.therapist)
    refused = client.post(
        f"/api/v1/patients/{pid}/care-team/members/{member['id']}/lead",
        headers=bearer(session, people.therapist),
    )
    assert refused.status_code == 403 and _denied(session, people.therapist) > denials
    led = client.post(f"/api/v1/patients/{pid}/care-team/members/{member['id']}/lead", headers=cm)
    assert led.status_code == 200, led.text
    read = client.get(f"/api/v1/patients/{pid}/care-team", headers=cm).json()
    assert [m["user_id"] for m in read["members"] if m["lead"]] == [str(people.outsider.id)]
    outsider = bearer(session, people.outsider)  # now the lead
    gone = client.post(
        f"/api/v1/patients/{pid}/care-team/members/{therapist['id']}/remove", headers=outsider
    )
    assert gone.status_code == 200, gone.text
    read = client.get(f"/api/v1/patients/{pid}/care-team", headers=cm).json()
    assert str(people.therapist.id) not in [m["user_id"] for m in read["members"]]
    wrong = client.post(
        f"/api/v1/patients/{pid}/care-team/members", json={"user_id": "nobody"}, headers=cm
    )
    assert wrong.status_code == 422 and wrong.json()["fields"][0]["field"] == "user_id"


def test_outside_the_team_the_care_team_cannot_be_changed(client, session, people):
    pid = people.patient.id
    body = {"user_id": str(people.outsider.id)}
    before = _count(session, CareTeamMember)
    for user, codes in (
        (people.outsider, {404}),
        (people.patient_user, {404}),
        (people.therapist, {403}),  # on the team, not its lead: the page's rule
    ):
        denials = _denied(session, user)
        refused = client.post(
            f"/api/v1/patients/{pid}/care-team/members", json=body, headers=bearer(session, user)
        )
        assert refused.status_code in codes, refused.text
        assert _denied(session, user) > denials
    assert _count(session, CareTeamMember) == before


def test_the_team_adds_a_family_member_and_the_patient_withdraws_consent(client, session, people):
    cm = bearer(session, people.care_manager)
    pid = people.patient.id
    body = {"name": "Rosa", "email": "rosa@example.org", "relationship": "aunt"}
    key = _key()
    made = client.post(f"/api/v1/patients/{pid}/related-persons", json=body, headers={**cm, **key})
    assert made.status_code == 201, made.text
    assert made.json()["password"] and made.json()["consented"] is False
    again = client.post(f"/api/v1/patients/{pid}/related-persons", json=body, headers={**cm, **key})
    assert again.status_code == 200 and again.json()["id"] == made.json()["id"]
    assert _count(session, RelatedPerson, RelatedPerson.patient_id == pid) == 3
    rid = made.json()["id"]
    given = client.post(
        f"/api/v1/patients/{pid}/related-persons/{rid}/consent",
        json={"consented": True, "note": "Said yes in clinic"},
        headers=cm,
    )
    assert given.status_code == 200 and given.json()["consented"] is True
    me = bearer(session, people.patient_user)
    # The patient may withdraw consent, not record it.
    assert (
        client.post(
            f"/api/v1/patients/{pid}/related-persons/{rid}/consent",
            json={"consented": True},
            headers=me,
        ).status_code
        == 403
    )
    withdrawn = client.post(
        f"/api/v1/patients/{pid}/related-persons/{rid}/consent",
        json={"consented": False},
        headers=me,
    )
    assert withdrawn.status_code == 200
    listed = client.get(f"/api/v1/patients/{pid}/related-persons", headers=me).json()
    assert next(r for r in listed if r["id"] == rid)["consented"] is False


def test_family_members_are_not_added_from_outside_the_team(client, session, people):
    pid = people.patient.id
    body = {"name": "Rosa", "email": "rosa@example.org", "relationship": "aunt"}
    for user in (people.outsider, people.other_patient_user, people.family):
        denials = _denied(session, user)
        refused = client.post(
            f"/api/v1/patients/{pid}/related-persons", json=body, headers=bearer(session, user)
        )
        assert refused.status_code in (403, 404), refused.text
        assert _denied(session, user) > denials
    outsider = bearer(session, people.outsider)
    assert (
        client.get(f"/api/v1/patients/{pid}/related-persons", headers=outsider).status_code == 404
    )
    assert _count(session, RelatedPerson, RelatedPerson.patient_id == pid) == 2


def test_a_clinician_on_the_team_updates_the_demographics_at_the_version_read(
    client, session, people
):
    """The JSON twin of PUT /fhir/Patient/{id} (issue 21): the same action and version."""
    cm = bearer(session, people.care_manager)
    url = f"/api/v1/patients/{people.patient.id}"
    read = client.get(url, headers=cm).json()
    change = {
        k: read[k]
        for k in (
            "given_name",
            "family_name",
            "preferred_name",
            "pronouns",
            "birth_date",
            "gender",
            "language",
        )
    }
    updated = client.put(
        url, json={**change, "pronouns": "they/them", "version": read["version"]}, headers=cm
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == read["version"] + 1
    stale = client.put(
        url, json={**change, "gender": "male", "version": read["version"]}, headers=cm
    )
    assert stale.status_code == 409
    assert session.get(Patient, people.patient.id).gender != "male"
    # The MRN is not a field of the change; off the team it is not found, audited.
    assert client.put(url, json={**change, "mrn": "X", "version": 2}, headers=cm).status_code == 422
    denials = _denied(session, people.outsider)
    outsider = client.put(
        url, json={**change, "version": 2}, headers=bearer(session, people.outsider)
    )
    assert outsider.status_code == 404 and _denied(session, people.outsider) == denials + 1
    events = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "update",
            AuditEvent.object_type == "Patient",
            AuditEvent.outcome == "success",
        )
    ).all()
    assert [e.detail["fields"] for e in events] == [["pronouns"]]

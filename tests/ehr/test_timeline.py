"""The patient's timeline (issue 20: "encounters in the timeline"): Concord's visits and
contacts and the EHR's encounters in one list, newest first, each marked by its source, behind
the same access, consent and audit as the pages it gathers; the Timeline tab and its JSON twin."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from concord.actions import appointments as act
from concord.appointments.schemas import VisitIn
from concord.audit.models import AuditEvent, Outcome
from concord.registry import service as reg
from tests.careplans.test_api import bearer
from tests.conftest import NOW, commit
from tests.ehr.test_import import bundle, client_token, patient, put, send
from tests.factories import acc_for
from tests.part2.test_part2 import make_world
from tests.registry.conftest import TODAY, contact, enroll

WHO = patient(mrn="N-1", given="Pat", family="Ient", birth="1985-05-17")


def encounter(ident, start, text="Office visit", status="finished"):
    return put(
        "Encounter",
        ident,
        {
            "resourceType": "Encounter",
            "status": status,
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
            },
            "type": [{"text": text}],
            "subject": {"reference": "Patient/p1"},
            "period": {"start": start},
        },
    )


def _world(client, session, people, contact_on=date(2026, 3, 3)):
    token = client_token(session, people)
    body = bundle(
        put("Patient", "p1", WHO),
        encounter("e-old", "2026-02-01T15:00:00Z"),
        encounter("e-new", "2026-11-10", text="Depression follow-up"),
    )
    assert send(client, body, token).status_code == 200
    if reg.open_episode(session, people.patient.id) is None:  # a Part 2 world enrols already
        enroll(session, people, started_on=date(2026, 3, 1))
    contact(session, people, "initial_assessment", contact_on)
    voided = contact(session, people, "follow_up", contact_on)
    reg.void_contact(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        contact_id=voided.id,
        reason="wrong patient",
    )
    visit = act.book(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        data=VisitIn(kind="phone", start=NOW + timedelta(days=2), reason="Check-in call"),
    )
    commit(session)
    return visit


def test_the_timeline_merges_visits_contacts_and_the_ehrs_encounters(
    client, session, people, sign_in
):
    visit = _world(client, session, people)
    pid = people.patient.id
    got = client.get(
        f"/api/v1/patients/{pid}/timeline", headers=bearer(session, people.care_manager)
    )
    assert got.status_code == 200
    rows = [
        (e["source"], e["date"], e["id"] if e["source"] != "contact" else e["kind"])
        for e in got.json()
    ]
    # Newest first; the voided contact is left out; each marked by where it comes from.
    assert rows == [
        ("visit", rows[0][1], str(visit.id)),
        ("ehr", "2026-11-10", "e-new"),
        ("contact", "2026-03-03", "initial_assessment"),
        ("ehr", "2026-02-01", "e-old"),
    ]
    ehr = got.json()[1]
    assert (ehr["kind"], ehr["description"], ehr["status"]) == (
        "AMB",
        "Depression follow-up",
        "finished",
    )
    # The EHR's instant is kept; its date is the clinic's (Chicago: 09:00 on February 1).
    assert got.json()[3]["at"] == "2026-02-01T15:00:00+00:00"
    # The page, the same list, each row marked by its source.
    sign_in(people.care_manager.email)
    page = client.get(f"/patients/{pid}/timeline")
    assert page.status_code == 200
    text = page.text
    assert "Visits and encounters" in text
    assert text.count('data-source="ehr"') == 2 and text.count("imported from the EHR") == 2
    assert text.count('data-source="contact"') == 1 and text.count('data-source="visit"') == 1
    assert "Depression follow-up" in text and "wrong patient" not in text
    assert f'href="/patients/{pid}/timeline" aria-current="page"' in text
    # Each part read is audited as its own domain reads it.
    kinds = set(
        session.scalars(
            select(AuditEvent.object_type).where(
                AuditEvent.patient_id == pid, AuditEvent.action.in_(("read", "list"))
            )
        )
    )
    assert {"Encounter", "Appointment", "Timeline"} <= kinds
    shown = session.scalars(
        select(AuditEvent.detail).where(
            AuditEvent.patient_id == pid, AuditEvent.object_type == "Timeline"
        )
    ).all()
    assert shown[-1] == {"visit": 1, "contact": 1, "ehr": 2}


def test_off_the_team_the_timeline_is_not_found(client, session, people, sign_in):
    _world(client, session, people)
    pid = people.patient.id
    stranger = bearer(session, people.outsider)
    assert client.get(f"/api/v1/patients/{pid}/timeline", headers=stranger).status_code == 404
    denied = session.scalars(
        select(AuditEvent).where(AuditEvent.patient_id == pid, AuditEvent.outcome == Outcome.denied)
    ).all()
    assert denied


def test_a_part2_programs_visits_and_contacts_are_withheld_without_consent(client, session, people):
    """North is a 42 CFR Part 2 program; Dr Lee (South, on the team) has no consent: the
    program's visit and contact are not in his timeline; the EHR's encounter (general) is."""
    pcp, _ = make_world(session, people)
    _world(client, session, people, contact_on=TODAY)
    pid = people.patient.id
    team = client.get(
        f"/api/v1/patients/{pid}/timeline", headers=bearer(session, people.care_manager)
    )
    assert {e["source"] for e in team.json()} == {"visit", "contact", "ehr"}
    lee = client.get(f"/api/v1/patients/{pid}/timeline", headers=bearer(session, pcp))
    assert lee.status_code == 200
    assert [e["source"] for e in lee.json()] == ["ehr", "ehr"]

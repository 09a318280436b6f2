"""Visits of a 42 CFR Part 2 program (issue 22, ADR 0021): a visit at the program's clinic (or
booked by its staff) is one of the program's records. It carries the badge on its page and
the Part 2 security labels in FHIR; someone on the team outside the program sees it only
under the patient's consent: without one it is not found on any door, not in any list or
count, and nobody is told of it. Both engines."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from concord.accounts.models import Role
from concord.accounts.organizations import create_clinic
from concord.actions import appointments as act
from concord.actions import part2 as part2_actions
from concord.appointments.models import Appointment
from concord.appointments.schemas import AttendanceIn, VisitIn
from concord.audit.models import AuditEvent, Outcome
from concord.notifications.models import Notice
from concord.patients.service import add_team_member
from concord.registry.service import Enrolment, enroll
from tests.careplans.test_api import bearer
from tests.conftest import NOW, commit
from tests.factories import acc_for, create_staff
from tests.part2.test_part2 import _tpo, make_world

SOON = (NOW + timedelta(days=2)).replace(hour=16, minute=0)
REASON = "Relapse-prevention check after the weekend"
BADGE = "Protected by 42 CFR Part 2"
PART2_CODE = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "42CFRPart2"}


@pytest.fixture
def program(session, people):
    """North (the patient's clinic) is a Part 2 program; Dr Lee, primary care at South, is on
    the team with no consent; the care manager (North's) books a visit with both."""
    pcp, _ = make_world(session, people)
    visit = act.book(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        data=VisitIn(
            kind="in_person",
            start=SOON,
            reason=REASON,
            clinician_ids=[people.care_manager.id, people.therapist.id, pcp.id],
        ),
    )
    commit(session)
    return pcp, visit


def _security(resource):
    return [
        {"system": c["system"], "code": c["code"]}
        for c in resource.get("meta", {}).get("security", [])
    ]


def test_the_programs_own_staff_see_the_visit_with_its_label(client, session, people, program):
    _, visit = program
    team = bearer(session, people.care_manager)
    pid = people.patient.id
    one = client.get(f"/api/v1/patients/{pid}/visits/{visit.id}", headers=team)
    assert one.status_code == 200 and one.json()["visit"]["reason"] == REASON
    fhir = client.get(f"/fhir/Appointment/{visit.id}", headers=team)
    assert fhir.status_code == 200 and PART2_CODE in _security(fhir.json())
    found = client.get(f"/fhir/Appointment?patient={pid}", headers=team).json()
    assert [PART2_CODE in _security(e["resource"]) for e in found["entry"]] == [True]
    # The patient sees their own visit, with the badge on the portal.
    me = bearer(session, people.patient_user)
    assert client.get(f"/api/v1/patients/{pid}/visits/{visit.id}", headers=me).status_code == 200


def test_the_visit_page_shows_the_badge_beside_the_programs_visit_only(
    client, session, people, program, sign_in
):
    _, visit = program
    sign_in("cara@test.example.org")
    page = client.get(f"/patients/{people.patient.id}/visits/{visit.id}")
    assert page.status_code == 200
    assert f'data-part2="{visit.id}"' in page.text and BADGE in page.text
    listed = client.get(f"/patients/{people.patient.id}/visits")
    assert f'data-part2="{visit.id}"' in listed.text
    # North is no longer a program: its visit carries no label, on the page or in FHIR.
    people.north.part2_program = False
    commit(session)
    page = client.get(f"/patients/{people.patient.id}/visits/{visit.id}")
    assert page.status_code == 200 and BADGE not in page.text
    fhir = client.get(f"/fhir/Appointment/{visit.id}", headers=bearer(session, people.care_manager))
    assert _security(fhir.json()) == []


def test_outside_the_program_without_consent_the_visit_is_not_found_anywhere(
    client, session, people, program, sign_in
):
    pcp, visit = program
    lee = bearer(session, pcp)
    pid = people.patient.id
    assert client.get(f"/api/v1/patients/{pid}/visits/{visit.id}", headers=lee).status_code == 404
    listed = client.get(f"/api/v1/patients/{pid}/visits", headers=lee)
    assert listed.status_code == 200 and str(visit.id) not in listed.text
    assert REASON not in listed.text
    assert client.get(f"/fhir/Appointment/{visit.id}", headers=lee).status_code == 404
    found = client.get(f"/fhir/Appointment?patient={pid}", headers=lee).json()
    assert found["total"] == 0 and str(visit.id) not in str(found)
    mine = client.get("/api/v1/visits", headers=lee)
    assert mine.status_code == 200 and str(visit.id) not in mine.text
    # A change is refused the same way, and writes nothing.
    cancel = client.post(
        f"/api/v1/patients/{pid}/visits/{visit.id}/cancel",
        json={"version": visit.version, "reason": "Away"},
        headers=lee,
    )
    assert cancel.status_code == 404
    session.expire_all()
    assert session.get(Appointment, visit.id).status == "booked"
    # The pages too: the visit page is not found, the lists and the calendar leave it out.
    sign_in("pcp@x.test")
    assert client.get(f"/patients/{pid}/visits/{visit.id}").status_code == 404
    for url in (f"/patients/{pid}/visits", "/visits"):
        page = client.get(url)
        assert page.status_code == 200 and str(visit.id) not in page.text, url
        assert REASON not in page.text
    assert client.get(f"/visits/{visit.id}.ics").status_code == 404
    # Each refusal is in the audit trail.
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.actor_id == pcp.id,
            AuditEvent.object_type == "Appointment",
            AuditEvent.outcome == Outcome.denied,
        )
    ).all()
    assert len(denied) >= 5


def test_with_the_patients_consent_the_visit_is_disclosed(client, session, people, program):
    pcp, visit = program
    _tpo(session, people, pcp, scope="all", categories=[])
    lee = bearer(session, pcp)
    one = client.get(f"/api/v1/patients/{people.patient.id}/visits/{visit.id}", headers=lee)
    assert one.status_code == 200 and one.json()["visit"]["reason"] == REASON
    fhir = client.get(f"/fhir/Appointment/{visit.id}", headers=lee)
    assert fhir.status_code == 200 and PART2_CODE in _security(fhir.json())


def test_nobody_is_told_of_a_programs_visit_they_may_not_see(session, people, program):
    pcp, _ = program
    told = {n.user_id for n in session.scalars(select(Notice).where(Notice.kind == "visit_booked"))}
    assert people.therapist.id in told and people.patient_user.id in told
    assert pcp.id not in told


def test_a_programs_missed_visit_raises_no_flag_or_count_for_whom_it_is_withheld_from(
    client, session, people, clock
):
    """The episode is North's (not a program); a counsellor of Bayview (a Part 2 program) on the
    team books a visit the patient misses. The care manager (North, no consent) is not shown
    that visit: not in the attendance counts, and no "missed a visit" flag on the caseload,
    until the patient consents."""
    bayview = create_clinic(session, organization=people.org, name="Bayview Recovery")
    part2_actions.set_part2_program(session, people.admin, bayview.id, True)
    counsellor = create_staff(
        session, people.org, bayview, Role.addiction_counsellor, "Cass C", "cass@bay.test"
    )
    add_team_member(session, by=people.care_manager, patient=people.patient, user_id=counsellor.id)
    enroll(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        data=Enrolment(program="depression", care_manager_id=str(people.care_manager.id)),
    )
    by_counsellor = acc_for(session, counsellor, people.patient)
    visit = act.book(
        session,
        access=by_counsellor,
        data=VisitIn(kind="in_person", start=SOON, clinician_ids=[counsellor.id]),
    )
    clock.set(SOON + timedelta(minutes=20))
    act.set_attendance(
        session,
        access=by_counsellor,
        visit_id=visit.id,
        data=AttendanceIn(version=visit.version, status="noshow"),
    )
    commit(session)

    def flags(user):
        rows = client.get("/api/v1/registry/caseload", headers=bearer(session, user)).json()
        row = next(r for r in rows if r["patient_id"] == str(people.patient.id))
        return {f["code"] for f in row["flags"]}

    def noshows(user):
        url = f"/api/v1/patients/{people.patient.id}/visits"
        return client.get(url, headers=bearer(session, user)).json()["attendance"]["noshow"]

    assert "missed_visit" not in flags(people.care_manager)
    assert noshows(people.care_manager) == 0
    # Under the patient's consent for the care manager, the same visit raises both.
    _tpo(session, people, people.care_manager, scope="all", categories=[], discloser="Bayview")
    assert "missed_visit" in flags(people.care_manager)
    assert noshows(people.care_manager) == 1

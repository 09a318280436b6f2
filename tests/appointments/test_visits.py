"""Visits (issue 22) through their doors: the JSON API, FHIR Appointment and the pages, with
the rules that matter: the patient asks and the team books; a no-show opens an outreach task;
an attended visit records the registry's minutes in one step; nobody off the team sees a
visit; the .ics file and the video link carry nothing about the patient."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select

from concord.appointments.models import Appointment, VisitStatus
from concord.audit.models import AuditEvent
from concord.notifications.models import Delivery, Notice
from concord.registry.models import Contact, WorkTask
from concord.registry.service import Enrolment, enroll
from tests.careplans.test_api import bearer
from tests.conftest import NOW, commit, csrf_of
from tests.factories import acc_for

SOON = (NOW + timedelta(days=2)).replace(hour=16, minute=0)  # 16:00 UTC


def _tokens(session, people):
    return (
        bearer(session, people.care_manager),
        bearer(session, people.patient_user),
        bearer(session, people.outsider),
    )


def _video(session, people, template="https://meet.example.org/{room}"):
    people.org.video_url_template = template
    commit(session)


def test_the_patient_asks_and_the_team_books(client, session, people):
    team, me, outsider = _tokens(session, people)
    pid = people.patient.id
    body = {"kind": "in_person", "start": SOON.isoformat(), "minutes": 45, "reason": "Sleep"}
    asked = client.post(
        f"/api/v1/patients/{pid}/visit-requests",
        json=body,
        headers={**me, "Idempotency-Key": "visit-request-0001"},
    )
    assert asked.status_code == 201, asked.text
    visit = asked.json()["visit"]
    assert visit["status"] == "proposed" and visit["awaiting"] == "clinic"
    again = client.post(
        f"/api/v1/patients/{pid}/visit-requests",
        json=body,
        headers={**me, "Idempotency-Key": "visit-request-0001"},
    )
    assert again.status_code == 200 and again.json()["visit"]["id"] == visit["id"]
    other = client.post(
        f"/api/v1/patients/{pid}/visit-requests",
        json={**body, "minutes": 30},
        headers={**me, "Idempotency-Key": "visit-request-0001"},
    )
    assert other.status_code == 409
    assert session.scalar(select(func.count()).select_from(Appointment)) == 1
    # The care manager (the team's lead) is told under the bell; nothing names the patient.
    bell = client.get("/api/v1/notices", headers=team).json()
    assert bell["unread"] == 1 and bell["notices"][0]["kind"] == "visit_requested"
    # The team books it at the time asked.
    booked = client.post(
        f"/api/v1/patients/{pid}/visits/{visit['id']}/book",
        json={"version": visit["version"]},
        headers=team,
    )
    assert booked.status_code == 200, booked.text
    assert booked.json()["visit"]["status"] == "booked"
    assert booked.json()["visit"]["clinicians"][0]["id"] == str(people.care_manager.id)
    mine = client.get("/api/v1/notices", headers=me).json()
    assert [n["kind"] for n in mine["notices"]] == ["visit_booked"]
    # A stale version is a conflict, not a silent overwrite.
    stale = client.post(
        f"/api/v1/patients/{pid}/visits/{visit['id']}/cancel",
        json={"version": visit["version"], "reason": "Cannot come"},
        headers=me,
    )
    assert stale.status_code == 409
    # Someone off the team: not found, audited, nothing shown.
    seen = client.get(f"/api/v1/patients/{pid}/visits/{visit['id']}", headers=outsider)
    assert seen.status_code == 404 and "Sleep" not in seen.text
    denied = session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.actor_id == people.outsider.id, AuditEvent.outcome == "denied")
    )
    assert denied >= 1
    # The patient cannot book for the team; the team cannot ask as the patient.
    assert client.post(f"/api/v1/patients/{pid}/visits", json=body, headers=me).status_code == 403
    assert (
        client.post(f"/api/v1/patients/{pid}/visit-requests", json=body, headers=team).status_code
        == 403
    )


def test_bad_input_names_the_field_and_writes_nothing(client, session, people):
    team, me, _ = _tokens(session, people)
    pid = people.patient.id
    for body, field in (
        ({"kind": "teleport", "start": SOON.isoformat()}, "kind"),
        ({"kind": "phone", "start": (NOW - timedelta(days=1)).isoformat()}, "start"),
        ({"kind": "phone", "start": SOON.isoformat(), "minutes": 2}, "minutes"),
        ({"kind": "video", "start": SOON.isoformat()}, "kind"),  # no video service set up
        (
            {
                "kind": "phone",
                "start": SOON.isoformat(),
                "clinician_ids": [str(people.outsider.id)],
            },
            "clinician_ids",
        ),
    ):
        answer = client.post(f"/api/v1/patients/{pid}/visits", json=body, headers=team)
        assert answer.status_code == 422, (body, answer.text)
        assert field in answer.text, (field, answer.text)
    assert session.scalar(select(func.count()).select_from(Appointment)) == 0
    made = client.post(
        f"/api/v1/patients/{pid}/visits",
        json={"kind": "phone", "start": SOON.isoformat()},
        headers=team,
    ).json()["visit"]
    no_reason = client.post(
        f"/api/v1/patients/{pid}/visits/{made['id']}/cancel",
        json={"version": made["version"], "reason": " "},
        headers=me,
    )
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    kept = client.get(f"/api/v1/patients/{pid}/visits/{made['id']}", headers=me).json()
    assert kept["visit"]["status"] == "booked"
    cancelled = client.post(
        f"/api/v1/patients/{pid}/visits/{made['id']}/cancel",
        json={"version": made["version"], "reason": "Work shift"},
        headers=me,
    ).json()["visit"]
    assert cancelled["status"] == "cancelled" and cancelled["cancel_reason"] == "Work shift"
    assert cancelled["cancelled_by"] == people.patient_user.name


def test_a_no_show_opens_an_outreach_task_a_caseload_flag_and_counts(
    client, session, people, clock
):
    enroll(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        data=Enrolment(program="depression", care_manager_id=str(people.care_manager.id)),
    )
    commit(session)
    team, _, _ = _tokens(session, people)
    pid = people.patient.id
    made = client.post(
        f"/api/v1/patients/{pid}/visits",
        json={"kind": "in_person", "start": SOON.isoformat()},
        headers=team,
    ).json()["visit"]
    url = f"/api/v1/patients/{pid}/visits/{made['id']}/attendance"
    early = client.post(url, json={"version": made["version"], "status": "noshow"}, headers=team)
    assert early.status_code == 409  # not started yet
    clock.set(SOON + timedelta(minutes=20))
    missed = client.post(url, json={"version": made["version"], "status": "noshow"}, headers=team)
    assert missed.status_code == 200, missed.text
    task = session.get(WorkTask, uuid.UUID(missed.json()["task_id"]))
    assert task.source == f"noshow:{made['id']}" and task.status == "open"
    assert task.owner_id == people.care_manager.id and task.priority == "urgent"
    caseload = client.get("/api/v1/registry/caseload", headers=team).json()
    row = next(r for r in caseload if r["patient_id"] == str(pid))
    missed = next(f for f in row["flags"] if f["code"] == "missed_visit")
    assert SOON.date().isoformat() in missed["rule"]
    counts = client.get(f"/api/v1/patients/{pid}/visits", headers=team).json()["attendance"]
    assert counts == {"attended": 0, "noshow": 1, "cancelled": 0, "noshow_rate": 1.0}
    clinics = client.get("/api/v1/visits/attendance", headers=team).json()["clinics"]
    assert clinics == [
        {
            "clinic_id": str(people.north.id),
            "attended": 0,
            "noshow": 1,
            "cancelled": 0,
            "noshow_rate": 1.0,
        }
    ]


def test_an_attended_visit_records_contact_minutes_in_one_step(client, session, people, clock):
    enroll(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        data=Enrolment(program="depression", care_manager_id=str(people.care_manager.id)),
    )
    commit(session)
    team, _, _ = _tokens(session, people)
    pid = people.patient.id
    made = client.post(
        f"/api/v1/patients/{pid}/visits",
        json={"kind": "phone", "start": SOON.isoformat()},
        headers=team,
    ).json()["visit"]
    clock.set(SOON + timedelta(minutes=40))
    done = client.post(
        f"/api/v1/patients/{pid}/visits/{made['id']}/attendance",
        json={"version": made["version"], "status": "fulfilled", "contact_minutes": 35},
        headers=team,
    )
    assert done.status_code == 200, done.text
    contact = session.get(Contact, uuid.UUID(done.json()["contact_id"]))
    assert (contact.minutes, contact.mode, contact.kind) == (35, "phone", "follow_up")
    assert contact.occurred_on == SOON.date()
    assert session.get(Appointment, uuid.UUID(made["id"])).contact_id == contact.id


def test_fhir_appointment_read_and_search(client, session, people):
    team, me, outsider = _tokens(session, people)
    pid = people.patient.id
    first = client.post(
        f"/api/v1/patients/{pid}/visits",
        json={"kind": "phone", "start": SOON.isoformat(), "reason": "Check in"},
        headers=team,
    ).json()["visit"]
    later = SOON + timedelta(days=10)
    client.post(
        f"/api/v1/patients/{pid}/visits",
        json={"kind": "in_person", "start": later.isoformat(), "propose": True},
        headers=team,
    )
    read = client.get(f"/fhir/Appointment/{first['id']}", headers=me)
    assert read.status_code == 200, read.text
    resource = read.json()
    assert resource["status"] == "booked" and resource["minutesDuration"] == 30
    assert resource["participant"][0]["actor"]["reference"] == f"Patient/{pid}"
    assert client.get(f"/fhir/Appointment/{first['id']}", headers=outsider).status_code == 404

    def ids(query):
        answer = client.get(f"/fhir/Appointment?patient={pid}&{query}", headers=team)
        assert answer.status_code == 200, answer.text
        return [e["resource"]["status"] for e in answer.json().get("entry", [])]

    day = SOON.date().isoformat()
    assert ids(f"date={day}") == ["booked"]
    assert ids(f"date=ge{day}") == ["booked", "proposed"]
    assert ids(f"date=gt{day}") == ["proposed"]
    assert ids(f"date=lt{day}") == []
    assert ids(f"date=ge{day}&date=lt{later.date().isoformat()}") == ["booked"]
    assert ids("status=proposed") == ["proposed"]
    assert ids(f"actor=Practitioner/{people.care_manager.id}") == ["booked", "proposed"]
    bad = client.get(f"/fhir/Appointment?patient={pid}&date=xx2026", headers=team)
    assert bad.status_code == 422 and "date" in bad.text
    hidden = client.get(f"/fhir/Appointment?patient={pid}", headers=outsider).json()
    assert hidden.get("entry", []) == []


def test_video_rooms_the_join_window_and_the_ics_file(client, session, people, clock, sign_in):
    _video(session, people)
    team, me, _ = _tokens(session, people)
    pid = people.patient.id
    made = client.post(
        f"/api/v1/patients/{pid}/visits",
        json={"kind": "video", "start": SOON.isoformat(), "reason": "Medication review"},
        headers=team,
    ).json()["visit"]
    other = client.post(
        f"/api/v1/patients/{pid}/visits",
        json={"kind": "video", "start": (SOON + timedelta(days=1)).isoformat()},
        headers=team,
    ).json()["visit"]
    url = made["video_url"]
    assert url.startswith("https://meet.example.org/") and url != other["video_url"]
    room = url.rsplit("/", 1)[1]
    assert len(room) >= 20 and str(pid) not in url and "Medication" not in url
    assert made["can_join"] is False
    clock.set(SOON - timedelta(minutes=5))  # 5 minutes before: inside the 10
    assert client.get(f"/api/v1/patients/{pid}/visits/{made['id']}", headers=me).json()["visit"][
        "can_join"
    ]
    sign_in("pat@patients.example.org")
    page = client.get(f"/my/visits/{made['id']}")
    assert page.status_code == 200
    assert "data-join" in page.text and "hidden>" not in page.text.split("data-join", 1)[1][:400]
    assert "/static/devicecheck.js" in page.text and "data-device-check" in page.text
    ics = client.get(f"/visits/{made['id']}.ics")
    assert ics.status_code == 200 and ics.headers["content-type"].startswith("text/calendar")
    text = ics.text
    assert "SUMMARY:Visit with Concord clinic" in text and "DTSTART:" in text
    for secret in ("Medication", people.patient.given_name, people.patient.family_name, room):
        assert secret not in text
    # Off the team: the .ics is not found either.
    sign_in("otto@test.example.org")
    assert client.get(f"/visits/{made['id']}.ics").status_code == 404


def test_the_pages_request_book_and_show_the_calendar(client, session, people, sign_in):
    token = sign_in("pat@patients.example.org")
    mine = client.get("/my/visits")
    assert mine.status_code == 200 and "data-request-form" in mine.text
    local = SOON.strftime("%Y-%m-%dT%H:%M")
    asked = client.post(
        "/my/visits",
        data={"csrf_token": token, "kind": "phone", "start": local, "minutes": "30"},
    )
    assert asked.status_code == 303, asked.text
    bad = client.post("/my/visits", data={"csrf_token": token, "kind": "phone", "start": ""})
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    visit = session.scalar(select(Appointment))
    assert visit.status == VisitStatus.proposed
    token = sign_in("cara@test.example.org")
    calendar = client.get("/visits?view=week&day=" + SOON.date().isoformat())
    assert calendar.status_code == 200 and "data-visit-requests" in calendar.text
    tab = client.get(f"/patients/{people.patient.id}/visits")
    assert tab.status_code == 200 and "data-request" in tab.text
    page = client.get(f"/patients/{people.patient.id}/visits/{visit.id}")
    token = csrf_of(page.text)
    booked = client.post(
        f"/patients/{people.patient.id}/visits/{visit.id}/book",
        data={"csrf_token": token, "version": str(visit.version)},
    )
    assert booked.status_code == 303, booked.text
    session.refresh(visit)
    assert visit.status == VisitStatus.booked
    day = client.get("/visits?day=" + SOON.date().isoformat())
    assert str(visit.id) in day.text and people.patient.family_name in day.text
    # The patient's bell says a visit was booked; the notice's delivery waits for the worker.
    assert session.scalar(
        select(func.count()).select_from(Notice).where(Notice.user_id == people.patient_user.id)
    )
    assert session.scalar(select(func.count()).select_from(Delivery)) >= 2


def test_the_administrator_sets_the_video_service_and_reminders(client, session, people, sign_in):
    token = sign_in("admin@test.example.org")
    base = {"csrf_token": token, "review_interval_days": "", "crisis_resources": ""}
    bad = client.post(
        "/admin/settings",
        data={**base, "video_url_template": "http://meet.example.org/x", "visit_reminders": "a"},
    )
    assert bad.status_code == 422
    assert 'id="video_url_template-error"' in bad.text and 'id="visit_reminders-error"' in bad.text
    session.refresh(people.org)
    assert people.org.video_url_template is None
    ok = client.post(
        "/admin/settings",
        data={
            **base,
            "video_url_template": "https://meet.example.org/{room}",
            "video_join_minutes": "15",
            "visit_reminders": "2880, 120",
        },
    )
    assert ok.status_code == 303, ok.text[:300]
    session.refresh(people.org)
    assert people.org.video_url_template == "https://meet.example.org/{room}"
    assert (people.org.video_join_minutes, people.org.visit_reminders) == (15, "2880,120")

"""The privacy officer (issue 18): an administrator names each Part 2 program's privacy officer
(page with CSRF, JSON twin, audited, refused to anyone else); the officer reads the emergency
openings told to them, with whose records, who and why, and what to do next. The notice itself
names no patient; the page, behind access, does."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from concord.actions import part2 as part2_actions
from concord.audit.models import AuditEvent
from concord.safety.models import Notification
from tests.careplans.test_api import bearer
from tests.conftest import commit, csrf_of
from tests.factories import acc_for
from tests.part2.test_part2 import make_world

ADMIN = "admin@test.example.org"


def _events(session, action, outcome="success"):
    return session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == action, AuditEvent.outcome == outcome)
    )


def test_the_administrator_names_a_privacy_officer_on_the_page_and_by_api(
    client, session, people, sign_in
):
    sign_in(people.admin.email)
    page = client.get("/admin/part2")
    assert page.status_code == 200 and "Privacy officer" in page.text
    url = f"/admin/part2/{people.north.id}/privacy-officer"
    forged = client.post(url, data={"user_id": str(people.consultant.id)})
    assert forged.status_code == 403
    done = client.post(
        url, data={"csrf_token": csrf_of(page.text), "user_id": str(people.consultant.id)}
    )
    assert done.status_code == 303
    session.expire_all()
    assert session.get(type(people.north), people.north.id).privacy_officer_id == (
        people.consultant.id
    )
    assert _events(session, "privacy_officer") == 1
    # The JSON twin: clear it; a patient is no privacy officer (the field named).
    api = f"/api/v1/clinics/{people.north.id}/privacy-officer"
    bad = client.put(
        api, json={"user_id": str(people.patient_user.id)}, headers=bearer(session, people.admin)
    )
    assert bad.status_code == 422 and "user_id" in bad.text
    cleared = client.put(api, json={"user_id": None}, headers=bearer(session, people.admin))
    assert cleared.status_code == 200 and cleared.json()["privacy_officer_id"] is None
    # Anyone else: refused, audited, nothing changed.
    refused = client.put(
        api,
        json={"user_id": str(people.consultant.id)},
        headers=bearer(session, people.care_manager),
    )
    assert refused.status_code == 403
    session.expire_all()
    assert session.get(type(people.north), people.north.id).privacy_officer_id is None
    assert _events(session, "update", "denied") >= 1


def test_the_officer_reads_whose_records_were_opened_who_and_why(client, session, people, sign_in):
    pcp, _ = make_world(session, people)
    # The consultant (at North, the program) is its privacy officer.
    part2_actions.set_privacy_officer(session, people.admin, people.north.id, people.consultant.id)
    commit(session)
    part2_actions.break_glass(
        session, acc_for(session, pcp, people.patient), "Unresponsive in clinic, need history"
    )
    commit(session)
    notice = session.scalar(select(Notification).where(Notification.kind == "emergency_access"))
    assert notice.user_id == people.consultant.id and notice.patient_id is None

    sign_in(people.consultant.email)
    home = client.get("/patients")
    assert 'data-privacy-notices="1"' in home.text  # the navigation says one waits
    page = client.get("/privacy/notices")
    assert page.status_code == 200
    assert people.patient.full_name in page.text and "Pat Lee" in page.text
    assert "Unresponsive in clinic, need history" in page.text
    assert "What to do next" in page.text
    session.expire_all()
    assert session.get(Notification, notice.id).read_at is not None
    # Read: the officer keeps the link, without the count.
    after = client.get("/patients")
    assert 'data-privacy-notices="0"' in after.text
    assert session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.object_type == "EmergencyAccess",
            AuditEvent.action == "read",
            AuditEvent.patient_id == people.patient.id,
        )
    )
    api = client.get("/api/v1/privacy/notices", headers=bearer(session, people.consultant))
    assert api.status_code == 200 and api.json()[0]["reason"].startswith("Unresponsive")

    # The administrator, with an officer named, is not told; another clinician gets 404.
    admin = client.get("/api/v1/privacy/notices", headers=bearer(session, people.admin))
    assert admin.status_code == 200 and admin.json() == []
    other = client.get("/api/v1/privacy/notices", headers=bearer(session, people.care_manager))
    assert other.status_code == 404 and people.patient.full_name not in other.text


def test_without_an_officer_the_administrator_reads_who_and_when_not_why(client, session, people):
    pcp, _ = make_world(session, people)
    part2_actions.break_glass(
        session, acc_for(session, pcp, people.patient), "Unresponsive in clinic, need history"
    )
    commit(session)
    got = client.get("/api/v1/privacy/notices", headers=bearer(session, people.admin))
    assert got.status_code == 200
    [row] = got.json()
    assert row["patient_id"] == str(people.patient.id) and row["clinician"] == "Pat Lee"
    assert row["reason"] is None and row["privacy_officer_named"] is False
    assert uuid.UUID(row["id"])

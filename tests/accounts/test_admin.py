"""Administrators manage accounts and care teams, and see no clinical content."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from concord.accounts.models import User
from concord.audit.models import AuditEvent
from concord.patients.models import CareTeamMember

ADMIN = "admin@test.example.org"
CM = "cara@test.example.org"


def test_an_admin_adds_a_staff_member_who_must_choose_a_password(client, people, sign_in, session):
    token = sign_in(ADMIN)
    response = client.post(
        "/admin/users/new",
        data={
            "csrf_token": token,
            "name": "Nina Nurse",
            "email": "nina@test.example.org",
            "role": "nurse",
            "clinic_id": str(people.north.id),
            "language": "en",
        },
    )
    assert response.status_code == 200
    password = re.search(r'class="secret">([^<]+)<', response.text).group(1)
    user = session.scalar(select(User).where(User.email == "nina@test.example.org"))
    assert user.role == "nurse" and user.must_change_password
    client.cookies.clear()
    from tests.conftest import csrf_of

    page = client.get("/sign-in")
    signed = client.post(
        "/sign-in",
        data={
            "email": "nina@test.example.org",
            "password": password,
            "csrf_token": csrf_of(page.text),
        },
    )
    assert signed.headers["location"] == "/account/password?required=1"


def test_bad_input_keeps_what_was_typed(client, people, sign_in, session):
    token = sign_in(ADMIN)
    response = client.post(
        "/admin/users/new",
        data={"csrf_token": token, "name": "Nina Nurse", "email": "not-an-email", "role": "nurse"},
    )
    assert response.status_code == 422
    assert "must be an email address" in response.text
    assert 'value="Nina Nurse"' in response.text
    assert (
        session.scalar(select(func.count()).select_from(User).where(User.name == "Nina Nurse")) == 0
    )


def test_patients_cannot_be_created_as_staff(client, people, sign_in):
    token = sign_in(ADMIN)
    response = client.post(
        "/admin/users/new",
        data={"csrf_token": token, "name": "X", "email": "x@test.example.org", "role": "patient"},
    )
    assert response.status_code == 422


def test_a_clinician_cannot_administer_and_the_attempt_is_audited(client, people, sign_in, session):
    sign_in(CM)
    assert client.get("/admin/users").status_code == 403
    assert (
        session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.actor_id == people.care_manager.id,
                AuditEvent.outcome == "denied",
                AuditEvent.action == "user_list",
            )
        )
        == 1
    )


def test_deactivating_an_account_signs_it_out(client, app, people, sign_in, session):
    from fastapi.testclient import TestClient

    theo = TestClient(app, base_url="http://testserver", follow_redirects=False)
    sign_in("theo@test.example.org", target_client=theo)
    token = sign_in(ADMIN)
    response = client.post(
        f"/admin/users/{people.therapist.id}",
        data={"csrf_token": token, "name": "Theo Therapist", "role": "therapist", "language": "en"},
    )  # "active" left unticked
    assert response.status_code == 303
    assert theo.get("/patients").status_code == 303


def test_an_admin_cannot_lock_themselves_out(client, people, sign_in):
    token = sign_in(ADMIN)
    response = client.post(
        f"/admin/users/{people.admin.id}",
        data={"csrf_token": token, "name": "Ada Admin", "role": "admin", "is_admin": "on"},
    )
    assert response.status_code == 422
    assert "cannot deactivate your own account" in response.text


def test_an_admin_builds_a_care_team_and_chooses_the_lead(client, people, sign_in, session):
    token = sign_in(ADMIN)
    base = f"/admin/patients/{people.patient.id}"
    added = client.post(
        f"{base}/team/add",
        data={"csrf_token": token, "user_id": str(people.outsider.id), "make_lead": "on"},
    )
    assert added.status_code == 303
    members = session.scalars(
        select(CareTeamMember).where(
            CareTeamMember.user_id.in_([people.outsider.id, people.care_manager.id])
        )
    ).all()
    lead = {m.user_id: m.is_lead for m in members if m.ended_at is None}
    assert lead[people.outsider.id] is True and lead[people.care_manager.id] is False
    again = client.post(
        f"{base}/team/add", data={"csrf_token": token, "user_id": str(people.outsider.id)}
    )
    assert again.status_code == 409


def test_only_one_lead_at_a_time_even_in_the_database(session, people):
    from sqlalchemy.exc import IntegrityError

    from concord.patients.service import get_care_team
    from tests.factories import acc_for

    team = get_care_team(session, access=acc_for(session, people.care_manager, people.patient))
    member = session.scalar(
        select(CareTeamMember).where(
            CareTeamMember.care_team_id == team.id, CareTeamMember.user_id == people.therapist.id
        )
    )
    member.is_lead = True
    try:
        session.flush()
        raised = False
    except IntegrityError:
        raised = True
    session.rollback()
    assert raised


def test_the_lead_can_manage_the_team_but_others_cannot(client, people, sign_in, session):
    token = sign_in("theo@test.example.org")
    response = client.post(
        f"/patients/{people.patient.id}/team/add",
        data={"csrf_token": token, "user_id": str(people.outsider.id)},
    )
    assert response.status_code == 403
    token = sign_in(CM)
    response = client.post(
        f"/patients/{people.patient.id}/team/add",
        data={"csrf_token": token, "user_id": str(people.outsider.id)},
    )
    assert response.status_code == 303


def test_an_admin_can_require_mfa(client, people, sign_in, session):
    token = sign_in(ADMIN)
    client.post("/admin/settings", data={"csrf_token": token, "require_mfa_for_clinicians": "on"})
    session.refresh(people.org)
    assert people.org.require_mfa_for_clinicians


def test_a_clinician_registers_a_patient_and_leads_their_team(client, people, sign_in, session):
    from concord.patients.models import Patient

    token = sign_in(CM)
    response = client.post(
        "/patients/new",
        data={
            "csrf_token": token,
            "idem": "abcdef1234567890",
            "given_name": "Nova",
            "family_name": "Newman",
            "birth_date": "1990-02-03",
            "mrn": "N-77",
            "clinic_id": str(people.north.id),
            "language": "es",
            "portal_email": "nova@patients.example.org",
        },
    )
    assert response.status_code == 200
    assert "Temporary password" in response.text
    patient = session.scalar(select(Patient).where(Patient.mrn == "N-77"))
    assert patient.language == "es" and patient.user_id is not None
    assert client.get(f"/patients/{patient.id}").status_code == 200


def test_registering_refuses_a_future_birth_date_and_a_duplicate_record_number(
    client, people, sign_in
):
    token = sign_in(CM)
    common = {
        "csrf_token": token,
        "given_name": "A",
        "family_name": "B",
        "clinic_id": str(people.north.id),
    }
    future = client.post(
        "/patients/new", data={**common, "birth_date": "2030-01-01", "mrn": "N-99"}
    )
    assert future.status_code == 422 and "cannot be in the future" in future.text
    duplicate = client.post(
        "/patients/new", data={**common, "birth_date": "1990-01-01", "mrn": "N-1"}
    )
    assert duplicate.status_code == 422 and "already used by another patient" in duplicate.text


def test_api_tokens_from_the_account_page(client, people, sign_in, session):
    token = sign_in(CM)
    response = client.post(
        "/account/tokens",
        data={"csrf_token": token, "name": "EHR link", "scope": "read", "expires_in": "7d"},
    )
    new_token = re.search(r'class="secret">(cnc_[^<]+)<', response.text).group(1)
    assert (
        client.get("/api/v1/patients", headers={"Authorization": f"Bearer {new_token}"}).status_code
        == 200
    )
    bad = client.post("/account/tokens", data={"csrf_token": token, "expires_in": "forever"})
    assert bad.status_code == 422 and "must be a number followed by d, h or m" in bad.text


def test_an_admin_sets_the_review_interval(client, people, sign_in, session):
    token = sign_in(ADMIN)
    bad = client.post("/admin/settings", data={"csrf_token": token, "review_interval_days": "400"})
    assert bad.status_code == 422 and "from 1 to 366" in bad.text
    session.refresh(people.org)
    assert people.org.review_interval_days is None
    client.post("/admin/settings", data={"csrf_token": token, "review_interval_days": "14"})
    session.refresh(people.org)
    assert people.org.review_interval_days == 14
    client.post("/admin/settings", data={"csrf_token": token, "review_interval_days": ""})
    session.refresh(people.org)
    assert people.org.review_interval_days is None


def test_an_admin_sets_the_pdmp_interval_which_has_no_default(client, people, sign_in, session):
    assert people.org.pdmp_check_interval_days is None
    token = sign_in(ADMIN)
    form = {"csrf_token": token, "pdmp_check_interval_days": "0"}
    bad = client.post("/admin/settings", data=form)
    assert bad.status_code == 422 and "from 1 to 366" in bad.text
    session.refresh(people.org)
    assert people.org.pdmp_check_interval_days is None
    client.post("/admin/settings", data={**form, "pdmp_check_interval_days": "28"})
    session.refresh(people.org)
    assert people.org.pdmp_check_interval_days == 28
    client.post("/admin/settings", data={**form, "pdmp_check_interval_days": ""})
    session.refresh(people.org)
    assert people.org.pdmp_check_interval_days is None


def test_an_admin_sets_the_crisis_resources(client, people, sign_in, session):
    from concord.safety.crisis import crisis_resources

    token = sign_in(ADMIN)
    bad = client.post(
        "/admin/settings",
        data={"csrf_token": token, "crisis_resources": "Local line | call 555-0100 | javascript:x"},
    )
    assert bad.status_code == 422 and "must start with tel: or https://" in bad.text
    client.post(
        "/admin/settings",
        data={
            "csrf_token": token,
            "review_interval_days": "",
            "crisis_resources": "County crisis team | Call 555-0100 | tel:5550100 | Day and night",
        },
    )
    session.refresh(people.org)
    assert crisis_resources(people.org, "en") == [
        {
            "name": "County crisis team",
            "contact": "Call 555-0100",
            "detail": "Day and night",
            "href": "tel:5550100",
        }
    ]
    client.post("/admin/settings", data={"csrf_token": token, "crisis_resources": ""})
    session.refresh(people.org)
    assert crisis_resources(people.org, "en")[0]["contact"] == "Call or text 988"

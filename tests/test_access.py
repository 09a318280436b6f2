"""Who may reach a patient's record, through every door: pages, the JSON API, forms.

Each rule is tested both ways. Outside one's scope the answer is 404, the same as for a
record that does not exist; every denial writes nothing but its audit event.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from concord.audit.models import AuditEvent
from concord.careplans.models import PlanComment, Strength
from tests.conftest import commit
from tests.factories import create_plan

EMAILS = {
    "care_manager": "cara@test.example.org",
    "therapist": "theo@test.example.org",
    "consultant": "consultant@test.example.org",
    "outsider": "otto@test.example.org",
    "admin": "admin@test.example.org",
    "patient": "pat@patients.example.org",
    "other_patient": "olive@patients.example.org",
    "family": "fay@family.example.org",
    "family_no_consent": "nico@family.example.org",
}

TEAM = {"care_manager", "therapist", "consultant"}


@pytest.fixture
def plan(session, people):
    plan = create_plan(session, people, activate=True)
    commit(session)
    return plan


def expected_for(persona, allowed, forbidden=frozenset()):
    if persona in allowed:
        return "allowed"
    if persona in forbidden:
        return 403
    return 404


def denial_count(session, persona_user_id):
    return session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.actor_id == persona_user_id, AuditEvent.outcome == "denied")
    )


def user_of(people, persona):
    return {
        "care_manager": people.care_manager,
        "therapist": people.therapist,
        "consultant": people.consultant,
        "outsider": people.outsider,
        "admin": people.admin,
        "patient": people.patient_user,
        "other_patient": people.other_patient_user,
        "family": people.family,
        "family_no_consent": people.family_no_consent,
    }[persona]


@pytest.mark.parametrize("persona", list(EMAILS))
def test_the_team_plan_page(client, people, plan, sign_in, persona, session):
    sign_in(EMAILS[persona])
    response = client.get(f"/patients/{people.patient.id}/plan")
    if persona in TEAM:
        assert response.status_code == 200
        assert "I want to feel better" in response.text
    else:
        assert response.status_code in (303, 404)  # patients and family are sent home first
        assert "I want to feel better" not in response.text


@pytest.mark.parametrize("persona", list(EMAILS))
def test_reading_the_plan_through_the_api(client, people, plan, sign_in, persona, session):
    sign_in(EMAILS[persona])
    before = denial_count(session, user_of(people, persona).id)
    response = client.get(f"/api/v1/patients/{people.patient.id}/careplan")
    if persona in TEAM | {"patient", "family"}:
        assert response.status_code == 200
        assert response.json()["goals"][0]["statement"].startswith("I want to feel better")
    else:
        assert response.status_code == 404
        assert response.json() == {"error": "not_found", "detail": "No such patient."}
        assert denial_count(session, user_of(people, persona).id) == before + 1


@pytest.mark.parametrize("persona", list(EMAILS))
def test_changing_the_plan_through_the_api(client, people, plan, sign_in, persona, session):
    token = sign_in(EMAILS[persona])
    strengths_before = session.scalar(select(func.count()).select_from(Strength))
    revision_before = plan.revision_number
    response = client.post(
        f"/api/v1/patients/{people.patient.id}/careplan/strengths",
        json={"description": "Good with animals"},
        headers={"X-CSRF-Token": token},
    )
    expected = expected_for(persona, TEAM, forbidden={"patient", "family"})
    if expected == "allowed":
        assert response.status_code == 201, response.text
        assert session.scalar(select(func.count()).select_from(Strength)) == strengths_before + 1
    else:
        assert response.status_code == expected, response.text
        session.expire_all()
        assert session.scalar(select(func.count()).select_from(Strength)) == strengths_before
        session.refresh(plan)
        assert plan.revision_number == revision_before
        assert denial_count(session, user_of(people, persona).id) >= 1


@pytest.mark.parametrize("persona", list(EMAILS))
def test_commenting_on_the_plan(client, people, plan, sign_in, persona, session):
    token = sign_in(EMAILS[persona])
    response = client.post(
        f"/api/v1/patients/{people.patient.id}/careplan/comments",
        json={"body": "A question"},
        headers={"X-CSRF-Token": token},
    )
    allowed = TEAM | {"patient"}
    comments = session.scalar(select(func.count()).select_from(PlanComment))
    if persona in allowed:
        assert response.status_code == 201
        assert comments == 1
    else:
        assert response.status_code == (403 if persona == "family" else 404)
        assert comments == 0


@pytest.mark.parametrize("persona", list(EMAILS))
def test_the_shared_view_is_only_for_consenting_family(client, people, plan, sign_in, persona):
    sign_in(EMAILS[persona])
    response = client.get(f"/shared/{people.patient.id}")
    if persona == "family":
        assert response.status_code == 200
        assert "I want to feel better" in response.text
        # The family member sees the plan, never the record around it.
        assert people.patient.mrn not in response.text
    else:
        assert response.status_code == 404


@pytest.mark.parametrize(
    ("path", "object_type"),
    [("/api/v1/patients/{id}/episodes", "Episode"), ("/patients/{id}/team", "CareTeam")],
)
@pytest.mark.parametrize("persona", ["patient", "family", "outsider"])
def test_asking_for_the_teams_view_is_refused_and_audited(
    client, people, sign_in, persona, session, path, object_type
):
    sign_in(EMAILS[persona])
    user = user_of(people, persona)
    before = denial_count(session, user.id)
    response = client.get(path.format(id=people.patient.id))
    assert response.status_code == 404
    if path.startswith("/api"):
        assert response.json() == {"error": "not_found", "detail": "No such patient."}
    assert denial_count(session, user.id) == before + 1
    event = session.scalar(
        select(AuditEvent)
        .where(AuditEvent.actor_id == user.id, AuditEvent.outcome == "denied")
        .order_by(AuditEvent.seq.desc())
    )
    assert event.patient_id == people.patient.id and event.object_type == object_type


@pytest.mark.parametrize("persona", list(EMAILS))
def test_the_patient_overview(client, people, plan, sign_in, persona):
    sign_in(EMAILS[persona])
    response = client.get(f"/patients/{people.patient.id}")
    assert response.status_code == (200 if persona in TEAM else 404)


def test_not_found_looks_the_same_for_a_record_that_does_not_exist(client, people, plan, sign_in):
    sign_in(EMAILS["outsider"])
    real = client.get(f"/api/v1/patients/{people.patient.id}/careplan")
    missing = client.get(f"/api/v1/patients/{uuid.uuid4()}/careplan")
    garbage = client.get("/api/v1/patients/not-an-id/careplan")
    assert real.status_code == missing.status_code == garbage.status_code == 404
    assert real.json() == missing.json() == garbage.json()


def test_a_denied_form_post_writes_nothing_but_is_audited(client, people, plan, sign_in, session):
    token = sign_in(EMAILS["outsider"])
    response = client.post(
        f"/patients/{people.patient.id}/plan/strengths",
        data={"csrf_token": token, "description": "Sneaky", "idem": uuid.uuid4().hex},
    )
    assert response.status_code == 404
    assert session.scalar(select(func.count()).select_from(Strength)) == 0
    event = session.scalar(
        select(AuditEvent).where(
            AuditEvent.actor_id == people.outsider.id, AuditEvent.outcome == "denied"
        )
    )
    assert event.patient_id == people.patient.id and event.action == "create"


def test_an_administrator_manages_the_team_without_seeing_the_plan(client, people, plan, sign_in):
    sign_in(EMAILS["admin"])
    team_page = client.get(f"/admin/patients/{people.patient.id}")
    assert team_page.status_code == 200
    assert "Cara Manager" in team_page.text
    assert "I want to feel better" not in team_page.text
    assert client.get(f"/patients/{people.patient.id}/plan").status_code == 404


def test_a_clinician_removed_from_the_team_loses_access_at_once(
    client, people, plan, sign_in, session
):
    from concord.patients.service import current_members, get_care_team, remove_team_member
    from tests.factories import acc_for

    team = get_care_team(session, access=acc_for(session, people.care_manager, people.patient))
    member = next(
        m for m in current_members(session, team_id=team.id) if m.user_id == people.therapist.id
    )
    sign_in(EMAILS["therapist"])
    assert client.get(f"/patients/{people.patient.id}/plan").status_code == 200
    remove_team_member(session, by=people.admin, patient=people.patient, member_id=member.id)
    commit(session)
    assert client.get(f"/patients/{people.patient.id}/plan").status_code == 404


def test_withdrawn_consent_ends_a_family_members_access(client, people, plan, sign_in, session):
    from concord.patients.models import RelatedPerson

    sign_in(EMAILS["family"])
    assert client.get(f"/shared/{people.patient.id}").status_code == 200
    link = session.scalar(select(RelatedPerson).where(RelatedPerson.user_id == people.family.id))
    token = sign_in(EMAILS["patient"])
    response = client.post(
        f"/patients/{people.patient.id}/related/{link.id}/consent",
        data={"csrf_token": token, "consented": "no"},
    )
    assert response.status_code == 303
    sign_in(EMAILS["family"])
    assert client.get(f"/shared/{people.patient.id}").status_code == 404


def test_a_patient_cannot_record_consent_for_themselves(client, people, plan, sign_in, session):
    from concord.patients.models import RelatedPerson

    link = session.scalar(
        select(RelatedPerson).where(RelatedPerson.user_id == people.family_no_consent.id)
    )
    token = sign_in(EMAILS["patient"])
    response = client.post(
        f"/patients/{people.patient.id}/related/{link.id}/consent",
        data={"csrf_token": token, "consented": "yes"},
    )
    assert response.status_code == 403
    session.refresh(link)
    assert link.consent_recorded_at is None


@pytest.mark.parametrize(
    ("path", "object_type", "action", "status"),
    [
        ("/api/v1/patients/{id}", "Patient", "read", 404),
        ("/api/v1/patients/{id}/care-team", "CareTeam", "read", 404),
        ("/fhir/Patient/{id}", "Patient", "read", 404),
        ("/fhir/Observation?patient={id}", "Patient", "search", 200),
    ],
)
def test_family_asking_for_the_record_beyond_the_plan_is_refused_and_audited(
    client, session, people, plan, path, object_type, action, status
):
    """A family member with consent sees the care plan; the record around it (demographics,
    team, scores) answers as for a stranger, and the refusal is in the audit trail."""
    from tests.careplans.test_api import bearer

    headers = bearer(session, people.family)
    before = denial_count(session, people.family.id)
    response = client.get(path.format(id=people.patient.id), headers=headers)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json().get("total", 0) == 0 and not response.json().get("entry")
    assert people.patient.mrn not in response.text
    assert denial_count(session, people.family.id) == before + 1
    event = session.scalar(
        select(AuditEvent)
        .where(AuditEvent.actor_id == people.family.id, AuditEvent.outcome == "denied")
        .order_by(AuditEvent.seq.desc())
    )
    assert (event.patient_id, event.object_type, event.action) == (
        people.patient.id,
        object_type,
        action,
    )
    # The plan itself stays theirs to read, with the same token.
    shared = client.get(f"/api/v1/patients/{people.patient.id}/careplan", headers=headers)
    assert shared.status_code == 200

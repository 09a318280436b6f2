"""Named personas and small create_* helpers, built through the real services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from concord import access
from concord.accounts.models import Clinic, Organization, Role, User
from concord.accounts.organizations import create_clinic, create_organization
from concord.accounts.users import create_user
from concord.careplans import service as plans
from concord.careplans.models import CarePlan
from concord.careplans.schemas import ActionStepIn, GoalIn, PlanStart
from concord.patients.models import Patient
from concord.patients.service import (
    NewPatient,
    add_related_person,
    add_team_member,
    register_patient,
)

PASSWORD = "correct horse battery"


@dataclass
class Personas:
    org: Organization
    north: Clinic
    south: Clinic
    admin: User
    care_manager: User  # north, lead of the patient's team
    consultant: User  # north, psychiatric consultant on the patient's team
    therapist: User  # north, on the patient's team
    outsider: User  # south care manager: not on the patient's team
    patient: Patient  # on the north team
    patient_user: User
    other_patient: Patient  # on the south team
    other_patient_user: User
    family: User  # the patient agreed to share the plan with them
    family_no_consent: User  # listed, but no consent recorded


def create_staff(
    session: Session,
    org: Organization,
    clinic: Clinic,
    role: Role,
    name: str,
    email: str,
    **kwargs: Any,
) -> User:
    user, _ = create_user(
        session,
        by=None,
        organization=org,
        email=email,
        name=name,
        role=role,
        password=PASSWORD,
        clinic=clinic,
        must_change_password=False,
        **kwargs,
    )
    return user


def create_patient(
    session: Session,
    org: Organization,
    clinic: Clinic,
    *,
    by: User | None,
    given: str,
    family: str,
    mrn: str,
    email: str | None,
    language: str = "en",
) -> Patient:
    patient, _ = register_patient(
        session,
        by=by,
        organization=org,
        data=NewPatient(
            given_name=given,
            family_name=family,
            birth_date=date(1985, 5, 17),
            mrn=mrn,
            clinic_id=clinic.id,
            language=language,
        ),
        portal_email=email,
        portal_password=PASSWORD if email else None,
    )
    if patient.user_id:
        user = session.get(User, patient.user_id)
        assert user is not None
        user.must_change_password = False
    return patient


def build_personas(session: Session) -> Personas:
    org = create_organization(
        session, name="Test Health", slug="test-health", timezone="America/Chicago"
    )
    north = create_clinic(session, organization=org, name="North Clinic")
    south = create_clinic(session, organization=org, name="South Clinic")
    admin = create_staff(session, org, north, Role.admin, "Ada Admin", "admin@test.example.org")
    care_manager = create_staff(
        session, org, north, Role.care_manager, "Cara Manager", "cara@test.example.org"
    )
    consultant = create_staff(
        session,
        org,
        north,
        Role.psychiatric_consultant,
        "Dr Con Sultant",
        "consultant@test.example.org",
    )
    therapist = create_staff(
        session, org, north, Role.therapist, "Theo Therapist", "theo@test.example.org"
    )
    outsider = create_staff(
        session, org, south, Role.care_manager, "Otto Outsider", "otto@test.example.org"
    )
    patient = create_patient(
        session,
        org,
        north,
        by=care_manager,
        given="Pat",
        family="Ient",
        mrn="N-1",
        email="pat@patients.example.org",
    )
    for member in (consultant, therapist):
        add_team_member(session, by=care_manager, patient=patient, user_id=member.id)
    other = create_patient(
        session,
        org,
        south,
        by=outsider,
        given="Olive",
        family="Other",
        mrn="S-1",
        email="olive@patients.example.org",
    )
    acc = access.patient_for(session, care_manager, patient.id)
    link, _ = add_related_person(
        session,
        access=acc,
        name="Fay Family",
        email="fay@family.example.org",
        relationship="sister",
        patient_consented=True,
    )
    link2, _ = add_related_person(
        session,
        access=acc,
        name="Nico Noconsent",
        email="nico@family.example.org",
        relationship="partner",
        patient_consented=False,
    )
    session.flush()
    for link_ in (link, link2):
        user = session.get(User, link_.user_id)
        assert user is not None
        from concord.accounts.passwords import hash_password

        user.password_hash = hash_password(PASSWORD)
        user.must_change_password = False
    session.flush()
    patient_user = session.get(User, patient.user_id)
    other_user = session.get(User, other.user_id)
    assert patient_user is not None and other_user is not None
    return Personas(
        org=org,
        north=north,
        south=south,
        admin=admin,
        care_manager=care_manager,
        consultant=consultant,
        therapist=therapist,
        outsider=outsider,
        patient=patient,
        patient_user=patient_user,
        other_patient=other,
        other_patient_user=other_user,
        family=session.get(User, link.user_id),  # type: ignore[arg-type]
        family_no_consent=session.get(User, link2.user_id),  # type: ignore[arg-type]
    )


def acc_for(session: Session, user: User, patient: Patient) -> access.PatientAccess:
    return access.patient_for(session, user, patient.id)


def create_plan(
    session: Session,
    people: Personas,
    *,
    patient: Patient | None = None,
    by: User | None = None,
    goals: int = 1,
    activate: bool = False,
) -> CarePlan:
    """A plan with `goals` goals and one action step for the patient."""
    patient = patient or people.patient
    a = acc_for(session, by or people.care_manager, patient)
    plan = plans.start_plan(session, access=a, data=PlanStart(title="Care plan"))
    for n in range(goals):
        goal = plans.add_item(
            session,
            access=a,
            section="goals",
            data=GoalIn(
                statement=f"I want to feel better, part {n + 1}",
                category="wellbeing",
                measure="PHQ-9 score",
                target="under 10",
                due_on=date(2027, 3, 1),
            ),
        )
        if n == 0:
            plans.add_item(
                session,
                access=a,
                section="action_steps",
                data=ActionStepIn(
                    description="Walk ten minutes",
                    owner="patient",
                    goal_id=goal.id,
                    due_on=date(2026, 12, 1),
                ),
            )
    if activate:
        plans.activate_plan(session, access=a, version=plan.version)
    return plan

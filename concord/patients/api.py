"""Patients, care teams and family members as JSON at /api/v1: the same schemas, services and
rules as the pages (registering, the team page, the family section of the overview)."""

# No `from __future__ import annotations`: FastAPI reads the body models from the annotations.

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from concord import access
from concord.accounts.models import Organization
from concord.actions import patients as patient_actions
from concord.actions.timeline import TimelineEntry, timeline_for
from concord.careplans import service as plans
from concord.dates import org_today
from concord.errors import NotFound
from concord.i18n import Msg
from concord.patients import service as patients
from concord.patients.models import Patient, RelatedPerson
from concord.patients.schemas import (
    ConsentIn,
    PatientIn,
    PatientUpdateIn,
    RelatedPersonIn,
    TeamMemberIn,
)
from concord.web.deps import Actor, ApiActor, ApiWriter, DbSession
from concord.web.idempotency import Idempotent, create_once

router = APIRouter(prefix="/api/v1", tags=["patients"])


def patient_json(patient: Patient) -> dict[str, Any]:
    return {
        "id": str(patient.id),
        "mrn": patient.mrn,
        "given_name": patient.given_name,
        "family_name": patient.family_name,
        "preferred_name": patient.preferred_name,
        "pronouns": patient.pronouns,
        "birth_date": patient.birth_date.isoformat(),
        "gender": patient.gender,
        "language": patient.language,
        "clinic": {"id": str(patient.clinic_id), "name": patient.clinic.name},
        "version": patient.version,
    }


def shared_json(patient: Patient) -> dict[str, Any]:
    """A patient whose plan is shared with the caller: what /shared shows, no more."""
    return {
        "id": str(patient.id),
        "given_name": patient.given_name,
        "family_name": patient.family_name,
        "preferred_name": patient.preferred_name,
    }


@router.get("/patients")
def list_patients(session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """Every patient the caller may open, with their plan's state."""
    mine = patients.list_my_patients(session, by=actor.user)
    summaries = plans.plan_summaries(session, mine, org_today(actor.user.organization))
    result = []
    whole = access.sees_whole_record(actor.user)
    for patient in mine:
        summary = summaries[patient.id]
        entry = patient_json(patient) if whole else shared_json(patient)
        entry["care_plan"] = (
            None
            if summary.plan is None
            else {
                "id": str(summary.plan.id),
                "status": summary.plan.status,
                "review_state": summary.review,
                "agreed": bool(summary.agreement and summary.agreement.agreed),
            }
        )
        result.append(entry)
    return result


@router.get("/patients/{patient_id}")
def get_patient(patient_id: str, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    acc = access.record_access(session, actor.user, patient_id)
    return patient_json(acc.patient)


def timeline_json(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "source": entry.source,
        "date": entry.on.isoformat() if entry.on is not None else None,
        "at": entry.at.isoformat() if entry.at is not None else None,
        "kind": entry.kind,
        "description": entry.description,
        "status": entry.status,
        "who": entry.who,
        "minutes": entry.minutes,
        "id": entry.ref,
    }


@router.get("/patients/{patient_id}/timeline")
def get_timeline(patient_id: str, session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """The patient's visits and encounters, newest first: `source` is `visit` (booked in
    Concord), `contact` (logged by the care team in Concord) or `ehr` (an Encounter the clinic's
    EHR sent, shown as sent: `kind` is its class code, `id` the EHR's id). The twin of the
    patient's Timeline tab; the same access, consent and audit."""
    acc = access.team_access(session, actor.user, patient_id)
    return [timeline_json(e) for e in timeline_for(session, access=acc)]


@router.get("/patients/{patient_id}/care-team")
def get_care_team(patient_id: str, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    acc = access.record_access(session, actor.user, patient_id, object_type="CareTeam")
    team, members = patients.read_care_team(session, access=acc)
    return {
        "id": str(team.id),
        "name": team.name,
        "members": [
            {
                "id": str(m.id),  # the member: what lead and remove take
                "user_id": str(m.user_id),
                "name": m.user.name,
                "role": m.role,
                "lead": m.is_lead,
                "since": m.added_at.isoformat(),
            }
            for m in members
        ],
    }


# --- registering ---------------------------------------------------------------------------


def _patient_for_caller(session: Session, actor: Actor, patient_id: str) -> Patient:
    """The patient as the caller may see them: the record for the team, the administrative
    view (no clinical content) for an administrator; audited either way."""
    if actor.user.can_administer and not actor.user.is_clinician:
        return patients.get_patient_for_admin(session, by=actor.user, patient_id=patient_id)
    return access.record_access(session, actor.user, patient_id).patient


@router.post("/patients", status_code=201)
def register_patient(
    body: PatientIn, session: DbSession, actor: ApiWriter, idem: Idempotent
) -> Any:
    """Register a patient (clinicians and administrators, as the page /patients/new). With
    `portal_email` the answer carries the portal account's temporary password, once."""

    def create() -> tuple[str, Any]:
        org = session.get(Organization, actor.user.organization_id)
        assert org is not None
        patient, password = patients.register_patient(
            session,
            by=actor.user,
            organization=org,
            data=body.to_new_patient(),
            portal_email=body.portal_email,
        )
        return str(patient.id), {**patient_json(patient), "portal_password": password}

    return create_once(
        session,
        actor,
        idem,
        create=create,
        replay=lambda result: patient_json(_patient_for_caller(session, actor, result)),
    )


@router.put("/patients/{patient_id}")
def update_patient(
    patient_id: str, body: PatientUpdateIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Change a patient's demographics (a clinician on the care team; the MRN and clinic
    stay): `version` is the one read (409 with the stored version if it changed since).
    The same action as FHIR's PUT /fhir/Patient/{id}; audited with the fields' names."""
    acc = access.team_access(session, actor.user, patient_id, action="update")
    patient = patient_actions.update(
        session,
        access=acc,
        data=body.to_new_patient(mrn=acc.patient.mrn, clinic_id=acc.patient.clinic_id),
        version=body.version,
    )
    return patient_json(patient)


# --- the care team -----------------------------------------------------------------------------


def _team_patient(session: Session, actor: Actor, patient_id: str) -> Patient:
    """As the pages: an administrator through the administrative view, a clinician through
    the team (the service then lets only the team's lead change it)."""
    if actor.user.can_administer and not actor.user.is_clinician:
        return patients.get_patient_for_admin(session, by=actor.user, patient_id=patient_id)
    return access.team_access(
        session, actor.user, patient_id, action="update", object_type="CareTeam"
    ).patient


def _team_json(session: Session, patient: Patient) -> dict[str, Any]:
    members = patients.members_of_patient(session, patient_id=patient.id)
    return {"patient_id": str(patient.id), "members": [_member_json(m) for m in members]}


def _member_json(m: Any) -> dict[str, Any]:
    return {
        "id": str(m.id),
        "user_id": str(m.user_id),
        "name": m.user.name,
        "role": m.role,
        "lead": m.is_lead,
        "since": m.added_at.isoformat(),
    }


@router.post("/patients/{patient_id}/care-team/members", status_code=201)
def add_team_member(
    patient_id: str, body: TeamMemberIn, session: DbSession, actor: ApiWriter, idem: Idempotent
) -> Any:
    """Add a clinician to the care team (an administrator or the team's lead)."""
    patient = _team_patient(session, actor, patient_id)

    def create() -> tuple[str, Any]:
        patients.add_team_member(
            session,
            by=actor.user,
            patient=patient,
            user_id=body.user_id,
            role=body.role,
            make_lead=body.make_lead,
        )
        return str(patient.id), _team_json(session, patient)

    return create_once(
        session, actor, idem, create=create, replay=lambda _: _team_json(session, patient)
    )


def _member_id(member_id: str) -> Any:
    parsed = access.parse_id(member_id)
    if parsed is None:
        raise NotFound(Msg("No such team member."))
    return parsed


@router.post("/patients/{patient_id}/care-team/members/{member_id}/lead")
def set_team_lead(
    patient_id: str, member_id: str, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    patient = _team_patient(session, actor, patient_id)
    patients.set_team_lead(session, by=actor.user, patient=patient, member_id=_member_id(member_id))
    return _team_json(session, patient)


@router.post("/patients/{patient_id}/care-team/members/{member_id}/remove")
def remove_team_member(
    patient_id: str, member_id: str, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    patient = _team_patient(session, actor, patient_id)
    patients.remove_team_member(
        session, by=actor.user, patient=patient, member_id=_member_id(member_id)
    )
    return _team_json(session, patient)


# --- family members and carers -------------------------------------------------------------------


def related_json(link: RelatedPerson) -> dict[str, Any]:
    def at(value: Any) -> Any:
        return value.isoformat() if value else None

    return {
        "id": str(link.id),
        "user_id": str(link.user_id),
        "name": link.user.name,
        "relationship": link.relationship_to_patient,
        "consented": link.consent_recorded_at is not None and link.consent_withdrawn_at is None,
        "consent_recorded_at": at(link.consent_recorded_at),
        "consent_withdrawn_at": at(link.consent_withdrawn_at),
        "consent_note": link.consent_note,
    }


def _related_access(session: Session, actor: Actor, patient_id: str, action: str) -> Any:
    return access.patient_for(
        session, actor.user, patient_id, action=action, object_type="RelatedPerson"
    )


@router.get("/patients/{patient_id}/related-persons")
def list_related_persons(
    patient_id: str, session: DbSession, actor: ApiActor
) -> list[dict[str, Any]]:
    """The patient's family members and carers, and whether the patient consented to share."""
    acc = access.record_access(session, actor.user, patient_id, object_type="RelatedPerson")
    return [related_json(r) for r in patients.list_related_persons(session, access=acc)]


@router.post("/patients/{patient_id}/related-persons", status_code=201)
def add_related_person(
    patient_id: str, body: RelatedPersonIn, session: DbSession, actor: ApiWriter, idem: Idempotent
) -> Any:
    """Add a family member or carer (the care team). A new account's temporary password is in
    the answer, once."""
    acc = _related_access(session, actor, patient_id, "update")

    def create() -> tuple[str, Any]:
        link, password = patients.add_related_person(
            session,
            access=acc,
            name=body.name,
            email=body.email,
            relationship=body.relationship,
            patient_consented=body.patient_consented,
            consent_note=body.consent_note,
        )
        return str(link.id), {**related_json(link), "password": password}

    def replay(result: str) -> Any:
        for link in patients.list_related_persons(session, access=acc):
            if str(link.id) == result:
                return related_json(link)
        raise NotFound(Msg("The earlier submission with this key is not available."))

    return create_once(session, actor, idem, create=create, replay=replay)


@router.post("/patients/{patient_id}/related-persons/{related_id}/consent")
def set_consent(
    patient_id: str, related_id: str, body: ConsentIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Record the patient's consent (the care team) or withdraw it (the team or the patient)."""
    acc = _related_access(session, actor, patient_id, "update")
    related = access.parse_id(related_id)
    if related is None:
        raise NotFound(Msg("No such family member or carer."))
    link = patients.set_related_person_consent(
        session, access=acc, related_id=related, consented=body.consented, note=body.note
    )
    return related_json(link)

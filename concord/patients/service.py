"""Patients, their care teams and the related persons they choose."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import (
    PatientAccess,
    deny,
    owned_by_id,
    page_in_scope,
    readable_patients,
    record_access,
)
from concord.accounts.models import CLINICAL_ROLES, Clinic, Organization, Role, User
from concord.accounts.users import create_user, get_user_by_email
from concord.audit.models import Outcome
from concord.audit.service import record, refused
from concord.clock import now
from concord.consents import family
from concord.dates import org_today
from concord.errors import Conflict, InvalidInput, NotFound, PermissionDenied, StaleVersion
from concord.i18n import Msg
from concord.paging import CodeCriterion, DateCriterion, Page, TextCriterion, keyset, ordered
from concord.patients.models import (
    AdministrativeGender,
    CareTeam,
    CareTeamMember,
    Patient,
    RelatedPerson,
)


@dataclass
class NewPatient:
    given_name: str
    family_name: str
    birth_date: date
    mrn: str
    clinic_id: uuid.UUID
    preferred_name: str | None = None
    pronouns: str | None = None
    gender: str = AdministrativeGender.unknown
    language: str = "en"
    phone: str | None = None
    email: str | None = None


def check_may_register(session: Session, *, by: User, organization: Organization) -> None:
    """Clinicians and administrators register patients; anyone else is refused, audited like
    every denial, whichever door asked (the page, the JSON API or FHIR)."""
    if not (by.is_clinician or by.can_administer):
        record(
            session,
            by=by,
            action="create",
            object_type="Patient",
            organization_id=organization.id,
            outcome=Outcome.denied,
        )
        raise PermissionDenied("Only clinicians and administrators can register patients.")


def register_patient(
    session: Session,
    *,
    by: User | None,
    organization: Organization,
    data: NewPatient,
    portal_email: str | None = None,
    portal_password: str | None = None,
) -> tuple[Patient, str | None]:
    """Register a patient with an empty care team. A clinician who registers a patient joins
    the team as its lead. With `portal_email` the patient also gets a portal account; the
    returned password is shown once (or is the one given). `by` is None for operator commands."""
    if by is not None:
        check_may_register(session, by=by, organization=organization)
    clinic = session.get(Clinic, data.clinic_id)
    if clinic is None or clinic.organization_id != organization.id:
        raise InvalidInput.field("clinic_id", "must be one of your organization's clinics")
    if data.birth_date > org_today(organization):
        raise InvalidInput.field("birth_date", "cannot be in the future")
    if (
        session.scalar(
            select(Patient).where(
                Patient.organization_id == organization.id, Patient.mrn == data.mrn
            )
        )
        is not None
    ):
        raise InvalidInput.field("mrn", "is already used by another patient")
    password = None
    user = None
    if portal_email:
        name = f"{data.preferred_name or data.given_name} {data.family_name}"
        user, password = create_user(
            session,
            by=None,
            organization=organization,
            email=portal_email,
            name=name,
            role=Role.patient,
            password=portal_password,
            clinic=clinic,
            language=data.language,
        )
    patient = Patient(
        organization_id=organization.id,
        clinic_id=clinic.id,
        user_id=user.id if user else None,
        mrn=data.mrn,
        given_name=data.given_name,
        family_name=data.family_name,
        preferred_name=data.preferred_name,
        pronouns=data.pronouns,
        birth_date=data.birth_date,
        gender=data.gender,
        language=data.language,
        phone=data.phone,
        email=data.email,
    )
    session.add(patient)
    session.flush()
    team = CareTeam(
        patient_id=patient.id, name=f"Care team for {data.given_name} {data.family_name}"
    )
    session.add(team)
    session.flush()
    if by is not None and by.is_clinician:
        # Audited as part of the patient's creation (no team_add of its own).
        set_member(session, team=team, user=by, by=by, is_lead=True)
    record(
        session,
        by=by,
        action="create",
        object_type="Patient",
        object_id=patient.id,
        patient_id=patient.id,
        organization_id=organization.id,
    )
    return patient, password


# The demographics an update may change (the MRN, the clinic and the portal account stay).
UPDATABLE = (
    "given_name",
    "family_name",
    "preferred_name",
    "pronouns",
    "birth_date",
    "gender",
    "language",
    "phone",
    "email",
)


def find_by_mrn(session: Session, *, by: User, mrn: str) -> Patient | None:
    """The patient of `by`'s organization with this MRN, if `by` may read their record (a
    conditional create's match); the read is in the trail. None when there is none, or when
    it is not `by`'s to read (then NotFound is audited as for any read)."""
    patient_id = session.scalar(
        select(Patient.id).where(Patient.organization_id == by.organization_id, Patient.mrn == mrn)
    )
    if patient_id is None:
        return None
    return record_access(session, by, patient_id).patient


def update_patient(
    session: Session, *, access: PatientAccess, data: NewPatient, version: int | None
) -> tuple[Patient, list[str]]:
    """Change a patient's demographics (a clinician on the care team): the fields UPDATABLE
    lists, as `data` gives them; the MRN must stay. `version`, when given, must be the
    stored one (StaleVersion otherwise: someone changed the patient since). Returns the
    patient and the names of the fields changed; a change raises the version and is
    audited (field names only)."""
    by = access.by
    patient = access.patient
    if not by.is_clinician:
        record(
            session,
            by=by,
            action="update",
            object_type="Patient",
            object_id=patient.id,
            patient_id=patient.id,
            outcome=Outcome.denied,
        )
        raise PermissionDenied("Only the care team's clinicians can change a patient.")
    # The row locked (and its version read again) so two updates cannot both pass the check.
    stored = session.scalar(
        select(Patient.version).where(Patient.id == patient.id).with_for_update()
    )
    locked = patient
    locked.version = stored if stored is not None else locked.version
    if version is not None and version != locked.version:
        raise StaleVersion(
            Msg("The patient was changed since version %(version)s.", version=version),
            version=locked.version,
        )
    if data.mrn != locked.mrn:
        raise InvalidInput.field("identifier", Msg("the MRN cannot be changed"))
    organization = session.get(Organization, locked.organization_id)
    assert organization is not None
    if data.birth_date > org_today(organization):
        raise InvalidInput.field("birth_date", "cannot be in the future")
    changed = [name for name in UPDATABLE if getattr(locked, name) != getattr(data, name)]
    if changed:
        for name in changed:
            setattr(locked, name, getattr(data, name))
        locked.version += 1
        locked.updated_at = now()
        session.flush()
        record(
            session,
            by=by,
            action="update",
            object_type="Patient",
            object_id=locked.id,
            patient_id=locked.id,
            detail={"fields": changed, "version": locked.version},
        )
    return locked, changed


def list_my_patients(session: Session, *, by: User) -> list[Patient]:
    patients = list(
        session.scalars(readable_patients(by).order_by(Patient.family_name, Patient.given_name))
    )
    # A list is a read of each record on it.
    for patient in patients:
        record(
            session,
            by=by,
            action="list",
            object_type="Patient",
            object_id=patient.id,
            patient_id=patient.id,
        )
    return patients


@disclosure.discloses("CareTeam")
def get_care_team(session: Session, *, access: PatientAccess) -> CareTeam:
    team = session.scalar(select(CareTeam).where(CareTeam.patient_id == access.patient.id))
    if team is None:  # every registered patient has one
        raise NotFound("This patient has no care team.")
    return team


def current_members(session: Session, *, team_id: uuid.UUID) -> list[CareTeamMember]:
    return list(
        session.scalars(
            select(CareTeamMember)
            .where(CareTeamMember.care_team_id == team_id, CareTeamMember.ended_at.is_(None))
            .order_by(CareTeamMember.is_lead.desc(), CareTeamMember.added_at)
        )
    )


def members_of_patient(session: Session, *, patient_id: uuid.UUID) -> list[CareTeamMember]:
    """The patient's current care-team members, the lead first, then by when they joined (the
    id breaks ties, so who owns an alert never depends on the database's whim)."""
    return list(
        session.scalars(
            select(CareTeamMember)
            .join(CareTeam, CareTeam.id == CareTeamMember.care_team_id)
            .where(CareTeam.patient_id == patient_id, CareTeamMember.ended_at.is_(None))
            .order_by(CareTeamMember.is_lead.desc(), CareTeamMember.added_at, CareTeamMember.id)
        )
    )


def read_care_team(
    session: Session, *, access: PatientAccess
) -> tuple[CareTeam, list[CareTeamMember]]:
    team = get_care_team(session, access=access)
    record(
        session,
        by=access.by,
        action="read",
        object_type="CareTeam",
        object_id=team.id,
        patient_id=access.patient.id,
    )
    return team, current_members(session, team_id=team.id)


def lead_of(session: Session, *, patient_id: uuid.UUID) -> CareTeamMember | None:
    return session.scalar(
        select(CareTeamMember)
        .join(CareTeam, CareTeam.id == CareTeamMember.care_team_id)
        .where(
            CareTeam.patient_id == patient_id,
            CareTeamMember.is_lead.is_(True),
            CareTeamMember.ended_at.is_(None),
        )
    )


# --- team membership (administrators, and the team's lead) ---------------------------------


def _team_manager_check(session: Session, *, by: User, patient: Patient, action: str) -> None:
    if patient.organization_id != by.organization_id:
        raise NotFound("No such patient.")
    if by.can_administer:
        return
    lead = lead_of(session, patient_id=patient.id)
    if lead is not None and lead.user_id == by.id:
        return
    record(
        session,
        by=by,
        action=action,
        object_type="CareTeam",
        patient_id=patient.id,
        outcome=Outcome.denied,
    )
    raise PermissionDenied("Only an administrator or the team's lead can change the care team.")


def get_patient_for_admin(session: Session, *, by: User, patient_id: str | uuid.UUID) -> Patient:
    """Administrative access (name, clinic, team): no clinical content."""
    try:
        pid = uuid.UUID(str(patient_id))
    except ValueError:
        raise NotFound("No such patient.") from None
    patient = session.get(Patient, pid)
    if patient is None or patient.organization_id != by.organization_id or not by.can_administer:
        raise refused(
            session,
            by=by,
            action="admin_read",
            object_type="Patient",
            asked_for=patient_id,
            message="No such patient.",
        )
    record(
        session,
        by=by,
        action="admin_read",
        object_type="Patient",
        object_id=patient.id,
        patient_id=patient.id,
    )
    return patient


def list_patients_for_admin(session: Session, *, by: User) -> list[Patient]:
    if not by.can_administer:
        raise PermissionDenied("Only an administrator can list every patient.")
    return list(
        session.scalars(
            select(Patient)
            .where(Patient.organization_id == by.organization_id)
            .order_by(Patient.family_name, Patient.given_name)
        )
    )


def membership(session: Session, *, team: CareTeam, user: User) -> CareTeamMember | None:
    """This user's row on this team, current or ended (a team keeps one row a person)."""
    return session.scalar(
        select(CareTeamMember).where(
            CareTeamMember.care_team_id == team.id, CareTeamMember.user_id == user.id
        )
    )


def join_team(
    session: Session, *, patient_id: uuid.UUID, user: User, organization_id: uuid.UUID, why: str
) -> None:
    """The system puts `user` on the patient's care team so the access rules let them act (a
    consultant asked for a case review, an alert's on-call owner); audited with `why`. Nothing
    happens when they are on it already."""
    team = session.scalar(select(CareTeam).where(CareTeam.patient_id == patient_id))
    assert team is not None
    current = membership(session, team=team, user=user)
    if current is not None and current.ended_at is None:
        return
    set_member(session, team=team, user=user, by=None, found=current)
    record(
        session,
        by=None,
        action="team_add",
        object_type="CareTeam",
        object_id=team.id,
        patient_id=patient_id,
        organization_id=organization_id,
        detail={"user": str(user.id), "why": why},
    )


def set_member(
    session: Session,
    *,
    team: CareTeam,
    user: User,
    by: User | None,
    role: Role | str | None = None,
    is_lead: bool = False,
    found: CareTeamMember | None = None,
) -> CareTeamMember:
    """The one place that puts someone on a care team: a new row, or their old row made current
    again (ended memberships are reopened, not duplicated). `by` is None when the system adds
    them (a case-review consultant, an alert's on-call owner). Checks and the audit event stay
    with the caller, which knows why; ending a membership is `remove_team_member`, changing the
    lead `set_team_lead`. Only synth.py's bulk COPY of a synthetic load writes rows otherwise."""
    member = found if found is not None else membership(session, team=team, user=user)
    if member is None:
        member = CareTeamMember(care_team_id=team.id, user_id=user.id)
        session.add(member)
    member.ended_at = None
    member.added_at = now()
    member.added_by_id = by.id if by is not None else None
    member.role = str(role or user.role)
    member.is_lead = is_lead
    session.flush()
    return member


def add_team_member(
    session: Session,
    *,
    by: User,
    patient: Patient,
    user_id: uuid.UUID,
    role: Role | None = None,
    make_lead: bool = False,
) -> CareTeamMember:
    _team_manager_check(session, by=by, patient=patient, action="team_add")
    member_user = session.get(User, user_id)
    if member_user is None or member_user.organization_id != patient.organization_id:
        raise InvalidInput.field("user_id", "must be a clinician in your organization")
    if Role(member_user.role) not in CLINICAL_ROLES or not member_user.active:
        raise InvalidInput.field("user_id", "must be an active clinician")
    team = session.scalar(select(CareTeam).where(CareTeam.patient_id == patient.id))
    assert team is not None
    current = membership(session, team=team, user=member_user)
    if current is not None and current.ended_at is None:
        raise Conflict(f"{member_user.name} is already on this care team.")
    member = set_member(session, team=team, user=member_user, by=by, role=role, found=current)
    if make_lead:
        _make_lead(session, team_id=team.id, member=member)
    record(
        session,
        by=by,
        action="team_add",
        object_type="CareTeam",
        object_id=team.id,
        patient_id=patient.id,
        detail={"user": str(user_id), "lead": make_lead},
    )
    return member


def _make_lead(session: Session, *, team_id: uuid.UUID, member: CareTeamMember) -> None:
    for other in current_members(session, team_id=team_id):
        if other.is_lead and other.id != member.id:
            other.is_lead = False
    session.flush()
    member.is_lead = True
    session.flush()


def set_team_lead(session: Session, *, by: User, patient: Patient, member_id: uuid.UUID) -> None:
    _team_manager_check(session, by=by, patient=patient, action="team_lead")
    member = session.get(CareTeamMember, member_id)
    team = session.scalar(select(CareTeam).where(CareTeam.patient_id == patient.id))
    if member is None or team is None or member.care_team_id != team.id or member.ended_at:
        raise NotFound("No such team member.")
    _make_lead(session, team_id=team.id, member=member)
    record(
        session,
        by=by,
        action="team_lead",
        object_type="CareTeam",
        object_id=team.id,
        patient_id=patient.id,
        detail={"user": str(member.user_id)},
    )


def remove_team_member(
    session: Session, *, by: User, patient: Patient, member_id: uuid.UUID
) -> None:
    _team_manager_check(session, by=by, patient=patient, action="team_remove")
    member = session.get(CareTeamMember, member_id)
    team = session.scalar(select(CareTeam).where(CareTeam.patient_id == patient.id))
    if member is None or team is None or member.care_team_id != team.id or member.ended_at:
        raise NotFound("No such team member.")
    if member.is_lead:
        raise Conflict("Choose another lead before removing the current lead.")
    member.ended_at = now()
    record(
        session,
        by=by,
        action="team_remove",
        object_type="CareTeam",
        object_id=team.id,
        patient_id=patient.id,
        detail={"user": str(member.user_id)},
    )


def list_clinicians(session: Session, *, organization_id: uuid.UUID) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .where(
                User.organization_id == organization_id,
                User.active.is_(True),
                User.role.in_([str(r) for r in CLINICAL_ROLES]),
            )
            .order_by(User.name)
        )
    )


# --- related persons -----------------------------------------------------------------------


@disclosure.discloses("RelatedPerson")
def list_related_persons(session: Session, *, access: PatientAccess) -> list[RelatedPerson]:
    if not access.can_read_record:
        raise deny(
            session,
            access,
            action="read",
            object_type="RelatedPerson",
            message="You cannot see this patient's contacts.",
        )
    return list(
        session.scalars(
            select(RelatedPerson)
            .where(RelatedPerson.patient_id == access.patient.id, RelatedPerson.ended_at.is_(None))
            .order_by(RelatedPerson.created_at)
        )
    )


def add_related_person(
    session: Session,
    *,
    access: PatientAccess,
    name: str,
    email: str,
    relationship: str,
    patient_consented: bool,
    consent_note: str | None = None,
) -> tuple[RelatedPerson, str | None]:
    """Add a family member or carer. They see the care plan only if the patient's consent is
    recorded here. Returns the link and, for a new account, its temporary password."""
    if not access.on_team:
        raise deny(
            session,
            access,
            action="create",
            object_type="RelatedPerson",
            message="Only the care team can add a family member or carer.",
        )
    errors: dict[str, str] = {}
    if not name.strip():
        errors["name"] = "is required"
    if not relationship.strip():
        errors["relationship"] = "is required, e.g. mother, partner, friend"
    if errors:
        raise InvalidInput("Some fields need attention.", errors=errors)
    user = get_user_by_email(session, email)
    password = None
    if user is None:
        org = session.get(Organization, access.patient.organization_id)
        assert org is not None
        user, password = create_user(
            session, by=None, organization=org, email=email, name=name, role=Role.related_person
        )
    elif user.role != Role.related_person or user.organization_id != access.by.organization_id:
        raise InvalidInput.field(
            "email", "belongs to an account that is not a family or carer account"
        )
    existing = session.scalar(
        select(RelatedPerson).where(
            RelatedPerson.patient_id == access.patient.id, RelatedPerson.user_id == user.id
        )
    )
    if existing is not None and existing.ended_at is None:
        raise Conflict(f"{user.name} is already listed for this patient.")
    link = existing or RelatedPerson(patient_id=access.patient.id, user_id=user.id)
    link.relationship_to_patient = relationship.strip()[:60]
    link.ended_at = None
    link.consent_withdrawn_at = None
    link.consent_recorded_at = now() if patient_consented else None
    link.consent_recorded_by_id = access.by.id if patient_consented else None
    link.consent_note = (consent_note or "").strip()[:500] or None
    session.add(link)
    session.flush()
    family.sync(session, link, organization_id=access.patient.organization_id, by_id=access.by.id)
    record(
        session,
        by=access.by,
        action="create",
        object_type="RelatedPerson",
        object_id=link.id,
        patient_id=access.patient.id,
        detail={"consent": patient_consented},
    )
    return link, password


def set_related_person_consent(
    session: Session,
    *,
    access: PatientAccess,
    related_id: uuid.UUID,
    consented: bool,
    note: str | None = None,
    signed_by_patient: bool = False,
) -> RelatedPerson:
    """Record or withdraw the patient's consent to share the plan with this person. The
    patient may withdraw it themselves, and give it themselves only by signing a consent in
    the portal (`signed_by_patient`: concord.actions.consents, a person the team listed)."""
    link = session.get(RelatedPerson, related_id)
    if link is None or link.patient_id != access.patient.id or link.ended_at is not None:
        raise NotFound("No such family member or carer.")
    may = access.on_team or (access.is_self and (not consented or signed_by_patient))
    if not may:
        raise deny(
            session,
            access,
            action="consent",
            object_type="RelatedPerson",
            object_id=related_id,
            message="Only the care team can record consent; you can withdraw it.",
        )
    if consented:
        link.consent_recorded_at = now()
        link.consent_recorded_by_id = access.by.id
        link.consent_withdrawn_at = None
        link.consent_note = (note or "").strip()[:500] or link.consent_note
    else:
        link.consent_withdrawn_at = now()
    family.sync(session, link, organization_id=access.patient.organization_id, by_id=access.by.id)
    record(
        session,
        by=access.by,
        action="consent_record" if consented else "consent_withdraw",
        object_type="RelatedPerson",
        object_id=link.id,
        patient_id=access.patient.id,
    )
    return link


# --- reads for the FHIR API and exports (access and audit applied here, once) ------------------


GENDER_SYSTEM = "http://hl7.org/fhir/administrative-gender"
# The keys a list of patients may be sorted by (FHIR's _sort names): their columns.
PATIENT_ORDER: dict[str, tuple[Any, ...]] = {
    "_id": (Patient.id,),
    "family": (Patient.family_name,),
    "given": (Patient.given_name,),
    "name": (Patient.family_name, Patient.given_name),
    "birthdate": (Patient.birth_date,),
    "gender": (Patient.gender,),
    "identifier": (Patient.mrn,),
}


@dataclass
class PatientFilter:
    """What a search of patients asks for: each group (AND) holds criteria of which one must
    hold (OR). `names` match the family, given or preferred name; `given` the given or the
    preferred name (both are given names in FHIR)."""

    ids: Sequence[Sequence[uuid.UUID | None]] = ()
    mrns: Sequence[Sequence[CodeCriterion]] = ()
    mrn_system: str = ""
    names: Sequence[Sequence[TextCriterion]] = ()
    family: Sequence[Sequence[TextCriterion]] = ()
    given: Sequence[Sequence[TextCriterion]] = ()
    genders: Sequence[Sequence[CodeCriterion]] = ()
    born: Sequence[Sequence[DateCriterion]] = ()


def _filtered(by: User, found: PatientFilter) -> Any:
    query = readable_patients(by)
    for ids in found.ids:
        query = query.where(Patient.id.in_([i for i in ids if i is not None]))
    for group in found.mrns:
        query = query.where(
            or_(*(c.fixed_system_clause(found.mrn_system, Patient.mrn) for c in group))
        )
    name_columns = (Patient.family_name, Patient.given_name, Patient.preferred_name)
    for groups, columns in (
        (found.names, name_columns),
        (found.family, (Patient.family_name,)),
        (found.given, (Patient.given_name, Patient.preferred_name)),
    ):
        for text_group in groups:
            query = query.where(or_(*(t.clause(col) for t in text_group for col in columns)))
    for group in found.genders:
        query = query.where(
            or_(*(c.fixed_system_clause(GENDER_SYSTEM, Patient.gender) for c in group))
        )
    for date_group in found.born:
        query = query.where(or_(*(d.day_clause(Patient.birth_date) for d in date_group)))
    return query


def list_patients(
    session: Session,
    *,
    by: User,
    id_groups: Sequence[Sequence[uuid.UUID | None]] = (),
    mrn_groups: Sequence[Sequence[CodeCriterion]] = (),
    mrn_system: str = "",
    where: PatientFilter | None = None,
    order: Sequence[tuple[str, bool]] = (),
    offset: int = 0,
    after: uuid.UUID | None = None,
    limit: int = 100,
    only_count: bool = False,
    with_total: bool = True,
) -> Page[Patient]:
    """The patients `by` may read, in id order (or `order`: PATIENT_ORDER keys, each with
    descending or not, then by id; paged by `offset`), those `where` keeps (the id and MRN
    groups are its `ids` and `mrns`). Each patient returned is written to the trail as
    searched."""
    found = where or PatientFilter()
    if id_groups or mrn_groups:
        found = PatientFilter(
            **{**found.__dict__, "ids": id_groups, "mrns": mrn_groups, "mrn_system": mrn_system}
        )
    query = _filtered(by, found)
    if order:
        columns = [
            col.desc() if descending else col.asc()
            for key, descending in order
            for col in PATIENT_ORDER[key]
        ]
        page = ordered(
            session,
            query,
            [*columns, Patient.id],
            offset=offset,
            limit=limit,
            only_count=only_count,
            with_total=with_total,
        )
    else:
        page = keyset(session, query, Patient.id, after=after, limit=limit, only_count=only_count)
    patients = [row[0] for row in page.rows]
    for patient in patients:
        record(
            session,
            by=by,
            action="search",
            object_type="Patient",
            object_id=patient.id,
            patient_id=patient.id,
        )
    return Page(patients, page.more, page.total)


def get_care_team_by_id(
    session: Session, *, by: User, ident: str
) -> tuple[CareTeam, PatientAccess, list[CareTeamMember]]:
    """A care team by its id, its patient's access and its current members, if `by` may read
    the patient's record (NotFound, audited, otherwise); the read is in the trail."""
    team, acc = owned_by_id(session, by, CareTeam, ident, object_type="CareTeam")
    record(
        session,
        by=by,
        action="read",
        object_type="CareTeam",
        object_id=team.id,
        patient_id=acc.patient.id,
    )
    return team, acc, current_members(session, team_id=team.id)


def list_care_teams(
    session: Session,
    *,
    by: User,
    scope: list[PatientAccess] | None,
    after: uuid.UUID | None = None,
    limit: int = 100,
    only_count: bool = False,
) -> Page[tuple[CareTeam, PatientAccess, list[CareTeamMember]]]:
    """The care teams of the patients in `scope` (None: every patient `by` may read), in id
    order, each with its patient's access and current members; each is in the trail."""
    page = page_in_scope(
        session,
        by,
        select(CareTeam),
        patient_col=CareTeam.patient_id,
        id_col=CareTeam.id,
        scope=scope,
        object_type="CareTeam",
        after=after,
        limit=limit,
        only_count=only_count,
    )
    rows = [(team, acc, current_members(session, team_id=team.id)) for team, acc in page.rows]
    return Page(rows, page.more, page.total)


def care_team_of(session: Session, patient_id: uuid.UUID) -> CareTeam | None:
    return session.scalar(select(CareTeam).where(CareTeam.patient_id == patient_id))

"""The few helpers every read and write of patient data goes through.

Deny by default. A clinician reaches a patient only through a current care-team membership; a
patient reaches only their own record; a related person only a patient who consented to share
with them, and then only the care plan. An administrator's role gives no clinical access.

Outside the actor's scope the answer is NotFound, the same as for a patient who does not
exist, so existence never leaks. Each condition sits on its own line so tests can reach every
branch. Every denial is audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Select, String, and_, bindparam, cast, exists, or_, select
from sqlalchemy.orm import Session, defaultload, lazyload

from concord.accounts.models import Clinic, User
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.dates import org_today
from concord.db import Base
from concord.errors import NotFound, PermissionDenied
from concord.i18n import Msg
from concord.paging import Page, keyset
from concord.patients.models import CareTeam, CareTeamMember, Patient, RelatedPerson


class Relation(StrEnum):
    team = "team"
    self = "self"
    related = "related"


@dataclass(frozen=True)
class PatientAccess:
    """What `by` may do with `patient`, found once per request."""

    by: User
    patient: Patient
    relation: Relation
    membership: CareTeamMember | None = None

    @property
    def on_team(self) -> bool:
        return self.relation == Relation.team

    @property
    def is_self(self) -> bool:
        return self.relation == Relation.self

    @property
    def is_lead(self) -> bool:
        return self.membership is not None and self.membership.is_lead

    @property
    def can_edit_plan(self) -> bool:
        return self.on_team and self.by.is_clinician

    @property
    def can_comment(self) -> bool:
        return self.on_team or self.is_self

    @property
    def can_propose_goal(self) -> bool:
        return self.on_team or self.is_self

    @property
    def can_read_history(self) -> bool:
        """The plan's revisions and what changed between them: with who changed what and why
        (a removed item's reason, a patient's private "why"), they are the team's working
        record. A family member sees only the plan as it stands."""
        return self.on_team

    @property
    def can_read_record(self) -> bool:
        """The whole record, beyond the care plan (demographics, team, access log)."""
        return self.on_team or self.is_self


def _family_consent(related_id: Any, today: date) -> Any:
    """An active family-sharing permit naming the related person (the consent table, read by
    name: the consents domain sits above this module)."""
    consent = Base.metadata.tables["consent"]
    return exists().where(
        consent.c.grantee_related_person_id == related_id,
        consent.c.grantee_kind == "related_person",
        consent.c.provision == "permit",
        consent.c.status == "active",
        cast(consent.c.purposes, String).like('%"family_sharing"%'),
        consent.c.period_start <= today,
        or_(consent.c.period_end.is_(None), consent.c.period_end >= today),
    )


M = TypeVar("M", bound=Base)


def parse_id(value: str | uuid.UUID) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


# Nearly every request about a patient asks this: the patient (their clinic by its joined
# load) and the asker's current membership of the patient's care team, in one statement built
# once. A team has at most one row per person; the member's user is the asker, already loaded.
_PATIENT_AND_MEMBERSHIP = (
    select(Patient, CareTeamMember)
    .outerjoin(CareTeam, CareTeam.patient_id == Patient.id)
    .outerjoin(
        CareTeamMember,
        and_(
            CareTeamMember.care_team_id == CareTeam.id,
            CareTeamMember.user_id == bindparam("user"),
            CareTeamMember.ended_at.is_(None),
        ),
    )
    .where(Patient.id == bindparam("patient"))
    # The clinic's organization is the patient's (loaded with the asker); the member's user
    # is the asker: both are found in the session when asked for, without a query.
    .options(
        lazyload(CareTeamMember.user), defaultload(Patient.clinic).lazyload(Clinic.organization)
    )
)


def _patient_and_membership(
    session: Session, by: User, patient_id: uuid.UUID
) -> tuple[Patient | None, CareTeamMember | None]:
    row = session.execute(_PATIENT_AND_MEMBERSHIP, {"patient": patient_id, "user": by.id}).first()
    return (row[0], row[1]) if row is not None else (None, None)


def _relation(
    session: Session, by: User, patient: Patient, membership: CareTeamMember | None
) -> PatientAccess | None:
    if not by.active:
        return None
    if patient.organization_id != by.organization_id:
        return None
    if by.is_clinician:
        if membership is not None:
            return PatientAccess(by, patient, Relation.team, membership)
        return None
    if by.is_patient:
        if patient.user_id == by.id:
            return PatientAccess(by, patient, Relation.self)
        return None
    if by.is_related_person:
        # The patient's consent records answer (ADR 0021): an active permit naming them for
        # family sharing, within its period, from a link that has not ended.
        found = session.scalar(
            select(RelatedPerson.id).where(
                RelatedPerson.patient_id == patient.id,
                RelatedPerson.user_id == by.id,
                RelatedPerson.ended_at.is_(None),
                _family_consent(RelatedPerson.id, org_today(by.organization)),
            )
        )
        if found is not None:
            return PatientAccess(by, patient, Relation.related)
        return None
    # Administrators (and any role not named above) have no clinical access.
    return None


def patient_for(
    session: Session,
    by: User,
    patient_id: str | uuid.UUID,
    *,
    action: str = "read",
    object_type: str = "Patient",
) -> PatientAccess:
    """The patient, if `by` may reach them; NotFound (audited) otherwise."""
    pid = parse_id(patient_id)
    patient, membership = (
        _patient_and_membership(session, by, pid) if pid is not None else (None, None)
    )
    access = _relation(session, by, patient, membership) if patient is not None else None
    if access is None:
        raise _not_found(session, by, patient_id, patient, action, object_type)
    return access


def reaches(session: Session, by: User, patient: Patient) -> PatientAccess | None:
    """Whether `by` may reach `patient` now, and how, without a line in the audit trail: for
    deciding whom to tell or to name (a notice, the patient's list of who takes part), never
    for a read of the record (that is `patient_for`)."""
    _, membership = _patient_and_membership(session, by, patient.id)
    return _relation(session, by, patient, membership)


def _not_found(
    session: Session,
    by: User,
    asked: str | uuid.UUID,
    patient: Patient | None,
    action: str,
    object_type: str,
    message: Msg | None = None,
) -> NotFound:
    """The denial written to the audit trail, and the answer: the same whether the patient
    does not exist or is not the asker's to see."""
    record(
        session,
        by=by,
        action=action,
        object_type=object_type,
        object_id=str(asked)[:64],
        # Name the patient in the trail only when one exists, so an administrator reviewing
        # denials can see who was probed.
        patient_id=patient.id if patient is not None else None,
        outcome=Outcome.denied,
    )
    return NotFound(message or Msg("No such patient."))


def team_access(
    session: Session,
    by: User,
    patient_id: str | uuid.UUID,
    *,
    action: str = "read",
    object_type: str = "Patient",
) -> PatientAccess:
    """A patient as seen from their care team (the team's pages and API); NotFound for
    anyone not on it, the patient and their family included."""
    return _narrowed(session, by, patient_id, lambda acc: acc.on_team, action, object_type)


def record_access(
    session: Session,
    by: User,
    patient_id: str | uuid.UUID,
    *,
    action: str = "read",
    object_type: str = "Patient",
) -> PatientAccess:
    """A patient's whole record, beyond the care plan (demographics, team, scores): for their
    care team and the patient; NotFound, audited, for anyone else, family included."""
    return _narrowed(session, by, patient_id, lambda acc: acc.can_read_record, action, object_type)


def _narrowed(
    session: Session,
    by: User,
    patient_id: str | uuid.UUID,
    allowed: Callable[[PatientAccess], bool],
    action: str,
    object_type: str,
) -> PatientAccess:
    acc = patient_for(session, by, patient_id, action=action, object_type=object_type)
    if not allowed(acc):
        # The same answer as for a stranger, and the same line in the trail: someone who may
        # see this record elsewhere (the patient, their family) asked for more of it.
        raise _not_found(session, by, patient_id, acc.patient, action, object_type)
    return acc


def refuse_record(
    session: Session,
    acc: PatientAccess,
    *,
    action: str = "read",
    object_type: str = "Patient",
    message: Msg | None = None,
) -> NotFound:
    """The answer for someone who may see a patient's care plan but not the record around it
    (a family member): the stranger's answer, and the same line in the audit trail."""
    return _not_found(session, acc.by, acc.patient.id, acc.patient, action, object_type, message)


def own_record(
    session: Session, by: User, *, action: str = "read", object_type: str = "CarePlan"
) -> PatientAccess:
    """The signed-in patient's own record (portal pages); NotFound for anyone else."""
    patient = session.scalar(select(Patient).where(Patient.user_id == by.id))
    if patient is None or not by.is_patient:
        raise NotFound("This page is for patients.")
    return patient_for(session, by, patient.id, action=action, object_type=object_type)


def deny(
    session: Session,
    access: PatientAccess,
    *,
    action: str,
    object_type: str,
    object_id: uuid.UUID | str | None = None,
    message: str,
) -> PermissionDenied:
    """An action the actor may not take on a record they can already see (audited)."""
    record(
        session,
        by=access.by,
        action=action,
        object_type=object_type,
        object_id=object_id,
        patient_id=access.patient.id,
        outcome=Outcome.denied,
    )
    return PermissionDenied(message)


def sees_whole_record(by: User) -> bool:
    """Whether the patients readable_patients(by) gives are whole records to `by` (the patient,
    their care team) or only shared care plans (a family member: the name and the plan, as
    /shared shows them)."""
    return by.active and (by.is_clinician or by.is_patient)


def readable_patients(by: User) -> Select[tuple[Patient]]:
    """A query for every patient `by` may open; empty for anyone without clinical access."""
    query = select(Patient).where(Patient.organization_id == by.organization_id)
    if not by.active:
        return query.where(False)
    if by.is_clinician:
        return query.where(
            exists().where(
                and_(
                    CareTeam.patient_id == Patient.id,
                    CareTeamMember.care_team_id == CareTeam.id,
                    CareTeamMember.user_id == by.id,
                    CareTeamMember.ended_at.is_(None),
                )
            )
        )
    if by.is_patient:
        return query.where(Patient.user_id == by.id)
    if by.is_related_person:
        return query.where(
            exists().where(
                and_(
                    RelatedPerson.patient_id == Patient.id,
                    RelatedPerson.user_id == by.id,
                    RelatedPerson.ended_at.is_(None),
                    _family_consent(RelatedPerson.id, org_today(by.organization)),
                )
            )
        )
    return query.where(False)


# --- the system acting on its own (the worker) ---------------------------------------------------


class SystemPurpose(StrEnum):
    """Why the system, with no person signed in, reads a patient's record. Deny by default: a
    purpose not named here reaches nothing."""

    checkin_reminder = "checkin_reminder"


@dataclass(frozen=True)
class SystemAccess:
    """The worker's reach to one patient, for one stated purpose (its reads are not a person's:
    the audit names no actor and records the purpose)."""

    patient: Patient
    purpose: SystemPurpose

    def record(
        self, session: Session, *, action: str, object_type: str, object_id: Any = None
    ) -> None:
        record(
            session,
            by=None,
            action=action,
            object_type=object_type,
            object_id=object_id,
            patient_id=self.patient.id,
            organization_id=self.patient.organization_id,
            detail={"purpose": str(self.purpose)},
        )


def system_access(
    session: Session, patient_id: uuid.UUID, *, purpose: SystemPurpose
) -> SystemAccess | None:
    """The patient, for the system acting for `purpose`; None when the purpose is not one the
    system has or the patient is no longer active (the worker skips them). Only what the purpose
    needs is then read through it: for a reminder, that a patient with a portal account exists."""
    if not isinstance(purpose, SystemPurpose):
        return None
    patient = session.get(Patient, patient_id)
    if patient is None or not patient.active:
        return None
    return SystemAccess(patient, purpose)


# --- for the domain services' get_/list_ functions ---------------------------------------------


def records_among(
    session: Session,
    by: User,
    patient_ids: set[str] | None,
    *,
    action: str = "search",
    object_type: str = "Patient",
    team_only: bool = False,
) -> list[PatientAccess] | None:
    """The patients among those named whose record `by` may read (with `team_only`, those on
    `by`'s care teams); None when none was named (every patient `by` may read). One outside
    the scope is left out exactly like a missing one, and the refusal is in the trail."""
    if patient_ids is None:
        return None
    narrow = team_access if team_only else record_access
    found = []
    for ident in sorted(patient_ids):
        try:
            found.append(narrow(session, by, ident, action=action, object_type=object_type))
        except NotFound:
            continue
    return found


def in_scope(by: User, scope: list[PatientAccess] | None, patient_col: Any) -> Any:
    """The condition that keeps a list to `scope` (None: every patient `by` may read)."""
    if scope is None:
        return patient_col.in_(readable_patients(by).with_only_columns(Patient.id))
    return patient_col.in_([a.patient.id for a in scope])


def owned_record(
    session: Session,
    by: User,
    item: object | None,
    *,
    asked: str,
    patient_id: uuid.UUID | None,
    object_type: str,
) -> PatientAccess:
    """The patient a row read by its id belongs to, if `by` may read their record. A missing
    row and one outside the scope get the same NotFound (both audited)."""
    if item is None or patient_id is None:
        record(
            session,
            by=by,
            action="read",
            object_type=object_type,
            object_id=asked[:64],
            outcome=Outcome.denied,
        )
        raise NotFound(Msg("No such record."))
    return record_access(session, by, patient_id, object_type=object_type)


def owned_by_id(
    session: Session, by: User, model: type[M], ident: str, *, object_type: str
) -> tuple[M, PatientAccess]:
    """A row of `model` (one with a patient_id) read by the id a caller sent, and its patient's
    access, if `by` may read the patient's record: `owned_record` for a row found by id. A
    malformed id, a missing row and one outside the scope get the same NotFound (audited)."""
    key = parse_id(ident)
    row = session.get(model, key) if key is not None else None
    acc = owned_record(
        session,
        by,
        row,
        asked=ident,
        patient_id=getattr(row, "patient_id", None) if row is not None else None,
        object_type=object_type,
    )
    assert row is not None
    return row, acc


def page_in_scope(
    session: Session,
    by: User,
    query: Select[Any],
    *,
    patient_col: Any,
    id_col: Any,
    scope: list[PatientAccess] | None,
    object_type: str,
    after: uuid.UUID | None,
    limit: int,
    only_count: bool = False,
) -> Page[tuple[Any, PatientAccess]]:
    """A page (in id order, after `after`) of a query's rows about patients in `scope` (None:
    every patient `by` may read), each with its patient's access; each row returned is
    written to the trail as searched."""
    query = query.where(in_scope(by, scope, patient_col)).add_columns(patient_col)
    page = keyset(session, query, id_col, after=after, limit=limit, only_count=only_count)
    accesses = {a.patient.id: a for a in scope or []}
    rows = []
    for item, patient_id in page.rows:
        acc = accesses.get(patient_id) or patient_for(session, by, patient_id)
        accesses[patient_id] = acc
        record(
            session,
            by=by,
            action="search",
            object_type=object_type,
            object_id=item.id,
            patient_id=patient_id,
        )
        rows.append((item, acc))
    return Page(rows, page.more, page.total)

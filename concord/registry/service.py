"""Episodes of collaborative care, contacts and minutes, and relapse-prevention plans.

Only the patient's care team writes here; every change is audited. A patient has at most one
open episode (a partial unique index says so, under a lock on the patient); a new episode can
follow a closed one and every earlier episode is kept.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import PatientAccess, deny, parse_id, readable_patients
from concord.accounts.models import Organization, Role, User
from concord.audit.service import record
from concord.clock import now
from concord.dates import org_today as _org_today
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import N_, Msg
from concord.patients.models import Patient
from concord.patients.service import members_of_patient
from concord.registry.caseload import PROGRAM_MEASURES
from concord.registry.labels import LABELS
from concord.registry.models import (
    CLOSED_STATUSES,
    REACHED,
    Contact,
    ContactKind,
    ContactMode,
    Episode,
    EpisodeChange,
    EpisodeStatus,
    Program,
    RelapsePlan,
    RelapsePlanVersion,
)
from concord.safety.notices import notify_care_team
from concord.safety.plans import Section, clean_content

MAX_MINUTES = 600
MAX_NOTE = 5000


def org_today(session: Session, organization_id: uuid.UUID) -> date:
    org = session.get(Organization, organization_id)
    assert org is not None
    return _org_today(org)


def _require_team_clinician(
    session: Session, access: PatientAccess, action: str, object_type: str
) -> None:
    if not (access.on_team and access.by.is_clinician):
        raise deny(
            session,
            access,
            action=action,
            object_type=object_type,
            message="Only the patient's care team does this.",
        )


def _member(session: Session, patient_id: uuid.UUID, user_id: Any, field: str) -> User:
    uid = parse_id(user_id) if user_id else None
    for member in members_of_patient(session, patient_id=patient_id):
        if member.user_id == uid and member.user.active:
            return member.user
    raise InvalidInput.field(field, Msg("must be an active clinician on this patient's care team"))


# --- episodes ----------------------------------------------------------------------------------


def open_episode(session: Session, patient_id: uuid.UUID) -> Episode | None:
    return session.scalar(
        select(Episode).where(Episode.patient_id == patient_id, Episode.ended_on.is_(None))
    )


def list_program_patient_ids(session: Session, *, by: User, program: str) -> list[uuid.UUID]:
    """The patients `by` may read with an open episode in `program` (a FHIR Group's members),
    in id order; the list is in the trail as one search."""
    ids = list(
        session.scalars(
            select(Episode.patient_id)
            .where(
                Episode.program == program,
                Episode.ended_on.is_(None),
                Episode.patient_id.in_(readable_patients(by).with_only_columns(Patient.id)),
            )
            .order_by(Episode.patient_id)
        )
    )
    record(
        session,
        by=by,
        action="search",
        object_type="Episode",
        detail={"program": program, "count": len(ids)},
    )
    return ids


def judged_by(
    session: Session, access: PatientAccess, episodes: list[Episode] | None = None
) -> str:
    """The instrument a patient's progress is judged by: their open episode's program measure
    (as on the caseload), PHQ-9 when they have no open episode `access` may see (a Part 2
    program's episode without a permitting consent names no AUDIT-C: `episodes_for`
    decides)."""
    if episodes is None:  # the caller may pass what episodes_for gave it
        episodes = episodes_for(session, access)
    episode = next((e for e in episodes if e.ended_on is None), None)
    if episode is None:
        return "PHQ-9"
    return PROGRAM_MEASURES.get(Program(episode.program), "PHQ-9")


@disclosure.discloses("Episode")
def episodes_for(session: Session, access: PatientAccess) -> list[Episode]:
    if not access.on_team:
        raise NotFound(Msg("No such patient."))
    return list(
        session.scalars(
            select(Episode)
            .where(Episode.patient_id == access.patient.id)
            .order_by(Episode.started_on.desc(), Episode.created_at.desc())
        )
    )


def _lock_patient(session: Session, patient_id: uuid.UUID) -> None:
    session.execute(select(Patient.id).where(Patient.id == patient_id).with_for_update())


def _change(
    session: Session, episode: Episode, by: User | None, to: str, reason: str | None
) -> None:
    session.add(
        EpisodeChange(
            episode_id=episode.id,
            at=now(),
            by_id=by.id if by else None,
            from_status=None if to == EpisodeStatus.awaiting_first_contact else episode.status,
            to_status=to,
            reason=reason,
        )
    )


@dataclass
class Enrolment:
    program: str
    started_on: date | None = None
    care_manager_id: str | None = None
    consultant_id: str | None = None


def enroll(session: Session, *, access: PatientAccess, data: Enrolment) -> Episode:
    """Start an episode. The care manager defaults to the team's care manager (the lead first),
    the consultant to the team's psychiatric consultant."""
    _require_team_clinician(session, access, "create", "Episode")
    errors: dict[str, str] = {}
    try:
        program = Program(data.program)
    except ValueError:
        program = None
        errors["program"] = Msg(
            "must be one of: %(allowed)s", allowed=", ".join(p.value for p in Program)
        )
    on_today = org_today(session, access.patient.organization_id)
    started = data.started_on or on_today
    if started > on_today:
        errors["started_on"] = Msg("cannot be in the future")
    elif started < on_today - timedelta(days=366):
        errors["started_on"] = Msg("must be within the last year")
    members = members_of_patient(session, patient_id=access.patient.id)
    care_manager = consultant = None
    try:
        if data.care_manager_id:
            care_manager = _member(
                session, access.patient.id, data.care_manager_id, "care_manager_id"
            )
        else:
            care_manager = next(
                (m.user for m in members if m.role == Role.care_manager and m.user.active), None
            )
            if care_manager is None:
                errors["care_manager_id"] = Msg(
                    "the care team has no care manager: add one to the team, or name who holds "
                    "this patient's caseload"
                )
    except InvalidInput as exc:
        errors.update(exc.errors)
    try:
        if data.consultant_id:
            consultant = _member(session, access.patient.id, data.consultant_id, "consultant_id")
        else:
            consultant = next(
                (m.user for m in members if m.role == Role.psychiatric_consultant), None
            )
    except InvalidInput as exc:
        errors.update(exc.errors)
    if errors:
        raise InvalidInput(Msg("The patient was not enrolled."), errors=errors)
    assert program is not None and care_manager is not None
    _lock_patient(session, access.patient.id)
    if open_episode(session, access.patient.id) is not None:
        raise Conflict(Msg("This patient already has an open episode of care."))
    last = session.scalar(
        select(func.max(Episode.ended_on)).where(Episode.patient_id == access.patient.id)
    )
    if last is not None and started < last:
        raise InvalidInput.field(
            "started_on", Msg("must be after the last episode ended (%(date)s)", date=last)
        )
    episode = Episode(
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        clinic_id=access.patient.clinic_id,
        program=program,
        status=EpisodeStatus.awaiting_first_contact,
        started_on=started,
        care_manager_id=care_manager.id,
        consultant_id=consultant.id if consultant else None,
        created_at=now(),
        created_by_id=access.by.id,
    )
    session.add(episode)
    session.flush()
    _change(session, episode, access.by, EpisodeStatus.awaiting_first_contact, None)
    record(
        session,
        by=access.by,
        action="create",
        object_type="Episode",
        object_id=episode.id,
        patient_id=access.patient.id,
        detail={"program": str(program)},
    )
    return episode


TRANSITIONS = {
    EpisodeStatus.awaiting_first_contact: {
        EpisodeStatus.active,
        *CLOSED_STATUSES,
    },
    EpisodeStatus.active: {EpisodeStatus.relapse_prevention, *CLOSED_STATUSES},
    EpisodeStatus.relapse_prevention: {EpisodeStatus.active, *CLOSED_STATUSES},
}


def _episode_for_update(session: Session, access: PatientAccess, episode_id: Any) -> Episode:
    eid = parse_id(episode_id)
    episode = (
        session.scalar(select(Episode).where(Episode.id == eid).with_for_update(of=Episode))
        if eid is not None
        else None
    )
    if episode is None or episode.patient_id != access.patient.id:
        raise NotFound(Msg("No such episode."))
    return episode


def change_status(
    session: Session,
    *,
    access: PatientAccess,
    episode_id: Any,
    status: str,
    reason: str | None,
    version: int | None,
) -> Episode:
    """Move an open episode on. Ending it (completed, disengaged, referred on) needs a
    reason; an ended episode is never reopened (start a new one)."""
    _require_team_clinician(session, access, "update", "Episode")
    episode = _episode_for_update(session, access, episode_id)
    if version is not None and version != episode.version:
        raise Conflict(Msg("Someone else changed this episode. Reload and try again."))
    try:
        target = EpisodeStatus(status)
    except ValueError:
        raise InvalidInput.field(
            "status",
            Msg("must be one of: %(allowed)s", allowed=", ".join(s.value for s in EpisodeStatus)),
        ) from None
    current = EpisodeStatus(episode.status)
    if current in CLOSED_STATUSES:
        raise Conflict(Msg("This episode has ended; start a new episode instead."))
    if target not in TRANSITIONS[current]:
        raise InvalidInput.field(
            "status",
            Msg(
                "cannot go from %(current)s to %(target)s",
                current=Msg(LABELS[current.value]),
                target=Msg(LABELS[target.value]),
            ),
        )
    words = " ".join((reason or "").split())
    if target in CLOSED_STATUSES and not words:
        raise InvalidInput.field("reason", Msg("say why the episode ends"))
    if len(words) > 500:
        raise InvalidInput.field("reason", Msg("must be at most %(max)s characters", max=500))
    _change(session, episode, access.by, target, words or None)
    episode.status = target
    episode.version += 1
    if target in CLOSED_STATUSES:
        episode.ended_on = org_today(session, episode.organization_id)
        episode.end_reason = words
    record(
        session,
        by=access.by,
        action="update",
        object_type="Episode",
        object_id=episode.id,
        patient_id=access.patient.id,
        detail={"status": target.value},
    )
    return episode


PART2_PROGRAMS = (Program.substance_use, Program.co_occurring)


@dataclass(frozen=True)
class QualifyingDiagnosis:
    code: str
    system: str
    display: str
    category: str  # the imported record's data category (concord/ehr/categories.yaml)
    resource_id: uuid.UUID


def set_qualifying_diagnosis(
    session: Session,
    *,
    access: PatientAccess,
    episode_id: Any,
    diagnosis: QualifyingDiagnosis,
    version: int | None,
) -> Episode:
    """Name an episode's qualifying diagnosis (one the EHR sent, chosen by the action above
    after reading it as this clinician may). A substance-use diagnosis qualifies only a
    substance-use or co-occurring episode: those episodes are withheld as 42 CFR Part 2
    records are, so the diagnosis never shows where the program's records would not."""
    _require_team_clinician(session, access, "update", "Episode")
    episode = _episode_for_update(session, access, episode_id)
    if version is not None and version != episode.version:
        raise Conflict(Msg("Someone else changed this episode. Reload and try again."))
    if episode.ended_on is not None:
        raise Conflict(Msg("This episode has ended; start a new episode instead."))
    if diagnosis.category == "substance_use" and episode.program not in PART2_PROGRAMS:
        raise InvalidInput.field(
            "diagnosis",
            Msg("a substance-use diagnosis qualifies only a substance use or co-occurring episode"),
        )
    episode.diagnosis_code = diagnosis.code[:40]
    episode.diagnosis_system = diagnosis.system[:200]
    episode.diagnosis_display = diagnosis.display[:200]
    episode.diagnosis_resource_id = diagnosis.resource_id
    episode.diagnosis_set_at = now()
    episode.diagnosis_set_by_id = access.by.id
    episode.version += 1
    record(
        session,
        by=access.by,
        action="update",
        object_type="Episode",
        object_id=episode.id,
        patient_id=access.patient.id,
        detail={"qualifying_diagnosis": diagnosis.code[:40]},
    )
    return episode


def episode_changes(session: Session, episode_id: uuid.UUID) -> list[EpisodeChange]:
    return list(
        session.scalars(
            select(EpisodeChange)
            .where(EpisodeChange.episode_id == episode_id)
            .order_by(EpisodeChange.at, EpisodeChange.id)
        )
    )


# --- contacts and minutes ------------------------------------------------------------------------


@dataclass
class ContactIn:
    kind: str
    mode: str
    minutes: Any
    occurred_on: date | None = None
    note: str | None = None
    user_id: str | None = None  # who had the contact (default: the person logging it)


def log_contact(
    session: Session, *, access: PatientAccess, data: ContactIn, review_id: Any = None
) -> Contact:
    """Record a contact and its minutes against the patient's open episode."""
    _require_team_clinician(session, access, "create", "Contact")
    episode = open_episode(session, access.patient.id)
    if episode is None:
        raise Conflict(Msg("This patient has no open episode of care: enrol them first."))
    errors: dict[str, str] = {}
    try:
        kind = ContactKind(data.kind)
    except ValueError:
        kind = None
        errors["kind"] = Msg(
            "must be one of: %(allowed)s", allowed=", ".join(k.value for k in ContactKind)
        )
    try:
        mode = ContactMode(data.mode)
    except ValueError:
        mode = None
        errors["mode"] = Msg(
            "must be one of: %(allowed)s", allowed=", ".join(m.value for m in ContactMode)
        )
    minutes = data.minutes
    if isinstance(minutes, str):
        minutes = int(minutes) if minutes.strip().isdigit() else None
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 <= minutes <= MAX_MINUTES:
        errors["minutes"] = Msg(
            "must be a whole number of minutes from 0 to %(max)s", max=MAX_MINUTES
        )
    on_today = org_today(session, access.patient.organization_id)
    occurred = data.occurred_on or on_today
    if occurred > on_today:
        errors["occurred_on"] = Msg("cannot be in the future")
    elif occurred < episode.started_on:
        errors["occurred_on"] = Msg(
            "cannot be before the episode started (%(date)s)", date=episode.started_on
        )
    note = (data.note or "").strip()
    if len(note) > MAX_NOTE:
        errors["note"] = Msg("must be at most %(max)s characters", max=MAX_NOTE)
    who = access.by
    if data.user_id and str(data.user_id) != str(access.by.id):
        try:
            who = _member(session, access.patient.id, data.user_id, "user_id")
        except InvalidInput as exc:
            errors.update(exc.errors)
    if errors:
        raise InvalidInput(Msg("The contact was not recorded."), errors=errors)
    assert kind is not None and mode is not None
    members = members_of_patient(session, patient_id=access.patient.id)
    role = next((m.role for m in members if m.user_id == who.id), who.role)
    contact = Contact(
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        episode_id=episode.id,
        occurred_on=occurred,
        user_id=who.id,
        role=role,
        mode=mode,
        kind=kind,
        minutes=minutes,
        note=note or None,
        review_id=parse_id(review_id) if review_id else None,
        created_at=now(),
        created_by_id=access.by.id,
    )
    session.add(contact)
    if episode.status == EpisodeStatus.awaiting_first_contact and kind in REACHED:
        _change(session, episode, access.by, EpisodeStatus.active, "First contact")
        episode.status = EpisodeStatus.active
        episode.version += 1
    session.flush()
    record(
        session,
        by=access.by,
        action="create",
        object_type="Contact",
        object_id=contact.id,
        patient_id=access.patient.id,
        detail={"kind": kind.value, "minutes": minutes},
    )
    return contact


def void_contact(
    session: Session, *, access: PatientAccess, contact_id: Any, reason: str
) -> Contact:
    """Take a mistaken contact out of the minutes (it stays, marked void, with the reason)."""
    _require_team_clinician(session, access, "update", "Contact")
    cid = parse_id(contact_id)
    contact = session.get(Contact, cid) if cid is not None else None
    if contact is None or contact.patient_id != access.patient.id:
        raise NotFound(Msg("No such contact."))
    if contact.voided_at is not None:
        raise Conflict(Msg("This contact is already void."))
    words = " ".join((reason or "").split())
    if not words:
        raise InvalidInput.field("reason", Msg("say why it is void (for example: wrong patient)"))
    contact.voided_at = now()
    contact.voided_by_id = access.by.id
    contact.void_reason = words[:500]
    record(
        session,
        by=access.by,
        action="void",
        object_type="Contact",
        object_id=contact.id,
        patient_id=access.patient.id,
    )
    return contact


@disclosure.discloses("Contact")
def contacts_for(session: Session, access: PatientAccess, episode_id: Any = None) -> list[Contact]:
    if not access.on_team:
        raise NotFound(Msg("No such patient."))
    query = select(Contact).where(Contact.patient_id == access.patient.id)
    if episode_id is not None:
        query = query.where(Contact.episode_id == parse_id(episode_id))
    return list(
        session.scalars(query.order_by(Contact.occurred_on.desc(), Contact.created_at.desc()))
    )


# --- relapse-prevention plan ---------------------------------------------------------------------

RELAPSE_SECTIONS: tuple[Any, ...] = ()


def _relapse_sections() -> tuple[Any, ...]:
    return (
        Section(
            "warning_signs",
            "lines",
            N_("Early signs that I may be getting unwell again"),
            N_("Changes in sleep, mood, drinking or using, or what I do, that I or others notice."),
            None,
        ),
        Section(
            "keeps_me_well",
            "lines",
            N_("What keeps me well"),
            N_("Habits, treatments, people and routines that have helped."),
            None,
        ),
        Section(
            "what_to_do",
            "lines",
            N_("What I will do if the signs come back"),
            N_("The first steps, in order."),
            None,
        ),
        Section(
            "whom_to_call",
            "contacts",
            N_("Whom to call"),
            N_("People and services, and how to reach them."),
            None,
        ),
    )


def relapse_sections() -> tuple[Any, ...]:
    global RELAPSE_SECTIONS
    if not RELAPSE_SECTIONS:
        RELAPSE_SECTIONS = _relapse_sections()
    return RELAPSE_SECTIONS


@disclosure.discloses("RelapsePlan")
def relapse_plan_for(session: Session, access: PatientAccess) -> RelapsePlan | None:
    if not (access.on_team or access.is_self):
        raise NotFound(Msg("No such patient."))
    return session.scalar(select(RelapsePlan).where(RelapsePlan.patient_id == access.patient.id))


def save_relapse_plan(
    session: Session,
    *,
    access: PatientAccess,
    content: dict[str, Any],
    reason: str | None,
    base_version: int | None,
) -> RelapsePlan:
    """A new version of the relapse-prevention plan (the team, or the patient)."""
    if not ((access.on_team and access.by.is_clinician) or access.is_self):
        raise deny(
            session,
            access,
            action="update",
            object_type="RelapsePlan",
            message="Only the patient and their care team write this plan.",
        )
    cleaned = clean_content(content, relapse_sections(), what=Msg("The plan was not saved."))
    words = " ".join((reason or "").split())
    if len(words) > 500:
        raise InvalidInput.field("reason", Msg("must be at most %(max)s characters", max=500))
    if not words and not access.is_self:
        raise InvalidInput.field("reason", Msg("say why it changed"))
    if not any(cleaned.values()):
        raise InvalidInput.field("warning_signs", Msg("write at least one entry in the plan"))
    _lock_patient(session, access.patient.id)
    plan = session.scalar(select(RelapsePlan).where(RelapsePlan.patient_id == access.patient.id))
    current = plan.version if plan else 0
    if base_version != current:
        raise Conflict(
            Msg(
                "Someone else saved this plan while you were writing. Your changes are below: "
                "look at the current plan and save again."
            )
        )
    if plan is not None and plan.content == cleaned:
        return plan
    party = "patient" if access.is_self else "clinician"
    episode = open_episode(session, access.patient.id)
    if plan is None:
        plan = RelapsePlan(
            organization_id=access.patient.organization_id,
            patient_id=access.patient.id,
            episode_id=episode.id if episode else None,
            version=1,
            content=cleaned,
            updated_at=now(),
            updated_by_id=access.by.id,
        )
        session.add(plan)
        session.flush()
    else:
        plan.version += 1
        plan.content = cleaned
        plan.updated_at = now()
        plan.updated_by_id = access.by.id
    session.add(
        RelapsePlanVersion(
            plan_id=plan.id,
            version=plan.version,
            content=cleaned,
            author_id=access.by.id,
            author_party=party,
            reason=words or "Written by the patient",
            created_at=now(),
        )
    )
    session.flush()
    record(
        session,
        by=access.by,
        action="update" if plan.version > 1 else "create",
        object_type="RelapsePlan",
        object_id=plan.id,
        patient_id=access.patient.id,
        detail={"version": plan.version, "by": party},
    )
    if access.is_self:
        notify_care_team(session, patient_id=access.patient.id, kind="patient_relapse_plan")
    return plan

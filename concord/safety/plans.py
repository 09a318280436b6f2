"""Safety plans, written by the patient and their clinician together.

The plan follows the six steps of the Stanley-Brown Safety Planning Intervention (warning
signs; things to do on one's own; people and places that distract; people to ask for help;
professionals and services; making the surroundings safer), plus reasons for living. The
headings and prompts are Concord's own words, not the authors' form (see
docs/clinical-sources.md). Every save is a new version with its author and reason; the
patient can open the current one at any hour, and may let people they choose see it (and
nothing else).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import PatientAccess, Relation, deny, parse_id
from concord.accounts.models import Organization, User
from concord.audit.service import record, refused
from concord.clock import now
from concord.dates import format_date
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import N_, Msg
from concord.patients.models import Patient, RelatedPerson
from concord.safety.crisis import crisis_resources
from concord.safety.models import SafetyPlan, SafetyPlanShare, SafetyPlanVersion
from concord.safety.notices import notify_care_team

MAX_ENTRIES = 20
MAX_TEXT = 300
MAX_CONTACT = 100
MAX_REASON = 500


@dataclass(frozen=True)
class Section:
    key: str
    kind: str  # "lines": short entries; "contacts": a name and a way to reach them
    heading: str
    prompt: str
    step: int | None  # the safety-planning step it is (None: reasons for living)


# Our own wording of the steps (the order is the intervention's).
SECTIONS: tuple[Section, ...] = (
    Section(
        "warning_signs",
        "lines",
        N_("Signs that a crisis may be starting"),
        N_("Thoughts, feelings, situations or things I do that tell me it is getting hard."),
        1,
    ),
    Section(
        "coping",
        "lines",
        N_("Things I can do on my own to feel better"),
        N_("What helps me get through a hard moment without needing anyone else."),
        2,
    ),
    Section(
        "distractions",
        "contacts",
        N_("People and places that take my mind off things"),
        N_("Someone to be with, or a place to go, that helps me feel less alone."),
        3,
    ),
    Section(
        "people",
        "contacts",
        N_("People I can ask for help"),
        N_("People I trust to tell when I am struggling, and how to reach them."),
        4,
    ),
    Section(
        "professionals",
        "contacts",
        N_("Professionals and services I can contact"),
        N_(
            "My clinicians, my clinic, the nearest emergency department. The crisis line is "
            "always on the plan."
        ),
        5,
    ),
    Section(
        "safe_environment",
        "lines",
        N_("Making my surroundings safer"),
        N_(
            "What I and the people around me will do to keep things I could use to hurt myself "
            "out of reach: medicines, firearms and other means. If opioids are used at home, "
            "where the naloxone is kept."
        ),
        6,
    ),
    Section(
        "reasons",
        "lines",
        N_("My reasons for living"),
        N_("What matters most to me, in my own words."),
        None,
    ),
)
SECTION_KEYS = tuple(s.key for s in SECTIONS)


def empty_content(sections: tuple[Section, ...] = SECTIONS) -> dict[str, list[Any]]:
    return {s.key: [] for s in sections}


def clean_content(
    raw: dict[str, Any],
    sections: tuple[Section, ...] = SECTIONS,
    *,
    what: str = Msg("The safety plan was not saved."),
) -> dict[str, list[Any]]:
    """Check a plan's content (the safety plan's, or another plan made of the same kinds of
    sections); errors name the section and entry and say what is allowed."""
    errors: dict[str, str] = {}
    content = empty_content(sections)
    keys = [s.key for s in sections]
    unknown = set(raw) - set(keys)
    if unknown:
        errors[sorted(unknown)[0]] = Msg(
            "is not a part of this plan (parts: %(parts)s)", parts=", ".join(keys)
        )
    for section in sections:
        entries = raw.get(section.key) or []
        if not isinstance(entries, list):
            errors[section.key] = Msg("must be a list")
            continue
        if len(entries) > MAX_ENTRIES:
            errors[section.key] = Msg("can hold at most %(max)s entries", max=MAX_ENTRIES)
            continue
        for index, entry in enumerate(entries, start=1):
            where = f"{section.key}[{index}]"
            if section.kind == "lines":
                if not isinstance(entry, str):
                    errors[where] = Msg("must be text")
                    continue
                text = " ".join(entry.split())
                if len(text) > MAX_TEXT:
                    errors[where] = Msg("must be at most %(max)s characters", max=MAX_TEXT)
                elif text:
                    content[section.key].append(text)
            else:
                if not isinstance(entry, dict):
                    errors[where] = Msg("must have a name and a way to reach them")
                    continue
                name = " ".join(str(entry.get("name") or "").split())
                contact = " ".join(str(entry.get("contact") or "").split())
                if len(name) > MAX_TEXT:
                    errors[f"{where}.name"] = Msg(
                        "must be at most %(max)s characters", max=MAX_TEXT
                    )
                elif len(contact) > MAX_CONTACT:
                    errors[f"{where}.contact"] = Msg(
                        "must be at most %(max)s characters", max=MAX_CONTACT
                    )
                elif contact and not name:
                    errors[f"{where}.name"] = Msg("say who or what this is")
                elif name:
                    content[section.key].append({"name": name, "contact": contact})
    if errors:
        raise InvalidInput(what, errors=errors)
    return content


def content_from_form(
    form: dict[str, Any], sections: tuple[Section, ...] = SECTIONS
) -> dict[str, list[Any]]:
    """The page's fields: `<section>` (one entry per line) for short entries, and
    `<section>.name` / `<section>.contact` (repeated) for people and services."""
    raw: dict[str, list[Any]] = {}
    for section in sections:
        if section.kind == "lines":
            value = form.get(section.key) or ""
            lines = value if isinstance(value, list) else str(value).splitlines()
            raw[section.key] = [line for line in (str(v).strip() for v in lines) if line]
        else:
            names = form.get(f"{section.key}.name") or []
            contacts = form.get(f"{section.key}.contact") or []
            names = names if isinstance(names, list) else [names]
            contacts = contacts if isinstance(contacts, list) else [contacts]
            contacts = contacts + [""] * (len(names) - len(contacts))
            raw[section.key] = [
                {"name": n, "contact": c}
                for n, c in zip(names, contacts, strict=False)
                if str(n).strip() or str(c).strip()
            ]
    return raw


# --- reading -------------------------------------------------------------------------------------


def _may_read(access: PatientAccess) -> bool:
    return access.on_team or access.is_self


def _may_edit(access: PatientAccess) -> bool:
    return (access.on_team and access.by.is_clinician) or access.is_self


@disclosure.discloses("SafetyPlan")
def plan_for(session: Session, access: PatientAccess, *, audit: bool = True) -> SafetyPlan | None:
    if not _may_read(access):
        raise NotFound(Msg("No such patient."))
    plan = session.scalar(select(SafetyPlan).where(SafetyPlan.patient_id == access.patient.id))
    if plan is not None and audit:
        record(
            session,
            by=access.by,
            action="read",
            object_type="SafetyPlan",
            object_id=plan.id,
            patient_id=access.patient.id,
        )
    return plan


@disclosure.discloses("SafetyPlan")
def versions(session: Session, access: PatientAccess, plan: SafetyPlan) -> list[SafetyPlanVersion]:
    if not _may_read(access):
        raise NotFound(Msg("No such patient."))
    return list(
        session.scalars(
            select(SafetyPlanVersion)
            .where(SafetyPlanVersion.plan_id == plan.id)
            .order_by(SafetyPlanVersion.version.desc())
        )
    )


@disclosure.discloses("SafetyPlan")
def version_of(
    session: Session, access: PatientAccess, plan: SafetyPlan, number: int
) -> SafetyPlanVersion:
    if not _may_read(access):
        raise NotFound(Msg("No such patient."))
    found = session.scalar(
        select(SafetyPlanVersion).where(
            SafetyPlanVersion.plan_id == plan.id, SafetyPlanVersion.version == number
        )
    )
    if found is None:
        raise NotFound(Msg("No such version of the safety plan."))
    record(
        session,
        by=access.by,
        action="read",
        object_type="SafetyPlan",
        object_id=plan.id,
        patient_id=access.patient.id,
        detail={"version": number},
    )
    return found


# --- writing -------------------------------------------------------------------------------------


def save(
    session: Session,
    *,
    access: PatientAccess,
    content: dict[str, Any],
    reason: str | None,
    base_version: int | None,
) -> SafetyPlan:
    """Write a new version. `base_version` is the version the writer started from (0 for a
    new plan): if someone saved in between, nothing is written and they are told."""
    if not _may_edit(access):
        raise deny(
            session,
            access,
            action="update",
            object_type="SafetyPlan",
            message="Only the patient and their care team write the safety plan.",
        )
    cleaned = clean_content(content)
    words = " ".join((reason or "").split())
    if len(words) > MAX_REASON:
        raise InvalidInput.field(
            "reason", Msg("must be at most %(max)s characters", max=MAX_REASON)
        )
    if not words and not access.is_self:
        raise InvalidInput.field(
            "reason", Msg("say why it changed (for example: reviewed after an alert)")
        )
    if not any(cleaned.values()):
        raise InvalidInput.field("warning_signs", Msg("write at least one entry in the plan"))
    patient = session.scalar(
        select(Patient).where(Patient.id == access.patient.id).with_for_update(of=Patient)
    )
    assert patient is not None
    plan = session.scalar(select(SafetyPlan).where(SafetyPlan.patient_id == patient.id))
    current = plan.version if plan is not None else 0
    if base_version is None or base_version != current:
        who = plan.updated_by.name if plan is not None and plan.updated_by else ""
        raise Conflict(
            Msg(
                "Someone else saved the safety plan while you were writing (%(name)s). Your "
                "changes are below: look at the current plan and save again.",
                name=who,
            )
        )
    if plan is not None and plan.content == cleaned:
        return plan  # nothing changed: no new version
    at = now()
    party = "patient" if access.is_self else "clinician"
    if plan is None:
        plan = SafetyPlan(
            organization_id=patient.organization_id,
            patient_id=patient.id,
            version=1,
            content=cleaned,
            created_at=at,
            updated_at=at,
            updated_by_id=access.by.id,
        )
        session.add(plan)
        session.flush()
        action = "create"
    else:
        plan.version += 1
        plan.content = cleaned
        plan.updated_at = at
        plan.updated_by_id = access.by.id
        action = "update"
    session.add(
        SafetyPlanVersion(
            plan_id=plan.id,
            version=plan.version,
            content=cleaned,
            author_id=access.by.id,
            author_party=party,
            reason=words or ("Written by the patient" if party == "patient" else ""),
            created_at=at,
        )
    )
    session.flush()
    record(
        session,
        by=access.by,
        action=action,
        object_type="SafetyPlan",
        object_id=plan.id,
        patient_id=patient.id,
        detail={"version": plan.version, "by": party},
    )
    if access.is_self:
        notify_care_team(session, patient_id=patient.id, kind="patient_safety_plan")
    return plan


# --- sharing -------------------------------------------------------------------------------------


@dataclass
class Person:
    link: RelatedPerson
    share: SafetyPlanShare | None

    @property
    def shared(self) -> bool:
        return self.share is not None


def people(session: Session, access: PatientAccess) -> list[Person]:
    """The patient's people, and whether each may see the safety plan."""
    if not _may_read(access):
        raise NotFound(Msg("No such patient."))
    links = session.scalars(
        select(RelatedPerson)
        .where(RelatedPerson.patient_id == access.patient.id, RelatedPerson.ended_at.is_(None))
        .order_by(RelatedPerson.created_at)
    ).all()
    shares = {
        s.related_person_id: s
        for s in session.scalars(
            select(SafetyPlanShare).where(
                SafetyPlanShare.patient_id == access.patient.id,
                SafetyPlanShare.withdrawn_at.is_(None),
            )
        )
    }
    return [Person(link, shares.get(link.id)) for link in links]


def set_share(
    session: Session, *, access: PatientAccess, related_person_id: Any, share: bool
) -> None:
    """The patient chooses (or the team records the patient's choice)."""
    if not (access.is_self or (access.on_team and access.by.is_clinician)):
        raise deny(
            session,
            access,
            action="consent",
            object_type="SafetyPlan",
            message="Only the patient, or their care team on their behalf, shares the plan.",
        )
    rid = parse_id(related_person_id)
    link = session.get(RelatedPerson, rid) if rid is not None else None
    if link is None or link.patient_id != access.patient.id or link.ended_at is not None:
        raise NotFound(Msg("No such person."))
    active = session.scalar(
        select(SafetyPlanShare)
        .where(
            SafetyPlanShare.related_person_id == link.id,
            SafetyPlanShare.withdrawn_at.is_(None),
        )
        .with_for_update()
    )
    if share and active is None:
        session.add(
            SafetyPlanShare(
                patient_id=access.patient.id,
                related_person_id=link.id,
                consented_at=now(),
                recorded_by_id=access.by.id,
            )
        )
    elif not share and active is not None:
        active.withdrawn_at = now()
        active.withdrawn_by_id = access.by.id
    else:
        return  # already as asked: nothing to record
    session.flush()
    record(
        session,
        by=access.by,
        action="consent",
        object_type="SafetyPlan",
        object_id=link.id,
        patient_id=access.patient.id,
        detail={"shared": share, "recorded_by": "patient" if access.is_self else "team"},
    )


def shared_with_me(session: Session, by: User) -> list[Patient]:
    """The patients who let this person see their safety plan."""
    if not by.is_related_person or not by.active:
        return []
    return list(
        session.scalars(
            select(Patient)
            .join(RelatedPerson, RelatedPerson.patient_id == Patient.id)
            .join(SafetyPlanShare, SafetyPlanShare.related_person_id == RelatedPerson.id)
            .where(
                RelatedPerson.user_id == by.id,
                RelatedPerson.ended_at.is_(None),
                SafetyPlanShare.withdrawn_at.is_(None),
                Patient.organization_id == by.organization_id,
            )
            .order_by(Patient.family_name, Patient.given_name)
        )
    )


def shared_plan(session: Session, by: User, patient_id: Any) -> tuple[Patient, SafetyPlan | None]:
    """The safety plan a patient shares with this person, and nothing else (audited; a person
    without the patient's current consent gets the same answer as for no patient at all)."""
    pid = parse_id(patient_id)
    patient = next((p for p in shared_with_me(session, by) if p.id == pid), None)
    if patient is None:
        raise refused(
            session,
            by=by,
            action="read",
            object_type="SafetyPlan",
            asked_for=patient_id,
            message=Msg("No such patient."),
        )
    plan = session.scalar(select(SafetyPlan).where(SafetyPlan.patient_id == patient.id))
    if plan is not None:
        # The share found above is the patient's choice of this person: the relation the
        # disclosure table calls related, reading for family_sharing.
        shared = PatientAccess(by, patient, Relation.related)
        disclosure.check_record(
            session, shared, plan, object_type="SafetyPlan", message=Msg("No such patient.")
        )
    record(
        session,
        by=by,
        action="read",
        object_type="SafetyPlan",
        object_id=plan.id if plan else None,
        patient_id=patient.id,
        detail={"as": "shared"},
    )
    return patient, plan


def crisis_lines(session: Session, organization_id: uuid.UUID, lang: str) -> list[dict[str, str]]:
    """The organization's crisis lines, always part of step 5."""
    org = session.get(Organization, organization_id)
    assert org is not None
    return crisis_resources(org, lang)


# --- the plan as a document (the PDF) ------------------------------------------------------------


@dataclass(frozen=True)
class PlanExport:
    """What the printed safety plan holds: the patient's first name (no MRN, no date of birth:
    the page may be carried about), the version and its date, the plan and the crisis lines."""

    name: str
    version: int
    updated_on: str
    content: dict[str, list[Any]]
    crisis: list[dict[str, str]]


def _export(session: Session, patient: Patient, plan: SafetyPlan | None, lang: str) -> PlanExport:
    if plan is None:
        raise NotFound(Msg("No safety plan yet."))
    org = session.get(Organization, patient.organization_id)
    return PlanExport(
        name=patient.preferred_name or patient.given_name,
        version=plan.version,
        # The organization's local date: an evening's update is not dated tomorrow.
        updated_on=format_date(plan.updated_at, lang=lang, where=org),
        content=plan.content,
        crisis=crisis_lines(session, patient.organization_id, lang),
    )


def get_plan_export(session: Session, access: PatientAccess, lang: str) -> PlanExport:
    """The plan to print, for its patient or their care team (access checked and audited by
    plan_for, like the page)."""
    return _export(session, access.patient, plan_for(session, access), lang)


def get_shared_plan_export(session: Session, by: User, patient_id: Any, lang: str) -> PlanExport:
    """The plan a patient shares with this person, to print (audited by shared_plan)."""
    patient, plan = shared_plan(session, by, patient_id)
    return _export(session, patient, plan, lang)

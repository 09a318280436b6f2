"""Visits across domains (issue 22): each change to a visit tells the other side through the
notification service; a no-show opens an outreach task for the care manager; a fulfilled visit
records the registry's contact and minutes in the same step; reminders go before each visit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.accounts.models import Organization, Role, User
from concord.actions import registry as registry_actions
from concord.appointments import service as visits
from concord.appointments.models import Appointment, VisitKind, VisitStatus
from concord.appointments.schemas import AttendanceIn, BookIn, VisitIn, VisitRequestIn
from concord.clock import now
from concord.dates import local_date, org_today
from concord.errors import Conflict, InvalidInput
from concord.i18n import N_, Msg
from concord.notifications import service as notices
from concord.patients.models import Patient
from concord.patients.service import members_of_patient
from concord.registry import service as reg
from concord.registry.models import ContactKind, ContactMode, WorkTask
from concord.registry.tasks import open_task

OUTREACH_TITLE = N_("Reach out to the patient: they missed a visit")
MODES = {
    VisitKind.in_person: ContactMode.in_person,
    VisitKind.home_visit: ContactMode.in_person,
    VisitKind.group: ContactMode.in_person,
    VisitKind.video: ContactMode.video,
    VisitKind.phone: ContactMode.phone,
}


def _patient_link(visit: Appointment) -> str:
    return f"/my/visits/{visit.id}"


def _team_link(visit: Appointment) -> str:
    # Not the patient's page: an email's link names no patient, not even by id. The clinician's
    # visits page lists the requests waiting and the day's visits, behind the sign-in.
    return "/visits"


def _tell_patient(session: Session, patient: Patient, visit: Appointment, kind: str) -> None:
    if patient.user_id is None:
        return
    user = session.get(User, patient.user_id)
    if user is not None:
        notices.notify(
            session,
            user=user,
            kind=kind,
            link=_patient_link(visit),
            source=f"visit:{visit.id}:{kind}:{visit.version}",
        )


def _tell_team(session: Session, visit: Appointment, kind: str, skip: User) -> None:
    """The visit's clinicians; for a request nobody is named on yet, the team's lead and care
    managers (the people who book); of them, those who may see the visit."""
    people: list[User] = [c.user for c in visit.clinicians]
    if not people:
        members = members_of_patient(session, patient_id=visit.patient_id)
        people = [
            m.user
            for m in members
            if m.user.is_clinician and (m.is_lead or m.user.role == Role.care_manager)
        ]
    for user in people:
        # Nobody is told of a Part 2 program's visit the disclosure decision withholds from them.
        if user.id != skip.id and visits.may_be_told(session, user, visit):
            notices.notify(
                session,
                user=user,
                kind=kind,
                link=_team_link(visit),
                source=f"visit:{visit.id}:{kind}:{visit.version}",
            )


def book(session: Session, *, access: PatientAccess, data: VisitIn) -> Appointment:
    visit = visits.book(session, access=access, data=data)
    kind = "visit_proposed" if visit.status == VisitStatus.proposed else "visit_booked"
    _tell_patient(session, access.patient, visit, kind)
    _tell_team(session, visit, "visit_booked", skip=access.by)
    return visit


def request_visit(session: Session, *, access: PatientAccess, data: VisitRequestIn) -> Appointment:
    visit = visits.request_visit(session, access=access, data=data)
    _tell_team(session, visit, "visit_requested", skip=access.by)
    return visit


def book_requested(
    session: Session, *, access: PatientAccess, visit_id: Any, data: BookIn
) -> Appointment:
    visit = visits.book_requested(session, access=access, visit_id=visit_id, data=data)
    _tell_patient(session, access.patient, visit, "visit_booked")
    _tell_team(session, visit, "visit_booked", skip=access.by)
    return visit


def accept(session: Session, *, access: PatientAccess, visit_id: Any, version: int) -> Appointment:
    visit = visits.accept(session, access=access, visit_id=visit_id, version=version)
    _tell_team(session, visit, "visit_booked", skip=access.by)
    return visit


def cancel(
    session: Session, *, access: PatientAccess, visit_id: Any, version: int, reason: str
) -> Appointment:
    visit = visits.cancel(session, access=access, visit_id=visit_id, version=version, reason=reason)
    if access.is_self:
        _tell_team(session, visit, "visit_cancelled", skip=access.by)
    else:
        _tell_patient(session, access.patient, visit, "visit_cancelled")
        _tell_team(session, visit, "visit_cancelled", skip=access.by)
    return visit


@dataclass(frozen=True)
class Attended:
    visit: Appointment
    task: WorkTask | None = None
    contact_id: Any = None


def _care_manager(session: Session, visit: Appointment) -> Any:
    episode = reg.open_episode(session, visit.patient_id)
    if episode is not None:
        return episode.care_manager_id
    members = members_of_patient(session, patient_id=visit.patient_id)
    for m in members:
        if m.user.role == Role.care_manager:
            return m.user_id
    return visit.clinician_ids[0] if visit.clinician_ids else None


def set_attendance(
    session: Session, *, access: PatientAccess, visit_id: Any, data: AttendanceIn
) -> Attended:
    """Arrived, fulfilled or no-show. A no-show opens an outreach task for the care manager
    (one per visit); a fulfilled visit with `contact_minutes` records the registry contact
    (kind `contact_kind`, follow-up by default; the mode from the visit's kind) at once."""
    if data.status == VisitStatus.fulfilled and data.contact_minutes is not None:
        kinds = [k.value for k in ContactKind]
        if data.contact_kind is not None and data.contact_kind not in kinds:
            raise InvalidInput(
                Msg("The visit was not changed."),
                errors={
                    "contact_kind": Msg("must be one of: %(allowed)s", allowed=", ".join(kinds))
                },
            )
        if reg.open_episode(session, access.patient.id) is None:
            raise Conflict(
                Msg("This patient has no open episode of care: minutes cannot be recorded.")
            )
    visit = visits.set_attendance(
        session, access=access, visit_id=visit_id, version=data.version, status=data.status
    )
    org = access.patient.clinic.organization
    if visit.status == VisitStatus.noshow:
        task = open_task(
            session,
            organization_id=visit.organization_id,
            patient_id=visit.patient_id,
            owner_id=_care_manager(session, visit),
            title=OUTREACH_TITLE,
            source=f"noshow:{visit.id}",
            due_on=org_today(org) + timedelta(days=1),
            priority="urgent",
            by=access.by,
        )
        return Attended(visit, task=task)
    if visit.status == VisitStatus.fulfilled and data.contact_minutes is not None:
        contact = registry_actions.log_contact(
            session,
            access=access,
            data=reg.ContactIn(
                kind=data.contact_kind or ContactKind.follow_up,
                mode=MODES.get(VisitKind(visit.kind), ContactMode.in_person),
                minutes=data.contact_minutes,
                occurred_on=min(local_date(visit.start, org), org_today(org)),
            ),
        )
        visits.link_contact(visit, contact.id)
        session.flush()
        return Attended(visit, contact_id=contact.id)
    return Attended(visit)


def reminder_offsets(organization: Organization) -> list[int]:
    """Minutes before a visit its reminders go (the organization's setting)."""
    found = []
    for part in (organization.visit_reminders or "").split(","):
        part = part.strip()
        if part.isdigit() and 0 < int(part) <= 60 * 24 * 14:
            found.append(int(part))
    return sorted(set(found), reverse=True)


def send_visit_reminders(session: Session) -> int:
    """Remind patients of booked visits: each configured offset once (a moved visit is
    reminded again at its new time), never for a moment before the visit was booked."""
    at = now()
    orgs = {o.id: o for o in session.scalars(select(Organization))}
    longest = max((max(reminder_offsets(o), default=0) for o in orgs.values()), default=0)
    if not longest:
        return 0
    upcoming = session.scalars(
        select(Appointment).where(
            Appointment.status == VisitStatus.booked,
            Appointment.start > at,
            Appointment.start <= at + timedelta(minutes=longest),
        )
    ).all()
    sent = 0
    for visit in upcoming:
        org = orgs[visit.organization_id]
        due = [
            m
            for m in reminder_offsets(org)
            if visit.start - timedelta(minutes=m) <= at
            and (visit.status_at is None or visit.status_at <= visit.start - timedelta(minutes=m))
        ]
        if not due:
            continue
        patient = session.get(Patient, visit.patient_id)
        if patient is None or patient.user_id is None:
            continue
        user = session.get(User, patient.user_id)
        if user is None:
            continue
        offset = min(due)
        made = notices.notify(
            session,
            user=user,
            kind="visit_reminder",
            link=_patient_link(visit),
            source=f"visit:{visit.id}:remind:{offset}:{visit.start.isoformat()}",
        )
        sent += made is not None
    return sent

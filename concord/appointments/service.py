"""Visits: booked, asked for, accepted, moved, cancelled, attended; read by the patient and
their care team (the same access as the record: off-team is NotFound, audited). A visit of a
42 CFR Part 2 program (at its clinic, or booked by its staff: concord/part2/rules.yaml) is
one of the program's records: every read and change of it passes the disclosure decision
(concord/disclosure.py), so a team member outside the program without the patient's consent
gets NotFound for it and does not find it in any list or count.

Services never commit. Times are stored in UTC; a start given without a zone is the
organization's local time."""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, lazyload

from concord import access, disclosure
from concord.access import PatientAccess, deny, parse_id
from concord.accounts.models import Organization, User
from concord.appointments.models import (
    Appointment,
    AppointmentClinician,
    Awaiting,
    VisitKind,
    VisitStatus,
)
from concord.appointments.schemas import BookIn, VisitIn, VisitRequestIn
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.clock import now
from concord.dates import zone
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import Msg
from concord.patients.models import CareTeam, CareTeamMember, Patient

OBJECT = "Appointment"
# How far ahead a visit may be booked or asked for.
MAX_AHEAD = timedelta(days=400)
OPEN = (VisitStatus.proposed, VisitStatus.booked, VisitStatus.arrived)
ATTENDED = (VisitStatus.arrived, VisitStatus.fulfilled)


def _audit(
    session: Session, by: User | None, action: str, visit: Appointment, **detail: Any
) -> None:
    record(
        session,
        by=by,
        action=action,
        object_type=OBJECT,
        object_id=visit.id,
        patient_id=visit.patient_id,
        organization_id=visit.organization_id,
        detail=detail or None,
    )


def utc_start(value: datetime, organization: Organization) -> datetime:
    """A start as given: with its zone, or in the organization's zone when it has none."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone(organization))
    return value.astimezone(UTC)


def _check_start(start: datetime, errors: dict[str, Any]) -> None:
    if start < now() - timedelta(minutes=1):
        errors["start"] = Msg("must be in the future")
    elif start > now() + MAX_AHEAD:
        errors["start"] = Msg("must be within %(days)s days", days=MAX_AHEAD.days)


def _team_members(session: Session, patient_id: uuid.UUID) -> dict[uuid.UUID, User]:
    rows = session.scalars(
        select(CareTeamMember)
        .join(CareTeam, CareTeam.id == CareTeamMember.care_team_id)
        .where(CareTeam.patient_id == patient_id, CareTeamMember.ended_at.is_(None))
    )
    return {m.user_id: m.user for m in rows if m.user.is_clinician}


def _clinicians(
    session: Session, acc: PatientAccess, ids: list[uuid.UUID], errors: dict[str, Any]
) -> list[uuid.UUID]:
    members = _team_members(session, acc.patient.id)
    chosen = list(dict.fromkeys(ids)) or [acc.by.id]
    if any(i not in members for i in chosen):
        errors["clinician_ids"] = Msg("must be clinicians on this patient's care team")
    return chosen


def _require_team_clinician(session: Session, acc: PatientAccess, action: str) -> None:
    if not (acc.on_team and acc.by.is_clinician):
        raise deny(session, acc, action=action, object_type=OBJECT, message="Only the care team.")


def _set_clinicians(visit: Appointment, ids: list[uuid.UUID]) -> None:
    visit.clinicians = [AppointmentClinician(user_id=i, position=n) for n, i in enumerate(ids)]


def _place(kind: str, place: str | None, organization: Organization, errors: dict) -> str | None:
    if kind == VisitKind.video:
        if not organization.video_url_template:
            errors["kind"] = Msg("video visits need the clinic's video service set up first")
        return None
    if kind in (VisitKind.in_person, VisitKind.home_visit, VisitKind.group) and not place:
        return None  # the clinic's address is the default; a home visit names it on the page
    return place


def book(session: Session, *, access: PatientAccess, data: VisitIn) -> Appointment:
    """The care team books a visit (or suggests one the patient then accepts)."""
    _require_team_clinician(session, access, "create")
    org = access.patient.clinic.organization
    start = utc_start(data.start, org)
    errors: dict[str, Any] = {}
    _check_start(start, errors)
    clinicians = _clinicians(session, access, data.clinician_ids, errors)
    place = _place(data.kind, data.place, org, errors)
    if errors:
        raise InvalidInput(Msg("The visit was not booked."), errors=errors)
    visit = Appointment(
        organization_id=access.patient.organization_id,
        clinic_id=access.patient.clinic_id,
        patient_id=access.patient.id,
        kind=data.kind,
        status=VisitStatus.proposed if data.propose else VisitStatus.booked,
        awaiting=Awaiting.patient if data.propose else None,
        start=start,
        minutes=data.minutes,
        place=place,
        room=secrets.token_hex(12) if data.kind == VisitKind.video else None,
        reason=data.reason,
        requested_by_id=access.by.id,
        created_at=now(),
        created_by_id=access.by.id,
        status_at=now(),
        status_by_id=access.by.id,
        version=1,
    )
    _set_clinicians(visit, clinicians)
    session.add(visit)
    session.flush()
    _audit(session, access.by, "create", visit, status=visit.status, kind=visit.kind)
    return visit


def request_visit(session: Session, *, access: PatientAccess, data: VisitRequestIn) -> Appointment:
    """The patient asks for a visit: proposed, waiting for the clinic to book it."""
    if not access.is_self:
        raise deny(
            session, access, action="create", object_type=OBJECT, message="Only the patient."
        )
    org = access.patient.clinic.organization
    start = utc_start(data.start, org)
    errors: dict[str, Any] = {}
    _check_start(start, errors)
    if data.kind == VisitKind.video and not org.video_url_template:
        errors["kind"] = Msg("video visits need the clinic's video service set up first")
    if errors:
        raise InvalidInput(Msg("The request was not sent."), errors=errors)
    visit = Appointment(
        organization_id=access.patient.organization_id,
        clinic_id=access.patient.clinic_id,
        patient_id=access.patient.id,
        kind=data.kind,
        status=VisitStatus.proposed,
        awaiting=Awaiting.clinic,
        start=start,
        minutes=data.minutes,
        room=secrets.token_hex(12) if data.kind == VisitKind.video else None,
        reason=data.reason,
        requested_by_id=access.by.id,
        created_at=now(),
        created_by_id=access.by.id,
        status_at=now(),
        status_by_id=access.by.id,
        version=1,
    )
    session.add(visit)
    session.flush()
    _audit(session, access.by, "create", visit, status=visit.status, kind=visit.kind)
    return visit


def _visit_for_update(
    session: Session, acc: PatientAccess, visit_id: Any, version: int | None
) -> Appointment:
    vid = parse_id(visit_id)
    visit = (
        session.scalar(
            select(Appointment)
            .where(Appointment.id == vid, Appointment.patient_id == acc.patient.id)
            # The row alone is locked (PostgreSQL locks no outer-joined row, and the person
            # who cancelled is loaded later if asked for).
            .options(lazyload(Appointment.cancelled_by))
            .with_for_update(of=Appointment)
        )
        if vid is not None
        else None
    )
    if visit is None:
        raise NotFound(Msg("No such visit."))
    # A Part 2 program's visit is changed only by whom it may be disclosed to (else NotFound).
    disclosure.check_record(
        session, acc, visit, object_type=OBJECT, action="update", message=Msg("No such visit.")
    )
    if version is not None and version != visit.version:
        raise Conflict(Msg("Someone changed this visit since you opened it. Reload and try again."))
    return visit


def _changed(visit: Appointment, by: User, status: str | None = None) -> None:
    if status is not None:
        visit.status = status
        visit.status_at = now()
        visit.status_by_id = by.id
    visit.version += 1


def book_requested(
    session: Session, *, access: PatientAccess, visit_id: Any, data: BookIn
) -> Appointment:
    """The care team books a visit the patient asked for, or moves a booked one (a new time,
    length, clinicians or place)."""
    _require_team_clinician(session, access, "update")
    visit = _visit_for_update(session, access, visit_id, data.version)
    if visit.status not in (VisitStatus.proposed, VisitStatus.booked):
        raise Conflict(Msg("Only a proposed or booked visit can be booked or moved."))
    org = access.patient.clinic.organization
    errors: dict[str, Any] = {}
    start = utc_start(data.start, org) if data.start is not None else visit.start
    if data.start is not None or visit.status == VisitStatus.proposed:
        _check_start(start, errors)
    clinicians = _clinicians(session, access, data.clinician_ids or visit.clinician_ids, errors)
    if errors:
        raise InvalidInput(Msg("The visit was not booked."), errors=errors)
    moved = start != visit.start or (data.minutes is not None and data.minutes != visit.minutes)
    visit.start = start
    if data.minutes is not None:
        visit.minutes = data.minutes
    if data.place is not None:
        visit.place = data.place
    if clinicians != visit.clinician_ids:
        _set_clinicians(visit, clinicians)
    was = visit.status
    visit.awaiting = None
    _changed(visit, access.by, VisitStatus.booked)
    session.flush()
    _audit(session, access.by, "update", visit, status=visit.status, moved=moved, was=was)
    return visit


def accept(session: Session, *, access: PatientAccess, visit_id: Any, version: int) -> Appointment:
    """The patient accepts a time the clinic suggested."""
    if not access.is_self:
        raise deny(
            session, access, action="update", object_type=OBJECT, message="Only the patient."
        )
    visit = _visit_for_update(session, access, visit_id, version)
    if visit.status != VisitStatus.proposed or visit.awaiting != Awaiting.patient:
        raise Conflict(Msg("This visit is not waiting for your answer."))
    visit.awaiting = None
    _changed(visit, access.by, VisitStatus.booked)
    session.flush()
    _audit(session, access.by, "agree", visit, status=visit.status)
    return visit


def cancel(
    session: Session, *, access: PatientAccess, visit_id: Any, version: int, reason: str
) -> Appointment:
    """The care team or the patient cancels, saying why; who and when are kept."""
    if not ((access.on_team and access.by.is_clinician) or access.is_self):
        raise deny(session, access, action="update", object_type=OBJECT, message="Not allowed.")
    visit = _visit_for_update(session, access, visit_id, version)
    if visit.status not in (VisitStatus.proposed, VisitStatus.booked):
        raise Conflict(Msg("Only a proposed or booked visit can be cancelled."))
    words = " ".join((reason or "").split())
    if not words:
        raise InvalidInput(Msg("The visit was not cancelled."), errors={"reason": Msg("say why")})
    visit.cancelled_at = now()
    visit.cancelled_by_id = access.by.id
    visit.cancelled_by = access.by
    visit.cancel_reason = words[:500]
    visit.awaiting = None
    _changed(visit, access.by, VisitStatus.cancelled)
    session.flush()
    _audit(session, access.by, "update", visit, status=visit.status)
    return visit


def set_attendance(
    session: Session, *, access: PatientAccess, visit_id: Any, version: int, status: str
) -> Appointment:
    """Arrived, fulfilled or no-show: the care team, once the visit has started."""
    _require_team_clinician(session, access, "update")
    visit = _visit_for_update(session, access, visit_id, version)
    allowed = {
        VisitStatus.arrived: (VisitStatus.booked,),
        VisitStatus.fulfilled: (VisitStatus.booked, VisitStatus.arrived),
        VisitStatus.noshow: (VisitStatus.booked,),
    }
    try:
        wanted = VisitStatus(status)
    except ValueError:
        wanted = None
    if wanted not in allowed:
        raise InvalidInput(
            Msg("The visit was not changed."),
            errors={
                "status": Msg("must be one of: %(allowed)s", allowed="arrived, fulfilled, noshow")
            },
        )
    if visit.status not in allowed[wanted]:
        raise Conflict(
            Msg(
                "A %(status)s visit cannot be marked %(wanted)s.",
                status=visit.status,
                wanted=wanted,
            )
        )
    if wanted == VisitStatus.noshow and now() < visit.start:
        raise Conflict(Msg("A visit that has not started yet cannot be a no-show."))
    if wanted != VisitStatus.noshow and now() < visit.start - timedelta(hours=1):
        raise Conflict(Msg("A visit more than an hour away cannot be attended yet."))
    _changed(visit, access.by, wanted)
    session.flush()
    _audit(session, access.by, "update", visit, status=visit.status)
    return visit


def link_contact(visit: Appointment, contact_id: uuid.UUID) -> None:
    visit.contact_id = contact_id


# --- reads -------------------------------------------------------------------------------


def get_visit(
    session: Session, *, by: User, patient_id: Any, visit_id: Any
) -> tuple[Appointment, PatientAccess]:
    """One visit, for the patient and their care team; NotFound (audited) for anyone else."""
    acc = access.record_access(session, by, patient_id, object_type=OBJECT)
    vid = parse_id(visit_id)
    visit = session.get(Appointment, vid) if vid is not None else None
    if visit is None or visit.patient_id != acc.patient.id:
        _audit_missing(session, by, visit_id, acc.patient.id)
        raise NotFound(Msg("No such visit."))
    disclosure.check_record(session, acc, visit, object_type=OBJECT, message=Msg("No such visit."))
    _audit(session, by, "read", visit)
    return visit, acc


def _audit_missing(session: Session, by: User, visit_id: Any, patient_id: Any) -> None:
    """A visit asked for that is not there (or not this patient's): a refusal in the trail,
    as for a stranger."""
    record(
        session,
        by=by,
        action="read",
        object_type=OBJECT,
        object_id=str(visit_id)[:64],
        patient_id=patient_id,
        outcome=Outcome.denied,
    )


def find_visit(session: Session, *, by: User, visit_id: Any) -> tuple[Appointment, PatientAccess]:
    """A visit by its id alone (FHIR, the .ics link): the patient's access decides."""
    vid = parse_id(visit_id)
    visit = session.get(Appointment, vid) if vid is not None else None
    if visit is None:
        _audit_missing(session, by, visit_id, None)
        raise NotFound(Msg("No such visit."))
    return get_visit(session, by=by, patient_id=visit.patient_id, visit_id=visit.id)


def visits_for(
    session: Session,
    acc: PatientAccess,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    statuses: list[str] | None = None,
) -> list[Appointment]:
    query = select(Appointment).where(Appointment.patient_id == acc.patient.id)
    if since is not None:
        query = query.where(Appointment.start >= since)
    if until is not None:
        query = query.where(Appointment.start < until)
    if statuses:
        query = query.where(Appointment.status.in_(statuses))
    visits = disclosure.filter_records(
        session,
        acc,
        session.scalars(query.order_by(Appointment.start).limit(500)),
        object_type=OBJECT,
        action="list",
    )
    record(
        session,
        by=acc.by,
        action="list",
        object_type=OBJECT,
        patient_id=acc.patient.id,
        detail={"count": len(visits)},
    )
    return visits


@dataclass(frozen=True)
class CalendarEntry:
    visit: Appointment
    patient_name: str


def may_be_told(session: Session, user: User, visit: Appointment) -> bool:
    """Whether `user` may be told about `visit` (a notice must not announce a Part 2
    program's visit to whom the disclosure decision withholds it). Decides only."""
    try:
        acc = access.patient_for(session, user, visit.patient_id, object_type=OBJECT)
    except NotFound:
        return False
    label = disclosure.label_of(session, acc, visit)
    return disclosure.decide(acc, visit.data_category, label=label, session=session).permit


def _disclosed(session: Session, by: User, entries: list[CalendarEntry]) -> list[CalendarEntry]:
    """The entries whose visit `by` may see (the disclosure decision per patient: a Part 2
    program's visit is left out for whom it is withheld from), in their order."""
    if not entries:
        return entries
    ids = {e.visit.patient_id for e in entries}
    patients = {p.id: p for p in session.scalars(select(Patient).where(Patient.id.in_(ids)))}
    groups = [
        (patients[pid], [e.visit for e in entries if e.visit.patient_id == pid]) for pid in ids
    ]
    kept = {
        v.id
        for rows in disclosure.filter_many(
            session, by, groups, object_type=OBJECT, action="list"
        ).values()
        for v in rows
    }
    return [e for e in entries if e.visit.id in kept]


def clinician_calendar(
    session: Session, *, by: User, since: datetime, until: datetime
) -> list[CalendarEntry]:
    """The clinician's own visits between two times, with patients they may still reach
    (a visit with a patient whose team they left is not shown). Each patient's visits read
    are audited."""
    if not by.is_clinician:
        raise NotFound(Msg("This page is for clinicians."))
    readable = access.readable_patients(by).subquery()
    rows = session.execute(
        select(Appointment, readable.c.given_name, readable.c.family_name)
        .join(
            AppointmentClinician,
            and_(
                AppointmentClinician.appointment_id == Appointment.id,
                AppointmentClinician.user_id == by.id,
            ),
        )
        .join(readable, readable.c.id == Appointment.patient_id)
        .where(Appointment.start >= since, Appointment.start < until)
        .order_by(Appointment.start)
        .limit(1000)
    ).all()
    entries = _disclosed(session, by, [CalendarEntry(v, f"{g} {f}") for v, g, f in rows])
    for patient_id, count in Counter(e.visit.patient_id for e in entries).items():
        record(
            session,
            by=by,
            action="list",
            object_type=OBJECT,
            patient_id=patient_id,
            detail={"count": count},
        )
    return entries


def requests_waiting(session: Session, *, by: User) -> list[CalendarEntry]:
    """Visits patients on the clinician's teams asked for, not yet booked."""
    if not by.is_clinician:
        return []
    readable = access.readable_patients(by).subquery()
    rows = session.execute(
        select(Appointment, readable.c.given_name, readable.c.family_name)
        .join(readable, readable.c.id == Appointment.patient_id)
        .where(
            Appointment.status == VisitStatus.proposed,
            Appointment.awaiting == Awaiting.clinic,
        )
        .order_by(Appointment.start)
        .limit(200)
    ).all()
    entries = _disclosed(session, by, [CalendarEntry(v, f"{g} {f}") for v, g, f in rows])
    for patient_id in {e.visit.patient_id for e in entries}:
        record(session, by=by, action="list", object_type=OBJECT, patient_id=patient_id)
    return entries


@dataclass(frozen=True)
class Attendance:
    attended: int
    noshow: int
    cancelled: int

    @property
    def noshow_rate(self) -> float | None:
        done = self.attended + self.noshow
        return round(self.noshow / done, 3) if done else None


def _attendance(rows: Any) -> Attendance:
    counts = {status: n for status, n in rows}
    return Attendance(
        attended=sum(counts.get(s, 0) for s in ATTENDED),
        noshow=counts.get(VisitStatus.noshow, 0),
        cancelled=counts.get(VisitStatus.cancelled, 0),
    )


def patient_attendance(session: Session, acc: PatientAccess) -> Attendance:
    """The patient's attendance counts, of the visits the reader may see: a count must not
    reveal a Part 2 program's visit the disclosure decision withholds from them."""
    visits = session.scalars(
        select(Appointment).where(Appointment.patient_id == acc.patient.id)
    ).all()
    counts = Counter(
        v.status
        for v in visits
        if disclosure.decide(
            acc, v.data_category, label=disclosure.label_of(session, acc, v), session=session
        ).permit
    )
    return _attendance(counts.items())


def clinic_attendance(session: Session, *, by: User) -> dict[uuid.UUID, Attendance]:
    """Counts per clinic of the clinician's organization: numbers only, no patient."""
    if not by.is_clinician:
        raise NotFound(Msg("This page is for clinicians."))
    rows = session.execute(
        select(Appointment.clinic_id, Appointment.status, func.count())
        .where(Appointment.organization_id == by.organization_id)
        .group_by(Appointment.clinic_id, Appointment.status)
    ).all()
    per: dict[uuid.UUID, list[tuple[str, int]]] = {}
    for clinic_id, status, n in rows:
        per.setdefault(clinic_id, []).append((status, n))
    return {clinic_id: _attendance(r) for clinic_id, r in per.items()}


# --- telehealth and calendars --------------------------------------------------------------


def video_url(visit: Appointment, organization: Organization) -> str | None:
    if visit.kind != VisitKind.video or not visit.room or not organization.video_url_template:
        return None
    return organization.video_url_template.replace("{room}", visit.room)


def join_window(visit: Appointment, organization: Organization) -> tuple[datetime, datetime]:
    opens = visit.start - timedelta(minutes=organization.video_join_minutes)
    return opens, visit.start + timedelta(minutes=visit.minutes)


def can_join(visit: Appointment, organization: Organization, at: datetime | None = None) -> bool:
    if visit.status not in (VisitStatus.booked, VisitStatus.arrived):
        return False
    if video_url(visit, organization) is None:
        return False
    opens, closes = join_window(visit, organization)
    moment = at or now()
    return opens <= moment <= closes


def _ics_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def ics(visit: Appointment, organization: Organization, *, base_url: str, summary: str) -> str:
    """An iCalendar file for one visit (RFC 5545). It carries no health information: the
    summary says a visit with the clinic, the link leads to Concord (sign-in needed); no
    reason, no clinician's specialty, no video room (that is shown at the visit page)."""
    stamp = now().strftime("%Y%m%dT%H%M%SZ")
    start = visit.start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    end = (visit.start + timedelta(minutes=visit.minutes)).astimezone(UTC)
    status = "CANCELLED" if visit.status == VisitStatus.cancelled else "CONFIRMED"
    if visit.status == VisitStatus.proposed:
        status = "TENTATIVE"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Concord//Visits//EN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{visit.id}@concord",
        f"DTSTAMP:{stamp}",
        f"DTSTART:{start}",
        f"DTEND:{end.strftime('%Y%m%dT%H%M%SZ')}",
        f"SEQUENCE:{visit.version}",
        f"SUMMARY:{_ics_text(summary)}",
        f"URL:{base_url.rstrip('/')}/my/visits/{visit.id}",
        f"STATUS:{status}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "\r\n".join(lines) + "\r\n"

"""Visits as JSON at /api/v1 (issue 22): the same actions as the pages; creates may carry an
Idempotency-Key (the same key with another body is 409)."""

# No `from __future__ import annotations`: FastAPI reads the body models from the annotations.

from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from concord import access
from concord.access import PatientAccess
from concord.accounts.models import Organization
from concord.actions import appointments as act
from concord.appointments import service as visits
from concord.appointments.models import Appointment
from concord.appointments.schemas import (
    AcceptIn,
    AttendanceIn,
    BookIn,
    CancelIn,
    VisitIn,
    VisitRequestIn,
)
from concord.dates import org_today, zone
from concord.errors import InvalidInput
from concord.i18n import Msg
from concord.web.deps import ApiActor, ApiWriter, DbSession
from concord.web.idempotency import Idempotent, create_once, earlier_record

router = APIRouter(prefix="/api/v1", tags=["visits"])
OBJECT = visits.OBJECT


def visit_json(v: Appointment, organization: Organization, *, team: bool) -> dict[str, Any]:
    opens, closes = visits.join_window(v, organization)
    found: dict[str, Any] = {
        "id": str(v.id),
        "patient_id": str(v.patient_id),
        "kind": v.kind,
        "status": v.status,
        "awaiting": v.awaiting,
        "start": v.start.isoformat(),
        "minutes": v.minutes,
        "place": v.place,
        "reason": v.reason,
        "clinicians": [{"id": str(c.user_id), "name": c.user.name} for c in v.clinicians],
        "video_url": visits.video_url(v, organization),
        "join_opens_at": opens.isoformat() if v.room else None,
        "join_closes_at": closes.isoformat() if v.room else None,
        "can_join": visits.can_join(v, organization),
        "cancelled_at": v.cancelled_at.isoformat() if v.cancelled_at else None,
        "cancelled_by": v.cancelled_by.name if v.cancelled_by else None,
        "cancel_reason": v.cancel_reason,
        "version": v.version,
        "fhir": f"Appointment/{v.id}",
    }
    if team:
        found["contact_id"] = str(v.contact_id) if v.contact_id else None
    return found


def _access(session: Session, actor: Any, patient_id: str, action: str = "read") -> PatientAccess:
    return access.record_access(session, actor.user, patient_id, action=action, object_type=OBJECT)


def _org(acc: PatientAccess) -> Organization:
    return acc.patient.clinic.organization


def _one(acc: PatientAccess, v: Appointment) -> dict[str, Any]:
    return {"visit": visit_json(v, _org(acc), team=acc.on_team)}


def _replay(session: Session, acc: PatientAccess, result: str) -> dict[str, Any]:
    return _one(acc, earlier_record(session, Appointment, result, patient_id=acc.patient.id))


@router.get("/patients/{patient_id}/visits")
def patient_visits(patient_id: str, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    """A patient's visits, oldest first, with attendance counts (the patient and their team)."""
    acc = _access(session, actor, patient_id)
    found = visits.visits_for(session, acc)
    counts = visits.patient_attendance(session, acc)
    return {
        "visits": [visit_json(v, _org(acc), team=acc.on_team) for v in found],
        "attendance": {
            "attended": counts.attended,
            "noshow": counts.noshow,
            "cancelled": counts.cancelled,
            "noshow_rate": counts.noshow_rate,
        },
    }


@router.get("/patients/{patient_id}/visits/{visit_id}")
def patient_visit(
    patient_id: str, visit_id: str, session: DbSession, actor: ApiActor
) -> dict[str, Any]:
    visit, acc = visits.get_visit(session, by=actor.user, patient_id=patient_id, visit_id=visit_id)
    return _one(acc, visit)


@router.post("/patients/{patient_id}/visits", status_code=201)
def book(
    patient_id: str, body: VisitIn, session: DbSession, actor: ApiWriter, idem: Idempotent
) -> Any:
    """The care team books a visit (`propose`: suggests one the patient accepts)."""
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        v = act.book(session, access=acc, data=body)
        return str(v.id), _one(acc, v)

    return create_once(
        session, actor, idem, create=create, replay=lambda r: _replay(session, acc, r)
    )


@router.post("/patients/{patient_id}/visit-requests", status_code=201)
def request_visit(
    patient_id: str, body: VisitRequestIn, session: DbSession, actor: ApiWriter, idem: Idempotent
) -> Any:
    """The patient asks for a visit (proposed, waiting for the clinic)."""
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        v = act.request_visit(session, access=acc, data=body)
        return str(v.id), _one(acc, v)

    return create_once(
        session, actor, idem, create=create, replay=lambda r: _replay(session, acc, r)
    )


@router.post("/patients/{patient_id}/visits/{visit_id}/book")
def book_requested(
    patient_id: str, visit_id: str, body: BookIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Book a requested visit, or move a booked one; `version` is the one you read."""
    acc = _access(session, actor, patient_id, "update")
    return _one(acc, act.book_requested(session, access=acc, visit_id=visit_id, data=body))


@router.post("/patients/{patient_id}/visits/{visit_id}/accept")
def accept(
    patient_id: str, visit_id: str, body: AcceptIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """The patient accepts a time the clinic suggested."""
    acc = _access(session, actor, patient_id, "update")
    return _one(acc, act.accept(session, access=acc, visit_id=visit_id, version=body.version))


@router.post("/patients/{patient_id}/visits/{visit_id}/cancel")
def cancel(
    patient_id: str, visit_id: str, body: CancelIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """The care team or the patient cancels, with a reason."""
    acc = _access(session, actor, patient_id, "update")
    v = act.cancel(session, access=acc, visit_id=visit_id, version=body.version, reason=body.reason)
    return _one(acc, v)


@router.post("/patients/{patient_id}/visits/{visit_id}/attendance")
def attendance(
    patient_id: str, visit_id: str, body: AttendanceIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Arrived, fulfilled (optionally with the registry's contact minutes) or no-show (an
    outreach task is opened)."""
    acc = _access(session, actor, patient_id, "update")
    done = act.set_attendance(session, access=acc, visit_id=visit_id, data=body)
    answer = _one(acc, done.visit)
    answer["task_id"] = str(done.task.id) if done.task is not None else None
    answer["contact_id"] = str(done.contact_id) if done.contact_id is not None else None
    return answer


def calendar_range(
    organization: Organization, day: date | None, view: str
) -> tuple[date, int, datetime, datetime]:
    if view not in ("day", "week"):
        raise InvalidInput(
            Msg("The calendar was not shown."), errors={"view": Msg("must be day or week")}
        )
    first = day or org_today(organization)
    days = 1
    if view == "week":
        first = first - timedelta(days=first.weekday())
        days = 7
    tz = zone(organization)
    since = datetime.combine(first, time(0), tzinfo=tz)
    until = datetime.combine(first + timedelta(days=days), time(0), tzinfo=tz)
    return first, days, since, until


@router.get("/visits")
def calendar(
    session: DbSession, actor: ApiActor, day: date | None = None, view: str = "day"
) -> dict[str, Any]:
    """The clinician's own visits for a day or the week (Monday first) holding `day`."""
    org = actor.user.organization
    first, days, since, until = calendar_range(org, day, view)
    entries = visits.clinician_calendar(session, by=actor.user, since=since, until=until)
    return {
        "from": first.isoformat(),
        "days": days,
        "visits": [
            {**visit_json(e.visit, org, team=True), "patient_name": e.patient_name} for e in entries
        ],
    }


@router.get("/visits/attendance")
def clinic_attendance(session: DbSession, actor: ApiActor) -> dict[str, Any]:
    """Attended and no-show visits per clinic of the organization (counts only)."""
    per = visits.clinic_attendance(session, by=actor.user)
    return {
        "clinics": [
            {
                "clinic_id": str(clinic_id),
                "attended": a.attended,
                "noshow": a.noshow,
                "cancelled": a.cancelled,
                "noshow_rate": a.noshow_rate,
            }
            for clinic_id, a in sorted(per.items(), key=lambda kv: str(kv[0]))
        ]
    }

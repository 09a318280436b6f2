"""Visit pages (issue 22): the team's tab on a patient, the clinician's day and week, the
patient's visits in the portal, one visit with its "Join" button, and its .ics file."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from concord import access
from concord.access import PatientAccess
from concord.accounts.organizations import list_clinics
from concord.actions import appointments as act
from concord.appointments import service as visits
from concord.appointments.api import calendar_range
from concord.appointments.models import Appointment, Awaiting, VisitKind, VisitStatus
from concord.appointments.schemas import (
    AcceptIn,
    AttendanceIn,
    BookIn,
    CancelIn,
    VisitIn,
    VisitRequestIn,
)
from concord.clock import now
from concord.dates import local_datetime
from concord.errors import Conflict, InvalidInput
from concord.i18n import gettext
from concord.patients.service import members_of_patient
from concord.registry.models import ContactKind
from concord.settings import get_settings
from concord.web.deps import DbSession, PostedBy, WebActor
from concord.web.forms import FormOf, Posted
from concord.web.idempotency import already_done, remember
from concord.web.patient_header import header_context
from concord.web.templating import render

router = APIRouter()
OBJECT = visits.OBJECT
KINDS = [k.value for k in VisitKind]


def _split(found: list[Appointment]) -> tuple[list[Appointment], list[Appointment]]:
    at = now()
    upcoming = [
        v
        for v in found
        if v.start + timedelta(minutes=v.minutes) >= at
        and v.status in (VisitStatus.proposed, VisitStatus.booked, VisitStatus.arrived)
    ]
    past = [v for v in reversed(found) if v not in upcoming]
    return upcoming, past


def _team_context(session: DbSession, acc: PatientAccess, **extra: Any) -> dict[str, Any]:
    found = visits.visits_for(session, acc)
    upcoming, past = _split(found)
    staff = [
        m.user
        for m in members_of_patient(session, patient_id=acc.patient.id)
        if m.user.is_clinician
    ]
    org = acc.patient.clinic.organization
    return {
        **header_context(session, acc, tab="visits"),
        "acc": acc,
        "patient": acc.patient,
        "upcoming": upcoming,
        "past": past,
        "attendance": visits.patient_attendance(session, acc),
        "staff": staff,
        "kinds": KINDS,
        "video_ready": bool(org.video_url_template),
        "values": {},
        "errors": {},
        "done": None,
        **extra,
    }


def _team_access(session: DbSession, actor: Any, patient_id: str, action: str = "read") -> Any:
    return access.team_access(session, actor.user, patient_id, action=action, object_type=OBJECT)


@router.get("/patients/{patient_id}/visits")
def team_visits(patient_id: str, request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _team_access(session, actor, patient_id)
    context = _team_context(session, acc, done=request.query_params.get("done"))
    return render(request, "appointments/team.html", context)


def _visit_context(
    session: DbSession, visit: Appointment, acc: PatientAccess, **extra: Any
) -> dict[str, Any]:
    org = acc.patient.clinic.organization
    opens, closes = visits.join_window(visit, org)
    context: dict[str, Any] = {
        "acc": acc,
        "patient": acc.patient,
        "visit": visit,
        "video_url": visits.video_url(visit, org),
        "can_join": visits.can_join(visit, org),
        "join_opens": opens,
        "join_closes": closes,
        "contact_kinds": [k.value for k in ContactKind],
        "values": {},
        "errors": {},
        "done": None,
        "Awaiting": Awaiting,
        **extra,
    }
    if acc.on_team:
        context.update(header_context(session, acc, tab="visits"))
        context["staff"] = [
            m.user
            for m in members_of_patient(session, patient_id=acc.patient.id)
            if m.user.is_clinician
        ]
        context["local_start"] = local_datetime(visit.start, org).strftime("%Y-%m-%dT%H:%M")
    return context


@router.get("/patients/{patient_id}/visits/{visit_id}")
def team_visit(
    patient_id: str, visit_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    _team_access(session, actor, patient_id)
    visit, acc = visits.get_visit(session, by=actor.user, patient_id=patient_id, visit_id=visit_id)
    context = _visit_context(session, visit, acc, done=request.query_params.get("done"))
    return render(request, "appointments/visit.html", context)


def _post(
    request: Request,
    session: DbSession,
    actor: Any,
    form: Posted[Any],
    acc: PatientAccess,
    work: Any,
    target: str,
    again: Any,
) -> Response:
    """Run one action from a form; on bad input, the page again with the fields named."""
    try:
        work(form.read())
    except (InvalidInput, Conflict) as exc:
        context = again(values=form.values, errors=getattr(exc, "errors", {}), message=exc.message)
        status = 422 if isinstance(exc, InvalidInput) else 409
        return render(request, context.pop("_template"), context, status_code=status)
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


@router.post("/patients/{patient_id}/visits")
def team_book(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[VisitIn], FormOf(VisitIn)],
    actor: PostedBy,
) -> Response:
    earlier = already_done(session, form.values, actor)
    if earlier:
        return RedirectResponse(earlier, status_code=303)
    acc = _team_access(session, actor, patient_id, "create")
    return _post(
        request,
        session,
        actor,
        form,
        acc,
        lambda data: act.book(session, access=acc, data=data),
        f"/patients/{acc.patient.id}/visits?done=booked",
        lambda **kw: {"_template": "appointments/team.html", **_team_context(session, acc, **kw)},
    )


def _visit_again(session: Any, actor: Any, acc: PatientAccess, visit_id: str) -> Any:
    """The visit's page again, with what was typed and the errors (a refused form post)."""

    def again(**kw: Any) -> dict[str, Any]:
        visit, _ = visits.get_visit(
            session, by=actor.user, patient_id=acc.patient.id, visit_id=visit_id
        )
        return {"_template": "appointments/visit.html", **_visit_context(session, visit, acc, **kw)}

    return again


def _team_visit_post(
    request: Request,
    session: DbSession,
    actor: Any,
    patient_id: str,
    visit_id: str,
    form: Posted[Any],
    work: Any,
    done: str,
) -> Response:
    earlier = already_done(session, form.values, actor)
    if earlier:
        return RedirectResponse(earlier, status_code=303)
    acc = _team_access(session, actor, patient_id, "update")

    return _post(
        request,
        session,
        actor,
        form,
        acc,
        lambda data: work(acc, data),
        f"/patients/{acc.patient.id}/visits/{visit_id}?done={done}",
        _visit_again(session, actor, acc, visit_id),
    )


@router.post("/patients/{patient_id}/visits/{visit_id}/book")
def team_book_requested(
    patient_id: str,
    visit_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[BookIn], FormOf(BookIn)],
    actor: PostedBy,
) -> Response:
    return _team_visit_post(
        request,
        session,
        actor,
        patient_id,
        visit_id,
        form,
        lambda acc, data: act.book_requested(session, access=acc, visit_id=visit_id, data=data),
        "booked",
    )


@router.post("/patients/{patient_id}/visits/{visit_id}/cancel")
def team_cancel(
    patient_id: str,
    visit_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[CancelIn], FormOf(CancelIn)],
    actor: PostedBy,
) -> Response:
    return _team_visit_post(
        request,
        session,
        actor,
        patient_id,
        visit_id,
        form,
        lambda acc, data: act.cancel(
            session, access=acc, visit_id=visit_id, version=data.version, reason=data.reason
        ),
        "cancelled",
    )


@router.post("/patients/{patient_id}/visits/{visit_id}/attendance")
def team_attendance(
    patient_id: str,
    visit_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[AttendanceIn], FormOf(AttendanceIn)],
    actor: PostedBy,
) -> Response:
    return _team_visit_post(
        request,
        session,
        actor,
        patient_id,
        visit_id,
        form,
        lambda acc, data: act.set_attendance(session, access=acc, visit_id=visit_id, data=data),
        "attendance",
    )


@router.get("/visits")
def calendar(request: Request, session: DbSession, actor: WebActor) -> Response:
    """The clinician's day, or week (`view=week`), from `day` (the organization's today)."""
    org = actor.user.organization
    raw = request.query_params.get("day") or ""
    view = request.query_params.get("view") or "day"
    try:
        day = date.fromisoformat(raw) if raw else None
    except ValueError:
        day = None
    first, days, since, until = calendar_range(org, day, view if view in ("day", "week") else "day")
    entries = visits.clinician_calendar(session, by=actor.user, since=since, until=until)
    by_day: dict[date, list[Any]] = {first + timedelta(days=n): [] for n in range(days)}
    for entry in entries:
        local = local_datetime(entry.visit.start, org).date()
        by_day.setdefault(local, []).append(entry)
    step = timedelta(days=days)
    context = {
        "view": "week" if days == 7 else "day",
        "first": first,
        "by_day": by_day,
        "previous": first - step,
        "following": first + step,
        "requests": visits.requests_waiting(session, by=actor.user),
        "attendance": visits.clinic_attendance(session, by=actor.user),
        "clinics": {c.id: c.name for c in _clinics(session, actor.user)},
    }
    return render(request, "appointments/calendar.html", context)


def _clinics(session: DbSession, user: Any) -> list[Any]:
    return list_clinics(session, organization_id=user.organization_id)


# --- the patient's portal ------------------------------------------------------------------


def _my_context(session: DbSession, acc: PatientAccess, **extra: Any) -> dict[str, Any]:
    found = visits.visits_for(session, acc)
    upcoming, past = _split(found)
    org = acc.patient.clinic.organization
    return {
        "acc": acc,
        "patient": acc.patient,
        "upcoming": upcoming,
        "past": past,
        "kinds": KINDS,
        "video_ready": bool(org.video_url_template),
        "values": {},
        "errors": {},
        "done": None,
        "Awaiting": Awaiting,
        **extra,
    }


@router.get("/my/visits")
def my_visits(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = access.own_record(session, actor.user, object_type=OBJECT)
    context = _my_context(session, acc, done=request.query_params.get("done"))
    return render(request, "appointments/mine.html", context)


@router.post("/my/visits")
def my_request(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[VisitRequestIn], FormOf(VisitRequestIn)],
    actor: PostedBy,
) -> Response:
    earlier = already_done(session, form.values, actor)
    if earlier:
        return RedirectResponse(earlier, status_code=303)
    acc = access.own_record(session, actor.user, action="create", object_type=OBJECT)
    return _post(
        request,
        session,
        actor,
        form,
        acc,
        lambda data: act.request_visit(session, access=acc, data=data),
        "/my/visits?done=requested",
        lambda **kw: {"_template": "appointments/mine.html", **_my_context(session, acc, **kw)},
    )


@router.get("/my/visits/{visit_id}")
def my_visit(visit_id: str, request: Request, session: DbSession, actor: WebActor) -> Response:
    own = access.own_record(session, actor.user, object_type=OBJECT)
    visit, acc = visits.get_visit(
        session, by=actor.user, patient_id=own.patient.id, visit_id=visit_id
    )
    context = _visit_context(session, visit, acc, done=request.query_params.get("done"))
    return render(request, "appointments/visit.html", context)


def _my_visit_post(
    request: Request,
    session: DbSession,
    actor: Any,
    visit_id: str,
    form: Posted[Any],
    work: Any,
    done: str,
) -> Response:
    earlier = already_done(session, form.values, actor)
    if earlier:
        return RedirectResponse(earlier, status_code=303)
    acc = access.own_record(session, actor.user, action="update", object_type=OBJECT)

    return _post(
        request,
        session,
        actor,
        form,
        acc,
        lambda data: work(acc, data),
        f"/my/visits/{visit_id}?done={done}",
        _visit_again(session, actor, acc, visit_id),
    )


@router.post("/my/visits/{visit_id}/accept")
def my_accept(
    visit_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[AcceptIn], FormOf(AcceptIn)],
    actor: PostedBy,
) -> Response:
    return _my_visit_post(
        request,
        session,
        actor,
        visit_id,
        form,
        lambda acc, data: act.accept(session, access=acc, visit_id=visit_id, version=data.version),
        "accepted",
    )


@router.post("/my/visits/{visit_id}/cancel")
def my_cancel(
    visit_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[CancelIn], FormOf(CancelIn)],
    actor: PostedBy,
) -> Response:
    return _my_visit_post(
        request,
        session,
        actor,
        visit_id,
        form,
        lambda acc, data: act.cancel(
            session, access=acc, visit_id=visit_id, version=data.version, reason=data.reason
        ),
        "cancelled",
    )


@router.get("/visits/{visit_id}.ics")
def visit_ics(visit_id: str, request: Request, session: DbSession, actor: WebActor) -> Response:
    """The visit as a calendar file, for the patient and their team: "Visit with Concord
    clinic", its time and a link; nothing about why, where or with whom."""
    visit, acc = visits.find_visit(session, by=actor.user, visit_id=visit_id)
    lang = actor.user.language or "en"
    # Not the clinic's name either: a program's name can say what it treats.
    summary = gettext(lang, "Visit with Concord clinic")
    text = visits.ics(
        visit, acc.patient.clinic.organization, base_url=get_settings().base_url, summary=summary
    )
    return Response(
        text,
        media_type="text/calendar; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="visit.ics"',
            "Cache-Control": "no-store",
        },
    )

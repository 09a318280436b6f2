"""The medication pages (issue 19): the care team's "Medications" tab on the patient's record
(the list, the safety findings with what to do and the source, the differences the patient
reported, and the forms to add, change, hold, stop, override and reconcile), and the
patient's "My medications" (their list in plain words; "I take this", "I stopped this").

Every form posts to an action in concord.actions.medications, as the JSON API does
(concord.medications.api), so the same whole-list check runs whichever door is used."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from concord import access
from concord.access import PatientAccess
from concord.actions import checkin as checkin_steps
from concord.actions import medications as act
from concord.careplans import service as plans
from concord.dates import org_today
from concord.errors import Conflict, InvalidInput
from concord.medications.api import list_view
from concord.medications.schemas import (
    CheckinIn,
    MedicationChangeIn,
    MedicationIn,
    MonitoringDoneIn,
    MoudIn,
    OverrideIn,
    ProtocolIn,
    ReportedIn,
    ReportIn,
    ResolveIn,
    StatusIn,
)
from concord.medications.vocabulary import default_vocabulary
from concord.patients import service as patients
from concord.web.deps import DbSession, PostedBy, WebActor
from concord.web.forms import FormOf, Posted, back_to
from concord.web.idempotency import already_done, remember
from concord.web.patient_header import header_context
from concord.web.templating import render

router = APIRouter()
OBJECT = "Medication"


def _choices(lang: str) -> list[tuple[str, str]]:
    """The vocabulary's usable ingredients, by name in the reader's language."""
    vocabulary = default_vocabulary()
    found = [(i.rxcui, i.label(lang)) for i in vocabulary.ingredients if i.verified]
    return sorted(found, key=lambda pair: pair[1].casefold())


def _team_access(session: DbSession, actor: Any, patient_id: str, action: str = "read") -> Any:
    return access.record_access(session, actor.user, patient_id, action=action, object_type=OBJECT)


def _team_context(
    session: DbSession, acc: PatientAccess, lang: str, **extra: Any
) -> dict[str, Any]:
    plan = plans.current_plan(session, acc.patient.id)
    concerns = plans.visible_contents(session, acc, plan).concerns if plan is not None else []
    staff = [m.user for m in patients.members_of_patient(session, patient_id=acc.patient.id)]
    return {
        **header_context(session, acc, tab="medications"),
        "acc": acc,
        "patient": acc.patient,
        **list_view(session, acc),
        "choices": _choices(lang),
        "concerns": concerns,
        "staff": staff,
        "today": org_today(acc.by.organization),
        "values": {},
        "errors": {},
        "done": None,
        **extra,
    }


@router.get("/patients/{patient_id}/medications")
def team_medications(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team_access(session, actor, patient_id)
    if acc.is_self:
        return RedirectResponse("/my/medications", status_code=303)
    context = _team_context(session, acc, request.state.lang)
    context["done"] = request.query_params.get("done")
    return render(request, "medications/team.html", context)


def _team_post(
    request: Request,
    session: DbSession,
    actor: Any,
    patient_id: str,
    form: Posted[Any],
    work: Any,
    done: str,
    action: str = "update",
) -> Response:
    """Run one team action from a form; on bad input, the page again with the fields named."""
    earlier = already_done(session, form.values, actor)
    if earlier:
        return RedirectResponse(earlier, status_code=303)
    acc = _team_access(session, actor, patient_id, action)
    try:
        work(acc, form.read())
    except (InvalidInput, Conflict) as exc:
        context = _team_context(
            session,
            acc,
            request.state.lang,
            values=form.values,
            errors=getattr(exc, "errors", {}),
            message=exc.message,
        )
        status = 422 if isinstance(exc, InvalidInput) else 409
        return render(request, "medications/team.html", context, status_code=status)
    target = f"/patients/{acc.patient.id}/medications?done={done}"
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


@router.post("/patients/{patient_id}/medications")
def add_medication(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[MedicationIn], FormOf(MedicationIn)],
    actor: PostedBy,
) -> Response:
    return _team_post(
        request,
        session,
        actor,
        patient_id,
        form,
        lambda acc, data: act.add(session, access=acc, data=data),
        "added",
        "create",
    )


@router.post("/patients/{patient_id}/medications/{medication_id}")
def change_medication(
    patient_id: str,
    medication_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[MedicationChangeIn], FormOf(MedicationChangeIn)],
    actor: PostedBy,
) -> Response:
    return _team_post(
        request,
        session,
        actor,
        patient_id,
        form,
        lambda acc, data: act.change(
            session, access=acc, medication_id=medication_id, data=data, version=data.version
        ),
        "changed",
    )


@router.post("/patients/{patient_id}/medications/{medication_id}/status")
def medication_status(
    patient_id: str,
    medication_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[StatusIn], FormOf(StatusIn)],
    actor: PostedBy,
) -> Response:
    return _team_post(
        request,
        session,
        actor,
        patient_id,
        form,
        lambda acc, data: act.set_status(
            session,
            access=acc,
            medication_id=medication_id,
            status=data.status,
            reason=data.reason,
            version=data.version,
        ),
        "status",
    )


@router.post("/patients/{patient_id}/medications/{medication_id}/review")
def review_reported(
    patient_id: str,
    medication_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ResolveIn], FormOf(ResolveIn)],
    actor: PostedBy,
) -> Response:
    return _team_post(
        request,
        session,
        actor,
        patient_id,
        form,
        lambda acc, data: act.review_reported(
            session, access=acc, medication_id=medication_id, note=data.note
        ),
        "reviewed",
    )


@router.post("/patients/{patient_id}/medication-reports/{report_id}/resolve")
def resolve_report(
    patient_id: str,
    report_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ResolveIn], FormOf(ResolveIn)],
    actor: PostedBy,
) -> Response:
    return _team_post(
        request,
        session,
        actor,
        patient_id,
        form,
        lambda acc, data: act.resolve_report(
            session, access=acc, report_id=report_id, note=data.note
        ),
        "reconciled",
    )


@router.post("/patients/{patient_id}/medication-findings/{finding_id}/override")
def override_finding(
    patient_id: str,
    finding_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[OverrideIn], FormOf(OverrideIn)],
    actor: PostedBy,
) -> Response:
    return _team_post(
        request,
        session,
        actor,
        patient_id,
        form,
        lambda acc, data: act.override(
            session, access=acc, finding_id=finding_id, reason=data.reason
        ),
        "overridden",
        "create",
    )


@router.post("/patients/{patient_id}/medication-protocol")
def add_protocol(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ProtocolIn], FormOf(ProtocolIn)],
    actor: PostedBy,
) -> Response:
    return _team_post(
        request,
        session,
        actor,
        patient_id,
        form,
        lambda acc, data: act.add_protocol(session, access=acc, data=data),
        "protocol",
        "create",
    )


@router.post("/patients/{patient_id}/medication-protocol/{entry_id}/done")
def monitoring_done(
    patient_id: str,
    entry_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[MonitoringDoneIn], FormOf(MonitoringDoneIn)],
    actor: PostedBy,
) -> Response:
    return _team_post(
        request,
        session,
        actor,
        patient_id,
        form,
        lambda acc, data: act.monitoring_done(
            session, access=acc, entry_id=entry_id, done_on=data.done_on
        ),
        "monitored",
    )


@router.post("/patients/{patient_id}/moud-records")
def add_moud_record(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[MoudIn], FormOf(MoudIn)],
    actor: PostedBy,
) -> Response:
    return _team_post(
        request,
        session,
        actor,
        patient_id,
        form,
        lambda acc, data: act.record_moud(session, access=acc, data=data),
        "moud",
        "create",
    )


# --- the patient's portal --------------------------------------------------------------------


def _my_context(session: DbSession, acc: PatientAccess, lang: str, **extra: Any) -> dict[str, Any]:
    view = list_view(session, acc)
    reported_stopped = {
        d.medication.id for d in view["differences"] if d.kind == "reported_stopped"
    }
    return {
        "acc": acc,
        **view,
        "reported_stopped": reported_stopped,
        "choices": _choices(lang),
        "values": {},
        "errors": {},
        "done": None,
        **extra,
    }


@router.get("/my/medications")
def my_medications(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = access.own_record(session, actor.user, object_type=OBJECT)
    context = _my_context(session, acc, request.state.lang)
    context["done"] = request.query_params.get("done")
    return render(request, "medications/mine.html", context)


def _my_post(
    request: Request, session: DbSession, actor: Any, form: Posted[Any], work: Any, done: str
) -> Response:
    earlier = already_done(session, form.values, actor)
    if earlier:
        return RedirectResponse(earlier, status_code=303)
    acc = access.own_record(session, actor.user, action="create", object_type=OBJECT)
    try:
        work(acc, form.read())
    except InvalidInput as exc:
        context = _my_context(
            session,
            acc,
            request.state.lang,
            values=form.values,
            errors=exc.errors,
            message=exc.message,
        )
        return render(request, "medications/mine.html", context, status_code=422)
    # The check-in's medications step sends its forms here too, and asks to come back.
    target = back_to(form.values, f"/my/medications?done={done}")
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


@router.post("/my/medications/reported")
def my_reported(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ReportedIn], FormOf(ReportedIn)],
    actor: PostedBy,
) -> Response:
    return _my_post(
        request,
        session,
        actor,
        form,
        lambda acc, data: act.report_new(session, access=acc, data=data),
        "reported",
    )


@router.post("/my/medications/{medication_id}/report")
def my_report(
    medication_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ReportIn], FormOf(ReportIn)],
    actor: PostedBy,
) -> Response:
    return _my_post(
        request,
        session,
        actor,
        form,
        lambda acc, data: act.report(session, access=acc, medication_id=medication_id, data=data),
        "told",
    )


@router.post("/my/medications/{medication_id}/checkin")
def my_checkin(
    medication_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[CheckinIn], FormOf(CheckinIn)],
    actor: PostedBy,
) -> Response:
    return _my_post(
        request,
        session,
        actor,
        form,
        lambda acc, data: act.checkin(session, access=acc, medication_id=medication_id, data=data),
        "checkin",
    )


# --- the check-in's medications step ----------------------------------------------------------

STEP = "/my/check-in/medications"
STEP_DONE = "/my?done=checkin_done"


@router.get("/my/check-in/medications")
def my_checkin_step(request: Request, session: DbSession, actor: WebActor) -> Response:
    """A step of the patient's check-in, after the questionnaires (it may be skipped): for each
    medicine on their list, the doses missed and why, the side effects that bother them, a
    question for the prescriber. Each form posts to the same action as My medications
    (`/my/medications/{id}/checkin`) and comes back here."""
    acc = access.own_record(session, actor.user, object_type=OBJECT)
    context = _my_context(session, acc, request.state.lang)
    context["done"] = request.query_params.get("done")
    context["step_back"] = STEP + "?done=checkin"
    later = checkin_steps.next_steps(session, access=acc, after="medications")
    context["next_step"] = checkin_steps.STEP_PATHS[later[0]] if later else STEP_DONE
    return render(request, "medications/checkin_step.html", context)

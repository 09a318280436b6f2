"""Pages: the team's measures tab (progress, schedules, responses, recording on a patient's
behalf) and the patient's check-ins and progress."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from concord import access, disclosure
from concord.access import PatientAccess
from concord.accounts.models import Organization
from concord.actions import checkin
from concord.actions import progress as plan_progress
from concord.dates import format_date
from concord.dates import score as score_text
from concord.ehr import service as ehr
from concord.errors import Conflict, InvalidInput
from concord.i18n import Msg, translate
from concord.labels import VALUE_LABELS
from concord.measures import service as measures
from concord.measures.library import Instrument, library
from concord.measures.rules import plain_change
from concord.measures.schemas import (
    DECLINED,
    RECORD_MODES,
    AskNowIn,
    CheckInAnswersIn,
    CheckInStartIn,
    RecordedCheckInIn,
    ScheduleChangeIn,
    ScheduleIn,
    answers_form,
    recorded_form,
)
from concord.safety.crisis import crisis_resources
from concord.safety.plans import plan_for as safety_plan_for
from concord.web.deps import Actor, DbSession, PostedBy, WebActor
from concord.web.forms import FormOf, Posted
from concord.web.idempotency import already_done, remember
from concord.web.patient_header import header_context, withheld_context
from concord.web.templating import render

router = APIRouter()


def chart_data(
    progress: measures.InstrumentProgress, lang: str, imported: list[Any] | None = None
) -> str:
    """What the chart script draws: points, severity bands, baseline and goal lines; and the
    EHR's scores of the same instrument (`imported`: dated values, drawn apart and marked
    imported, never re-scored; one outside the score's range is left off the chart and kept
    in the table, flagged)."""
    score = progress.instrument.main_score
    assert score is not None
    summary = progress.summary
    # Escaped for a <script type="application/json"> block: goal statements are free text.
    return _safe_json(
        {
            "label": progress.instrument.code,
            "min": _num(score.min),
            "max": _num(score.max),
            # Each date in the locale's format ("Dec 6, 2026", "6 dic 2026"), not ISO; scores as
            # integers where they are.
            "points": [
                {
                    "x": format_date(p.on, lang=lang, where=None),
                    "y": _num(p.value),
                    "on": p.on.isoformat(),
                }
                for p in progress.points
            ],
            "imported": [
                {
                    "x": format_date(i.on, lang=lang, where=None),
                    "y": _num(i.score),
                    "on": i.on.isoformat(),
                }
                for i in imported or []
                if not i.out_of_range and i.on is not None
            ],
            "importedLabel": translate(
                Msg("%(instrument)s from the EHR", instrument=progress.instrument.code), lang
            ),
            "bands": [
                {"from": b.min, "to": b.max, "name": b.name.get(lang) or b.name["en"]}
                for b in score.bands
            ],
            "baseline": _num(summary.baseline.value) if summary.baseline else None,
            "baselineLabel": translate(Msg("Baseline"), lang),
            # A short legend entry ("Goal: below 10"): a goal's whole statement does not fit
            # in one legend line and Chart.js cut it off.
            "goals": [
                {
                    "value": _num(g.measure_value),
                    "label": translate(
                        Msg(
                            "Goal: %(op)s %(value)s",
                            op=Msg(VALUE_LABELS.get(g.measure_op or "", g.measure_op or "")),
                            value=score_text(g.measure_value, lang),
                        ),
                        lang,
                    ),
                }
                for g in progress.goals
                if g.measure_value is not None
            ],
        }
    )


def _num(value: Any) -> Any:
    """A number for the chart: 7, not 7.0, where the score is whole."""
    if value is None:
        return None
    number = float(value)
    return int(number) if number.is_integer() else round(number, 1)


def _safe_json(data: Any) -> str:
    text = json.dumps(data)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def progress_card(
    session: DbSession, acc: PatientAccess, lang: str, *, judged: str
) -> dict[str, Any]:
    """The patient overview's progress: where each instrument stands against its target, and
    the chart of the one the patient's care is judged by (`judged`; else the first)."""
    progress = plan_progress.progress_for(session, access=acc)
    main = next(
        (p for p in progress if p.instrument.code == judged), progress[0] if progress else None
    )
    return {
        "progress": progress,
        "main_progress": main,
        "chart_json": {main.instrument.code: chart_data(main, lang)} if main else {},
    }


def _team(session: DbSession, actor: Actor, patient_id: str, action: str = "read") -> PatientAccess:
    return access.team_access(
        session, actor.user, patient_id, action=action, object_type="Observation"
    )


def _measures_context(
    session: DbSession, acc: PatientAccess, lang: str, **extra: Any
) -> dict[str, Any]:
    check_ins = measures.check_ins(session, access=acc)
    progress = plan_progress.progress_for(session, access=acc)
    imported_scores = ehr.imported_scores(session, access=acc)
    context = {
        "acc": acc,
        "patient": acc.patient,
        "check_ins": check_ins,
        "progress": progress,
        "chart_json": {
            p.instrument.code: chart_data(p, lang, imported_scores.get(p.instrument.code))
            for p in progress
        },
        "imported_scores": imported_scores,
        "responses": (responses := measures.list_responses(session, access=acc, limit=50)),
        "part2": {r.id for r in responses if disclosure.label_of(session, acc, r).part2},
        **withheld_context(session, acc),
        "instruments": library().all(),
        "instrument_options": [
            (i.code, f"{i.code}: {i.name.get(lang) or i.name['en']}")
            for i in library().all()
            if i.usable
        ],
        "scheduled": {c.instrument.code for c in check_ins},
        **header_context(session, acc, tab="measures"),
        "goal_met": measures.goal_met,
        "errors": {},
        "values": {},
        "done": None,
    }
    context.update(extra)
    return context


@router.get("/patients/{patient_id}/measures")
def measures_page(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team(session, actor, patient_id)
    return render(
        request,
        "measures/team.html",
        _measures_context(session, acc, request.state.lang, done=request.query_params.get("done")),
    )


@router.post("/patients/{patient_id}/measures/schedules")
def schedule_add(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ScheduleIn], FormOf(ScheduleIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "create")
    try:
        data = form.read()
        measures.add_schedule(
            session,
            access=acc,
            instrument_code=data.instrument,
            every_days=data.every_days,
            start_on=data.start_on,
            end_on=data.end_on,
        )
    except (InvalidInput, Conflict) as exc:
        errors = exc.errors if isinstance(exc, InvalidInput) else {"instrument": exc.message}
        return render(
            request,
            "measures/team.html",
            _measures_context(session, acc, request.state.lang, errors=errors, values=form.values),
            status_code=422 if isinstance(exc, InvalidInput) else 409,
        )
    return RedirectResponse(
        f"/patients/{acc.patient.id}/measures?done=scheduled#schedules", status_code=303
    )


@router.post("/patients/{patient_id}/measures/ask-now")
def ask_now(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[AskNowIn], FormOf(AskNowIn)],
    actor: PostedBy,
) -> Response:
    """Ask the patient to complete a questionnaire today, scheduled or not."""
    acc = _team(session, actor, patient_id, "update")
    try:
        data = form.read()
        measures.ask_now(session, access=acc, instrument_code=data.instrument)
    except InvalidInput as exc:
        return render(
            request,
            "measures/team.html",
            _measures_context(
                session, acc, request.state.lang, errors=exc.errors, values=form.values
            ),
            status_code=422,
        )
    return RedirectResponse(
        f"/patients/{acc.patient.id}/measures?done=asked#schedules", status_code=303
    )


@router.post("/patients/{patient_id}/measures/schedules/{schedule_id}")
def schedule_change(
    patient_id: str,
    schedule_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ScheduleChangeIn], FormOf(ScheduleChangeIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    try:
        change = form.read()
        if change.stop:
            measures.stop_schedule(session, access=acc, schedule_id=schedule_id)
        else:
            every_days, version = change.change()
            measures.change_schedule(
                session,
                access=acc,
                schedule_id=schedule_id,
                every_days=every_days,
                end_on=change.end_on,
                version=version,
            )
    except (InvalidInput, Conflict) as exc:
        errors = exc.errors if isinstance(exc, InvalidInput) else {"schedule": exc.message}
        return render(
            request,
            "measures/team.html",
            _measures_context(
                session,
                acc,
                request.state.lang,
                errors=errors,
                values=form.values,
                schedule_form=schedule_id,
            ),
            status_code=422 if isinstance(exc, InvalidInput) else 409,
        )
    return RedirectResponse(
        f"/patients/{acc.patient.id}/measures?done=schedule#schedules", status_code=303
    )


def _record_context(
    session: DbSession, acc: PatientAccess, instrument: Instrument, lang: str, **extra: Any
) -> dict[str, Any]:
    context = {
        "acc": acc,
        "patient": acc.patient,
        **header_context(session, acc, tab="measures"),
        "instrument": instrument,
        "sex": measures.patient_sex(acc.patient),
        "lang": lang if lang in instrument.languages else "en",
        "mode_options": [(m.value, m.value) for m in RECORD_MODES],
        "values": {},
        "errors": {},
        "message": None,
    }
    context.update(extra)
    return context


@router.get("/patients/{patient_id}/measures/record/{code}")
def record_page(
    patient_id: str, code: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team(session, actor, patient_id, "create")
    instrument = measures.get_instrument(code)
    return render(
        request,
        "measures/record.html",
        _record_context(session, acc, instrument, request.state.lang),
    )


@router.post("/patients/{patient_id}/measures/record/{code}")
def record_submit(
    patient_id: str,
    code: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[RecordedCheckInIn], FormOf(RecordedCheckInIn, shape=recorded_form)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "create")
    instrument = measures.get_instrument(code)
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    try:
        data = form.read()
        completed = checkin.record_response(
            session, access=acc, instrument_code=code, submission=data.to_submission()
        )
    except InvalidInput as exc:
        return render(
            request,
            "measures/record.html",
            _record_context(
                session,
                acc,
                instrument,
                request.state.lang,
                values=form.values,
                errors=exc.errors,
                message=exc.message,
            ),
            status_code=422,
        )
    target = f"/patients/{acc.patient.id}/measures/responses/{completed.response.id}"
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


@router.get("/patients/{patient_id}/measures/responses/{response_id}")
def response_page(
    patient_id: str, response_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team(session, actor, patient_id)
    response = measures.get_response(session, access=acc, response_id=response_id)
    instrument = library().get(response.instrument)
    return render(
        request,
        "measures/response.html",
        {
            "acc": acc,
            "patient": acc.patient,
            **header_context(session, acc, tab="measures"),
            "response": response,
            "instrument": instrument,
        },
    )


# --- the patient's check-ins ---------------------------------------------------------------------


def _self(session: DbSession, actor: Actor, action: str = "read") -> PatientAccess:
    return access.own_record(session, actor.user, action=action, object_type="Observation")


@router.get("/my/check-ins")
def my_check_ins(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _self(session, actor)
    return render(
        request,
        "measures/my_check_ins.html",
        {
            "acc": acc,
            "check_ins": measures.check_ins(session, access=acc),
            "done": request.query_params.get("done"),
        },
    )


@router.post("/my/check-ins/start")
def my_start(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[CheckInStartIn], FormOf(CheckInStartIn)],
    actor: PostedBy,
) -> Response:
    acc = _self(session, actor, "create")
    response = measures.start_or_resume(session, access=acc, instrument_code=form.read().instrument)
    return RedirectResponse(f"/my/check-ins/{response.id}", status_code=303)


def _form_context(acc: PatientAccess, response: Any, **extra: Any) -> dict[str, Any]:
    instrument = measures.get_instrument(response.instrument)
    context = {
        "acc": acc,
        "response": response,
        "instrument": instrument,
        "sex": measures.patient_sex(acc.patient),
        "qlang": response.language,
        "values": {
            **{f"a.{k}": v for k, v in response.answers.items()},
            **{f"a.{k}": DECLINED for k in (response.flags or {}).get("declined", [])},
        },
        "errors": {},
        "message": None,
    }
    context.update(extra)
    return context


@router.get("/my/check-ins/{response_id}")
def my_check_in(
    response_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _self(session, actor)
    response = measures.get_response(session, access=acc, response_id=response_id)
    if response.status != "in_progress":
        return RedirectResponse(f"/my/check-ins/{response.id}/done", status_code=303)
    return render(request, "measures/my_form.html", _form_context(acc, response))


@router.post("/my/check-ins/{response_id}")
def my_check_in_post(
    response_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[CheckInAnswersIn], FormOf(CheckInAnswersIn, shape=answers_form)],
    actor: PostedBy,
) -> Response:
    acc = _self(session, actor, "update")
    response = measures.get_response(session, access=acc, response_id=response_id)
    if response.status != "in_progress":
        return RedirectResponse(f"/my/check-ins/{response.id}/done", status_code=303)
    try:
        data = form.read()
        if not data.submit:
            measures.save_progress(
                session,
                access=acc,
                response_id=response_id,
                answers=data.answers,
                version=data.version,
                declined=data.declined,
            )
            return RedirectResponse("/my?done=checkin_saved", status_code=303)
        checkin.submit(
            session,
            access=acc,
            response_id=response_id,
            answers=data.answers,
            version=data.version,
            declined=data.declined,
        )
    except (InvalidInput, Conflict) as exc:
        errors = exc.errors if isinstance(exc, InvalidInput) else {}
        values = {k: v for k, v in form.values.items() if k.startswith("a.")}
        return render(
            request,
            "measures/my_form.html",
            _form_context(acc, response, values=values, errors=errors, message=exc.message),
            status_code=422 if isinstance(exc, InvalidInput) else 409,
        )
    return RedirectResponse(f"/my/check-ins/{response_id}/done", status_code=303)


@router.get("/my/check-ins/{response_id}/done")
def my_check_in_done(
    response_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _self(session, actor)
    response = measures.get_response(session, access=acc, response_id=response_id)
    instrument = measures.get_instrument(response.instrument)
    critical = [f for f in response.flag_list if f["kind"] == "critical"]
    steps = [] if critical else checkin.next_steps(session, access=acc)
    org = session.get(Organization, acc.patient.organization_id)
    progress = plan_progress.progress_for(session, access=acc, instrument_codes=[instrument.code])
    summary = progress[0].summary if progress else None
    words = None
    if (
        summary
        and summary.baseline
        and summary.latest
        and summary.latest is not summary.baseline
        and instrument.targets
    ):
        words = plain_change(summary.baseline.value, summary.latest.value)
    return render(
        request,
        "measures/my_done.html",
        {
            "acc": acc,
            "response": response,
            "instrument": instrument,
            "critical": critical,
            "crisis": crisis_resources(org, request.state.lang) if critical and org else [],
            "safety_plan": safety_plan_for(session, acc, audit=False) if critical else None,
            "words": words,
            # The optional steps after the questionnaires (medicines, days of use).
            "next_step": next((checkin.STEP_PATHS[s] for s in steps), None),
        },
    )


@router.get("/my/progress")
def my_progress(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _self(session, actor)
    progress = plan_progress.progress_for(session, access=acc)
    words = {}
    for item in progress:
        summary = item.summary
        if (
            summary.baseline
            and summary.latest
            and summary.latest is not summary.baseline
            and item.instrument.targets
        ):
            words[item.instrument.code] = plain_change(summary.baseline.value, summary.latest.value)
    return render(
        request,
        "measures/my_progress.html",
        {
            "acc": acc,
            "progress": progress,
            "words": words,
            "chart_json": {p.instrument.code: chart_data(p, request.state.lang) for p in progress},
        },
    )

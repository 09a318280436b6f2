"""The days-of-use calendar's pages (issue 19): the care team's page on the patient's record
and the patient's "My days of use" (also a step of the check-in). Both show each substance's
days of use in the last 30 days and drinks per drinking day, charted like the other measures
against the substance-use goals' targets, and a calendar of the last 30 days to fill in.

Every form posts to concord.actions.substance_use.record_days, as the JSON API does."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from concord import access
from concord.access import PatientAccess
from concord.actions import substance_use as act
from concord.dates import format_date
from concord.errors import InvalidInput, PermissionDenied
from concord.i18n import Msg, translate
from concord.labels import VALUE_LABELS
from concord.substance.models import Substance, UseMeasure
from concord.substance.schemas import DaysIn
from concord.substance.service import OBJECT, WINDOW_DAYS
from concord.web.deps import DbSession, PostedBy, WebActor
from concord.web.forms import FormOf, Posted, back_to
from concord.web.idempotency import already_done, remember
from concord.web.patient_header import header_context
from concord.web.templating import render

router = APIRouter()

# The goal lines' words on the chart ("Goal: at most 4").
OPS = {"below": "below", "at_most": "at most", "at_least": "at least"}


def _num(value: Any) -> Any:
    if value is None:
        return None
    number = float(value)
    return int(number) if number.is_integer() else round(number, 1)


def chart_json(view: act.SubstanceView, measure: str, lang: str) -> dict[str, Any]:
    """One figure of one substance over its 30-day windows, in the shape /static/charts.js
    draws for a questionnaire's score (no severity bands, no baseline), with the goals'
    targets as lines."""
    top = float(WINDOW_DAYS)
    points = []
    for w in view.windows:
        value = w.value(measure)
        if value is None:
            continue
        top = max(top, value) if measure == UseMeasure.drinks_per_drinking_day else top
        points.append(
            {
                "x": format_date(w.end, lang=lang, where=None),
                "y": _num(value),
                "on": w.end.isoformat(),
            }
        )
    if measure == UseMeasure.drinks_per_drinking_day:
        top = max([p["y"] for p in points] + [g.goal.measure_value or 0 for g in view.goals] + [5])
    return {
        "label": translate(Msg(VALUE_LABELS[measure]), lang),
        "min": 0,
        "max": _num(top),
        "points": points,
        "imported": [],
        "importedLabel": "",
        "bands": [],
        "baseline": None,
        "baselineLabel": "",
        "goals": [
            {
                "value": _num(g.goal.measure_value),
                "label": translate(
                    Msg(
                        "Goal: %(op)s %(value)s",
                        op=Msg(OPS.get(g.goal.measure_op or "", "")),
                        value=f"{_num(g.goal.measure_value)}",
                    ),
                    lang,
                ),
            }
            for g in view.goals
            if g.measure == measure and g.goal.measure_value is not None
        ],
    }


def _charts(view: act.CalendarView, lang: str) -> list[dict[str, Any]]:
    """The charts a page draws: days of use for every substance, and drinks per drinking day
    for alcohol."""
    charts = []
    for s in view.substances:
        measures = [UseMeasure.days_of_use]
        if s.substance == Substance.alcohol:
            measures.append(UseMeasure.drinks_per_drinking_day)
        for measure in measures:
            data = chart_json(s, measure, lang)
            charts.append(
                {
                    "id": f"chart-{s.substance}-{measure}",
                    "substance": s.substance,
                    "measure": str(measure),
                    "data": data,
                    "windows": s.windows,
                }
            )
    return charts


def _typed(values: dict[str, Any], name: str) -> list[Any]:
    value = values.get(name)
    return value if isinstance(value, list) else [] if value is None else [value]


def _rows(view: act.CalendarView, substance: str | None, values: dict[str, Any]) -> list[Any]:
    """The calendar to fill in: the last 30 days, newest first, with what was recorded for
    `substance` (None: the form for another substance), or what was typed in this form when
    it comes back with an error."""
    posted_here = values.get("days.on") and (
        values.get("form") == "new" if substance is None else values.get("substance") == substance
    )
    if posted_here:
        ons, used, drinks = (_typed(values, f"days.{n}") for n in ("on", "used", "drinks"))
        return [
            {
                "on": on,
                "used": used[i] if i < len(used) else "",
                "drinks": drinks[i] if i < len(drinks) else "",
            }
            for i, on in enumerate(ons)
        ]
    recorded = {d.on: d for d in view.days if substance and d.substance == substance}
    rows = []
    for back in range(WINDOW_DAYS):
        on: date = view.today - timedelta(days=back)
        day = recorded.get(on)
        rows.append(
            {
                "on": on.isoformat(),
                "used": "" if day is None else ("true" if day.used else "false"),
                "drinks": day.drinks if day is not None and day.drinks is not None else "",
            }
        )
    return rows


def _context(
    request: Request, session: DbSession, acc: PatientAccess, **extra: Any
) -> dict[str, Any]:
    view = act.calendar_view(session, access=acc)
    values: dict[str, Any] = extra.pop("values", {})
    shown = {s.substance for s in view.substances}
    return {
        "acc": acc,
        "patient": acc.patient,
        "view": view,
        "charts": _charts(view, request.state.lang),
        # One calendar per substance already followed, and one for another substance.
        "calendars": {s.substance: _rows(view, s.substance, values) for s in view.substances},
        "new_rows": _rows(view, None, values),
        "other_substances": [(s.value, s.value) for s in Substance if s.value not in shown],
        "values": values,
        "errors": {},
        "message": None,
        "done": request.query_params.get("done"),
        "step": request.query_params.get("step") == "checkin" or values.get("back") == STEP_DONE,
        "step_done": STEP_DONE,
        **extra,
    }


# Where the check-in's last step leads (its pages carry it as the form's `back`).
STEP_DONE = "/my?done=checkin_done"


def _post(
    request: Request,
    session: DbSession,
    actor: Any,
    form: Posted[DaysIn],
    acc_of: Any,
    template: str,
    target: str,
    extra: dict[str, Any],
) -> Response:
    earlier = already_done(session, form.values, actor)
    if earlier:
        return RedirectResponse(earlier, status_code=303)
    acc = acc_of()
    try:
        act.record_days(session, access=acc, data=form.read())
    except (InvalidInput, PermissionDenied) as exc:
        errors = exc.errors if isinstance(exc, InvalidInput) else {}
        context = _context(
            request,
            session,
            acc,
            values=form.values,
            errors=errors,
            message=exc.message,
            **extra(acc),
        )
        status = 422 if isinstance(exc, InvalidInput) else 403
        return render(request, template, context, status_code=status)
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


# --- the care team -----------------------------------------------------------------------


def _team(session: DbSession, actor: Any, patient_id: str, action: str = "read") -> PatientAccess:
    return access.record_access(session, actor.user, patient_id, action=action, object_type=OBJECT)


@router.get("/patients/{patient_id}/substance-use")
def team_calendar(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team(session, actor, patient_id)
    if acc.is_self:
        return RedirectResponse("/my/substance-use", status_code=303)
    context = _context(request, session, acc, **header_context(session, acc, tab="measures"))
    return render(request, "substance/team.html", context)


@router.post("/patients/{patient_id}/substance-use/days")
def team_record(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[DaysIn], FormOf(DaysIn)],
    actor: PostedBy,
) -> Response:
    return _post(
        request,
        session,
        actor,
        form,
        lambda: _team(session, actor, patient_id, "create"),
        "substance/team.html",
        f"/patients/{patient_id}/substance-use?done=recorded",
        lambda acc: header_context(session, acc, tab="measures"),
    )


# --- the patient ---------------------------------------------------------------------------


def _self(session: DbSession, actor: Any, action: str = "read") -> PatientAccess:
    return access.own_record(session, actor.user, action=action, object_type=OBJECT)


@router.get("/my/substance-use")
def my_calendar(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _self(session, actor)
    return render(request, "substance/mine.html", _context(request, session, acc))


@router.post("/my/substance-use/days")
def my_record(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[DaysIn], FormOf(DaysIn)],
    actor: PostedBy,
) -> Response:
    default = "/my/substance-use?done=recorded"
    return _post(
        request,
        session,
        actor,
        form,
        lambda: _self(session, actor, "create"),
        "substance/mine.html",
        back_to(form.values, default),
        lambda acc: {},
    )

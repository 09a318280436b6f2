"""The Quality page (/quality), its CSV and its JSON twin (/api/v1/quality): CMS159 and CMS2
over the patients of the clinician's care teams, per clinic and per clinician, with who is in
each population. The action decides and audits; this parses the period and shapes."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from concord.actions import quality as actions
from concord.clock import now
from concord.errors import InvalidInput
from concord.i18n import Msg
from concord.quality import stats
from concord.web.deps import ApiActor, DbSession, WebActor
from concord.web.exports import csv_response
from concord.web.templating import render

router = APIRouter()

CSV_COLUMNS = [
    "measure",
    "version",
    "period_start",
    "period_end",
    "patient",
    "mrn",
    "clinic",
    "clinician",
    "initial_population",
    "denominator",
    "denominator_exclusion",
    "denominator_exception",
    "numerator",
    "open",
    "rate_numerator",
    "rate_denominator",
    "interval_low",
    "interval_high",
    "median_days",
]


def _process_rows(process: list[actions.ProcessMeasure], start: date, end: date) -> list[dict]:
    """One row per process measure and group (all, each clinic, each clinician): counts
    beside every rate, its 95% interval; for the day counts, how many and the median."""
    rows = []
    for m in process:
        base = {
            "measure": m.measure,
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
        }
        if m.kind == "days":
            rows.append({**base, "rate_denominator": m.days_count, "median_days": m.days_median})
            continue
        groups = [("", "", m.overall)]
        groups += [(r.label, "", r) for r in m.by_clinic]
        groups += [("", r.label, r) for r in m.by_clinician]
        for clinic, clinician, r in groups:
            if r is None:
                continue
            rows.append(
                {
                    **base,
                    "clinic": clinic,
                    "clinician": clinician,
                    "denominator_exclusion": r.counts.get("denominator-exclusion", 0),
                    "rate_numerator": r.numerator,
                    "rate_denominator": r.performance_denominator,
                    "interval_low": round(r.interval[0], 4) if r.interval else "",
                    "interval_high": round(r.interval[1], 4) if r.interval else "",
                }
            )
    return rows


def _period(request: Request) -> tuple[date, date]:
    """?start=YYYY-MM-DD&end=YYYY-MM-DD; by default this calendar year."""
    year = now().year
    values = []
    for name, default in (("start", date(year, 1, 1)), ("end", date(year, 12, 31))):
        text = request.query_params.get(name)
        if not text:
            values.append(default)
            continue
        try:
            values.append(date.fromisoformat(text))
        except ValueError:
            raise InvalidInput.field(name, Msg("must be a date, YYYY-MM-DD")) from None
    start, end = values
    if end < start:
        raise InvalidInput.field("end", Msg("must not be before the start"))
    return start, end


@router.get("/quality")
def quality_page(request: Request, session: DbSession, actor: WebActor) -> Response:
    start, end = _period(request)
    views = actions.quality_overview(session, by=actor.user, period_start=start, period_end=end)
    process = actions.process_overview(session, by=actor.user, period_start=start, period_end=end)
    return render(
        request,
        "quality/index.html",
        {
            "views": views,
            "process": process,
            "trend_json": json.dumps(
                {
                    **{m.measure: [dataclasses.asdict(p) for p in m.trend] for m in process},
                    **{
                        f"measure:{v.measure_id}": [dataclasses.asdict(p) for p in v.trend]
                        for v in views
                    },
                }
            ),
            "start": start.isoformat(),
            "end": end.isoformat(),
            "min_denominator": stats.MIN_DENOMINATOR,
        },
    )


@router.get("/quality.csv")
def quality_csv(request: Request, session: DbSession, actor: ApiActor) -> Response:
    """The patients in each measure's initial population and their populations, as CSV."""
    start, end = _period(request)
    views = actions.quality_overview(session, by=actor.user, period_start=start, period_end=end)
    rows = []
    for view in views:
        for p in view.patients:
            rows.append(
                {
                    "measure": view.measure_id,
                    "version": view.version,
                    "period_start": start.isoformat(),
                    "period_end": end.isoformat(),
                    "patient": p.name,
                    "mrn": p.mrn,
                    "clinic": p.clinic,
                    "clinician": p.clinician,
                    **{
                        code.replace("-", "_"): int(p.populations[code])
                        if code in p.populations
                        else ""
                        for code in (
                            "initial-population",
                            "denominator",
                            "denominator-exclusion",
                            "denominator-exception",
                            "numerator",
                        )
                    },
                    "open": int(p.open),
                }
            )
    process = actions.process_overview(session, by=actor.user, period_start=start, period_end=end)
    rows.extend(_process_rows(process, start, end))
    return csv_response(
        rows,
        CSV_COLUMNS,
        f"quality-{start.isoformat()}-{end.isoformat()}.csv",
        session=session,
        lang=request.state.lang,
    )


api = APIRouter(prefix="/api/v1", tags=["Quality"])


def _json(view: actions.MeasureView) -> dict[str, Any]:
    data = dataclasses.asdict(view)
    for p in data["patients"]:
        p["patient_id"] = str(p["patient_id"])
    for i, p in enumerate(view.patients):
        data["patients"][i]["open"] = p.open
    return data


@api.get("/quality")
def quality_json(request: Request, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    """The Quality page's figures: each measure's counts overall, per clinic and per clinician
    (rate, 95% Wilson interval, and whether the denominator is too small to compare), and the
    patients in its initial population (open: in the denominator and not the numerator)."""
    start, end = _period(request)
    views = actions.quality_overview(session, by=actor.user, period_start=start, period_end=end)
    return {
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "min_denominator": stats.MIN_DENOMINATOR,
        "measures": [_json(v) for v in views],
        "process_measures": [
            dataclasses.asdict(m)
            for m in actions.process_overview(
                session, by=actor.user, period_start=start, period_end=end
            )
        ],
    }

"""The measures Concord evaluates, their FHIR Measure resources, and `$evaluate-measure` as a
function of where the patients' resources come from.

A door (the FHIR operation, the Quality page, a CLI report) checks access, parses its request
with `parse_parameters`, and hands `evaluate_measure` a supplier of each patient's resources:
the EHR import store, Concord's own records, or a test deck. Nothing here reads a database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from types import ModuleType

from concord.errors import InvalidInput, NotFound
from concord.i18n import Msg
from concord.quality import cms2, cms159
from concord.quality.result import Result, measure_report, summarize

MEASURES_DIR = Path(__file__).resolve().parent / "measures"
MODULES: dict[str, ModuleType] = {"CMS159": cms159, "CMS2": cms2}
REPORT_TYPES = {"subject": "individual", "population": "summary", "subject-list": "subject-list"}

# The patients to evaluate: each as the id the door names them by (Concord's patient id) and
# their FHIR resources (their Patient and clinical data), as the EHR import store's
# organization_patients() yields them.
Supplier = Callable[[], Iterable[tuple[object, list[dict]]]]
# What the measures read; a door may ask its store for these types only.
RESOURCE_TYPES = (
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "Procedure",
    "ServiceRequest",
    "MedicationRequest",
)


@cache
def measure_resource(measure_id: str) -> dict:
    """The FHIR Measure for an id; not found for a measure Concord does not evaluate."""
    if measure_id not in MODULES:
        raise NotFound(
            Msg("This server does not evaluate the measure %(measure)s.", measure=measure_id[:40])
        )
    return json.loads((MEASURES_DIR / f"{measure_id}.json").read_text())


def required_types(measure_id: str) -> tuple[str, ...]:
    """The resource types without one of which a patient is in none of the measure's
    populations (a store may leave them out of a population's evaluation); () for none."""
    return tuple(getattr(MODULES[measure_id], "REQUIRES", ()))


def measure_ids() -> list[str]:
    return sorted(MODULES)


@dataclass(frozen=True)
class Request:
    measure_id: str
    period_start: date
    period_end: date
    report_type: str  # subject, population or subject-list
    subject: str | None  # "Patient/<id>" when one patient is asked for


def parse_parameters(measure_id: str, pairs: Iterable[tuple[str, str]]) -> Request:
    """$evaluate-measure's parameters: periodStart and periodEnd (dates), subject
    (Patient/<id>) or reportType (subject, population, subject-list). Unknown ones are refused,
    never ignored."""
    measure_resource(measure_id)
    values: dict[str, str] = {}
    for name, value in pairs:
        if name not in {"periodStart", "periodEnd", "subject", "reportType"}:
            raise InvalidInput.field(name[:40], Msg("is not a parameter of $evaluate-measure"))
        if name in values:
            raise InvalidInput.field(name, Msg("may be given once"))
        values[name] = value
    start = _date(values, "periodStart")
    end = _date(values, "periodEnd")
    if end < start:
        raise InvalidInput.field("periodEnd", Msg("must not be before periodStart"))
    subject = values.get("subject")
    if subject is not None and (
        not subject.startswith("Patient/") or len(subject) <= len("Patient/")
    ):
        raise InvalidInput.field("subject", Msg("must be Patient/<id>"))
    report_type = values.get("reportType", "subject" if subject else "population")
    if report_type not in REPORT_TYPES:
        raise InvalidInput.field("reportType", Msg("must be subject, population or subject-list"))
    if report_type == "subject" and subject is None:
        raise InvalidInput.field("subject", Msg("is needed when reportType is subject"))
    return Request(measure_id, start, end, report_type, subject)


def _date(values: dict[str, str], name: str) -> date:
    text = values.get(name)
    if text is None:
        raise InvalidInput.field(name, Msg("is required (a date, YYYY-MM-DD)"))
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise InvalidInput.field(name, Msg("must be a date, YYYY-MM-DD")) from None


def evaluate_patients(
    request: Request, patients: Iterable[tuple[object, list[dict]]]
) -> list[tuple[str, Result]]:
    module = MODULES[request.measure_id]
    spec = module.spec_for(request.period_start)
    return [
        (
            str(subject),
            module.evaluate(resources, request.period_start, request.period_end, spec=spec),
        )
        for subject, resources in patients
    ]


def evaluate_measure(request: Request, supplier: Supplier) -> dict:
    """A MeasureReport (individual, summary or subject-list) over the supplied patients."""
    module = MODULES[request.measure_id]
    evaluated = evaluate_patients(request, supplier())
    results = [result for _, result in evaluated]
    spec = module.spec_for(request.period_start)
    summary = summarize(
        results,
        measure=module.MEASURE,
        version=spec.version,
        period_start=request.period_start,
        period_end=request.period_end,
        populations=module.POPULATIONS,
        strata=getattr(module, "STRATA", ()),
    )
    url = measure_resource(request.measure_id)["url"]
    report = measure_report(
        summary,
        measure_url=url,
        report_type=REPORT_TYPES[request.report_type],
        subject=request.subject,
        strata_text=getattr(module, "STRATA_TEXT", None),
    )
    if request.report_type == "subject-list":
        # The patients in each population, as a contained List per population.
        contained = []
        for population in report["group"][0]["population"]:
            code = population["code"]["coding"][0]["code"]
            members = [subject for subject, result in evaluated if result[code]]
            list_id = f"list-{code}"
            contained.append(
                {
                    "resourceType": "List",
                    "id": list_id,
                    "status": "current",
                    "mode": "snapshot",
                    "entry": [{"item": {"reference": f"Patient/{m}"}} for m in members],
                }
            )
            population["subjectResults"] = {"reference": f"#{list_id}"}
        report["contained"] = contained
    return report

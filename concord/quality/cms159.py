"""CMS159 (CBE 0710e) Depression Remission at Twelve Months, from its CQL.

Source: CMS159FHIRDepressionRemissionatTwelveMonths 0.3.000 (reporting period 2026, QI-Core
6.0.0) and DepressionRemissionatTwelveMonthsFHIR 0.2.000 (2025, QI-Core 4.1.1), in the CC0
repositories cqframework/ecqm-content-qicore-2025 and -2024 (docs/clinical-sources.md).
Each definition below names the CQL definition it follows. A patient-based proportion measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from concord.quality import fhirtime
from concord.quality.fhirtime import DaySpan, Span
from concord.quality.record import (
    ASSESSMENT_DONE,
    ORDER_INTENTS,
    Record,
    effective,
    is_confirmed_active,
    is_encounter_diagnosis,
    is_problem_or_concern,
    obj,
    observation_value,
    start_of,
    text,
)
from concord.quality.result import (
    DENOMINATOR,
    DENOMINATOR_EXCLUSION,
    INITIAL_POPULATION,
    NUMERATOR,
    Result,
    Summary,
    cascade,
    summarize,
)
from concord.quality.terminology import LOINC, SNOMED, Terminology, is_code, terminology

MEASURE = "CMS159"
URL = "https://madie.cms.gov/Measure/CMS159FHIRDepressionRemissionatTwelveMonths"
POPULATIONS = (INITIAL_POPULATION, DENOMINATOR, DENOMINATOR_EXCLUSION, NUMERATOR)
STRATA = ("12-17", "18+")
# A patient with none of these is in no population: the "Index Depression Assessment" needs a
# "Depression Encounter", which needs a major depression or dysthymia diagnosis (a Condition).
# A store may leave such patients out of a population's evaluation (the counts are the same).
REQUIRES = ("Condition",)
STRATA_TEXT = {
    "12-17": "12 to 17 years at the index assessment",
    "18+": "18 years or older at the index assessment",
}

HOSPICE_DISCHARGES = ((SNOMED, "428371000124100"), (SNOMED, "428361000124107"))
MDS_HOSPICE = (LOINC, "45755-6")
YES = (SNOMED, "373066001")
FACIT_PAL = (LOINC, "71007-9")
EXCLUDING_DIAGNOSES = (
    "Bipolar Disorder",
    "Personality Disorder Emotionally Labile",
    "Schizophrenia or Psychotic Disorder",
    "Pervasive Developmental Disorder",
)


@dataclass(frozen=True)
class Spec:
    version: str
    period: str  # the reporting year whose value sets it uses
    # QI-Core 6 retrieves conditions by profile: a problem, health concern or encounter diagnosis.
    conditions_by_category: bool


SPECS = {
    "2026": Spec("0.3.000", "2026", conditions_by_category=True),
    "2025": Spec("0.2.000", "2025", conditions_by_category=False),
}


def spec_for(period_start: date) -> Spec:
    """The specification for the reporting year; the latest one for a year without its own."""
    return SPECS.get(str(period_start.year)) or SPECS[max(SPECS)]


def evaluate(
    resources: list[dict], period_start: date, period_end: date, *, spec: Spec | None = None
) -> Result:
    """One patient's populations (the resources hold one Patient and their clinical resources)."""
    spec = spec or spec_for(period_start)
    vs = terminology(spec.period)
    record = Record(resources)
    facts: dict[str, object] = {}

    # "Denominator Identification Period": [MP start - 14 months, MP start - 2 months)
    dip = DaySpan(
        fhirtime.add_months(period_start, -14),
        fhirtime.shift(fhirtime.add_months(period_start, -2), -1),
    )
    index = index_assessment(record, vs, spec, dip)
    index_day = fhirtime.day(start_of(effective(record, index))) if index else None
    age = record.age_at(index_day)
    initial = index is not None and age is not None and age >= 12
    stratum = None
    if initial:
        stratum = "12-17" if age is not None and age <= 17 else "18+"
    exclusion = numerator = False
    if initial and index_day is not None:
        # "Measure Assessment Period": index date + 12 months, +/- 60 days
        anniversary = fhirtime.add_months(index_day, 12)
        map_ = DaySpan(fhirtime.shift(anniversary, -60), fhirtime.shift(anniversary, 60))
        window = DaySpan(dip.low, map_.high)
        facts.update(
            index_date=index_day, index_score=observation_value(index), assessment_period=map_
        )
        exclusion = (
            hospice(record, vs, window)
            or palliative(record, vs, window)
            or expired(record, map_)
            or mental_health_disorder(record, vs, spec, map_)
        )
        last = last_assessment(record, vs, map_)
        score = observation_value(last) if last else None
        facts["last_score"] = score
        numerator = isinstance(score, int | float) and not isinstance(score, bool) and score < 5
    populations = cascade(
        initial=initial, denominator=True, exclusion=exclusion, numerator=numerator, exception=None
    )
    return Result(
        MEASURE,
        spec.version,
        period_start,
        period_end,
        record.patient_id,
        populations,
        stratum,
        facts,
    )


class Exclusions:
    """CMS159's denominator exclusions over a window of days, for the process measures built
    on CMS159 (response and remission at 6 and 12 months): hospice or palliative care in the
    window, death by its end, or an excluding mental-health diagnosis (bipolar, emotionally
    labile personality, schizophrenia or psychotic, pervasive developmental disorder) starting
    by its end. The same functions `evaluate` uses, over one patient's imported record."""

    def __init__(self, resources: list[dict]) -> None:
        self.record = Record(resources)

    def reason(self, start: date, end: date) -> str | None:
        spec = spec_for(end)
        vs = terminology(spec.period)
        window = DaySpan(start, end)
        if hospice(self.record, vs, window):
            return "hospice"
        if palliative(self.record, vs, window):
            return "palliative_care"
        if expired(self.record, window):
            return "died"
        if mental_health_disorder(self.record, vs, spec, window):
            return "excluding_diagnosis"
        return None

    def utilization_reason(self, start: date, end: date) -> str | None:
        """NQF 0712 / CMS160's exclusions for PHQ-9 utilization over one 4-month period, as
        far as they are published and Concord holds their value sets: hospice, death, or
        bipolar, personality, schizophrenia or psychotic, or pervasive developmental disorder
        (p4qm.org/measures/0712). Palliative care is CMS159's and not among them; permanent
        nursing-home residence is among them but no value set for it is held, so it is not
        applied (docs/quality-measures.md)."""
        spec = spec_for(end)
        vs = terminology(spec.period)
        window = DaySpan(start, end)
        if hospice(self.record, vs, window):
            return "hospice"
        if expired(self.record, window):
            return "died"
        if mental_health_disorder(self.record, vs, spec, window):
            return "excluding_diagnosis"
        return None


def evaluate_population(
    patients: list[list[dict]], period_start: date, period_end: date
) -> Summary:
    spec = spec_for(period_start)
    results = (evaluate(resources, period_start, period_end, spec=spec) for resources in patients)
    return summarize(
        results,
        measure=MEASURE,
        version=spec.version,
        period_start=period_start,
        period_end=period_end,
        populations=POPULATIONS,
        strata=STRATA,
    )


def conditions(record: Record, vs: Terminology, spec: Spec, *names: str) -> list[dict]:
    sets = [vs[name] for name in names]
    found = []
    for condition in record.of("Condition"):
        if spec.conditions_by_category and not (
            is_problem_or_concern(condition) or is_encounter_diagnosis(condition)
        ):
            continue
        if any(condition.get("code") in s for s in sets):
            found.append(condition)
    return found


def phq9s(record: Record, vs: Terminology) -> list[dict]:
    """[Observation: "PHQ 9 and PHQ 9M Tools"] with a final, amended or corrected status."""
    tools = vs["PHQ 9 and PHQ 9M Tools"]
    return [
        o
        for o in record.of("Observation")
        if o.get("code") in tools and text(o, "status") in ASSESSMENT_DONE
    ]


def _sort_key(record: Record, observation: dict) -> tuple:
    moment = start_of(effective(record, observation))
    return (moment is not None, moment or fhirtime.at_midnight(date.min))


def depression_encounters(record: Record, vs: Terminology, spec: Spec, dip: DaySpan) -> list[dict]:
    """ "Depression Encounter": a finished contact or office visit ending in the identification
    period that overlaps a confirmed, active major depression or dysthymia."""
    diagnoses = [
        record.prevalence(c)
        for c in conditions(record, vs, spec, "Major Depression Including Remission", "Dysthymia")
        if is_confirmed_active(c)
    ]
    visits = vs["Contact or Office Visit"]
    found = []
    for encounter in record.of("Encounter"):
        if text(encounter, "status") != "finished" or encounter.get("type") not in visits:
            continue
        period = Span.of_period(encounter.get("period"))
        if period is None or not dip.contains(fhirtime.day(period.high)):
            continue
        if any(fhirtime.overlaps(period, prevalence) for prevalence in diagnoses):
            found.append(encounter)
    return found


def index_assessment(record: Record, vs: Terminology, spec: Spec, dip: DaySpan) -> dict | None:
    """ "Index Depression Assessment": the first PHQ-9/PHQ-9M above 9 from 7 days before a
    depression encounter's start to its end."""
    above_nine = []
    for observation in phq9s(record, vs):
        score = observation_value(observation)
        if isinstance(score, int | float) and not isinstance(score, bool) and score > 9:
            above_nine.append(observation)
    if not above_nine or not record.of("Condition"):
        return None  # most of a population: no need to look at encounters
    windows = []
    for encounter in depression_encounters(record, vs, spec, dip):
        period = Span.of_period(encounter["period"])
        assert period is not None
        windows.append(
            DaySpan(fhirtime.shift(fhirtime.day(period.low), -7), fhirtime.day(period.high))
        )
    candidates = []
    for observation in above_nine:
        when = effective(record, observation)
        if when is not None and any(w.low is not None and w.includes(when.days()) for w in windows):
            candidates.append(observation)
    candidates.sort(key=lambda o: _sort_key(record, o))
    return candidates[0] if candidates else None


def last_assessment(record: Record, vs: Terminology, map_: DaySpan) -> dict | None:
    """The last PHQ-9/PHQ-9M starting in the measure assessment period (the "Numerator")."""
    inside = [
        o for o in phq9s(record, vs) if map_.contains(fhirtime.day(start_of(effective(record, o))))
    ]
    inside.sort(key=lambda o: _sort_key(record, o))
    return inside[-1] if inside else None


def hospice(record: Record, vs: Terminology, window: DaySpan) -> bool:
    """ "Has Hospice Services in the Measure Assessment Period"."""
    inpatient, hospice_encounter, ambulatory = (
        vs["Encounter Inpatient"],
        vs["Hospice Encounter"],
        vs["Hospice Care Ambulatory"],
    )
    for encounter in record.of("Encounter"):
        period = Span.of_period(encounter.get("period"))
        if (
            encounter.get("type") in inpatient
            and text(encounter, "status") == "finished"
            and any(
                is_code(obj(encounter.get("hospitalization")).get("dischargeDisposition"), *code)
                for code in HOSPICE_DISCHARGES
            )
            and period is not None
            and window.contains(fhirtime.day(period.high))
        ):
            return True
        if (
            encounter.get("type") in hospice_encounter
            and text(encounter, "status") not in {"cancelled", "entered-in-error", "unknown"}
            and period is not None
            and window.overlaps(period.days())
        ):
            return True
    for observation in record.of("Observation"):
        when = effective(record, observation)
        if (
            is_code(observation.get("code"), *MDS_HOSPICE)
            and is_code(observation.get("valueCodeableConcept"), *YES)
            and text(observation, "status") in ASSESSMENT_DONE
            and when is not None
            and window.overlaps(when.days())
        ):
            return True
    for order in record.of("ServiceRequest"):
        if (
            order.get("code") in ambulatory
            and window.contains(fhirtime.day(fhirtime.parse(order.get("authoredOn"))))
            and text(order, "status") in {"active", "completed"}
            and text(order, "intent") in ORDER_INTENTS
            and order.get("doNotPerform") is not True
        ):
            return True
    for procedure in record.of("Procedure"):
        when = record.to_span(procedure, "performed")
        if (
            procedure.get("code") in ambulatory
            and text(procedure, "status") not in {"not-done", "entered-in-error", "unknown"}
            and when is not None
            and window.overlaps(when.days())
        ):
            return True
    return _diagnosis_overlaps(record, vs, "Hospice Diagnosis", window)


def palliative(record: Record, vs: Terminology, window: DaySpan) -> bool:
    """ "Has Palliative Care in the Measure Assessment Period"."""
    for observation in record.of("Observation"):
        when = effective(record, observation)
        if (
            is_code(observation.get("code"), *FACIT_PAL)
            and text(observation, "status") in ASSESSMENT_DONE
            and when is not None
            and window.overlaps(when.days())
        ):
            return True
    if _diagnosis_overlaps(record, vs, "Palliative Care Diagnosis", window):
        return True
    encounters = vs["Palliative Care Encounter"]
    for encounter in record.of("Encounter"):
        period = Span.of_period(encounter.get("period"))
        if (
            encounter.get("type") in encounters
            and text(encounter, "status") == "finished"
            and period is not None
            and window.overlaps(period.days())
        ):
            return True
    interventions = vs["Palliative Care Intervention"]
    for procedure in record.of("Procedure"):
        when = record.to_span(procedure, "performed")
        if (
            procedure.get("code") in interventions
            and text(procedure, "status") not in {"not-done", "entered-in-error", "unknown"}
            and when is not None
            and window.overlaps(when.days())
        ):
            return True
    return False


def _diagnosis_overlaps(record: Record, vs: Terminology, name: str, window: DaySpan) -> bool:
    for condition in record.of("Condition"):
        if condition.get("code") in vs[name] and is_confirmed_active(condition):
            prevalence = record.prevalence(condition)
            if prevalence is not None and window.overlaps(prevalence.days()):
                return True
    return False


def expired(record: Record, map_: DaySpan) -> bool:
    """ "Patient Expired": death on or before the end of the measure assessment period."""
    died = fhirtime.day(fhirtime.parse(record.patient.get("deceasedDateTime")))
    return died is not None and map_.high is not None and died <= map_.high


def mental_health_disorder(record: Record, vs: Terminology, spec: Spec, map_: DaySpan) -> bool:
    """ "Has Mental Health Disorder Diagnoses": bipolar, emotionally labile personality,
    schizophrenia or psychotic, or pervasive developmental disorder, starting by the end of the
    measure assessment period (no onset counts as started)."""
    for condition in conditions(record, vs, spec, *EXCLUDING_DIAGNOSES):
        if not is_confirmed_active(condition):
            continue
        onset = fhirtime.day(start_of(record.prevalence(condition)))
        if onset is None or (map_.high is not None and onset <= map_.high):
            return True
    return False

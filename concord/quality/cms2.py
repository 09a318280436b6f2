"""CMS2 Preventive Care and Screening: Screening for Depression and Follow-Up Plan, from its CQL.

Source: CMS2FHIRPCSDepressionScreenAndFollowUp 0.4.001 (reporting period 2026, QI-Core 6.0.0)
and PCSDepressionScreenAndFollowUpFHIR 0.2.000 (2025, QI-Core 4.1.1), in the CC0 repositories
cqframework/ecqm-content-qicore-2025 and -2024 (docs/clinical-sources.md). Each definition
below names the CQL definition it follows. A patient-based proportion measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from concord.quality import fhirtime
from concord.quality.fhirtime import DaySpan, Span
from concord.quality.record import (
    ORDER_INTENTS,
    Record,
    effective,
    end_of,
    is_problem_or_concern,
    not_done_reason,
    number,
    obj,
    observation_value,
    start_of,
    text,
)
from concord.quality.result import (
    DENOMINATOR,
    DENOMINATOR_EXCEPTION,
    DENOMINATOR_EXCLUSION,
    INITIAL_POPULATION,
    NUMERATOR,
    Result,
    Summary,
    cascade,
    summarize,
)
from concord.quality.terminology import LOINC, SNOMED, Terminology, is_code, terminology

MEASURE = "CMS2"
URL = "https://madie.cms.gov/Measure/CMS2FHIRPCSDepressionScreenAndFollowUp"
POPULATIONS = (
    INITIAL_POPULATION,
    DENOMINATOR,
    DENOMINATOR_EXCLUSION,
    NUMERATOR,
    DENOMINATOR_EXCEPTION,
)

ADOLESCENT_SCREEN = (LOINC, "73831-0")
ADULT_SCREEN = (LOINC, "73832-8")
DECLINED = (SNOMED, "720834000")
NEGATIVE = (SNOMED, "428171000124102")
POSITIVE = (SNOMED, "428181000124104")


@dataclass(frozen=True)
class Spec:
    version: str
    period: str
    screen_statuses: frozenset[str]
    # 0.4.001: an antidepressant counts as follow-up only when its supply runs past the visit.
    medication_must_outlast_visit: bool
    medication_intents: frozenset[str]
    # 0.2.000 compared a declined screening's time, and a bipolar diagnosis's onset, with the
    # visit's to the instant; 0.4.001 compares days.
    by_day: bool


SPECS = {
    "2026": Spec("0.4.001", "2026", frozenset({"final", "corrected"}), True, ORDER_INTENTS, True),
    "2025": Spec("0.2.000", "2025", frozenset({"final"}), False, frozenset({"order"}), False),
}


@dataclass(frozen=True)
class Kind:
    """The adolescent or the adult arm of the measure: its screening code and follow-up sets."""

    screen: tuple[str, str]
    medications: str
    referrals: str
    follow_ups: str


ADOLESCENT = Kind(
    ADOLESCENT_SCREEN,
    "Adolescent Depression Medications",
    "Referral for Adolescent Depression",
    "Follow Up for Adolescent Depression",
)
ADULT = Kind(
    ADULT_SCREEN,
    "Adult Depression Medications",
    "Referral for Adult Depression",
    "Follow Up for Adult Depression",
)


def spec_for(period_start: date) -> Spec:
    return SPECS.get(str(period_start.year)) or SPECS[max(SPECS)]


def evaluate(
    resources: list[dict], period_start: date, period_end: date, *, spec: Spec | None = None
) -> Result:
    """One patient's populations (the resources hold one Patient and their clinical resources)."""
    spec = spec or spec_for(period_start)
    vs = terminology(spec.period)
    record = Record(resources)
    mp = DaySpan(period_start, period_end)
    encounters = qualifying_encounters(record, vs, mp)
    age = record.age_at(period_start)
    initial = age is not None and age >= 12 and bool(encounters)
    exclusion = numerator = exception = False
    facts: dict[str, object] = {"age_at_start": age}
    if initial:
        exclusion = bipolar_before_encounter(record, vs, spec, encounters)
        kinds = (
            [ADOLESCENT]
            if age is not None and age <= 16
            else [ADULT]
            if age is not None and age >= 18
            else [ADOLESCENT, ADULT]
        )
        numerator = any(
            screened_and_followed_up(record, vs, spec, encounters, kind, mp) for kind in kinds
        )
        # "Denominator Exceptions" are not limited by age in the CQL.
        exception = any(
            reason_not_screened(record, vs, spec, encounters, kind)
            and not has_screening(record, spec, encounters, kind)
            for kind in (ADOLESCENT, ADULT)
        )
    populations = cascade(
        initial=initial,
        denominator=True,
        exclusion=exclusion,
        numerator=numerator,
        exception=exception,
    )
    return Result(
        MEASURE, spec.version, period_start, period_end, record.patient_id, populations, None, facts
    )


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
    )


def qualifying_encounters(record: Record, vs: Terminology, mp: DaySpan) -> list[Span]:
    """ "Qualifying Encounter During Measurement Period": a finished visit to screen for
    depression, physical therapy evaluation or telephone visit, wholly within the period."""
    sets = (
        vs["Encounter to Screen for Depression"],
        vs["Physical Therapy Evaluation"],
        vs["Telephone Visits"],
    )
    found = []
    for encounter in record.of("Encounter"):
        if text(encounter, "status") != "finished" or not any(
            encounter.get("type") in s for s in sets
        ):
            continue
        period = Span.of_period(encounter.get("period"))
        if period is not None and mp.includes(period.days()):
            found.append(period)
    return found


def bipolar_before_encounter(
    record: Record, vs: Terminology, spec: Spec, encounters: list[Span]
) -> bool:
    """ "History of Bipolar Diagnosis Before Qualifying Encounter": a bipolar problem or health
    concern whose prevalence starts before (the day of) a qualifying encounter, in any status."""
    bipolar = vs["Bipolar Disorder"]
    for condition in record.of("Condition"):
        if condition.get("code") not in bipolar or not is_problem_or_concern(condition):
            continue
        onset = start_of(record.prevalence(condition))
        for encounter in encounters:
            if encounter.low is None:
                continue
            if onset is None:
                return True  # no onset: the interval starts at the beginning of time
            if (onset.date() < encounter.low.date()) if spec.by_day else (onset < encounter.low):
                return True
    return False


def _fourteen_days_before(point: date | None, encounter: Span) -> bool:
    """`point 14 days or less on or before day of start of encounter`."""
    start = fhirtime.day(encounter.low)
    return point is not None and start is not None and fhirtime.shift(start, -14) <= point <= start


def screenings(record: Record, spec: Spec, encounters: list[Span], kind: Kind) -> list[dict]:
    """Screenings with a result, final (or corrected), ending in the 14 days up to a visit."""
    found = []
    for observation in record.of("Observation"):
        if (
            not is_code(observation.get("code"), *kind.screen)
            or text(observation, "status") not in spec.screen_statuses
        ):
            continue
        if observation_value(observation) is None:
            continue
        when = fhirtime.day(end_of(effective(record, observation)))
        if any(_fourteen_days_before(when, e) for e in encounters):
            found.append(observation)
    return found


def has_screening(record: Record, spec: Spec, encounters: list[Span], kind: Kind) -> bool:
    return bool(screenings(record, spec, encounters, kind))


def most_recent_screening(
    record: Record, spec: Spec, encounters: list[Span], kind: Kind
) -> dict | None:
    """ "Most Recent ... Depression Screening": the last one by start of its effective time."""
    found = screenings(record, spec, encounters, kind)

    def key(observation: dict) -> tuple:
        moment = start_of(effective(record, observation))
        return (moment is not None, moment or fhirtime.at_midnight(date.min))

    found.sort(key=key)
    return found[-1] if found else None


def screened_and_followed_up(
    record: Record, vs: Terminology, spec: Spec, encounters: list[Span], kind: Kind, mp: DaySpan
) -> bool:
    last = most_recent_screening(record, spec, encounters, kind)
    if last is None:
        return False
    result = observation_value(last)
    if is_code(result, *NEGATIVE):
        return True  # "Has Most Recent ... Screening Negative"
    if not is_code(result, *POSITIVE):
        return False
    # "Most Recent ... Depression Screening Positive and Follow Up Provided"
    started = fhirtime.day(start_of(effective(record, last)))
    for encounter in encounters:
        if not _fourteen_days_before(started, encounter):
            continue
        for performed, authored in follow_ups(record, vs, spec, encounters, kind, last):
            in_visit = performed is not None and fhirtime.within(performed, encounter)
            end = fhirtime.day(encounter.high)
            authored_day = fhirtime.day(authored)
            soon_after = (
                authored_day is not None
                and end is not None
                and end <= authored_day <= fhirtime.shift(end, 2)
            )
            if (in_visit or soon_after) and mp.contains(fhirtime.day(performed or authored)):
                return True
    return False


def follow_ups(
    record: Record, vs: Terminology, spec: Spec, encounters: list[Span], kind: Kind, last: dict
) -> list[tuple[datetime | None, datetime | None]]:
    """ "Follow Up Intervention for Positive ... Depression Screening", as (start of performed,
    authoredOn) pairs: an antidepressant order, a referral, or a follow-up procedure."""
    found: list[tuple[datetime | None, datetime | None]] = []
    medications = vs[kind.medications]
    screened = fhirtime.day(start_of(effective(record, last)))
    for order in record.of("MedicationRequest"):
        if order.get("medicationCodeableConcept") not in medications:
            continue
        if (
            text(order, "status") not in {"active", "completed"}
            or text(order, "intent") not in spec.medication_intents
        ):
            continue
        if spec.medication_must_outlast_visit:
            supply = medication_request_period(order)
            if supply is None or not any(
                _fourteen_days_before(screened, e) and _overlaps_after(supply, e.days())
                for e in encounters
            ):
                continue
        found.append((None, fhirtime.parse(order.get("authoredOn"))))
    for referral in record.of("ServiceRequest"):
        if referral.get("code") in vs[kind.referrals] and text(referral, "status") in {
            "active",
            "completed",
        }:
            found.append((None, fhirtime.parse(referral.get("authoredOn"))))
    for procedure in record.of("Procedure"):
        if (
            procedure.get("code") in vs[kind.follow_ups]
            and text(procedure, "status") == "completed"
        ):
            found.append((start_of(record.to_span(procedure, "performed")), None))
    return found


def _overlaps_after(a: DaySpan, b: DaySpan) -> bool:
    """`a overlaps after day of b`: they overlap and a ends after b ends."""
    return a.overlaps(b) and a.high is not None and b.high is not None and a.high > b.high


def reason_not_screened(
    record: Record, vs: Terminology, spec: Spec, encounters: list[Span], kind: Kind
) -> bool:
    """ "Medical or Patient Reason for Not Screening ...": a cancelled screening, issued during a
    qualifying visit, with the patient's refusal or a medical reason."""
    medical = vs["Medical Reason"]
    for observation in record.of("Observation"):
        if (
            not is_code(observation.get("code"), *kind.screen)
            or text(observation, "status") != "cancelled"
        ):
            continue
        reason = not_done_reason(observation)
        if not (is_code(reason, *DECLINED) or reason in medical):
            continue
        issued = fhirtime.parse(observation.get("issued"))
        for encounter in encounters:
            if spec.by_day:
                if encounter.days().contains(fhirtime.day(issued)):
                    return True
            elif fhirtime.within(issued, encounter):
                return True
    return False


# -- CumulativeMedicationDuration.medicationRequestPeriod ------------------------------------

_PER_DAY = {
    "h": 24.0,
    "hour": 24.0,
    "hours": 24.0,
    "min": 24.0 * 60,
    "minute": 24.0 * 60,
    "minutes": 24.0 * 60,
    "s": 24.0 * 3600,
    "second": 24.0 * 3600,
    "seconds": 24.0 * 3600,
    "d": 1.0,
    "day": 1.0,
    "days": 1.0,
    "wk": 1 / 7,
    "week": 1 / 7,
    "weeks": 1 / 7,
    "mo": 1 / 30,
    "month": 1 / 30,
    "months": 1 / 30,
    "a": 1 / 365,
    "year": 1 / 365,
    "years": 1 / 365,
}
_DAYS_IN = {
    "d": 1,
    "day": 1,
    "days": 1,
    "wk": 7,
    "week": 7,
    "weeks": 7,
    "h": 1 / 24,
    "hour": 1 / 24,
    "hours": 1 / 24,
    "mo": 30,
    "month": 30,
    "months": 30,
    "a": 365,
    "year": 365,
    "years": 365,
}


def _one(items: object) -> dict | None:
    """CQL `singleton from`: the only element, else nothing."""
    if isinstance(items, list):
        return items[0] if len(items) == 1 and isinstance(items[0], dict) else None
    return None


def medication_request_period(order: dict) -> DaySpan | None:
    """The days an order's supply covers: from its start for the days supplied (with refills),
    else to the end of its dosing bounds."""
    dosage = _one(order.get("dosageInstruction")) or {}
    dose_and_rate = _one(dosage.get("doseAndRate")) or {}
    repeat = obj(obj(dosage.get("timing")).get("repeat"))
    frequency = number(repeat.get("frequencyMax", repeat.get("frequency")))
    period, unit = number(repeat.get("period")), text(repeat, "periodUnit")
    doses_per_day: float | None = None
    if frequency is not None and period and unit in _PER_DAY:
        doses_per_day = frequency * _PER_DAY[unit] / period
    if doses_per_day is None:
        times = repeat.get("timeOfDay")
        doses_per_day = float(
            len(times) if isinstance(times, list) else 0
        )  # Count() of nothing is 0
    dose = obj(obj(dose_and_rate.get("doseRange")).get("high") or dose_and_rate.get("doseQuantity"))
    bounds = Span.of_period(repeat.get("boundsPeriod"))
    dispense = obj(order.get("dispenseRequest"))
    supply = obj(dispense.get("expectedSupplyDuration"))
    days_supply = None
    if (supplied := number(supply.get("value"))) is not None:
        supply_unit = text(supply, "code") or text(supply, "unit") or "d"
        if supply_unit in _DAYS_IN:
            days_supply = supplied * _DAYS_IN[supply_unit]
    quantity = number(obj(dispense.get("quantity")).get("value"))
    refills = number(dispense.get("numberOfRepeatsAllowed")) or 0
    start = (
        fhirtime.day(bounds.low if bounds else None)
        or fhirtime.day(fhirtime.parse(order.get("authoredOn")))
        or fhirtime.day(fhirtime.parse(obj(dispense.get("validityPeriod")).get("start")))
    )
    total = days_supply
    dose_value = number(dose.get("value"))
    if total is None and quantity is not None and dose_value and doses_per_day:
        total = quantity / (dose_value * doses_per_day)
    if start is not None and total is not None:
        return DaySpan(start, fhirtime.shift(start, int(total * (1 + refills) - 1)))
    if start is not None and bounds is not None and bounds.high is not None:
        return DaySpan(start, fhirtime.day(bounds.high))
    return None

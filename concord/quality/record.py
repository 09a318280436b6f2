"""One patient's FHIR resources as the measures read them (QI-Core: FHIRHelpers and QICoreCommon).

The measures are pure functions of a list of resources (JSON dicts, as FHIR sends them): the
test decks, the EHR import store and Concord's own records all reach them in that one shape.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from concord.quality import fhirtime
from concord.quality.fhirtime import Span
from concord.quality.terminology import (
    CLINICAL_STATUS,
    CONDITION_CATEGORY,
    US_CORE_CATEGORY,
    VERIFICATION_STATUS,
    any_code,
    codings,
    is_code,
)

ORDER_INTENTS = frozenset(
    {"order", "original-order", "reflex-order", "filler-order", "instance-order"}
)
ASSESSMENT_DONE = frozenset({"final", "amended", "corrected"})
ACTIVE_STATUSES = (
    (CLINICAL_STATUS, "active"),
    (CLINICAL_STATUS, "recurrence"),
    (CLINICAL_STATUS, "relapse"),
)
NOT_DONE_REASON = "http://hl7.org/fhir/us/qicore/StructureDefinition/qicore-notDoneReason"


def text(resource: dict, key: str) -> str | None:
    """A string element, or None when absent or of another type (a faulty feed's)."""
    value = resource.get(key)
    return value if isinstance(value, str) else None


def obj(value: object) -> dict:
    """A complex element, or an empty one when absent or not an object."""
    return value if isinstance(value, dict) else {}


def number(value: object) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


class Record:
    """The resources of one patient, by type."""

    def __init__(self, resources: Iterable[dict]) -> None:
        self.by_type: dict[str, list[dict]] = defaultdict(list)
        for resource in resources:
            if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
                self.by_type[resource["resourceType"]].append(resource)
        patients = self.by_type.get("Patient") or [{}]
        self.patient: dict = patients[0]
        self.birth_date: date | None = fhirtime.day(fhirtime.parse(self.patient.get("birthDate")))

    def of(self, resource_type: str) -> list[dict]:
        return self.by_type.get(resource_type, [])

    @property
    def patient_id(self) -> str | None:
        return self.patient.get("id")

    def age_at(self, at: date | None) -> int | None:
        return fhirtime.age_in_years(self.birth_date, at)

    # -- QICoreCommon.toInterval over the choice types -------------------------------------

    def to_span(self, resource: dict, element: str) -> Span | None:
        """`resource.<element>.toInterval()`: dateTime, Period, Age or Range (as ages)."""
        if (moment := resource.get(f"{element}DateTime")) is not None:
            return Span.point(fhirtime.parse(moment))
        if (moment := resource.get(f"{element}Instant")) is not None:
            return Span.point(fhirtime.parse(moment))
        if (period := resource.get(f"{element}Period")) is not None:
            return Span.of_period(period)
        if (age := resource.get(f"{element}Age")) is not None:
            low = self._birth_plus(age)
            return None if low is None else Span(low, self._birth_plus(age, extra_year=True))
        if (ages := resource.get(f"{element}Range")) is not None:
            low = self._birth_plus(obj(ages).get("low"))
            high = self._birth_plus(obj(ages).get("high"), extra_year=True)
            return None if low is None and high is None else Span(low, high)
        return None

    def _birth_plus(self, quantity: object, *, extra_year: bool = False) -> datetime | None:
        if self.birth_date is None or not isinstance(quantity, dict):
            return None
        value, unit = (
            number(quantity.get("value")),
            (text(quantity, "code") or text(quantity, "unit") or ""),
        )
        if value is None:
            return None
        whole = int(value)
        if unit in {"a", "year", "years"}:
            d = fhirtime.add_years(self.birth_date, whole + (1 if extra_year else 0))
        elif unit in {"mo", "month", "months"}:
            d = fhirtime.add_months(self.birth_date, whole + (12 if extra_year else 0))
        elif unit in {"d", "day", "days"}:
            d = self.birth_date + timedelta(days=whole)
            d = fhirtime.add_years(d, 1) if extra_year else d
        else:
            return None
        moment = fhirtime.at_midnight(d)
        # The `+ 1 year)` bound is open: the last included instant is the day before.
        return moment - timedelta(milliseconds=1) if extra_year else moment

    # -- Conditions ----------------------------------------------------------------------------

    def prevalence(self, condition: dict) -> Span | None:
        """QICoreCommon.prevalenceInterval: onset to abatement; active means no end yet.

        An inactive condition without an abatement has an unknown end (CQL's open null bound);
        the measures only test its start, so it is kept unbounded here.
        """
        onset = self.to_span(condition, "onset")
        abatement = self.to_span(condition, "abatement")
        low = onset.low if onset else None
        high = abatement.high if abatement else None
        return Span(low, high)


def is_active(condition: dict) -> bool:
    return any_code(condition.get("clinicalStatus"), ACTIVE_STATUSES)


def is_confirmed_active(condition: dict) -> bool:
    return is_active(condition) and is_code(
        condition.get("verificationStatus"), VERIFICATION_STATUS, "confirmed"
    )


def category_codes(condition: dict) -> set[str]:
    return {
        code
        for system, code in codings(condition.get("category") or [])
        if system in {CONDITION_CATEGORY, US_CORE_CATEGORY}
    }


def is_problem_or_concern(condition: dict) -> bool:
    """QI-Core's ConditionProblemsHealthConcerns: a problem-list item or a health concern."""
    return bool(category_codes(condition) & {"problem-list-item", "health-concern"})


def is_encounter_diagnosis(condition: dict) -> bool:
    return "encounter-diagnosis" in category_codes(condition)


def not_done_reason(resource: dict) -> object:
    extensions = resource.get("extension")
    for extension in extensions if isinstance(extensions, list) else []:
        if isinstance(extension, dict) and extension.get("url") == NOT_DONE_REASON:
            return extension.get("valueCodeableConcept")
    return None


def observation_value(observation: dict) -> object:
    """Observation.value as the CQL sees it: a number, or a CodeableConcept, or None."""
    for key in ("valueInteger", "valueDecimal"):
        if key in observation:
            return observation[key]
    if "valueQuantity" in observation:
        return (observation["valueQuantity"] or {}).get("value")
    for key in (
        "valueCodeableConcept",
        "valueBoolean",
        "valueString",
        "valueDateTime",
        "valuePeriod",
    ):
        if key in observation:
            return observation[key]
    return None


def effective(record: Record, observation: dict) -> Span | None:
    return record.to_span(observation, "effective")


def start_of(span: Span | None) -> datetime | None:
    return None if span is None else span.low


def end_of(span: Span | None) -> datetime | None:
    return None if span is None else span.high

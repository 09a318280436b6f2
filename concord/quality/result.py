"""What a measure says about one patient, and the counts over many (a FHIR MeasureReport)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

INITIAL_POPULATION = "initial-population"
DENOMINATOR = "denominator"
DENOMINATOR_EXCLUSION = "denominator-exclusion"
DENOMINATOR_EXCEPTION = "denominator-exception"
NUMERATOR = "numerator"
POPULATIONS = (
    INITIAL_POPULATION,
    DENOMINATOR,
    DENOMINATOR_EXCLUSION,
    DENOMINATOR_EXCEPTION,
    NUMERATOR,
)
POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"


@dataclass(frozen=True)
class Result:
    """One patient's membership in each population of a patient-based proportion measure.

    The flags are already cascaded as the Quality Measure IG counts them: the denominator only
    within the initial population, an exclusion or the numerator only within the denominator,
    the numerator only when not excluded, an exception only when neither excluded nor in the
    numerator.
    """

    measure: str
    version: str
    period_start: date
    period_end: date
    subject: str | None
    populations: dict[str, bool]
    stratum: str | None = None
    # Named facts behind the answer (the index date, the last score...), for people to check.
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {code: int(member) for code, member in self.populations.items()}

    def __getitem__(self, code: str) -> bool:
        return self.populations.get(code, False)


def cascade(
    *, initial: bool, denominator: bool, exclusion: bool, numerator: bool, exception: bool | None
) -> dict[str, bool]:
    den = initial and denominator
    excluded = den and exclusion
    num = den and not excluded and numerator
    populations = {
        INITIAL_POPULATION: initial,
        DENOMINATOR: den,
        DENOMINATOR_EXCLUSION: excluded,
        NUMERATOR: num,
    }
    if exception is not None:
        populations[DENOMINATOR_EXCEPTION] = den and not excluded and not num and exception
    return populations


@dataclass(frozen=True)
class Summary:
    """Counts over many patients, overall and per stratum."""

    measure: str
    version: str
    period_start: date
    period_end: date
    counts: dict[str, int]
    strata: dict[str, dict[str, int]]

    @property
    def rate(self) -> float | None:
        """Numerator over (denominator - exclusions - exceptions), None when that is empty."""
        return _rate(self.counts)


def _rate(counts: dict[str, int]) -> float | None:
    base = (
        counts.get(DENOMINATOR, 0)
        - counts.get(DENOMINATOR_EXCLUSION, 0)
        - counts.get(DENOMINATOR_EXCEPTION, 0)
    )
    return None if base <= 0 else counts.get(NUMERATOR, 0) / base


def summarize(
    results: Iterable[Result],
    *,
    measure: str,
    version: str,
    period_start: date,
    period_end: date,
    populations: tuple[str, ...],
    strata: tuple[str, ...] = (),
) -> Summary:
    counts = dict.fromkeys(populations, 0)
    by_stratum = {name: dict.fromkeys(populations, 0) for name in strata}
    for result in results:
        for code in populations:
            if result[code]:
                counts[code] += 1
                if result.stratum in by_stratum:
                    by_stratum[result.stratum][code] += 1
    return Summary(measure, version, period_start, period_end, counts, by_stratum)


def _population(code: str, count: int) -> dict:
    return {"code": {"coding": [{"system": POPULATION_SYSTEM, "code": code}]}, "count": count}


def measure_report(
    summary: Summary,
    *,
    measure_url: str,
    report_type: str,
    subject: str | None = None,
    strata_text: dict[str, str] | None = None,
) -> dict:
    """A FHIR R4 MeasureReport (individual or summary) of a Summary."""
    group: dict = {"population": [_population(code, n) for code, n in summary.counts.items()]}
    if (rate := summary.rate) is not None:
        group["measureScore"] = {"value": round(rate, 4)}
    if summary.strata:
        group["stratifier"] = [
            {
                "code": [{"text": "age at the index assessment"}],
                "stratum": [
                    {
                        "value": {"text": (strata_text or {}).get(name, name)},
                        "population": [_population(code, n) for code, n in counts.items()],
                        **(
                            {"measureScore": {"value": round(r, 4)}}
                            if (r := _rate(counts)) is not None
                            else {}
                        ),
                    }
                    for name, counts in summary.strata.items()
                ],
            }
        ]
    report: dict = {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": report_type,
        "measure": f"{measure_url}|{summary.version}",
        "period": {
            "start": summary.period_start.isoformat(),
            "end": summary.period_end.isoformat(),
        },
        "group": [group],
    }
    if subject is not None:
        report["subject"] = {"reference": subject}
    return report

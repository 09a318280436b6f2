"""Value sets and codes of the eCQMs, from the vendored expansions (CC0, valuesets/README.md).

One file per reporting period, because each year's measure ships its own expansions; membership
is by code system and code, as the CQL engines decide it (the code system's version is ignored).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

VALUESETS = Path(__file__).resolve().parent / "valuesets"

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"


@dataclass(frozen=True)
class ValueSet:
    oid: str
    name: str
    version: str | None
    codes: frozenset[tuple[str, str]]

    def __contains__(self, concept: object) -> bool:
        codes = self.codes
        return any(pair in codes for pair in pairs(concept))


@dataclass(frozen=True)
class Terminology:
    period: str
    source: str
    by_name: dict[str, ValueSet]

    def __getitem__(self, name: str) -> ValueSet:
        return self.by_name[name]


def available_periods() -> list[str]:
    return sorted(p.stem for p in VALUESETS.glob("*.json"))


@cache
def terminology(period: str) -> Terminology:
    """The value sets the measures of one reporting period (a year, as text) use."""
    data = json.loads((VALUESETS / f"{period}.json").read_text())
    by_name = {}
    for oid, vs in data["valuesets"].items():
        codes = frozenset(
            (system, code) for system, listed in vs["codes"].items() for code in listed
        )
        by_name[vs["name"]] = ValueSet(oid, vs["name"], vs.get("version"), codes)
    return Terminology(period, data["source"], by_name)


def pairs(concept: object) -> list[tuple[str, str]]:
    """(system, code) pairs of a CodeableConcept, a Coding, or a list of either."""
    if isinstance(concept, dict):
        coding = concept.get("coding")
        if isinstance(coding, list):
            return [
                (_system(c), c["code"])
                for c in coding
                if isinstance(c, dict) and isinstance(c.get("code"), str)
            ]
        code = concept.get("code")
        return [(_system(concept), code)] if isinstance(code, str) else []
    if isinstance(concept, list):
        return [pair for item in concept for pair in pairs(item)]
    return []


def _system(coding: dict) -> str:
    system = coding.get("system")
    return system if isinstance(system, str) else ""


def codings(concept: object) -> Iterator[tuple[str, str]]:
    yield from pairs(concept)


def is_code(concept: object, system: str, code: str) -> bool:
    """CQL `~` between a concept and one code."""
    return (system, code) in pairs(concept)


def any_code(concept: object, wanted: Iterable[tuple[str, str]]) -> bool:
    wanted = set(wanted)
    return any(c in wanted for c in pairs(concept))

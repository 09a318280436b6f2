"""The official CMS159 and CMS2 test cases (CC0, tests/fixtures/ecqm/README.md) as the oracle.

Each case is one patient's FHIR resources and the MeasureReport the measure developer expects;
every population count the report lists must come out of concord.quality the same. A case the
measure logic cannot match because the case itself is wrong is listed in KNOWN_WRONG with the
reason and the upstream citation; there is none today.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from concord.quality import cms2, cms159
from tests.quality.decks import (
    DECKS,
    all_cases,
    case_bundle,
    description,
    expected_counts,
    load_case,
)

MEASURES = {"CMS159": cms159, "CMS2": cms2}
# (deck, measure, case folder) -> why the expected report is wrong, with the upstream citation.
KNOWN_WRONG: dict[tuple[str, str, str], str] = {}
# Case folder -> why the stratum its name claims is not the one its data gives. These reports
# have no stratifier (stratification is commented out upstream), so no count depends on them.
KNOWN_WRONG_STRATUM = {
    "d04323b4-e4db-4a9a-9fd1-27d1d48fc595": (
        "named IPPPopStrat2Pass-Patientis18 and described as turning 18 the day before the index "
        "assessment, but born 2008-06-24 with the index PHQ-9 on 2025-06-25: 17 years old, stratum "
        "12-17. No upstream discussion found (cqframework/ecqm-content-qicore-2025 @ db5a7e14)."
    ),
}


def run_case(deck: str, measure: str, folder: Path) -> tuple[dict[str, int], dict[str, int], str]:
    resources, report = load_case(folder)
    period = report["period"]
    result = MEASURES[measure].evaluate(
        resources, date.fromisoformat(period["start"][:10]), date.fromisoformat(period["end"][:10])
    )
    want = expected_counts(report)
    got = {code: result.counts.get(code, 0) for code in want}
    return want, got, description(report)


def test_every_official_case_matches_its_expected_report(capsys):
    cases = all_cases()
    assert len(cases) >= 190, "the vendored decks are missing cases"
    matched: Counter[tuple[str, str]] = Counter()
    total: Counter[tuple[str, str]] = Counter()
    failures = []
    for deck, measure, folder in cases:
        want, got, text = run_case(deck, measure, folder)
        total[deck, measure] += 1
        if want == got:
            matched[deck, measure] += 1
        elif (deck, measure, folder.name) not in KNOWN_WRONG:
            failures.append(
                f"{deck}/{measure}/{folder.name}: expected {want}, got {got} -- {text[:160]}"
            )
    with capsys.disabled():
        print()
        for key in sorted(total):
            print(f"official cases {key[0]} deck {key[1]}: {matched[key]}/{total[key]} match")
    assert not failures, "\n".join(failures)


def test_cms159_strata_agree_with_the_case_names():
    """The 2026 deck's case names say which stratum (PopStrat1: 12-17, PopStrat2: 18+) a patient
    in the initial population belongs to; the measure's MeasureReports carry no stratifier
    (stratification is commented out upstream, BONNIEMAT-1489), so the names are the check."""
    checked = 0
    names = json.loads((DECKS / "2025" / "CMS159" / "case-names.json").read_text())
    for deck, measure, folder in all_cases():
        if measure != "CMS159" or deck != "2025":
            continue
        resources, report = load_case(folder)
        hint = names[folder.name]
        if "PopStrat" not in hint:
            continue
        result = cms159.evaluate(
            resources,
            date.fromisoformat(report["period"]["start"]),
            date.fromisoformat(report["period"]["end"]),
        )
        if not result["initial-population"]:
            continue
        want = "12-17" if "PopStrat1" in hint else "18+"
        if folder.name in KNOWN_WRONG_STRATUM:
            assert result.stratum != want, (
                f"{folder.name} was fixed upstream: drop it from KNOWN_WRONG_STRATUM"
            )
            continue
        assert result.stratum == want, (folder.name, hint)
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize("measure", ["CMS159", "CMS2"])
def test_a_patient_with_nothing_is_in_no_population(measure):
    result = MEASURES[measure].evaluate(
        [{"resourceType": "Patient", "id": "p"}], date(2026, 1, 1), date(2026, 12, 31)
    )
    assert not any(result.populations.values())


def test_each_case_makes_a_transaction_of_puts_with_the_senders_ids():
    for _, _, folder in all_cases()[:5]:
        bundle = case_bundle(folder)
        assert bundle["type"] == "transaction"
        assert all(e["request"]["method"] == "PUT" for e in bundle["entry"])
        assert not any(e["resource"]["resourceType"] == "MeasureReport" for e in bundle["entry"])


def test_the_order_of_a_patients_resources_does_not_matter():
    rng = random.Random(20)
    for _, measure, folder in all_cases():
        resources, report = load_case(folder)
        rng.shuffle(resources)
        period = report["period"]
        result = MEASURES[measure].evaluate(
            resources, date.fromisoformat(period["start"]), date.fromisoformat(period["end"])
        )
        want = expected_counts(report)
        assert {code: result.counts.get(code, 0) for code in want} == want, folder.name


def _mangle(value, rng):
    """Wrong types and missing parts, as a faulty EHR feed might send."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            roll = rng.random()
            if key == "resourceType" or roll > 0.15:
                out[key] = _mangle(item, rng)
            elif roll > 0.08:
                out[key] = rng.choice(
                    [None, "", "x", 12, -1.5, True, [], {}, "2026-02-30", "2026-13", "9999"]
                )
        return out
    if isinstance(value, list):
        return [_mangle(item, rng) for item in value if rng.random() > 0.1]
    return value


def test_malformed_resources_never_raise():
    """A faulty record makes a patient miss a population, never a 500."""
    rng = random.Random(21)
    for _ in range(3):
        for _, measure, folder in all_cases():
            resources, report = load_case(folder)
            mangled = [_mangle(r, rng) for r in resources] + [None, "text", {"resourceType": 5}]
            MEASURES[measure].evaluate(mangled, date(2026, 1, 1), date(2026, 12, 31))

"""The vendored official test decks (tests/fixtures/ecqm/README.md): each case's resources, its
expected MeasureReport, and the case as the transaction Bundle an EHR feed or MADiE sends (PUT
Type/id, the sender's ids), for loading through POST /fhir."""

from __future__ import annotations

import json
from pathlib import Path

DECKS = Path(__file__).resolve().parent.parent / "fixtures" / "ecqm"


def load_case(folder: Path) -> tuple[list[dict], dict]:
    resources, expected = [], None
    for path in sorted(folder.glob("*.json")):
        resource = json.loads(path.read_text())
        if resource.get("resourceType") == "MeasureReport":
            expected = resource
        else:
            resources.append(resource)
    assert expected is not None, f"{folder} has no MeasureReport"
    return resources, expected


def description(report: dict) -> str:
    for extension in report.get("extension", []):
        if extension["url"].endswith("cqfm-testCaseDescription"):
            return extension.get("valueMarkdown", "").strip()
    return ""


def expected_counts(report: dict) -> dict[str, int]:
    return {
        p["code"]["coding"][0]["code"]: p.get("count", 0) for p in report["group"][0]["population"]
    }


def all_cases() -> list[tuple[str, str, Path]]:
    return [
        (deck.name, measure.name, case)
        for deck in sorted(DECKS.iterdir())
        if deck.is_dir()
        for measure in sorted(deck.iterdir())
        for case in sorted(measure.iterdir())
        if case.is_dir()
    ]


def case_bundle(folder: Path) -> dict:
    """The case's resources (not its expected report) as a transaction Bundle of PUTs."""
    resources, _ = load_case(folder)
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }

"""Vendor the CMS159/CMS2 value sets and official test cases from the CC0 eCQM content repositories.

Run once against git mirrors of cqframework/ecqm-content-qicore-2025 and -2024 (paths as
arguments); it writes concord/quality/valuesets/<period>.json (system and code only: the code
lists are what the measures need, and the displays of some code systems, CPT's among them,
are licensed text) and tests/fixtures/ecqm/<deck>/<measure>/<case>/ (the upstream files, byte
for byte). Not part of the app: a record of how the vendored data was made.

    python scripts/vendor_ecqm.py /path/to/ecqm-content-qicore-2025 /path/to/...-2024
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DECKS = {
    # deck: (reporting period, {upstream measure folder and CQL library: our measure name})
    "2025": (
        "2026",
        {
            "CMS159FHIRDepressionRemissionatTwelveMonths": "CMS159",
            "CMS2FHIRPCSDepressionScreenAndFollowUp": "CMS2",
        },
    ),
    "2024": (
        "2025",
        {
            "DepressionRemissionatTwelveMonthsFHIR": "CMS159",
            "PCSDepressionScreenAndFollowUpFHIR": "CMS2",
        },
    ),
}
RESOURCE_TYPES = {
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "MeasureReport",
    "Procedure",
    "ServiceRequest",
    "MedicationRequest",
    "Coverage",
    "Organization",
    "Practitioner",
    "Medication",
}


def git(repo: str, *args: str) -> bytes:
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, check=True).stdout


def main(repo_2025: str, repo_2024: str) -> None:
    repos = {"2025": repo_2025, "2024": repo_2024}
    for deck, (period, measures) in DECKS.items():
        repo = repos[deck]
        commit = git(repo, "rev-parse", "HEAD").decode().strip()
        oids: dict[str, str] = {}
        for library in measures:
            cql = git(repo, "show", f"HEAD:input/cql/{library}.cql").decode()
            for name, oid in re.findall(r"valueset \"([^\"]+)\": '[^']*ValueSet/([0-9.]+)'", cql):
                oids[oid] = name
        sets = {}
        for oid, name in sorted(oids.items()):
            try:
                raw = git(
                    repo, "show", f"HEAD:input/vocabulary/valueset/external/valueset-{oid}.json"
                )
            except subprocess.CalledProcessError:
                continue  # declared by the CQL, used by no definition (Palliative or Hospice Care)
            vs = json.loads(raw)
            codes: dict[str, list[str]] = {}
            for entry in vs.get("expansion", {}).get("contains", []):
                codes.setdefault(entry["system"], []).append(entry["code"])
            sets[oid] = {
                "name": name,
                "version": vs.get("version"),
                "expansion": vs.get("expansion", {}).get("timestamp"),
                "codes": {s: sorted(c) for s, c in sorted(codes.items())},
            }
        out = {
            "source": f"https://github.com/cqframework/ecqm-content-qicore-{deck} @ {commit}",
            "licence": "CC0-1.0",
            "period": period,
            "valuesets": sets,
        }
        target = ROOT / "concord" / "quality" / "valuesets" / f"{period}.json"
        target.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        for folder, short in measures.items():
            listing = git(repo, "ls-tree", "-r", "HEAD", f"input/tests/measure/{folder}").decode()
            names: dict[str, str] = {}
            for line in listing.splitlines():
                path = line.split("\t", 1)[1]
                parts = path.split("/")
                if len(parts) != 6:
                    continue
                if parts[5].split("-")[0] not in RESOURCE_TYPES:
                    # The 2025 deck's per-case Bundle repeats the same resources: keep its name
                    # only (it says the case's population and stratum).
                    names[parts[4]] = parts[5].removesuffix(".json")
                    continue
                case_dir = ROOT / "tests" / "fixtures" / "ecqm" / deck / short / parts[4]
                case_dir.mkdir(parents=True, exist_ok=True)
                (case_dir / parts[5]).write_bytes(git(repo, "show", f"HEAD:{path}"))
            if names:
                index = ROOT / "tests" / "fixtures" / "ecqm" / deck / short / "case-names.json"
                index.write_text(json.dumps(dict(sorted(names.items())), indent=1) + "\n")
        print(deck, commit, len(sets), "value sets")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo_2025", help="git directory of cqframework/ecqm-content-qicore-2025")
    parser.add_argument("repo_2024", help="git directory of cqframework/ecqm-content-qicore-2024")
    arguments = parser.parse_args()
    main(arguments.repo_2025, arguments.repo_2024)

"""CMS159 and CMS2 over a synthetic population held in memory:
`python -m bench.quality [--patients 100000] [--seed 7]`.

Times the measure functions alone (concord.quality, one patient's FHIR resources at a time),
without a database: the resources a store would hand them are built first and not timed. The
population is synthetic: about a third have a depression diagnosis and a visit in CMS159's
identification period, with PHQ-9 scores over the following year; everyone has a screening
visit in the measurement period, most with a depression screen. Prints the seconds and the
population counts; a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import date, timedelta

from concord.quality import cms2, cms159

PERIOD = (date(2026, 1, 1), date(2026, 12, 31))
LOINC, SNOMED, CPT = "http://loinc.org", "http://snomed.info/sct", "http://www.ama-assn.org/go/cpt"


def _cc(system: str, code: str) -> dict:
    return {"coding": [{"system": system, "code": code}]}


def _at(d: date, hour: int = 10) -> str:
    return f"{d.isoformat()}T{hour:02d}:00:00+00:00"


def synthetic_patient(i: int, rng: random.Random) -> list[dict]:
    pid = f"p{i}"
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 72))
    resources: list[dict] = [{"resourceType": "Patient", "id": pid, "birthDate": born.isoformat()}]
    visit_day = date(2026, 1, 5) + timedelta(days=rng.randrange(0, 330))
    resources.append(
        {
            "resourceType": "Encounter",
            "status": "finished",
            "type": [_cc(CPT, "99213")],
            "period": {"start": _at(visit_day), "end": _at(visit_day, 11)},
        }
    )
    if rng.random() < 0.8:
        result = "428181000124104" if rng.random() < 0.2 else "428171000124102"
        resources.append(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": _cc(LOINC, "73832-8"),
                "effectiveDateTime": _at(visit_day - timedelta(days=rng.randrange(0, 10))),
                "valueCodeableConcept": _cc(SNOMED, result),
            }
        )
    if rng.random() < 0.33:
        index_day = date(2024, 11, 1) + timedelta(days=rng.randrange(0, 360))
        resources.append(
            {
                "resourceType": "Condition",
                "clinicalStatus": _cc(
                    "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"
                ),
                "verificationStatus": _cc(
                    "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"
                ),
                "category": [
                    _cc(
                        "http://terminology.hl7.org/CodeSystem/condition-category",
                        "problem-list-item",
                    )
                ],
                "code": _cc(SNOMED, "370143000"),
                "onsetDateTime": _at(index_day - timedelta(days=30)),
            }
        )
        resources.append(
            {
                "resourceType": "Encounter",
                "status": "finished",
                "type": [_cc(CPT, "99213")],
                "period": {"start": _at(index_day), "end": _at(index_day, 11)},
            }
        )
        day = index_day
        for _ in range(rng.randrange(1, 8)):
            resources.append(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": _cc(LOINC, "44261-6"),
                    "effectiveDateTime": _at(day),
                    "valueInteger": rng.randrange(0, 28),
                }
            )
            day += timedelta(days=rng.randrange(20, 120))
    return resources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    rng = random.Random(arguments.seed)
    population = [synthetic_patient(i, rng) for i in range(arguments.patients)]
    for module in (cms159, cms2):
        started, cpu = time.perf_counter(), time.process_time()
        summary = module.evaluate_population(population, *PERIOD)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        # CPU beside wall time: the machine is shared; waiting for a core is not the code's.
        print(
            f"{module.MEASURE} over {len(population)} patients: "
            f"{seconds:.2f} s wall, {cpu:.2f} s CPU "
            f"({cpu / len(population) * 1e6:.0f} us CPU a patient) {summary.counts}"
        )
        if summary.strata:
            print(f"  strata {summary.strata}")


if __name__ == "__main__":
    main()

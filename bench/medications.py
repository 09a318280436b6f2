"""How long the medication-safety check takes: pure, one core, no database (issue 19: under
50 ms for a list of 30 medications).

    python -m bench.medications [--lists 300] [--size 30]

For lists of `--size` distinct verified ingredients drawn at random (seeded) from the shipped
vocabulary, prints the median and the 99th percentile of:
- baseline: reading the list's codes through the vocabulary (what any check pays first);
- check(): the whole rule set over the list (every pair of every rule);
- CDS Hooks: reading an order-sign request for the list (one draft order, the rest as the
  prefetched current list), the check, and the cards (concord.cds.hooks), without HTTP.
Each as wall-clock time and as the process's CPU time, which other processes do not inflate.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

os.environ.setdefault("CONCORD_ENV", "development")

from concord.cds import hooks  # noqa: E402
from concord.medications.rules import check, default_rules, ingredients_of  # noqa: E402
from concord.medications.vocabulary import default_vocabulary  # noqa: E402

TARGET_MS = 50.0


def _lists(n: int, size: int, seed: int = 19) -> list[list[str]]:
    rng = random.Random(seed)
    usable = [i.rxcui for i in default_vocabulary().ingredients if i.verified]
    size = min(size, len(usable))
    return [rng.sample(usable, size) for _ in range(n)]


def _timed(work, items) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each call: on a shared machine the wall clock's tail
    is other processes' time; the CPU time is the check's own."""
    wall, cpu = [], []
    for item in items:
        start, start_cpu = time.perf_counter(), time.process_time()
        work(item)
        cpu.append((time.process_time() - start_cpu) * 1000)
        wall.append((time.perf_counter() - start) * 1000)
    return wall, cpu


def _request(codes: list[str]) -> dict:
    def resource(ident: str, code: str, status: str) -> dict:
        coding = [{"system": hooks.RXNORM, "code": code}]
        return {
            "resourceType": "MedicationRequest",
            "id": ident,
            "status": status,
            "intent": "order",
            "medicationCodeableConcept": {"coding": coding},
        }

    def bundle(*resources: dict) -> dict:
        return {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}

    current = [resource(f"c{n}", code, "active") for n, code in enumerate(codes[1:])]
    return {
        "hook": "order-sign",
        "hookInstance": "bench",
        "context": {
            "userId": "Practitioner/bench",
            "patientId": "bench",
            "draftOrders": bundle(resource("new", codes[0], "draft")),
        },
        "prefetch": {"medicationRequests": bundle(*current)},
    }


def _cds(body: dict) -> list[dict]:
    vocabulary = default_vocabulary()
    service = hooks.SERVICES["concord-medication-safety-sign"]
    request = hooks.parse(body, service)
    orders, _ = hooks.known(request.orders, vocabulary)
    current, _ = hooks.known(request.current or [], vocabulary)
    new = set(orders)
    findings = [f for f in check([*orders, *current]) if new & set(f.rxcuis)]
    return [hooks.card(f, orders=request.orders, vocabulary=vocabulary) for f in findings]


def _p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _row(name: str, timed: tuple[list[float], list[float]]) -> str:
    wall, cpu = timed
    return (
        f"{name:<34} {statistics.median(wall):>9.3f} {_p99(wall):>9.3f} "
        f"{statistics.median(cpu):>9.3f} {_p99(cpu):>9.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lists", type=int, default=300)
    parser.add_argument("--size", type=int, default=30)
    args = parser.parse_args()
    vocabulary, rules = default_vocabulary(), default_rules()  # loaded once, as in the server
    lists = _lists(args.lists, args.size)
    bodies = [_request(codes) for codes in lists]
    _timed(lambda codes: check(codes), lists[:20])  # warm up
    baseline = _timed(lambda codes: ingredients_of(codes, vocabulary), lists)
    checks = _timed(lambda codes: check(codes, vocabulary=vocabulary, rules=rules), lists)
    cds = _timed(_cds, bodies)
    findings = statistics.mean(len(check(codes)) for codes in lists)
    print(
        f"{args.lists} lists of {len(lists[0])} medications, {len(rules.rules)} rules, "
        f"{findings:.1f} findings a list on average"
    )
    print(f"{'case':<34} {'median ms':>9} {'p99 ms':>9} {'CPU med':>9} {'CPU p99':>9}")
    print(_row("baseline: read the codes", baseline))
    print(_row("check()", checks))
    print(_row("CDS Hooks order-sign (no HTTP)", cds))
    worst, worst_cpu = max(checks[0]), max(checks[1])
    verdict = "met" if worst_cpu < TARGET_MS else "NOT met"
    print(
        f"slowest check(): {worst:.3f} ms wall, {worst_cpu:.3f} ms CPU "
        f"(target: under {TARGET_MS:.0f} ms of the check's own time: {verdict})"
    )


if __name__ == "__main__":
    main()

"""The load generator for the HTTP cases, run as its own process (python -m bench.loadgen ARGS).

Threads with keep-alive connections. Closed loop (rate None): each connection sends as fast as
answers come, for the throughput ceiling. Open loop (rate R): requests are scheduled at R per
second in all and each latency is measured from its scheduled time, so a slow server cannot hide
its queue (no coordinated omission). Prints one JSON line: requests per second, p50, p95, p99,
errors."""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
import uuid
from functools import lru_cache


@lru_cache(maxsize=1)
def phq9_links() -> tuple[str, ...]:
    from concord.measures.library import BUILT_IN, load_file

    phq9 = load_file(BUILT_IN / "phq-9.yaml")
    return tuple(item.loinc for item in phq9.items if item.scored and item.loinc)


def body_for(kind: str, patient: str) -> bytes:
    if kind == "bare":
        return json.dumps({"patient": patient, "value": 7}).encode()
    # PHQ-9 by its LOINC item codes (from Concord's instrument file), item 9 answered 0 so
    # no alert is raised: the benchmark measures the ordinary submit.
    items = [
        {"linkId": f"/{code}", "answer": [{"valueInteger": value}]}
        for code, value in zip(phq9_links(), (1, 2, 1, 1, 0, 1, 1, 0, 0), strict=True)
    ]
    return json.dumps(
        {
            "resourceType": "QuestionnaireResponse",
            "questionnaire": "http://loinc.org/q/44249-1",
            "status": "completed",
            "subject": {"reference": f"Patient/{patient}"},
            "authored": "2026-11-21T10:00:00Z",
            "identifier": {"system": "urn:bench", "value": uuid.uuid4().hex},
            "item": items,
        }
    ).encode()


def main() -> None:
    args = json.loads(sys.argv[1])
    port, kind, token = args["port"], args["kind"], args["token"]
    patients, seconds, rate, connections = (
        args["patients"],
        args["seconds"],
        args["rate"],
        args["connections"],
    )
    method, path = {
        "ping": ("GET", "/ping"),
        "bare": ("POST", "/bare"),
        "checkin": ("POST", "/fhir/QuestionnaireResponse"),
    }[kind]
    headers = {
        "Content-Type": "application/fhir+json" if kind == "checkin" else "application/json",
        "Authorization": f"Bearer {token}",
    }
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = time.perf_counter() + 0.2
    end = start + seconds

    def worker(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        bad = 0
        k = 0
        interval = connections / rate if rate else 0.0
        next_at = start + (n * interval / connections if rate else 0.0)
        while True:
            if rate:
                now = time.perf_counter()
                if next_at >= end:
                    break
                if next_at > now:
                    time.sleep(next_at - now)
                scheduled = next_at
                next_at += interval
            else:
                scheduled = time.perf_counter()
                if scheduled >= end:
                    break
            patient = patients[(n * 7919 + k) % len(patients)] if patients else ""
            k += 1
            try:
                body = None if method == "GET" else body_for(kind, patient)
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status >= 400:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine.append((time.perf_counter() - scheduled) * 1000)
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Answers per second from the start to the last answer (late answers included: in the
    # open loop an overloaded server finishes after the offered window).
    elapsed = max(1e-9, time.perf_counter() - start)
    ordered = sorted(latencies)

    def q(p: float) -> float:
        return (
            ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1)))] if ordered else float("nan")
        )

    print(
        json.dumps(
            {
                "requests": len(ordered),
                "rps": len(ordered) / elapsed,
                "p50": q(0.5),
                "p95": q(0.95),
                "p99": q(0.99),
                "errors": errors[0],
            }
        )
    )


if __name__ == "__main__":
    main()

"""Where a FHIR check-in's CPU goes, phase by phase: `python -m bench.checkin_phases --db
sqlite|postgresql [--patients 1000] [--requests 400]`.

The app as served (production settings, no output validation), called in this process
through ASGI with every hand-off to a worker thread run in the calling thread, so one thread
does all of a request's work and its CPU clock (time.thread_time) is the request's CPU.
Each phase (the token, the R4 check, access, storing, the risk rules, the task sync, the
audit and commit, the answer) is timed by a wrapper around its function, which costs
nothing a profiler's tracing would: the figures are the functions' own, not a profiler's
inflation of many small calls. A phase's time includes the phases it calls (the submit
holds most of the others). Prints a table; writes nothing."""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench import suite

# (module, function, label, modules that imported the function by name)
PHASES = [
    ("concord.accounts.tokens", "user_for_api_token", "token check", ["concord.web.deps"]),
    ("concord.fhir.measures", "parse_response", "R4 check and parse", ["concord.fhir.service"]),
    ("concord.access", "patient_for", "patient and access", []),
    ("concord.measures.service", "record_response", "score and store", []),
    ("concord.safety.alerts", "raise_for_response", "risk rules", ["concord.actions.checkin"]),
    ("concord.registry.jobs", "sync_patient_tasks", "task sync", ["concord.actions.checkin"]),
    (
        "concord.fhir.measures",
        "response_resource",
        "the answer's resource",
        ["concord.fhir.service"],
    ),
    (
        "concord.fhir.service",
        "submit_questionnaire_response",
        "submit (all of the above but the token)",
        ["concord.fhir.routes"],
    ),
    ("concord.fhir.routes", "finish_request", "audit and commit", []),
    ("concord.fhir.routes", "fhir_response", "the answer's JSON", []),
    ("concord.web.limits", "json_problems", "request limits' JSON walk", []),
]


def _wrap(spent: collections.Counter[str], module: str, name: str, label: str, also: list[str]):
    original = getattr(importlib.import_module(module), name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] += time.thread_time() - started

    for where in (module, *also):
        setattr(importlib.import_module(where), name, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    os.environ.setdefault("CONCORD_ENV", "development")  # for building the population

    from concord.accounts.tokens import create_api_token
    from concord.synth import CASE_MANAGER_EMAIL

    url, _ = suite.population(args.db, args.patients, quiet=True)
    suite.sync_tasks(url)
    other = CASE_MANAGER_EMAIL.replace("cm0@", "cm1@")
    token = suite._token(url, other, create_api_token)
    patients = suite.caseload_patients(url, suite._facts(url, other)["cm"])
    os.environ.update(
        {
            "CONCORD_DATABASE_URL": url,
            "CONCORD_ENV": "production",
            "CONCORD_WORKER_IN_PROCESS": "false",
            "CONCORD_BASE_URL": "http://bench",
            "CONCORD_SECRET_KEY": "bench-secret-key-for-the-benchmark-only-0123456789",
        }
    )
    import anyio.to_thread

    async def in_this_thread(fn: Callable[..., Any], *a: Any, **_kw: Any) -> Any:
        return fn(*a)

    anyio.to_thread.run_sync = in_this_thread  # type: ignore[assignment]
    from concord.app import create_app
    from concord.settings import Settings

    app = create_app(Settings())  # as served: production, read from the environment above
    spent: collections.Counter[str] = collections.Counter()
    for phase in PHASES:
        _wrap(spent, *phase)
    figures = asyncio.run(_run(app, token, patients, args.requests, spent))
    total, median = figures
    print(
        f"Check-in on {args.db}, {args.patients:,} patients, {args.requests} requests after "
        f"30 to warm up, commit {suite.commit()}: CPU {1000 * total:.3f} ms a request "
        f"(median {1000 * median:.3f})"
    )
    print("\n| phase | CPU ms a request | share |\n|---|---|---|")
    for label, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        share = seconds / args.requests / total
        print(f"| {label} | {1000 * seconds / args.requests:.3f} | {100 * share:.0f}% |")


async def _run(
    app: Any, token: str, patients: list[str], requests: int, spent: collections.Counter[str]
) -> tuple[float, float]:
    from bench.loadgen import body_for

    startup: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    started = asyncio.Event()

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    lifespan = asyncio.create_task(
        app(
            {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
            startup.get,
            lifespan_send,
        )
    )
    await started.wait()

    async def one(k: int) -> None:
        body = body_for("checkin", patients[k % len(patients)])
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/fhir/QuestionnaireResponse",
            "raw_path": b"/fhir/QuestionnaireResponse",
            "query_string": b"",
            "root_path": "",
            "client": ("127.0.0.1", 50000),
            "server": ("bench", 80),
            "headers": [
                (b"host", b"bench"),
                (b"content-type", b"application/fhir+json"),
                (b"authorization", f"Bearer {token}".encode()),
                (b"content-length", str(len(body)).encode()),
            ],
            "state": {},
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        status: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        assert status == [201], status

    for k in range(30):
        await one(k)
    spent.clear()
    each = []
    for k in range(requests):
        started_at = time.thread_time()
        await one(k)
        each.append(time.thread_time() - started_at)
    await startup.put({"type": "lifespan.shutdown"})
    lifespan.cancel()
    return sum(each) / requests, statistics.median(each)


if __name__ == "__main__":
    main()

"""How fast a care manager's caseload page is, on a large database.

    python bench/caseload.py [--url sqlite:///bench/data/caseload.db | postgresql://...]

Builds (once) the synthetic population of concord/synth.py (`concord synth`): by default
100,000 patients and 2,000,000 measurements, with the benchmark's care manager holding 150
active patients. Then it signs in as that care manager and times GET /registry (the whole
page: every query, the flags, the audit trail's 150 rows, the HTML) through the real app, and,
beside it, the best raw SQL for the same facts (bench/raw.py). The target (issue 5) is under
100 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

os.environ.setdefault("CONCORD_ENV", "development")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import text  # noqa: E402

from bench.raw import caseload_statements, run_all  # noqa: E402
from concord.synth import PASSWORD, build  # noqa: E402


def timed(fn, runs: int) -> list[float]:
    from bench.suite import timed as suite_timed

    return suite_timed(fn, runs, warm=0)  # this script warms up on its own


def describe(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return (
        f"median {statistics.median(times):6.1f} ms, p95 {p95:6.1f} ms, best {ordered[0]:6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="sqlite:///bench/data/caseload.db")
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--measurements", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from concord.app import create_app
    from concord.db import make_engine
    from concord.settings import Settings

    print(f"population: {args.patients} patients, {args.measurements} measurements at {args.url}")
    population = build(args.url, patients=args.patients, measurements=args.measurements)
    print(f"  found {population.patients} patients, {population.measurements} measurements")
    settings = Settings(
        env="test",
        database_url=args.url,
        base_url="http://bench",
        worker_in_process=False,
        freeze_heap=True,  # as a served app does (env=test turns it off by default)
        secret_key="bench-secret-key-for-the-benchmark-only-0123456789",
    )
    app = create_app(settings)
    with TestClient(app, base_url="http://bench") as client:
        page = client.get("/sign-in")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        signed = client.post(
            "/sign-in",
            data={
                "email": population.care_manager_email,
                "password": PASSWORD,
                "csrf_token": token,
            },
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text[:500]
        first = client.get("/registry?scope=mine&flags=")
        assert first.status_code == 200, first.text[:500]
        rows = first.text.count('<th scope="row">')
        print(f"  the caseload shows {rows} patients")
        for _ in range(3):
            client.get("/registry")  # warm
        page_times = timed(lambda: client.get("/registry"), args.runs)

    engine = make_engine(args.url)
    with engine.connect() as connection:
        cm = connection.execute(
            text("SELECT id FROM user_account WHERE email = :e"),
            {"e": population.care_manager_email},
        ).scalar()
        org = connection.execute(
            text("SELECT organization_id FROM user_account WHERE id = :u"), {"u": cm}
        ).scalar()
        statements = caseload_statements(engine.dialect.name)
        params = {"cm": cm, "org": org}
        raw_rows = run_all(connection, statements, params)[0]
        for _ in range(3):
            run_all(connection, statements, params)
        raw_times = timed(lambda: run_all(connection, statements, params), args.runs)
    engine.dispose()
    print(f"GET /registry (whole page, {rows} rows):      {describe(page_times)}")
    print(f"raw SQL, same facts ({len(raw_rows)} rows, no flags, no HTML): {describe(raw_times)}")
    verdict = "met" if statistics.median(page_times) < 100 else "NOT met"
    print(f"target: page under 100 ms (median) -> {verdict}")


if __name__ == "__main__":
    main()

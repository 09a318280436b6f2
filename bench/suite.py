"""The benchmark suite: `concord bench [--db sqlite|postgresql] [--patients N]`.

Each case is measured side by side with its baseline in the same run and reported as a ratio
(this machine is shared and noisy). The table is printed and written to docs/performance.md
with the machine, the date and the commit. The population comes from `concord synth` (built
once per size and engine, then reused).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
PG_SERVER = os.environ.get("CONCORD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


@dataclass
class Case:
    name: str
    measured: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None
    note: str = ""
    figures: dict[str, float] = field(default_factory=dict)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def timed(fn: Callable[[], Any], runs: int, warm: int = 3) -> list[float]:
    for _ in range(warm):
        fn()
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def database_url(db: str, patients: int) -> str:
    if db == "sqlite":
        DATA.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{DATA / f'synth-{patients}.db'}"
    from sqlalchemy import create_engine, text

    name = f"concord_bench_{patients}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).scalar()
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{PG_SERVER}/{name}"


def population(db: str, patients: int, *, quiet: bool = False) -> tuple[str, Any]:
    from concord.synth import build

    url = database_url(db, patients)
    started = time.perf_counter()
    pop = build(url, patients=patients, seed=7, quiet=quiet)
    pop.seconds = pop.seconds or (time.perf_counter() - started)
    return url, pop


def sync_tasks(url: str) -> int:
    """The population's tasks as the nightly run leaves them (`sync_all_tasks`), as a clinic's
    are. A synthetic population is written without tasks, so without this each patient's first
    check-in would open the tasks of flags that were there all along, a cost a clinic's
    check-ins do not pay, and the check-in case would measure that instead of the steady state.
    Idempotent: on a population already in step it only reads."""
    from concord.audit.service import set_context, write_pending
    from concord.db import make_engine, make_sessionmaker
    from concord.registry.jobs import sync_all_tasks

    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            set_context(session, channel="system")
            changed = sync_all_tasks(session)
            write_pending(session)
            session.commit()
    finally:
        engine.dispose()
    return changed


# --- in-process cases (through the real app, in this process) ----------------------------------


def _as_served(app: Any) -> Any:
    """The app as a server runs it. The test client offers the ASGI extension
    "http.response.debug" (so tests can read response.template and response.context), and
    Starlette's template responses then send the whole template context back into the client's
    closures: a reference cycle that keeps every object a page built (a caseload's rows, its
    ORM objects) until the garbage collector runs, which made the collector's pauses the
    caseload's p95 tail. uvicorn offers no such extension, so the benchmark does not either."""

    async def served(scope: dict[str, Any], receive: Any, send: Any) -> None:
        extensions = scope.get("extensions")
        if extensions and "http.response.debug" in extensions:
            scope = {
                **scope,
                "extensions": {k: v for k, v in extensions.items() if k != "http.response.debug"},
            }
        await app(scope, receive, send)

    return served


class App:
    """The real app on `url`, signed in as a care manager, for in-process timing."""

    def __init__(self, url: str, email: str, password: str) -> None:
        from fastapi.testclient import TestClient

        from concord.app import create_app
        from concord.settings import Settings

        settings = Settings(
            env="test",
            database_url=url,
            base_url="http://bench",
            worker_in_process=False,
            freeze_heap=True,
            secret_key="bench-secret-key-for-the-benchmark-only-0123456789",
        )
        self.client = TestClient(_as_served(create_app(settings)), base_url="http://bench")
        self.client.__enter__()
        page = self.client.get("/sign-in")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        signed = self.client.post(
            "/sign-in",
            data={"email": email, "password": password, "csrf_token": token},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text[:300]

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.client.get(path, **kwargs)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        return response

    def close(self) -> None:
        self.client.__exit__(None, None, None)


def _raw(url: str) -> Any:
    from concord.db import make_engine

    return make_engine(url)


def _facts(url: str, email: str) -> dict[str, Any]:
    from sqlalchemy import text

    engine = _raw(url)
    with engine.connect() as c:
        cm = c.execute(text("SELECT id FROM user_account WHERE email = :e"), {"e": email}).scalar()
        patient = c.execute(
            text(
                "SELECT e.patient_id FROM episode e WHERE e.care_manager_id = :cm "
                "AND e.ended_on IS NULL ORDER BY e.started_on LIMIT 1"
            ),
            {"cm": cm},
        ).scalar()
        org = c.execute(
            text("SELECT organization_id FROM user_account WHERE id = :u"), {"u": cm}
        ).scalar()
        since = c.execute(
            text("SELECT MIN(started_on) FROM episode WHERE care_manager_id = :cm"), {"cm": cm}
        ).scalar()
    engine.dispose()
    return {"cm": cm, "patient": patient, "org": org, "since": since}


def caseload_case(app: App, url: str, facts: dict[str, Any], runs: int) -> Case:
    from bench.raw import caseload_statements, run_all

    page = timed(lambda: app.get("/registry"), runs)
    engine = _raw(url)
    with engine.connect() as c:
        statements = caseload_statements(engine.dialect.name)
        params = {"cm": facts["cm"], "org": facts["org"]}
        raw = timed(lambda: run_all(c, statements, params), runs)
    engine.dispose()
    return _page_case("caseload page (150 patients)", page, raw, tail=0.95, raw_digits=1)


def patient_case(app: App, url: str, facts: dict[str, Any], runs: int) -> Case:
    from bench.raw import patient_statements, run_all

    path = f"/patients/{facts['patient']}"
    page = timed(lambda: app.get(path), runs)
    engine = _raw(url)
    with engine.connect() as c:
        statements = patient_statements()
        params = {"p": facts["patient"], "u": facts["cm"]}
        raw = timed(lambda: run_all(c, statements, params), runs)
    engine.dispose()
    return _page_case(
        "one patient's page (plan, chart, alerts)", page, raw, tail=0.99, raw_digits=2
    )


def _page_case(
    name: str, page: list[float], raw: list[float], *, tail: float, raw_digits: int
) -> Case:
    """A page against the raw SQL for its rows: p95 under 100 ms and within 3x, whichever
    tail percentile is shown."""
    p50, shown, r50 = statistics.median(page), pct(page, tail), statistics.median(raw)
    label = f"p{round(tail * 100)}"
    ratio = p50 / r50
    return Case(
        name,
        f"p50 {p50:.1f} ms, {label} {shown:.1f} ms",
        f"raw SQL p50 {r50:.{raw_digits}f} ms",
        ratio,
        "p95 < 100 ms; within 3x of raw SQL",
        pct(page, 0.95) < 100 and ratio <= 3,
        figures={"p50": p50, label: shown, "raw_p50": r50},
    )


def fhir_case(app: App, url: str, facts: dict[str, Any], token: str, runs: int) -> Case:
    from sqlalchemy import text

    pid = facts["patient"]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    search = timed(
        lambda: app.get(f"/fhir/Observation?patient={pid}&code=44261-6", headers=headers), runs
    )
    bundle = app.get(f"/fhir/Observation?patient={pid}&code=44261-6", headers=headers).json()
    first = bundle["entry"][0]["resource"]["id"]
    read = timed(lambda: app.get(f"/fhir/Observation/{first}", headers=headers), runs)
    engine = _raw(url)
    with engine.connect() as c:
        sql = text(
            "SELECT id, value, effective_at FROM measure_observation "
            "WHERE patient_id = :p AND code = '44261-6' ORDER BY effective_at DESC LIMIT 50"
        )
        raw = timed(lambda: c.execute(sql, {"p": pid}).all(), runs)
    engine.dispose()
    s50, s99, r50 = statistics.median(search), pct(search, 0.99), statistics.median(raw)
    d50, d99 = statistics.median(read), pct(read, 0.99)
    return Case(
        "FHIR Observation search (patient, code) and read",
        f"search p50 {s50:.1f} ms, p99 {s99:.1f} ms; read p50 {d50:.1f} ms, p99 {d99:.1f} ms",
        f"raw SQL p50 {r50:.2f} ms",
        s50 / r50,
        "(no target; reported)",
        None,
        figures={"search_p50": s50, "read_p50": d50, "raw_p50": r50},
    )


def outcomes_case(app: App, url: str, facts: dict[str, Any], runs: int) -> Case:
    from sqlalchemy import text

    page = timed(lambda: app.get("/registry/program"), runs, warm=1)
    engine = _raw(url)
    # Response and remission at 10-24 weeks for the organization, in one statement.
    sql = text(
        """
        WITH open_ep AS (
          SELECT e.patient_id, e.started_on FROM episode e
          WHERE e.organization_id = :org AND e.ended_on IS NULL
            AND e.program IN ('depression', 'co_occurring')
        ), phq AS (
          SELECT o.patient_id, o.value, o.effective_at,
                 ROW_NUMBER() OVER (PARTITION BY o.patient_id ORDER BY o.effective_at) AS f,
                 ROW_NUMBER() OVER (PARTITION BY o.patient_id ORDER BY o.effective_at DESC) AS l
          FROM measure_observation o JOIN open_ep e ON e.patient_id = o.patient_id
          WHERE o.instrument = 'PHQ-9' AND o.score_id = 'total' AND o.effective_at >= :since
        )
        SELECT COUNT(*),
               SUM(CASE WHEN l.value <= b.value / 2 THEN 1 ELSE 0 END),
               SUM(CASE WHEN l.value < 5 THEN 1 ELSE 0 END)
        FROM phq b JOIN phq l ON l.patient_id = b.patient_id AND l.l = 1
        WHERE b.f = 1
        """
    )
    since = datetime(2025, 1, 1, tzinfo=UTC)
    if engine.dialect.name == "sqlite":
        since = since.replace(tzinfo=None)
    with engine.connect() as c:
        raw = timed(
            lambda: c.execute(sql, {"org": facts["org"], "since": since}).all(), runs, warm=1
        )
    engine.dispose()
    p50, r50 = statistics.median(page) / 1000, statistics.median(raw) / 1000
    ratio = p50 / r50
    return Case(
        "program outcome figures (response, remission at 10-24 weeks)",
        f"{p50:.2f} s",
        f"raw SQL aggregate {r50:.2f} s",
        ratio,
        "under 2 s; within 2x of raw SQL",
        p50 < 2 and ratio <= 2,
        figures={"seconds": p50, "raw_seconds": r50},
    )


def load_case(db: str, patients: int) -> Case:
    """Build a fresh population (at most 20,000 patients: ~400,000 scores) into a scratch
    database, then write the same score rows through the engine's raw bulk path."""
    from sqlalchemy import create_engine, text

    from concord.synth import build, copy_same_rows

    size = min(patients, 20_000)
    if db == "sqlite":
        path = DATA / "load-scratch.db"
        path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text('DROP DATABASE IF EXISTS "concord_bench_load" WITH (FORCE)'))
            c.execute(text('CREATE DATABASE "concord_bench_load"'))
        url = f"{PG_SERVER}/concord_bench_load"
    try:
        pop = build(url, patients=size, seed=9, quiet=True)
        baseline = copy_same_rows(url)
        without_keys = copy_same_rows(url, foreign_keys=False)
    finally:
        if db == "sqlite":
            (DATA / "load-scratch.db").unlink(missing_ok=True)
        else:
            with admin.connect() as c:
                c.execute(text('DROP DATABASE IF EXISTS "concord_bench_load" WITH (FORCE)'))
            admin.dispose()
    rows, seconds = (pop.timings or {})["measure_observation"]
    rate = rows / seconds
    whole = pop.rows / pop.seconds
    best = max(baseline, without_keys)  # the ratio is against the faster raw path
    return Case(
        f"bulk load of the synthetic population ({size:,} patients)",
        f"{rate:,.0f} rows/s (scores, foreign keys checked); {whole:,.0f} rows/s over every "
        f"table ({pop.rows:,} rows in {pop.seconds:.0f} s, generation included)",
        f"raw bulk path of the same score rows: into a table with the same indexes and foreign "
        f"keys {baseline:,.0f} rows/s; with the indexes only (no key checked) "
        f"{without_keys:,.0f} rows/s",
        rate / best,
        ">= 50% of COPY rows/s",
        rate / best >= 0.5,
        figures={"rows_per_s": rate, "baseline": baseline, "without_keys": without_keys},
    )


# --- over HTTP, with a separate server and a separate load generator ---------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(app: str, url: str, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONCORD_DATABASE_URL": url,
        "CONCORD_ENV": "production",
        "CONCORD_WORKER_IN_PROCESS": "false",
        "CONCORD_BASE_URL": f"http://127.0.0.1:{port}",
        "CONCORD_SECRET_KEY": "bench-secret-key-for-the-benchmark-only-0123456789",
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "concord.server",
            app,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        cwd=ROOT,
    )
    import urllib.request

    # Up to two minutes: on a loaded machine (a parallel test run) importing the app alone can
    # take tens of seconds; a server that exits early is reported at once.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{app} exited with {process.returncode} before it started")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except Exception:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{app} did not start in 120 s")


def _load(
    port: int,
    kind: str,
    token: str,
    patients: list[str],
    seconds: float,
    rate: float | None,
    connections: int,
) -> dict[str, Any]:
    """Run the load generator in its own process; returns its figures."""
    args = {
        "port": port,
        "kind": kind,
        "token": token,
        "patients": patients,
        "seconds": seconds,
        "rate": rate,
        "connections": connections,
    }
    out = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def caseload_patients(url: str, care_manager: Any) -> list[str]:
    """The ids of one care manager's patients: the ones the load generator submits for."""
    from sqlalchemy import text

    engine = _raw(url)
    with engine.connect() as c:
        patients = [
            str(p)
            for p in c.execute(
                text("SELECT patient_id FROM episode WHERE care_manager_id = :cm"),
                {"cm": care_manager},
            ).scalars()
        ]
    engine.dispose()
    return patients


def _cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu(process: subprocess.Popen[bytes]) -> float:
    """CPU of a server and its worker processes (`--workers N` forks them)."""
    pids = [process.pid]
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0.0
    for pid in pids:
        try:
            total += _cpu_seconds(pid)
        except (OSError, ValueError, IndexError):
            pass
    return total


ROUNDS = 3


def _throughput(
    url: str, token: str, patients: list[str], seconds: float, workers: int
) -> dict[str, Any]:
    """The bare endpoint and Concord, each served with `workers` processes, at full speed, in
    ROUNDS rounds that alternate between them (this machine's speed drifts by a factor of two
    within minutes, so one long run of each would compare two different machines); each
    round's ratio is kept and the median reported, with the servers' CPU per request. Then
    Concord at 200 requests a second offered (open loop)."""
    concord_port, bare_port = _free_port(), _free_port()
    concord = _serve("concord.asgi:app", url, concord_port, workers)
    bare = _serve("bench.bare:app", url, bare_port, workers)
    connections = 8 * workers
    per_round = max(1.0, seconds / ROUNDS)
    try:
        ping = _load(bare_port, "ping", token, patients, per_round / 2, None, connections)
        rounds: list[dict[str, Any]] = []
        for _ in range(ROUNDS):
            measured: dict[str, Any] = {}
            for name, port, server, kind in (
                ("bare", bare_port, bare, "bare"),
                ("concord", concord_port, concord, "checkin"),
            ):
                before = _tree_cpu(server)
                result = _load(port, kind, token, patients, per_round, None, connections)
                spent = _tree_cpu(server) - before
                result["cpu_ms"] = 1000 * spent / max(1, result["requests"])
                measured[name] = result
            measured["ratio"] = measured["concord"]["rps"] / measured["bare"]["rps"]
            rounds.append(measured)
        middle = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]
        return {
            "ping": ping,
            "bare": middle["bare"],
            "concord": middle["concord"],
            "ratios": [r["ratio"] for r in rounds],
            "at_200": _load(concord_port, "checkin", token, patients, seconds, 200.0, 16),
        }
    finally:
        for process in (concord, bare):
            process.terminate()
            process.wait(timeout=10)


def checkin_case(
    url: str, facts: dict[str, Any], token: str, seconds: float, workers: int = 1
) -> Case:
    """One app process against the bare endpoint in one process (the ratio the target names);
    on PostgreSQL also the production shape, two processes each (`concord serve --workers 2`),
    whose answer at 200 req/s is the one reported."""
    patients = caseload_patients(url, facts["cm"])
    one = _throughput(url, token, patients, seconds, 1)
    many = _throughput(url, token, patients, seconds, workers) if workers > 1 else None
    ratio = one["concord"]["rps"] / one["bare"]["rps"]
    at_200 = (many or one)["at_200"]
    shape = f"{workers} processes" if many else "1 process"
    rounds = ", ".join(f"{r:.2f}" for r in one["ratios"])
    measured = (
        f"1 process: {one['concord']['rps']:.0f} req/s max (p95 {one['concord']['p95']:.0f} ms; "
        f"server CPU {one['concord']['cpu_ms']:.2f} ms a request)"
    )
    baseline = (
        f"bare INSERT endpoint, 1 process: {one['bare']['rps']:.0f} req/s (server CPU "
        f"{one['bare']['cpu_ms']:.2f} ms a request; generator alone: {one['ping']['rps']:.0f} "
        f"req/s); the median of {ROUNDS} alternating rounds (ratios {rounds})"
    )
    if many:
        measured += (
            f"; {workers} processes: {many['concord']['rps']:.0f} req/s max "
            f"(p95 {many['concord']['p95']:.0f} ms)"
        )
        baseline += (
            f"; {workers} processes: {many['bare']['rps']:.0f} req/s "
            f"(generator alone: {many['ping']['rps']:.0f} req/s)"
        )
    measured += (
        f"; at 200 req/s offered ({shape}): {at_200['rps']:.0f} answered a second, "
        f"p95 {at_200['p95']:.0f} ms, {at_200['errors']} errors"
    )
    figures = {
        "max_rps": one["concord"]["rps"],
        "bare_rps": one["bare"]["rps"],
        "ping_rps": one["ping"]["rps"],
        "cpu_ms": one["concord"]["cpu_ms"],
        "bare_cpu_ms": one["bare"]["cpu_ms"],
        "p95_at_200": at_200["p95"],
    }
    if many:
        figures |= {
            "max_rps_workers": many["concord"]["rps"],
            "bare_rps_workers": many["bare"]["rps"],
            "ratio_workers": many["concord"]["rps"] / many["bare"]["rps"],
        }
        measured += f" (ratio with {workers} processes each: {figures['ratio_workers']:.2f})"
    return Case(
        "check-in submit over HTTP (score, store, alert rules, audit)",
        measured,
        baseline,
        ratio,
        ">= 40% of the bare endpoint; p95 < 50 ms at 200 req/s",
        ratio >= 0.4 and at_200["p95"] < 50 and at_200["errors"] == 0,
        figures=figures,
    )


# --- the run -------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} CPU ({cpu}), {memory} RAM, Python {platform.python_version()}"


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def run(
    db: str,
    patients: int,
    *,
    runs: int = 30,
    http_seconds: float = 10.0,
    scaling: list[int] | None = None,
    write: bool = True,
    quiet: bool = False,
) -> list[Case]:
    from concord.accounts.tokens import create_api_token
    from concord.synth import CASE_MANAGER_EMAIL, PASSWORD

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    say(f"population: {patients:,} patients on {db}")
    url, pop = population(db, patients, quiet=quiet)
    say("tasks brought up to date (the nightly run)")
    sync_tasks(url)
    facts = _facts(url, CASE_MANAGER_EMAIL)
    token = _token(url, CASE_MANAGER_EMAIL, create_api_token)
    app = App(url, CASE_MANAGER_EMAIL, PASSWORD)
    cases = []
    try:
        say("caseload")
        cases.append(caseload_case(app, url, facts, runs))
        say("patient page")
        cases.append(patient_case(app, url, facts, runs))
        say("FHIR")
        cases.append(fhir_case(app, url, facts, token, runs))
        say("program outcome figures")
        cases.append(outcomes_case(app, url, facts, max(3, runs // 6)))
    finally:
        app.close()
    say("bulk load baseline")
    cases.append(load_case(db, patients))
    curve = scaling_curve(db, scaling, runs, say) if scaling else None
    # Last, and for another care manager's patients: the check-ins it writes must not change
    # the caseload the other cases measure.
    say("check-in submit over HTTP")
    other = CASE_MANAGER_EMAIL.replace("cm0@", "cm1@")
    cases.append(
        checkin_case(
            url,
            _facts(url, other),
            _token(url, other, create_api_token),
            http_seconds,
            workers=2 if db == "postgresql" else 1,
        )
    )
    report = render(db, patients, pop, cases, curve)
    print(report)
    if write:
        write_report(db, report, curve)
    return cases


def _token(url: str, email: str, create: Any) -> str:
    from sqlalchemy import select

    from concord.accounts.models import User
    from concord.audit.service import set_context, write_pending
    from concord.db import make_engine, make_sessionmaker

    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    with factory() as session:
        set_context(session, channel="system")
        user = session.scalar(select(User).where(User.email == email))
        token, _ = create(session, user=user, by=None, name="bench")
        write_pending(session)
        session.commit()
    engine.dispose()
    return token


def scaling_curve(
    db: str, sizes: list[int], runs: int, say: Callable[..., None]
) -> dict[int, dict[str, float]]:
    """The caseload and patient page at each population size. The sizes take turns, a few
    pages each, ROUNDS times over (this machine's speed drifts within minutes: measured one
    size after another, the drift showed as a cost of size); the median of all of a size's
    pages is reported."""
    from concord.synth import CASE_MANAGER_EMAIL, PASSWORD

    apps: dict[int, tuple[App, str]] = {}
    pages: dict[int, dict[str, list[float]]] = {}
    try:
        for size in sizes:
            say(f"scaling: {size:,} patients")
            url, _ = population(db, size, quiet=True)
            facts = _facts(url, CASE_MANAGER_EMAIL)
            apps[size] = (App(url, CASE_MANAGER_EMAIL, PASSWORD), f"/patients/{facts['patient']}")
            pages[size] = {"caseload": [], "patient": []}
        batch = max(1, runs // ROUNDS)
        for _ in range(ROUNDS):
            for size, (app, path) in apps.items():
                pages[size]["caseload"] += timed(lambda app=app: app.get("/registry"), batch)
                pages[size]["patient"] += timed(lambda app=app, path=path: app.get(path), batch)
    finally:
        for app, _ in apps.values():
            app.close()
    return {
        size: {name: statistics.median(times) for name, times in measured.items()}
        for size, measured in pages.items()
    }


def render(
    db: str, patients: int, pop: Any, cases: list[Case], curve: dict[int, dict[str, float]] | None
) -> str:
    lines = [
        f"### {db}: {patients:,} patients, {pop.measurements:,} measurements",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · commit {commit()} · {machine()}",
        "",
        "| case | measured | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for c in cases:
        met = "—" if c.met is None else ("yes" if c.met else "**no**")
        ratio = "—" if c.ratio is None else f"{c.ratio:.2f}"
        lines.append(f"| {c.name} | {c.measured} | {c.baseline} | {ratio} | {c.target} | {met} |")
    if curve:
        lines += [
            "",
            "Scaling (p50, ms):",
            "",
            "| patients | caseload | patient page |",
            "|---|---|---|",
        ]
        for size, row in sorted(curve.items()):
            lines.append(f"| {size:,} | {row['caseload']:.1f} | {row['patient']:.1f} |")
        sizes = sorted(curve)
        if len(sizes) >= 2:
            low, high = curve[sizes[0]], curve[sizes[-1]]
            for key in ("caseload", "patient"):
                ratio = high[key] / low[key]
                lines.append(
                    f"\n{key}: p50 at {sizes[-1]:,} is {ratio:.2f}x the p50 at {sizes[0]:,} "
                    f"(target at most 2x: {'met' if ratio <= 2 else 'NOT met'})"
                )
    return "\n".join(lines) + "\n"


def write_report(db: str, section: str, curve: dict[int, dict[str, float]] | None) -> None:
    path = ROOT / "docs" / "performance.md"
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    start_marker, end_marker = f"<!-- bench:{db} -->", f"<!-- /bench:{db} -->"
    block = f"{start_marker}\n{section}{end_marker}"
    if start_marker in text and end_marker in text:
        before, rest = text.split(start_marker, 1)
        _, after = rest.split(end_marker, 1)
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
    if curve:
        plot(db, curve)


def plot(db: str, curve: dict[int, dict[str, float]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "matplotlib is not installed: no scaling plot (pip install matplotlib)", file=sys.stderr
        )
        return
    sizes = sorted(curve)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, label in (
        ("caseload", "caseload page (150 patients)"),
        ("patient", "one patient's page"),
    ):
        ax.plot(sizes, [curve[s][key] for s in sizes], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("patients in the database")
    ax.set_ylabel("p50 (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Concord on {db}: cost as the population grows")
    ax.legend()
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / f"scaling-{db}.png", dpi=110)
    plt.close(fig)


HEADER = """# Performance

Written by `concord bench` (code in `bench/`): each case beside its baseline in the same run,
as a ratio, on the machine named in each section. Re-run to refresh a section.

How to read it: the baseline is the best the machine can do for the same work without Concord
(the same rows by raw SQL, an endpoint of the same framework doing one INSERT, the engine's own
bulk path), so the ratio is Concord's overhead, which is what we can change.
"""

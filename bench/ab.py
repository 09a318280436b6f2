"""Two commits side by side: `python -m bench.ab [--old c7c4681] [--new HEAD] [--db ...]`.

This machine's speed drifts by a factor of two within minutes and others run tests on it, so
two runs of `concord bench` at different moments compare two machines. Here both commits are
measured in one run, taking turns (old, new, new, old, old, new, ...), many short rounds, and
the median of each case is reported with new/old, beside the bare endpoint measured in the same
rounds:

- each commit is checked out in its own temporary worktree (`git worktree add --detach
  /tmp/ab-old-<db> <commit>`, `/tmp/ab-new-<db>`) and runs from there (its own PYTHONPATH, the same
  interpreter), on its own population (`concord synth`, the same seed and size; each commit
  migrates its own schema), so neither reads code or rows of the other;
- before timing, each population's tasks are brought up to date by the nightly run
  (`sync_all_tasks`), as a clinic's are;
- the in-process cases of `concord bench` (caseload page, patient page, FHIR search and read,
  program figures) and a check-in (FHIR `POST /QuestionnaireResponse`) are run by an agent
  process per commit, through that commit's real app: per request the wall clock, the agent
  process's CPU (what the machine's other load moves least; the verdict is by it) and the SQL
  statements (a figure the load does not move at all);
- the check-in over HTTP as `concord bench` measures it: each commit's app served by uvicorn
  in its own process, driven at full speed by the load generator, and the bare INSERT endpoint
  in the same rounds; the server's CPU per request (from /proc) and requests a second, and the
  ratio to the bare endpoint (requests a second, as `concord bench` reports it).

The worktrees are removed at the end (--keep leaves them). Nothing is written to docs/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("CONCORD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
MARK = "@@ab "

# Runs inside each commit's worktree (its bench.suite and concord), answering one JSON line
# per command read from stdin. Only what both commits' bench/suite.py have is used.
AGENT = r"""
import json, sys, time, statistics, uuid
from bench import suite
from concord.synth import CASE_MANAGER_EMAIL, PASSWORD, build
try:
    from concord.accounts.tokens import create_api_token
except ImportError:  # before the accounts split
    from concord.accounts.service import create_api_token

url, patients = sys.argv[1], int(sys.argv[2])
pop = build(url, patients=patients, seed=7, quiet=True)
# The tasks as the nightly run leaves them (both commits have it): a synthetic population has
# none, so without this each patient's first check-in would open the tasks of flags that
# were there all along, a cost a clinic's check-ins do not pay.
from concord.audit.service import set_context, write_pending
from concord.db import make_engine, make_sessionmaker
from concord.registry.jobs import sync_all_tasks
_engine = make_engine(url)
with make_sessionmaker(_engine)() as _s:
    set_context(_s, channel="system")
    sync_all_tasks(_s)
    write_pending(_s)
    _s.commit()
_engine.dispose()
facts = suite._facts(url, CASE_MANAGER_EMAIL)
token = suite._token(url, CASE_MANAGER_EMAIL, create_api_token)
other = CASE_MANAGER_EMAIL.replace("cm0@", "cm1@")
other_facts = suite._facts(url, other)
http_token = suite._token(url, other, create_api_token)
http_patients = suite.caseload_patients(url, other_facts["cm"])
app = suite.App(url, CASE_MANAGER_EMAIL, PASSWORD)
pid = facts["patient"]
fhir = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
search = f"/fhir/Observation?patient={pid}&code=44261-6"
first = app.get(search, headers=fhir).json()["entry"][0]["resource"]["id"]
from bench.loadgen import body_for
statements = [0]
from sqlalchemy import event
from sqlalchemy.engine import Engine
@event.listens_for(Engine, "before_cursor_execute")
def _count(*a, **k):
    statements[0] += 1
checkin_patients = suite.caseload_patients(url, facts["cm"])
k = [0]
def checkin():
    k[0] += 1
    body = body_for("checkin", checkin_patients[k[0] % len(checkin_patients)])
    r = app.client.post("/fhir/QuestionnaireResponse", content=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
    assert r.status_code in (200, 201), (r.status_code, r.text[:300])
cases = {
    "caseload": lambda: app.get("/registry"),
    "patient": lambda: app.get(f"/patients/{pid}"),
    "fhir_search": lambda: app.get(search, headers=fhir),
    "fhir_read": lambda: app.get(f"/fhir/Observation/{first}", headers=fhir),
    "program": lambda: app.get("/registry/program"),
    "checkin": checkin,
}
print("@@ab " + json.dumps({"token": http_token, "patients": http_patients}), flush=True)
def timed(fn, runs, warm):
    # Wall clock and this process's CPU (every thread: the app's and the test client's) per
    # request, and the SQL statements the requests ran.
    for _ in range(warm):
        fn()
    times, cpu, before = [], [], statements[0]
    for _ in range(runs):
        wall, used = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - used) * 1000)
        times.append((time.perf_counter() - wall) * 1000)
    return {"times": times, "cpu": cpu, "statements": (statements[0] - before) / runs}
for line in sys.stdin:
    cmd = json.loads(line)
    fn = cases[cmd["case"]]
    got = timed(fn, cmd["runs"], warm=3 if cmd["case"] == "checkin" else 1)
    print("@@ab " + json.dumps(got), flush=True)
app.close()
"""


class Side:
    """One commit: its worktree, its population, its agent and its server."""

    def __init__(
        self, name: str, ref: str, db: str, patients: int, keep: bool, fresh: bool
    ) -> None:
        self.name, self.ref, self.db = name, ref, db
        # One pair per engine, so a run on each can go at once.
        self.dir = Path(f"/tmp/ab-{name}-{db}")
        if self.dir.exists():
            subprocess.run(["git", "worktree", "remove", "--force", str(self.dir)], cwd=ROOT)
            shutil.rmtree(self.dir, ignore_errors=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(self.dir), ref],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        self.commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=self.dir,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        self.keep = keep
        self.url = _database(db, self.commit, patients, fresh)
        self.env = {
            **os.environ,
            "PYTHONPATH": str(self.dir),
            "CONCORD_ENV": "development",
        }
        self.agent = subprocess.Popen(
            [sys.executable, "-c", AGENT, self.url, str(patients)],
            cwd=self.dir,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hello = self._read()
        self.token, self.patients = hello["token"], hello["patients"]
        self.server: subprocess.Popen[bytes] | None = None
        self.port = 0

    def _read(self) -> dict[str, Any]:
        assert self.agent.stdout is not None
        for line in self.agent.stdout:
            if line.startswith(MARK):
                return json.loads(line[len(MARK) :])
        raise RuntimeError(f"the {self.name} agent stopped (exit {self.agent.wait()})")

    def time(self, case: str, runs: int) -> dict[str, Any]:
        assert self.agent.stdin is not None
        self.agent.stdin.write(json.dumps({"case": case, "runs": runs}) + "\n")
        self.agent.stdin.flush()
        return self._read()

    def serve(self, app: str = "concord.asgi:app") -> None:
        self.port = _free_port()
        self.server = _serve(app, self.url, self.port, self.dir)

    def close(self) -> None:
        for process in (self.server, self.agent):
            if process is None:
                continue
            if process is self.agent and self.agent.stdin:
                self.agent.stdin.close()
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        if not self.keep:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(self.dir)],
                cwd=ROOT,
                capture_output=True,
            )


DATA = Path("/tmp/ab-data")


def _database(db: str, name: str, patients: int, fresh: bool) -> str:
    """Each commit's population (`name` is the commit), kept between runs (building one takes
    a while); --fresh builds them again."""
    if db == "sqlite":
        DATA.mkdir(parents=True, exist_ok=True)
        path = DATA / f"{name}-{patients}.db"
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    from sqlalchemy import create_engine, text

    database = f"concord_ab_{name}_{patients}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        if fresh:
            c.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        if not c.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": database}
        ).scalar():
            c.execute(text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    return f"{PG_SERVER}/{database}"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(app: str, url: str, port: int, where: Path) -> subprocess.Popen[bytes]:
    import urllib.request

    env = {
        **os.environ,
        "CONCORD_DATABASE_URL": url,
        "CONCORD_ENV": "production",
        "CONCORD_WORKER_IN_PROCESS": "false",
        "CONCORD_BASE_URL": f"http://127.0.0.1:{port}",
        "CONCORD_SECRET_KEY": "bench-secret-key-for-the-benchmark-only-0123456789",
        "PYTHONPATH": str(where),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "concord.server", app, "--port", str(port)], env=env, cwd=where
    )
    # Up to three minutes: on a loaded machine importing the app alone can take a minute.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{app} exited with {process.returncode} in {where}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except Exception:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{app} did not start in {where} in 180 s")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drive(
    side: Side, kind: str, port: int, server: subprocess.Popen[bytes], seconds: float
) -> dict[str, Any]:
    """Full speed for `seconds` with 8 connections; requests a second and server CPU a request."""
    args = {
        "port": port,
        "kind": kind,
        "token": side.token,
        "patients": side.patients,
        "seconds": seconds,
        "rate": None,
        "connections": 8,
    }
    before = _cpu(server.pid)
    out = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cpu_ms"] = 1000 * (_cpu(server.pid) - before) / max(1, result["requests"])
    return result


CASES = ("caseload", "patient", "fhir_search", "fhir_read", "program", "checkin")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old", default="c7c4681", help="the commit before (default c7c4681)")
    parser.add_argument("--new", default="HEAD", help="the commit after (default HEAD)")
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=9, help="rounds of the in-process cases")
    parser.add_argument("--runs", type=int, default=10, help="requests per case per round")
    parser.add_argument("--http-rounds", type=int, default=7, help="0 skips the HTTP case")
    parser.add_argument("--http-seconds", type=float, default=4.0, help="per server per round")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--keep", action="store_true", help="leave the worktrees")
    parser.add_argument("--fresh", action="store_true", help="build both populations again")
    args = parser.parse_args()
    say = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    sides: list[Side] = []
    try:
        for name, ref in (("old", args.old), ("new", args.new)):
            say(f"{name}: worktree at {ref}, population of {args.patients:,} on {args.db}")
            sides.append(Side(name, ref, args.db, args.patients, args.keep, args.fresh))
        old, new = sides
        cases = [c for c in args.cases.split(",") if c]
        times: dict[str, dict[str, list[float]]] = {c: {"old": [], "new": []} for c in cases}
        cpu: dict[str, dict[str, list[float]]] = {c: {"old": [], "new": []} for c in cases}
        stmts: dict[str, dict[str, list[float]]] = {c: {"old": [], "new": []} for c in cases}
        for r in range(args.rounds):
            order = sides if r % 2 == 0 else sides[::-1]
            for case in cases:
                runs = max(2, args.runs // 4) if case == "program" else args.runs
                for side in order:
                    got = side.time(case, runs)
                    times[case][side.name] += got["times"]
                    cpu[case][side.name] += got["cpu"]
                    stmts[case][side.name].append(got["statements"])
            say(f"round {r + 1}/{args.rounds} done")
        http: dict[str, list[dict[str, Any]]] = {"old": [], "new": [], "bare": []}
        if args.http_rounds:
            # The in-process figures first, so a failure over HTTP does not lose them.
            say(report(args, old, new, times, cpu, stmts, http))
            for side in sides:
                side.serve()
            bare_port = _free_port()
            bare = _serve("bench.bare:app", new.url, bare_port, new.dir)
            try:
                for r in range(args.http_rounds):
                    order = [("bare", new, bare_port, bare, "bare")]
                    pair = [(s.name, s, s.port, s.server, "checkin") for s in sides]
                    order += pair if r % 2 == 0 else pair[::-1]
                    for name, side, port, server, kind in order:
                        assert server is not None
                        http[name].append(_drive(side, kind, port, server, args.http_seconds))
                    say(f"http round {r + 1}/{args.http_rounds} done")
            finally:
                bare.terminate()
                bare.wait(timeout=10)
        print(report(args, old, new, times, cpu, stmts, http))
    finally:
        for side in sides:
            side.close()


def report(
    args: argparse.Namespace,
    old: Side,
    new: Side,
    times: dict[str, dict[str, list[float]]],
    cpu_in: dict[str, dict[str, list[float]]],
    stmts: dict[str, dict[str, list[float]]],
    http: dict[str, list[dict[str, Any]]],
) -> str:
    from bench.suite import machine

    med = statistics.median
    lines = [
        f"A/B on {args.db}, {args.patients:,} patients: old {old.commit} ({args.old}), new "
        f"{new.commit} ({args.new}); {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; "
        f"{machine()}",
        f"In process: {args.rounds} rounds taking turns, {args.runs} requests a case a round "
        "(program figures fewer); medians of all requests. CPU: the agent process's (the app "
        "and the test client, every thread; on PostgreSQL the database server's is not in it), "
        "the figure the machine's other load moves least; the verdict is by CPU. Statements: "
        "SQL statements a request (BEGIN included).",
        "",
        "| case | old CPU ms | new CPU ms | CPU new/old | old p50 ms | new p50 ms | "
        "statements old, new | verdict (CPU) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {
        "caseload": "caseload page",
        "patient": "patient page",
        "fhir_search": "FHIR Observation search",
        "fhir_read": "FHIR Observation read",
        "program": "program outcome figures",
        "checkin": "check-in (FHIR POST, in process)",
    }
    for case, by in times.items():
        if not by["old"]:
            continue
        o, n = med(by["old"]), med(by["new"])
        co, cn = med(cpu_in[case]["old"]), med(cpu_in[case]["new"])
        so, sn = med(stmts[case]["old"]), med(stmts[case]["new"])
        verdict = "slower by more than 10%" if cn / co > 1.10 else "within 10% or faster"
        lines.append(
            f"| {names[case]} | {co:.2f} | {cn:.2f} | {cn / co:.2f} | {o:.2f} | {n:.2f} | "
            f"{so:.1f}, {sn:.1f} | {verdict} |"
        )
    if http["bare"]:
        lines += [
            "",
            f"Check-in over HTTP: {args.http_rounds} rounds of {args.http_seconds:.0f} s a "
            "server (bare, then old and new taking turns), one process each, 8 connections; "
            "medians over rounds; ratio = requests a second / the bare endpoint's in the same "
            "round (as `concord bench`).",
            "",
            "| server | req/s | server CPU ms a request | p95 ms | ratio to bare (median; "
            "rounds) | errors |",
            "|---|---|---|---|---|---|",
        ]
        for name in ("bare", "old", "new"):
            rs = http[name]
            ratios = [x["rps"] / b["rps"] for x, b in zip(rs, http["bare"], strict=True)]
            shown = (
                "—"
                if name == "bare"
                else (f"{med(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)})")
            )
            lines.append(
                f"| {name} | {med([x['rps'] for x in rs]):.0f} | "
                f"{med([x['cpu_ms'] for x in rs]):.2f} | {med([x['p95'] for x in rs]):.0f} | "
                f"{shown} | {sum(x['errors'] for x in rs)} |"
            )
        cpu = {n: med([x["cpu_ms"] for x in http[n]]) for n in ("bare", "old", "new")}
        lines.append(
            f"\nCPU ratio (bare CPU / check-in CPU a request): old {cpu['bare'] / cpu['old']:.2f}, "
            f"new {cpu['bare'] / cpu['new']:.2f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

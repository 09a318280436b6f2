"""Production shape: two app processes and one worker against one PostgreSQL database.

Each process is a real `concord serve` (or `concord worker`) started the way an operator
starts it, configured only by CONCORD_* settings. Nothing is shared between them but the
database: sessions, CSRF tokens, alerts, the outbox and the worker's timers all live there,
so a person can sign in on one process and carry on on the other, and the worker acts on
what either of them wrote.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from concord.audit.service import set_context, verify, write_pending
from concord.clock import SystemClock, set_clock
from concord.db import make_engine, make_sessionmaker
from concord.migrate import upgrade
from concord.safety.models import AlertEvent, SafetyAlert
from tests.conftest import csrf_of, fresh_database
from tests.factories import PASSWORD, build_personas, create_plan

pytestmark = pytest.mark.skipif(
    not os.environ.get("CONCORD_TEST_DATABASE_URL", "").startswith("postgres"),
    reason="several app processes need PostgreSQL (set CONCORD_TEST_DATABASE_URL); "
    "SQLite serves one process",
)

CM = "cara@test.example.org"
PATIENT = "pat@patients.example.org"
ON_CALL = "otto@test.example.org"  # south care manager, on call, not on the patient's team
PUBLIC_URL = "https://concord.example.org"
START_TIMEOUT = 30.0


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    """The processes keep real time, so the seed data must too (not the suite's fixed day)."""
    previous = set_clock(SystemClock())
    yield
    set_clock(previous)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll `check` until it returns something true; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


class Processes:
    """Concord processes started for one test; all stopped (and logs kept) at the end."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp_path = tmp_path
        self.secret = secrets.token_urlsafe(48)
        self.database_url = database_url
        self.running: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONCORD_")}
        env.update(
            CONCORD_ENV="production",
            CONCORD_SECRET_KEY=self.secret,
            CONCORD_DATABASE_URL=self.database_url,
            CONCORD_INSTANCE_DIR=str(self.tmp_path / name),
            CONCORD_WORKER_IN_PROCESS="false",  # only the worker process runs the jobs
            CONCORD_COOKIE_SECURE="false",  # plain http here; behind TLS in production
            CONCORD_DB_POOL_SIZE="2",
            # One public address for the deployment (the proxy's); links in mail use it.
            CONCORD_BASE_URL=PUBLIC_URL,
            # Cheap hashes, as the suite's personas were hashed with.
            CONCORD_ARGON2_TIME_COST=os.environ.get("CONCORD_ARGON2_TIME_COST", "1"),
            CONCORD_ARGON2_MEMORY_KIB=os.environ.get("CONCORD_ARGON2_MEMORY_KIB", "1024"),
        )
        return env

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "concord.cli", *args],
                env=self.env(name),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.tmp_path,
            )
        self.running.append((name, process, log))
        return process

    def serve(self, name: str) -> str:
        port = free_port()
        self.start(name, ["serve", "--host", "127.0.0.1", "--port", str(port)])
        return f"http://127.0.0.1:{port}"

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{log.read_text()[-3000:]}" for name, _, log in self.running
        )

    def wait_ready(self, base: str) -> None:
        def ready() -> bool:
            for name, process, _ in self.running:
                if process.poll() is not None:
                    pytest.fail(f"{name} exited with {process.returncode}\n{self.logs()}")
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        eventually(ready, f"{base} to answer", timeout=START_TIMEOUT)

    def stop(self) -> None:
        for _, process, _ in self.running:
            if process.poll() is None:
                process.terminate()
        for _, process, _ in self.running:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def database(database_url: str, tmp_path: Path) -> Iterator[str]:
    with fresh_database(database_url, tmp_path, "multi") as url:
        yield url


def seed(url: str) -> dict[str, Any]:
    """The personas, an active plan (PHQ-9 and GAD-7 due today) and Otto on call."""
    engine = make_engine(url)
    upgrade(engine)
    with make_sessionmaker(engine)() as session:
        set_context(session, channel="system")
        people = build_personas(session)
        create_plan(session, people, activate=True)
        people.org.on_call_user_id = people.outsider.id
        write_pending(session)
        session.commit()
        ids = {
            "patient": people.patient.id,
            "care_manager": people.care_manager.id,
            "on_call": people.outsider.id,
        }
    engine.dispose()
    return ids


def sign_in(client: httpx.Client, email: str) -> str:
    """Through the real sign-in form; returns the CSRF token of the signed-in session."""
    page = client.get("/sign-in")
    assert page.status_code == 200
    response = client.post(
        "/sign-in",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page.text), "next": "/"},
    )
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/account").text)


def mail_to(folder: Path, recipient: str) -> list[str]:
    """Subject and body of each message the worker wrote for `recipient`."""
    if not folder.is_dir():
        return []
    messages = [
        email.message_from_string(p.read_text(), policy=email.policy.default)
        for p in sorted(folder.glob("*.eml"))
    ]
    return [
        f"{m['Subject']}\n{m.get_content()}"  # type: ignore[attr-defined]
        for m in messages
        if m["To"] == recipient
    ]


def test_two_app_processes_and_a_worker_share_one_database(database: str, tmp_path: Path) -> None:
    ids = seed(database)
    patient_id = ids["patient"]
    engine = make_engine(database)
    factory = make_sessionmaker(engine)
    processes = Processes(tmp_path, database)
    with ExitStack() as stack:
        stack.callback(engine.dispose)
        stack.callback(processes.stop)
        a_url = processes.serve("a")
        b_url = processes.serve("b")
        processes.start("worker", ["worker", "--interval", "0.5"])
        processes.wait_ready(a_url)
        processes.wait_ready(b_url)

        def client(base: str) -> httpx.Client:
            return stack.enter_context(
                httpx.Client(base_url=base, follow_redirects=False, timeout=10)
            )

        # Sign in on A; the same session cookie is a signed-in session on B.
        cara_a = client(a_url)
        token = sign_in(cara_a, CM)
        cara_b = client(b_url)
        cara_b.cookies.set("concord_session", cara_a.cookies["concord_session"])
        account = cara_b.get("/account")
        assert account.status_code == 200 and "Cara Manager" in account.text

        # A change made on A (an ASQ check-in scheduled) is read on B, by her and the patient.
        measures = f"/patients/{patient_id}/measures"
        assert "<td>ASQ</td>" not in cara_b.get(measures).text
        added = cara_a.post(
            f"{measures}/schedules",
            data={"csrf_token": token, "instrument": "ASQ", "every_days": "7"},
        )
        assert added.status_code == 303, added.text
        assert "<td>ASQ</td>" in cara_b.get(measures).text
        pat_b = client(b_url)
        pat_token = sign_in(pat_b, PATIENT)
        check_ins = pat_b.get("/my/check-ins").text
        assert "Ask Suicide-Screening Questions" in check_ins

        # The patient answers the ASQ on B: yes to question 1 and to "right now" (5).
        started = pat_b.post(
            "/my/check-ins/start", data={"csrf_token": pat_token, "instrument": "ASQ"}
        )
        assert started.status_code == 303, started.text
        form_url = started.headers["location"]
        version = re.search(r'name="version" value="(\d+)"', pat_b.get(form_url).text)
        assert version
        answers = {"a.1": "1", "a.2": "0", "a.3": "0", "a.4": "0", "a.5": "1"}
        sent = pat_b.post(
            form_url,
            data={
                "csrf_token": pat_token,
                "version": version.group(1),
                "action": "submit",
                **answers,
            },
        )
        assert sent.status_code == 303, sent.text
        done = pat_b.get(sent.headers["location"]).text
        assert 'href="tel:988"' in done  # crisis resources at once

        # The acute alert is Cara's, at the top of her pages on A.
        with factory() as session:
            alert = session.scalars(select(SafetyAlert)).one()
        assert (alert.tier, alert.owner_id) == ("acute", ids["care_manager"])
        alert_path = f"/patients/{patient_id}/alerts/{alert.id}"
        banner = cara_a.get("/patients").text
        assert "A safety alert is yours to act on:" in banner and alert_path in banner

        # The worker (a third process) sends what A and B queued: the patient's check-in
        # reminders and the notice to the alert's owner, without clinical content.
        mail = tmp_path / "worker" / "mail"
        reminders = eventually(lambda: mail_to(mail, PATIENT), "the worker to send reminders")
        assert all("You have a check-in waiting" in m for m in reminders)
        assert all(f"{PUBLIC_URL}/my" in m for m in reminders)
        notice = eventually(lambda: mail_to(mail, CM), "the worker to send the alert notice")
        assert "a safety alert needs you" in notice[0] and "ASQ" not in notice[0]

        # Escalation: the on-call clinician is not on the team and cannot see the alert ...
        otto_b = client(b_url)
        sign_in(otto_b, ON_CALL)
        assert otto_b.get(alert_path).status_code == 404
        # ... until nobody acknowledges it within the tier's 15 minutes. The timer is the
        # deadline stored with the alert; moving it back stands in for the wait.
        with factory.begin() as session:
            session.execute(
                update(SafetyAlert)
                .where(SafetyAlert.id == alert.id)
                .values(due_at=alert.created_at - timedelta(seconds=1))
            )

        def escalated() -> bool:
            page = otto_b.get("/patients").text
            return "A safety alert is yours to act on:" in page and alert_path in page

        eventually(escalated, "the worker to pass the alert to the on-call clinician")
        assert otto_b.get(alert_path).status_code == 200  # he joined the team to act on it
        with factory() as session:
            moved = session.get(SafetyAlert, alert.id)
            kinds = session.scalars(
                select(AlertEvent.kind).where(AlertEvent.alert_id == alert.id)
            ).all()
        assert moved is not None and (moved.step, moved.owner_id) == (1, ids["on_call"])
        assert kinds.count("escalated") == 1  # once, though the worker passed many times
        assert "yours to act on" not in cara_a.get("/patients").text
        passed = eventually(lambda: mail_to(mail, ON_CALL), "the worker to email the on-call")
        assert "was passed to you" in passed[0] and f"{PUBLIC_URL}/alerts/" in passed[0]

        # Signing out on B ends the session on A too.
        out = cara_b.post("/sign-out", data={"csrf_token": token})
        assert out.status_code == 303
        assert cara_a.get("/account").status_code == 303

        # Three processes wrote to one audit trail; the chain holds.
        with factory() as session:
            result = verify(session)
        assert result.ok, result.problem
        for name, process, _ in processes.running:
            assert process.poll() is None, f"{name} died\n{processes.logs()}"


def test_processes_starting_together_migrate_once(database: str) -> None:
    """Every `concord serve` migrates first; started together on a new database, one migrates
    and the others wait for it, then find the schema up to date."""
    from concord.migrate import current_revision, head_revision

    start = threading.Barrier(3)
    failures: list[BaseException] = []

    def migrate() -> None:
        engine = make_engine(database)
        try:
            start.wait()
            upgrade(engine)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    engine = make_engine(database)
    assert current_revision(engine) == head_revision()
    engine.dispose()

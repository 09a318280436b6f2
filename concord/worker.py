"""The background worker: escalates safety alerts nobody acknowledged in time, raises
alerts for missed follow-ups, queues check-in reminders, checks every medication list once a
day and sends the outbox.

It runs as `concord worker`, or inside the web process for the embedded default. Its timers
are deadlines stored in the database, so a restart loses nothing. Every job is safe to run
twice and from two workers at once: an escalation moves an alert only from the step it read
(a conditional update), a missed follow-up alert names its parent under a unique key,
reminders are recorded per due date before they are queued, and an outbox message is locked
while it is sent.

Each job is one transaction, but each record in it (a patient's reminders, an alert, a batch
of episodes) runs in its own savepoint (concord.db.isolated): one record that cannot be
processed is logged by type and id, counted in `records_skipped`, and the others go on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import String, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from concord.actions import social as social_actions
from concord.actions.appointments import send_visit_reminders
from concord.actions.medications import monitoring_all
from concord.actions.medications import recheck_all as recheck_medications
from concord.audit.anchor import load_private_key, write_anchor
from concord.audit.service import set_context
from concord.clock import now
from concord.db import Base, Skipped, unit_of_work
from concord.db import skipped as db_skipped
from concord.fhir.bulk import BulkSchedule, expire_exports, run_exports
from concord.measures.service import queue_reminders
from concord.notifications.service import send_due, sms_from_settings
from concord.outbox import Mailer, send_pending
from concord.registry.jobs import sync_all_tasks
from concord.safety.escalation import escalate_due, raise_missed_follow_ups
from concord.settings import Settings

log = logging.getLogger("concord.worker")


class JobRun(Base):
    """When a periodic job last ran, so several workers run it once per period between them."""

    __tablename__ = "job_run"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_run_at: Mapped[datetime]


def claim_run(session: Session, name: str, every: timedelta) -> bool:
    """True if this worker should run `name` now (and has recorded that it does). A second
    worker at the same moment gets False: the update matches only the run it read."""
    at = now()
    last = session.scalar(select(JobRun.last_run_at).where(JobRun.name == name))
    if last is None:
        try:
            with session.begin_nested():
                session.execute(insert(JobRun).values(name=name, last_run_at=at))
            return True
        except IntegrityError:
            return False
    if at - last < every:
        return False
    result = session.execute(
        update(JobRun)
        .where(JobRun.name == name, JobRun.last_run_at == last)
        .values(last_run_at=at)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def queue_reminders_job(
    factory: sessionmaker[Session], skipped: list[Skipped] | None = None
) -> int:
    """Check-in reminders: notices through the notification service (sent by `send_due`)."""
    with _job(factory, skipped) as session:
        return queue_reminders(session)


def visit_reminders_job(
    factory: sessionmaker[Session], skipped: list[Skipped] | None = None
) -> int:
    """Notices for visits coming up (the organization's offsets: the day and the hour before)."""
    with _job(factory, skipped) as session:
        return send_visit_reminders(session)


def escalate_job(factory: sessionmaker[Session], skipped: list[Skipped] | None = None) -> int:
    with _job(factory, skipped) as session:
        return escalate_due(session)


def follow_up_job(factory: sessionmaker[Session], skipped: list[Skipped] | None = None) -> int:
    with _job(factory, skipped) as session:
        return raise_missed_follow_ups(session)


REGISTRY_EVERY = timedelta(minutes=15)


def registry_tasks_job(factory: sessionmaker[Session], skipped: list[Skipped] | None = None) -> int:
    """Every 15 minutes: open the tasks the registry's flags ask for, close the ones done."""
    with _job(factory, skipped) as session:
        if not claim_run(session, "registry_tasks", REGISTRY_EVERY):
            return 0
        return sync_all_tasks(session)


REFERRALS_EVERY = timedelta(hours=1)


def referrals_overdue_job(
    factory: sessionmaker[Session], skipped: list[Skipped] | None = None
) -> int:
    """Every hour: a referral with no answer from the community partner by the clinic's set
    time becomes a task for the care manager (one per referral)."""
    with _job(factory, skipped) as session:
        if not claim_run(session, "referrals_overdue", REFERRALS_EVERY):
            return 0
        return social_actions.overdue_tasks(session)


MEDICATIONS_EVERY = timedelta(hours=24)


def medication_checks_job(
    factory: sessionmaker[Session], skipped: list[Skipped] | None = None
) -> int:
    """Once a day between all workers: check every active medication list again (the rule set
    may have changed, a patient may have turned 25), each patient in a savepoint. Returns how
    many findings were raised or resolved."""
    with _job(factory, skipped) as session:
        if not claim_run(session, "medication_checks", MEDICATIONS_EVERY):
            return 0
        # And the joint prescribing protocols' monitoring that falls due (tasks only).
        monitoring_all(session)
        return recheck_medications(session)


@dataclass(frozen=True)
class AnchorSchedule:
    """Where and how often the worker anchors the audit chain (docs/adr/0017-audit-chain-anchors.md)."""

    key: Path
    directory: Path
    every: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> AnchorSchedule | None:
        if settings.audit_anchor_dir is None or settings.audit_anchor_key is None:
            return None
        return cls(
            settings.audit_anchor_key,
            settings.audit_anchor_dir,
            timedelta(minutes=settings.audit_anchor_every_minutes),
        )


def audit_anchor_job(factory: sessionmaker[Session], schedule: AnchorSchedule) -> int:
    """Once per period between all workers: append a signed anchor of the chain's head."""
    key = load_private_key(schedule.key)
    with unit_of_work(factory) as session:
        set_context(session, channel="system")
        if not claim_run(session, "audit_anchor", schedule.every):
            return 0
        # Written before the claim commits: a failed write leaves the claim unrecorded, so
        # the next pass tries again.
        write_anchor(session, key=key, directory=schedule.directory)
        return 1


@contextmanager
def _job(factory: sessionmaker[Session], skipped: list[Skipped] | None) -> Iterator[Session]:
    """A job's unit of work. Each job works record by record (concord.db.isolated); the
    records it skipped are added to `skipped` once it has committed the others."""
    with unit_of_work(factory) as session:
        set_context(session, channel="system")
        yield session
        passed = db_skipped(session)
    if skipped is not None:
        skipped.extend(passed)


def run_once(
    factory: sessionmaker[Session],
    mailer: Mailer,
    base_url: str,
    anchor: AnchorSchedule | None = None,
    skipped: list[Skipped] | None = None,
    bulk: BulkSchedule | None = None,
) -> dict[str, int]:
    """One pass of every job; returns what each did, and how many records the jobs skipped
    (each logged by the job; listed in `skipped` when given). Safety first: a failure in one
    job does not stop the others, and a bad record stops only its own part of a job."""
    done: dict[str, int] = {}
    skipped = [] if skipped is None else skipped
    jobs: list[tuple[str, Callable[[], int]]] = [
        ("alerts_escalated", lambda: escalate_job(factory, skipped)),
        ("follow_up_alerts_raised", lambda: follow_up_job(factory, skipped)),
        ("reminders_queued", lambda: queue_reminders_job(factory, skipped)),
        ("registry_tasks_changed", lambda: registry_tasks_job(factory, skipped)),
        ("medication_findings_changed", lambda: medication_checks_job(factory, skipped)),
        ("referral_tasks_opened", lambda: referrals_overdue_job(factory, skipped)),
        ("visit_reminders_queued", lambda: visit_reminders_job(factory, skipped)),
    ]
    if anchor is not None:
        jobs.append(("audit_anchors_written", lambda: audit_anchor_job(factory, anchor)))
    if bulk is not None:
        # Bulk Data exports asked for at /fhir/$export (the kick-off only records them).
        jobs.append(("bulk_exports_finished", lambda: run_exports(factory, bulk)))
        jobs.append(("bulk_exports_expired", lambda: expire_exports(factory, bulk)))
    failed: list[Exception] = []
    for name, job in jobs:
        try:
            done[name] = job()
        except Exception as exc:  # the next pass retries; the others still run
            log.error("worker job %s failed: %s", name, type(exc).__name__, exc_info=exc)
            done[name] = -1
            failed.append(exc)
    done["messages_sent"] = send_pending(factory, mailer)
    try:
        done["notices_sent"] = send_due(factory, mailer, sms_from_settings())
    except Exception as exc:  # the next pass retries
        log.error("sending notices failed: %s", type(exc).__name__, exc_info=exc)
        done["notices_sent"] = -1
        failed.append(exc)
    done["records_skipped"] = len(skipped)
    if failed:
        raise failed[0]
    return done


class Worker:
    """Runs `run_once` every `interval` seconds on a thread until stopped."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        mailer: Mailer,
        base_url: str,
        interval: float = 30.0,
        on_error: Callable[[Exception], None] | None = None,
        anchor: AnchorSchedule | None = None,
        bulk: BulkSchedule | None = None,
    ) -> None:
        self.factory, self.mailer, self.base_url = factory, mailer, base_url
        self.anchor, self.bulk = anchor, bulk
        self.interval = interval
        self.on_error = on_error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                run_once(self.factory, self.mailer, self.base_url, self.anchor, bulk=self.bulk)
            except Exception as exc:  # keep going; the next pass retries
                log.error("worker pass failed: %s", type(exc).__name__, exc_info=exc)
                if self.on_error:
                    self.on_error(exc)
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="concord-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

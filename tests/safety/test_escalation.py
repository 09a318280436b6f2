"""Escalation: an alert nobody acknowledges goes to the next person in its chain when its
deadline passes, again with a deadline, until someone acts. The timer is a deadline in the
database read by the worker, so it survives a restart; two workers never fire one step twice;
an acknowledged or closed alert never escalates; a missed follow-up comes back once."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from concord.audit.service import set_context, verify, write_pending
from concord.db import make_engine, make_sessionmaker, unit_of_work
from concord.migrate import upgrade
from concord.outbox import FakeMailer, OutboxMessage
from concord.patients.models import CareTeam, CareTeamMember
from concord.safety.alerts import Closing, acknowledge, close, record_follow_up
from concord.safety.models import AlertEvent, Notification, SafetyAlert
from concord.worker import Worker, escalate_job, follow_up_job, run_once
from tests.conftest import commit, fresh_database
from tests.factories import acc_for, build_personas, create_plan
from tests.safety.conftest import asq, phq9, respond


def urgent_alert(session, people):
    """PHQ-9 item 9 'more than half the days': urgent, 1 hour to acknowledge."""
    completed = respond(session, people, "PHQ-9", phq9([1, 1, 1, 1, 1, 1, 1, 1, 2]))
    commit(session)
    return completed.alert


def escalations(session, alert):
    return session.scalars(
        select(AlertEvent)
        .where(AlertEvent.alert_id == alert.id, AlertEvent.kind.in_(["escalated", "reminder"]))
        .order_by(AlertEvent.step)
    ).all()


def safety_mail(session, to=None):
    query = select(OutboxMessage).where(OutboxMessage.kind.like("safety_%"))
    if to:
        query = query.where(OutboxMessage.recipient == to)
    return session.scalars(query.order_by(OutboxMessage.created_at)).all()


def on_team(session, patient, user):
    return session.scalar(
        select(CareTeamMember)
        .join(CareTeam, CareTeam.id == CareTeamMember.care_team_id)
        .where(
            CareTeam.patient_id == patient.id,
            CareTeamMember.user_id == user.id,
            CareTeamMember.ended_at.is_(None),
        )
    )


class TestTheChain:
    def test_it_goes_along_the_chain_until_someone_acts(
        self, session, factory, people, plan, clock
    ):
        people.org.on_call_user_id = people.outsider.id  # on call tonight, not on the team
        commit(session)
        alert = urgent_alert(session, people)
        assert alert.owner_id == people.care_manager.id
        assert alert.due_at == clock.now() + timedelta(hours=1)

        clock.advance(minutes=59)
        assert escalate_job(factory) == 0  # not yet
        clock.advance(minutes=1)
        assert escalate_job(factory) == 1
        session.refresh(alert)
        # The lead is Cara herself, so that step is skipped: the consultant is next.
        assert (alert.step, alert.owner_id) == (1, people.consultant.id)
        assert alert.due_at == clock.now() + timedelta(hours=1)
        assert [m.recipient for m in safety_mail(session)] == [
            "cara@test.example.org",
            "consultant@test.example.org",
        ]

        clock.advance(hours=1)
        assert escalate_job(factory) == 1
        session.refresh(alert)
        assert (alert.step, alert.owner_id) == (2, people.outsider.id)
        # The on-call clinician joins the team so they can open the record and act.
        assert on_team(session, people.patient, people.outsider) is not None
        acc_for(session, people.outsider, people.patient)  # no NotFound

        clock.advance(hours=1)
        assert escalate_job(factory) == 1
        session.refresh(alert)
        # The chain is used up: the owner stays, and everyone on it is told again.
        assert (alert.step, alert.owner_id) == (3, people.outsider.id)
        last = escalations(session, alert)[-1]
        assert last.kind == "reminder"
        assert {m.recipient for m in safety_mail(session)[-3:]} == {
            "cara@test.example.org",
            "consultant@test.example.org",
            "otto@test.example.org",
        }
        assert [e.step for e in escalations(session, alert)] == [1, 2, 3]

        # Someone acts: the timer stops.
        acknowledge(
            session, access=acc_for(session, people.consultant, people.patient), alert_id=alert.id
        )
        commit(session)
        clock.advance(days=2)
        assert escalate_job(factory) == 0
        session.refresh(alert)
        assert (alert.step, alert.owner_id) == (3, people.consultant.id)

    def test_a_step_with_nobody_in_it_is_skipped(self, session, factory, people, plan, clock):
        # No on-call clinician is set: after the consultant come the reminders.
        alert = urgent_alert(session, people)
        clock.advance(hours=1)
        escalate_job(factory)
        clock.advance(hours=1)
        escalate_job(factory)
        session.refresh(alert)
        assert [e.kind for e in escalations(session, alert)] == ["escalated", "reminder"]
        assert alert.owner_id == people.consultant.id

    def test_running_twice_at_the_same_moment_moves_it_once(
        self, session, factory, people, plan, clock
    ):
        alert = urgent_alert(session, people)
        clock.advance(hours=1)
        assert escalate_job(factory) == 1
        assert escalate_job(factory) == 0
        assert len(escalations(session, alert)) == 1

    def test_a_closed_alert_never_escalates(self, session, factory, people, plan, clock):
        alert = urgent_alert(session, people)
        close(
            session,
            access=acc_for(session, people.care_manager, people.patient),
            alert_id=alert.id,
            closing=Closing(
                outcome="assessed", risk_after="high", note="Saw her today; plan reviewed."
            ),
        )
        commit(session)
        clock.advance(days=30)
        assert escalate_job(factory) == 0
        assert escalations(session, alert) == []

    def test_an_acknowledged_alert_never_escalates(self, session, factory, people, plan, clock):
        alert = urgent_alert(session, people)
        acknowledge(
            session, access=acc_for(session, people.therapist, people.patient), alert_id=alert.id
        )
        commit(session)
        clock.advance(days=30)
        assert escalate_job(factory) == 0

    def test_the_acute_chain_asks_the_on_call_clinician_second(
        self, session, factory, people, plan, clock
    ):
        people.org.on_call_user_id = people.outsider.id
        commit(session)
        completed = respond(session, people, "ASQ", asq(1, 5))
        commit(session)
        alert = completed.alert
        assert alert.due_at == clock.now() + timedelta(minutes=15)
        clock.advance(minutes=15)
        escalate_job(factory)
        session.refresh(alert)
        assert alert.owner_id == people.outsider.id

    def test_the_escalations_are_in_the_audit_trail(self, session, factory, people, plan, clock):
        alert = urgent_alert(session, people)
        clock.advance(hours=1)
        escalate_job(factory)
        from concord.audit.models import AuditEvent

        steps = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "escalate", AuditEvent.object_id == str(alert.id)
            )
        ).all()
        assert len(steps) == 1 and steps[0].channel == "system" and steps[0].actor_id is None
        assert verify(session).ok

    def test_the_new_owner_is_told_in_app_and_by_email(self, session, factory, people, plan, clock):
        alert = urgent_alert(session, people)
        clock.advance(hours=1)
        escalate_job(factory)
        kinds = session.execute(
            select(Notification.user_id, Notification.kind).where(Notification.alert_id == alert.id)
        ).all()
        assert (people.consultant.id, "escalated") in kinds
        assert (people.care_manager.id, "passed_on") in kinds
        (mail,) = safety_mail(session, "consultant@test.example.org")
        assert "passed to you" in mail.subject and "Pat" not in mail.body + mail.subject

    def test_one_alert_that_cannot_move_does_not_hold_up_the_others(
        self, session, factory, people, plan, clock
    ):
        # Issue 16, item 3: a job is one transaction, so one bad record stopped the job for
        # everyone. Each alert now moves (or fails) on its own, and the one skipped is named.
        from sqlalchemy import update

        create_plan(
            session, people, patient=people.other_patient, by=people.outsider, activate=True
        )
        stuck = urgent_alert(session, people)
        moving = respond(
            session,
            people,
            "PHQ-9",
            phq9([1, 1, 1, 1, 1, 1, 1, 1, 2]),
            by=people.outsider,
            patient=people.other_patient,
        ).alert
        session.execute(update(SafetyAlert).where(SafetyAlert.id == stuck.id).values(chain=5))
        commit(session)
        clock.advance(hours=1)
        skipped = []
        assert escalate_job(factory, skipped) == 1
        session.expire_all()
        assert session.get(SafetyAlert, moving.id).step == 1
        assert session.get(SafetyAlert, stuck.id).step == 0
        assert [(s.job, s.object_type, s.object_id) for s in skipped] == [
            ("escalation", "SafetyAlert", str(stuck.id))
        ]


class TestMissedFollowUps:
    def close_with_follow_up(self, session, people, alert, **kwargs):
        close(
            session,
            access=acc_for(session, people.care_manager, people.patient),
            alert_id=alert.id,
            closing=Closing(
                outcome="assessed", risk_after="moderate", note="Assessed by phone.", **kwargs
            ),
        )
        commit(session)

    def test_a_missed_follow_up_comes_back_once(self, session, factory, people, plan, clock):
        alert = urgent_alert(session, people)
        self.close_with_follow_up(session, people, alert)
        session.refresh(alert)
        assert alert.follow_up_due_at == clock.now() + timedelta(hours=48)
        clock.advance(hours=47)
        assert follow_up_job(factory) == 0
        clock.advance(hours=1)
        assert follow_up_job(factory) == 1
        assert follow_up_job(factory) == 0
        child = session.scalar(select(SafetyAlert).where(SafetyAlert.follow_up_of_id == alert.id))
        assert (child.tier, child.rule_id, child.source_kind) == (
            "high",
            "missed-follow-up",
            "follow_up",
        )
        assert child.owner_id == people.care_manager.id

    def test_a_recorded_follow_up_raises_nothing(self, session, factory, people, plan, clock):
        alert = urgent_alert(session, people)
        self.close_with_follow_up(session, people, alert)
        clock.advance(hours=24)
        record_follow_up(
            session,
            access=acc_for(session, people.therapist, people.patient),
            alert_id=alert.id,
            note="Called; she is safe and kept her appointment.",
        )
        commit(session)
        clock.advance(days=10)
        assert follow_up_job(factory) == 0

    def test_no_follow_up_needed_raises_nothing(self, session, factory, people, plan, clock):
        alert = urgent_alert(session, people)
        self.close_with_follow_up(session, people, alert, no_follow_up=True)
        clock.advance(days=10)
        assert follow_up_job(factory) == 0


# --- across a restart, and with two workers, on a database of their own ----------------------


@pytest.fixture
def own_db(tmp_path, database_url, migrated_database):
    with fresh_database(database_url, tmp_path, "escalate", like=migrated_database) as url:
        engine = make_engine(url)
        upgrade(engine)
        yield make_sessionmaker(engine)
        engine.dispose()


def _setup(factory):
    with unit_of_work(factory) as session:
        set_context(session, channel="system")
        people = build_personas(session)
        create_plan(session, people, activate=True)
        write_pending(session)
        session.flush()
        completed = respond(session, people, "PHQ-9", phq9([1, 1, 1, 1, 1, 1, 1, 1, 2]))
        return completed.alert.id, people.consultant.id


def _count(factory, model, *where):
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_the_timer_survives_a_restart(own_db, clock):
    alert_id, consultant_id = _setup(own_db)
    mailer = FakeMailer()
    first = Worker(own_db, mailer, "http://testserver", interval=0.05)
    first.start()
    time.sleep(0.3)
    first.stop()  # the process stops before the deadline
    with own_db() as session:
        assert session.get(SafetyAlert, alert_id).step == 0
    clock.advance(hours=1, minutes=5)
    second = Worker(own_db, mailer, "http://testserver", interval=0.05)  # a new process
    second.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with own_db() as session:
            if session.get(SafetyAlert, alert_id).step == 1:
                break
        time.sleep(0.05)
    time.sleep(0.3)  # several more passes at the same moment
    second.stop()
    with own_db() as session:
        alert = session.get(SafetyAlert, alert_id)
        assert (alert.step, alert.owner_id) == (1, consultant_id)
    assert _count(own_db, AlertEvent, AlertEvent.kind == "escalated") == 1
    sent_to_consultant = [m for m in mailer.sent if m.to == "consultant@test.example.org"]
    assert len(sent_to_consultant) == 1


def test_two_workers_never_fire_the_same_step_twice(own_db, clock):
    alert_id, _ = _setup(own_db)
    with unit_of_work(own_db) as session:
        set_context(session, channel="system")
        # Close a second alert so a missed follow-up is also due for both workers.
        from concord.patients.models import Patient

        patient = session.scalar(select(Patient).where(Patient.mrn == "N-1"))
        from concord.accounts.models import User

        cara = session.scalar(select(User).where(User.email == "cara@test.example.org"))
        extra = respond(
            session,
            type("P", (), {"care_manager": cara, "patient": patient})(),
            "PHQ-9",
            phq9([1, 1, 1, 1, 1, 1, 1, 1, 1]),
        ).alert
        close(
            session,
            access=acc_for(session, cara, patient),
            alert_id=extra.id,
            closing=Closing(outcome="assessed", risk_after="none", note="Fine."),
        )
        extra_id = extra.id
    mailer = FakeMailer()
    for hours in (1, 1, 1):  # three deadlines pass, each raced by two workers
        clock.advance(hours=hours)
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def work(barrier=barrier, errors=errors):
            try:
                barrier.wait()
                run_once(own_db, mailer, "http://testserver")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
    clock.advance(hours=48)
    barrier = threading.Barrier(2)
    results: list[int] = []

    def follow_ups():
        barrier.wait()
        results.append(follow_up_job(own_db))

    threads = [threading.Thread(target=follow_ups) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with own_db() as session:
        steps = session.scalars(
            select(AlertEvent.step).where(
                AlertEvent.alert_id == alert_id, AlertEvent.kind.in_(["escalated", "reminder"])
            )
        ).all()
        assert sorted(steps) == [1, 2, 3]  # three deadlines, three steps: none fired twice
        assert session.get(SafetyAlert, alert_id).step == len(steps)
        children = session.scalars(
            select(SafetyAlert).where(SafetyAlert.follow_up_of_id == extra_id)
        ).all()
        assert len(children) == 1 and sorted(results) == [0, 1]
    # One email per step: "passed to you" once (step 1), then one reminder per later step.
    to_consultant = [m.subject for m in mailer.sent if m.to == "consultant@test.example.org"]
    assert to_consultant.count("Concord: a safety alert was passed to you") == 1
    assert to_consultant.count("Concord: a safety alert is still waiting") == 2

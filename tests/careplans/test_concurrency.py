"""Two people saving the same goal at the same moment, in two real transactions, on a database
of their own: exactly one save wins, the other is told, and nothing is lost or duplicated."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from concord import access
from concord.audit.service import set_context, verify, write_pending
from concord.careplans import service as plans
from concord.careplans.models import Goal, PlanRevision
from concord.careplans.schemas import GoalIn, StrengthIn
from concord.db import finish, make_engine, make_sessionmaker
from concord.errors import Conflict
from concord.migrate import upgrade
from tests.conftest import fresh_database
from tests.factories import build_personas, create_plan


@pytest.fixture
def own_db(tmp_path, database_url, migrated_database):
    with fresh_database(database_url, tmp_path, "race", like=migrated_database) as url:
        engine = make_engine(url)
        upgrade(engine)
        yield make_sessionmaker(engine)
        engine.dispose()


def _setup(factory):
    with factory() as session:
        set_context(session, channel="system")
        people = build_personas(session)
        plan = create_plan(session, people, activate=True)
        goal = plans.load_contents(session, plan).goals[0]
        ids = (
            people.care_manager.id,
            people.therapist.id,
            people.patient.id,
            plan.id,
            goal.id,
            goal.version,
        )
        write_pending(session)
        session.commit()
    return ids


def _race(factory, jobs):
    """Run each job in its own thread and unit of work, released at the same instant."""
    barrier = threading.Barrier(len(jobs))
    outcomes: list[str] = [""] * len(jobs)

    def run(index, job):
        session = factory()
        set_context(session, channel="system")
        try:
            barrier.wait()
            job(session)
            finish(session, factory)
            outcomes[index] = "saved"
        except Conflict:
            session.rollback()
            outcomes[index] = "conflict"
        finally:
            session.close()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_saves_of_the_same_goal_one_wins_one_is_told(own_db):
    from concord.accounts.models import User
    from concord.patients.models import Patient

    cm_id, th_id, patient_id, plan_id, goal_id, version = _setup(own_db)

    def save(user_id, words):
        def job(session):
            user = session.get(User, user_id)
            acc = access.patient_for(session, user, session.get(Patient, patient_id).id)
            plans.update_item(
                session,
                access=acc,
                section="goals",
                item_id=goal_id,
                data=GoalIn(statement=words, category="wellbeing"),
                version=version,
                reason="race",
            )

        return job

    outcomes = _race(own_db, [save(cm_id, "Cara's words"), save(th_id, "Theo's words")])
    assert sorted(outcomes) == ["conflict", "saved"]
    with own_db() as session:
        goal = session.get(Goal, goal_id)
        winner = "Cara's words" if outcomes[0] == "saved" else "Theo's words"
        assert goal.statement == winner and goal.version == version + 1
        numbers = session.scalars(
            select(PlanRevision.number)
            .where(PlanRevision.plan_id == plan_id)
            .order_by(PlanRevision.number)
        ).all()
        assert numbers == list(range(1, len(numbers) + 1))
        assert verify(session).ok


def test_many_simultaneous_additions_all_land_with_distinct_revisions(own_db):
    from concord.accounts.models import User

    cm_id, th_id, patient_id, plan_id, _, _ = _setup(own_db)

    def add(user_id, n):
        def job(session):
            acc = access.patient_for(session, session.get(User, user_id), patient_id)
            plans.add_item(
                session,
                access=acc,
                section="strengths",
                data=StrengthIn(description=f"Strength {n}"),
            )

        return job

    outcomes = _race(own_db, [add(cm_id if n % 2 else th_id, n) for n in range(6)])
    assert outcomes == ["saved"] * 6
    with own_db() as session:
        numbers = session.scalars(
            select(PlanRevision.number)
            .where(PlanRevision.plan_id == plan_id)
            .order_by(PlanRevision.number)
        ).all()
        assert numbers == list(range(1, len(numbers) + 1))
        from concord.careplans.models import Strength

        assert session.scalar(select(func.count()).select_from(Strength)) == 6
        assert verify(session).ok  # the audit chain stayed a single line under contention

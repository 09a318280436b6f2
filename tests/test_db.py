"""SQLite writers in one process queue on the engine's gate: the next one starts when the
previous commits, rolls back or closes, and a lost holder is
overtaken instead of blocking everyone for ever."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import text

from concord.db import WriterGate, make_engine


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    yield engine
    engine.dispose()


@pytest.mark.parametrize("ending", ["commit", "rollback", "close"])
def test_a_second_writer_starts_only_when_the_first_ends(sqlite_engine, ending):
    order: list[str] = []
    first_in = threading.Event()

    def second() -> None:
        first_in.wait(5)
        with sqlite_engine.begin() as connection:
            order.append("second began")
            connection.execute(text("INSERT INTO t VALUES (2)"))

    thread = threading.Thread(target=second)
    thread.start()
    connection = sqlite_engine.connect()
    transaction = connection.begin()
    connection.execute(text("INSERT INTO t VALUES (1)"))
    first_in.set()
    thread.join(0.3)
    assert thread.is_alive(), "the second writer must wait for the first"
    order.append("first ended")
    if ending == "commit":
        transaction.commit()
    elif ending == "rollback":
        transaction.rollback()
    connection.close()
    thread.join(5)
    assert not thread.is_alive()
    assert order == ["first ended", "second began"]
    with sqlite_engine.connect() as check:
        rows = sorted(check.execute(text("SELECT n FROM t")).scalars())
    assert rows == ([1, 2] if ending == "commit" else [2])


def test_reading_after_a_transaction_ends_does_not_hold_the_gate(sqlite_engine):
    for _ in range(3):
        with sqlite_engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            connection.commit()
    done = threading.Event()

    def writer() -> None:
        with sqlite_engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (3)"))
        done.set()

    threading.Thread(target=writer).start()
    assert done.wait(5)


def test_a_holder_that_never_gives_the_gate_back_is_overtaken(caplog):
    gate = WriterGate(timeout=0.2)
    lost, next_one = object(), object()
    gate.enter(lost)
    with caplog.at_level(logging.WARNING, logger="concord.db"):
        gate.enter(next_one)
    assert "taking it over" in caplog.text
    gate.leave(lost)  # the lost holder's late release does not free the new holder's gate
    # From here a waiter must be woken by the new holder's release, not by overtaking it: a long
    # timeout keeps a busy machine's scheduling delay from reading as a release.
    gate.timeout = 60
    entered = threading.Event()
    threading.Thread(target=lambda: (gate.enter(object()), entered.set())).start()
    assert not entered.wait(0.1)
    gate.leave(next_one)
    assert entered.wait(5)


def test_among_selects_the_rows_named_and_is_one_statement_whatever_their_number(
    session, people, connection
):
    """`among` finds exactly the rows named, on either engine; on PostgreSQL the list is one
    array parameter, so two lists of different lengths are the same statement (prepared and
    planned once), where an IN list is a new statement for each length."""
    from sqlalchemy import event, select

    from concord.db import among
    from concord.patients.models import Patient
    from tests.registry.conftest import more_patients

    made = more_patients(session, people, 5, start=700)
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if "FROM patient" in statement:
            statements.append(statement)

    event.listen(connection, "before_cursor_execute", before)
    try:
        for chosen in (made[:2], made[1:]):
            found = session.scalars(
                select(Patient.id).where(among(session, Patient.id, [p.id for p in chosen]))
            ).all()
            assert set(found) == {p.id for p in chosen}
        assert session.scalars(select(Patient.id).where(among(session, Patient.id, []))).all() == []
    finally:
        event.remove(connection, "before_cursor_execute", before)
    if connection.dialect.name == "postgresql":
        assert len(set(statements)) == 1 and "= ANY (" in statements[0], statements
    else:
        assert len(set(statements)) == 3, statements


def test_a_core_statement_sees_what_the_session_has_not_written_yet(session, people):
    """`core()` writes the session's pending objects first, as an ORM query's autoflush would,
    so a Core statement built once never misses a change made earlier in the same request."""
    from sqlalchemy import bindparam, func, select

    from concord.dates import org_today
    from concord.db import core
    from concord.measures.models import MeasureSchedule

    count = select(func.count()).where(MeasureSchedule.patient_id == bindparam("patient"))
    before = core(session).execute(count, {"patient": people.patient.id}).scalar()
    session.add(
        MeasureSchedule(
            patient_id=people.patient.id,
            instrument="PHQ-9",
            every_days=14,
            start_on=org_today(people.org),
            created_by_id=people.care_manager.id,
        )
    )
    after = core(session).execute(count, {"patient": people.patient.id}).scalar()
    assert after == before + 1


def test_an_isolated_failure_undoes_only_its_own_record(session, people):
    # concord.db.isolated: what every background job runs each record in (issue 16, item 3).
    from sqlalchemy import select

    from concord.accounts.models import Submission
    from concord.audit.service import pending as pending_events
    from concord.audit.service import record
    from concord.db import after_commit, isolated, skipped

    def work(key, fail):
        session.add(Submission(key=key, user_id=people.admin.id))
        record(session, by=people.admin, action="create", object_type="Submission")
        after_commit(session, lambda: None)
        session.flush()
        if fail:
            raise OverflowError("date value out of range")
        return key

    before = len(pending_events(session))
    results = [
        isolated(session, lambda k=k, f=f: work(k, f), job="test", object_type="Row", object_id=k)
        for k, f in (("isolated-1", False), ("isolated-2", True), ("isolated-3", False))
    ]
    assert results == ["isolated-1", None, "isolated-3"]
    keys = session.scalars(select(Submission.key).where(Submission.key.like("isolated-%")))
    assert sorted(keys) == ["isolated-1", "isolated-3"]
    assert len(pending_events(session)) == before + 2
    assert len(session.info["after_commit"]) == 2
    assert [(s.object_id, s.error) for s in skipped(session)] == [("isolated-2", "OverflowError")]


def test_isolated_each_runs_everything_at_once_and_each_alone_only_after_a_failure(session, people):
    from sqlalchemy import select

    from concord.accounts.models import Submission
    from concord.db import isolated_each, skipped

    calls = []

    def work(key):
        calls.append(key)
        session.add(Submission(key=key, user_id=people.admin.id))
        session.flush()
        if key == "each-2":
            raise ValueError("bad record")
        return key

    assert isolated_each(
        session, ["ok-1", "ok-2"], work, job="test", object_type="Row", key=str
    ) == ["ok-1", "ok-2"]
    assert calls == ["ok-1", "ok-2"] and skipped(session) == []
    calls.clear()
    done = isolated_each(
        session, ["each-1", "each-2", "each-3"], work, job="test", object_type="Row", key=str
    )
    assert done == ["each-1", "each-3"]
    assert calls == ["each-1", "each-2", "each-1", "each-2", "each-3"]
    keys = session.scalars(select(Submission.key).where(Submission.key.like("each-%")))
    assert sorted(keys) == ["each-1", "each-3"]  # the first try's rows undone, not doubled
    assert [s.object_id for s in skipped(session)] == ["each-2"]

"""The personas each test gets are replayed from one recording per worker (tests/conftest.py):
they must be what building them through the services gives, audit trail included."""

from __future__ import annotations

from sqlalchemy import MetaData, func, select
from sqlalchemy.orm import sessionmaker

from concord.audit import service as audit
from tests.conftest import commit
from tests.factories import build_personas


def _counts(connection):
    tables = MetaData()
    tables.reflect(connection)
    return {
        name: connection.execute(select(func.count()).select_from(table)).scalar()
        for name, table in tables.tables.items()
    }


def _in_a_rolled_back_transaction(engine, work):
    with engine.connect() as connection:
        outer = connection.begin()
        factory = sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        try:
            with factory() as session:
                audit.set_context(session, channel="system")
                people = work(session)
                assert audit.verify(session).ok
                return people, _counts(connection)
        finally:
            outer.rollback()


def test_the_replayed_personas_are_the_ones_the_services_build(engine, persona_snapshot):
    def built(session):
        people = build_personas(session)
        commit(session)
        return people

    made, by_services = _in_a_rolled_back_transaction(engine, built)
    replayed, from_recording = _in_a_rolled_back_transaction(engine, persona_snapshot.restore)
    assert from_recording == by_services
    assert from_recording["audit_event"] > 10
    assert replayed.patient.mrn == made.patient.mrn and replayed.family.email == made.family.email

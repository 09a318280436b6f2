"""The audit trail: complete, append-only, hash-chained, and verifiable."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from concord.audit import service as audit
from concord.audit.models import AuditChainHead, AuditEvent
from tests.conftest import commit
from tests.factories import create_plan


def events(session):
    return session.scalar(select(func.count()).select_from(AuditEvent))


def tamper(session, sql, **params):
    """Change the trail behind the application's back, as an attacker with database access
    would: the append-only triggers must be set aside first."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update"))
        session.execute(text(sql), params)
        session.execute(text("ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_update"))
    else:
        session.execute(text("DROP TRIGGER audit_event_no_update"))
        session.execute(text("DROP TRIGGER audit_event_no_delete"))
        session.execute(text(sql), params)
    session.expire_all()


class TestChain:
    def test_the_chain_of_a_busy_day_verifies(self, session, people):
        create_plan(session, people, activate=True)
        commit(session)
        result = audit.verify(session)
        assert result.ok and result.events == events(session) > 10

    def test_events_of_the_first_chain_version_still_verify_before_new_ones(self, session, people):
        # A trail written before migration 0006 (version 1 hashes) goes on in version 2.
        create_plan(session, people)
        commit(session)
        head = session.get(AuditChainHead, 1)
        fields = {
            "seq": head.seq + 1,
            "occurred_at": audit.now(),
            "organization_id": people.care_manager.organization_id,
            "actor_id": people.care_manager.id,
            "actor_role": "care_manager",
            "channel": "web",
            "action": "read",
            "object_type": "Patient",
            "object_id": str(people.patient.id),
            "patient_id": people.patient.id,
            "outcome": "success",
            "detail": {"note": "ñandú"},
            "ip": None,
            "prev_hash": head.hash,
        }
        old = audit.event_hash(fields, version=1)
        session.execute(audit.insert(AuditEvent).values(**fields, hash=old, chain_version=1))
        session.execute(
            audit.update(AuditChainHead)
            .where(AuditChainHead.id == 1)
            .values(seq=fields["seq"], hash=old)
        )
        commit(session)
        for _ in range(3):  # more events, version 2, chained onto the old one
            audit.record(
                session,
                by=people.therapist,
                action="read",
                object_type="Patient",
                patient_id=people.patient.id,
            )
        commit(session)
        versions = set(session.scalars(select(AuditEvent.chain_version)))
        assert versions == {1, 2}
        result = audit.verify(session)
        assert result.ok, result.problem
        following = session.get(AuditEvent, fields["seq"] + 1)
        assert following.prev_hash == old and following.chain_version == 2
        assert following.hash == audit.event_hash(audit.hashed_fields(following), 2)

    def test_an_altered_event_is_found_and_named(self, session, people):
        create_plan(session, people)
        commit(session)
        target = session.scalar(
            select(AuditEvent.seq).where(
                AuditEvent.action == "create", AuditEvent.object_type == "Goal"
            )
        )
        tamper(session, "UPDATE audit_event SET actor_id = NULL WHERE seq = :seq", seq=target)
        result = audit.verify(session)
        assert not result.ok
        assert result.first_broken_seq == target
        assert "contents do not match its hash" in result.problem

    def test_a_deleted_event_is_found(self, session, people):
        create_plan(session, people)
        commit(session)
        tamper(session, "DELETE FROM audit_event WHERE seq = 3")
        result = audit.verify(session)
        assert not result.ok and result.first_broken_seq == 3
        assert "missing" in result.problem

    def test_events_removed_from_the_end_are_found(self, session, people):
        create_plan(session, people)
        commit(session)
        last = session.scalar(select(func.max(AuditEvent.seq)))
        tamper(session, "DELETE FROM audit_event WHERE seq = :seq", seq=last)
        result = audit.verify(session)
        assert not result.ok and "removed from the end" in result.problem

    def test_a_rehashed_forgery_still_breaks_the_next_link(self, session, people):
        create_plan(session, people)
        commit(session)
        event = session.get(AuditEvent, 2)
        fields = audit.hashed_fields(event)
        fields["action"] = "read"
        forged = audit.event_hash(fields)
        tamper(session, "UPDATE audit_event SET action = 'read', hash = :h WHERE seq = 2", h=forged)
        result = audit.verify(session)
        assert not result.ok and result.first_broken_seq == 3

    def test_the_database_refuses_to_change_or_delete_events(self, session, people, connection):
        create_plan(session, people)
        commit(session)
        for statement in (
            "UPDATE audit_event SET action = 'x' WHERE seq = 1",
            "DELETE FROM audit_event WHERE seq = 1",
        ):
            savepoint = connection.begin_nested()
            with pytest.raises(DBAPIError) as exc:
                connection.execute(text(statement))
            assert "append-only" in str(exc.value)
            savepoint.rollback()

    def test_the_head_records_the_last_event(self, session, people):
        create_plan(session, people)
        commit(session)
        head = session.get(AuditChainHead, 1)
        last = session.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
        assert (head.seq, head.hash) == (last.seq, last.hash)


class TestCompleteness:
    def test_reading_a_plan_page_is_audited_with_who_what_when(
        self, client, people, session, sign_in
    ):
        create_plan(session, people)
        commit(session)
        sign_in("theo@test.example.org")
        client.get(f"/patients/{people.patient.id}/plan")
        event = session.scalar(
            select(AuditEvent).where(
                AuditEvent.actor_id == people.therapist.id,
                AuditEvent.object_type == "CarePlan",
                AuditEvent.action == "read",
            )
        )
        assert event.patient_id == people.patient.id
        assert event.channel == "web" and event.outcome == "success"
        assert event.occurred_at is not None and event.actor_role == "therapist"

    def test_a_denied_attempt_is_audited_though_the_request_rolled_back(
        self, client, people, session, sign_in
    ):
        create_plan(session, people)
        commit(session)
        sign_in("otto@test.example.org")
        before = events(session)
        client.get(f"/patients/{people.patient.id}/plan")
        after = session.scalars(select(AuditEvent).where(AuditEvent.seq > before)).all()
        denied = [e for e in after if e.outcome == "denied"]
        assert len(denied) == 1 and denied[0].patient_id == people.patient.id
        assert audit.verify(session).ok

    def test_a_failed_change_leaves_only_the_denial(self, client, people, session, sign_in):
        create_plan(session, people)
        commit(session)
        token = sign_in("pat@patients.example.org")
        before = events(session)
        response = client.post(
            f"/api/v1/patients/{people.patient.id}/careplan/strengths",
            json={"description": "x"},
            headers={"X-CSRF-Token": token},
        )
        assert response.status_code == 403
        after = session.scalars(select(AuditEvent).where(AuditEvent.seq > before)).all()
        # The plan read that preceded the refusal was rolled back with the request; the
        # refusal itself is kept.
        assert [(e.action, e.outcome) for e in after] == [("create", "denied")]

    def test_no_patient_data_goes_into_the_audit_detail(self, client, people, session, sign_in):
        create_plan(session, people)
        commit(session)
        for event in session.scalars(select(AuditEvent)):
            for value in event.detail.values():
                assert "feel better" not in str(value) and "Walk" not in str(value)

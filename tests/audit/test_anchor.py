"""Anchors: the chain's head signed with a key the database does not hold and kept outside it,
so a trail cut at the end or rewritten and re-chained is found (docs/adr/0017-audit-chain-anchors.md)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from concord.audit import service as audit
from concord.audit.anchor import (
    ANCHOR_FILE,
    AnchorError,
    create_key,
    load_private_key,
    load_public_key,
    verify_anchors,
    write_anchor,
)
from concord.audit.models import AuditEvent
from concord.worker import AnchorSchedule, audit_anchor_job
from tests.audit.test_audit import tamper
from tests.conftest import commit
from tests.factories import create_plan


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "keys" / "anchor.pem"
    create_key(path)
    return path


def busy_trail(session, people):
    create_plan(session, people, activate=True)
    commit(session)


def truncate(session, keep):
    """Drop every event after `keep` and move the head back onto it: the chain that is left
    links perfectly."""
    last = session.get(AuditEvent, keep)
    tamper(session, "DELETE FROM audit_event WHERE seq > :keep", keep=keep)
    session.execute(
        text("UPDATE audit_chain_head SET seq = :seq, hash = :hash WHERE id = 1"),
        {"seq": last.seq, "hash": last.hash},
    )
    session.expire_all()


def rewrite_and_rechain(session, seq):
    """Change one event, then recompute its hash and every later one's, and the head: what
    someone with the database owner's rights could do."""
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.seq >= seq).order_by(AuditEvent.seq)
    ).all()
    prev = session.get(AuditEvent, seq - 1).hash
    rows = []
    for event in events:
        fields = audit.hashed_fields(event)
        if event.seq == seq:
            fields["action"] = "read"
        fields["prev_hash"] = prev
        new = audit.event_hash(fields, event.chain_version)
        rows.append((event.seq, fields["action"], prev, new))
        prev = new
    session.expunge_all()
    statements = [
        (
            "UPDATE audit_event SET action = :a, prev_hash = :p, hash = :h WHERE seq = :s",
            {"a": a, "p": p, "h": h, "s": n},
        )
        for n, a, p, h in rows
    ]
    tamper_many(session, statements)
    session.execute(text("UPDATE audit_chain_head SET hash = :hash WHERE id = 1"), {"hash": prev})
    session.expire_all()


def tamper_many(session, statements):
    """tamper() for several statements: the append-only triggers set aside once."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update"))
        for sql, params in statements:
            session.execute(text(sql), params)
        session.execute(text("ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_update"))
    else:
        first, *rest = statements
        tamper(session, first[0], **first[1])
        for sql, params in rest:
            session.execute(text(sql), params)
    session.expire_all()


def check(session, directory, key):
    return verify_anchors(session, directory=directory, public_key=load_public_key(key))


class TestAnchors:
    def test_an_intact_trail_holds_its_anchors(self, session, people, key, tmp_path):
        busy_trail(session, people)
        anchor = write_anchor(session, key=load_private_key(key), directory=tmp_path / "a")
        last = session.scalar(select(func.max(AuditEvent.seq)))
        assert anchor.sequence == last
        line = json.loads((tmp_path / "a" / ANCHOR_FILE).read_text())
        assert set(line) == {"v", "sequence", "hash", "time", "key", "signature"}
        result = check(session, tmp_path / "a", key)
        assert result.ok, result.problems
        assert result.last_sequence == last

    def test_a_shortened_trail_passes_the_chain_but_not_its_anchor(
        self, session, people, key, tmp_path
    ):
        busy_trail(session, people)
        write_anchor(session, key=load_private_key(key), directory=tmp_path)
        last = session.scalar(select(func.max(AuditEvent.seq)))
        truncate(session, keep=last - 3)
        # The chain alone cannot tell: what is left links and matches the moved head.
        assert audit.verify(session).ok
        result = check(session, tmp_path, key)
        assert not result.ok
        assert f"event {last}" in result.problems[0]
        assert "removed from the end" in result.problems[0]

    def test_a_rewritten_and_rechained_trail_is_found(self, session, people, key, tmp_path):
        busy_trail(session, people)
        write_anchor(session, key=load_private_key(key), directory=tmp_path)
        last = session.scalar(select(func.max(AuditEvent.seq)))
        rewrite_and_rechain(session, seq=2)
        assert session.get(AuditEvent, 2).action == "read"
        assert audit.verify(session).ok  # consistent again: the chain alone cannot tell
        result = check(session, tmp_path, key)
        assert not result.ok
        assert f"event {last} no longer has the hash" in result.problems[0]
        assert "rewritten" in result.problems[0]

    def test_events_after_the_last_anchor_are_not_covered(self, session, people, key, tmp_path):
        # What an anchor does not prove: a rewrite after it.
        busy_trail(session, people)
        anchor = write_anchor(session, key=load_private_key(key), directory=tmp_path)
        for _ in range(3):
            audit.record(
                session,
                by=people.therapist,
                action="read",
                object_type="Patient",
                patient_id=people.patient.id,
            )
        commit(session)
        rewrite_and_rechain(session, seq=anchor.sequence + 2)
        result = check(session, tmp_path, key)
        assert result.ok and result.last_sequence == anchor.sequence

    def test_an_altered_or_forged_anchor_is_refused(self, session, people, key, tmp_path):
        busy_trail(session, people)
        write_anchor(session, key=load_private_key(key), directory=tmp_path)
        path = tmp_path / ANCHOR_FILE
        line = json.loads(path.read_text())
        # Someone who rewrote the trail rewrites the anchor to match, without the key.
        line["hash"] = "f" * 64
        path.write_text(json.dumps(line) + "\n")
        result = check(session, tmp_path, key)
        assert not result.ok
        assert "signature does not verify" in result.problems[0]

    def test_an_anchor_signed_with_another_key_is_refused(self, session, people, key, tmp_path):
        busy_trail(session, people)
        other = tmp_path / "other.pem"
        create_key(other)
        write_anchor(session, key=load_private_key(other), directory=tmp_path / "a")
        result = check(session, tmp_path / "a", key)
        assert not result.ok and "signature does not verify" in result.problems[0]

    def test_an_empty_folder_is_not_a_pass(self, session, people, key, tmp_path):
        with pytest.raises(AnchorError, match="no anchor files"):
            check(session, tmp_path / "nothing", key)

    def test_a_key_is_never_replaced(self, key):
        with pytest.raises(AnchorError, match="exists"):
            create_key(key)
        assert oct(key.stat().st_mode)[-3:] == "600"


class TestScheduled:
    def test_the_worker_anchors_once_per_period(
        self, factory, session, people, key, tmp_path, clock
    ):
        busy_trail(session, people)
        schedule = AnchorSchedule(key, tmp_path / "anchors", timedelta(minutes=60))
        assert audit_anchor_job(factory, schedule) == 1
        assert audit_anchor_job(factory, schedule) == 0  # within the hour: not again
        clock.advance(minutes=61)
        assert audit_anchor_job(factory, schedule) == 1
        lines = (tmp_path / "anchors" / ANCHOR_FILE).read_text().splitlines()
        assert len(lines) == 2
        assert check(session, tmp_path / "anchors", key).ok

"""Recording and verifying the audit trail.

`record()` is called explicitly by services and access helpers (never by ORM listeners). The
events wait on the session until the unit of work ends: `write_pending()` chains and inserts
them just before commit, so they land in the same transaction as the change they describe.
When the unit of work rolls back, `write_pending_after_rollback()` still writes the denied and
failed attempts, in a transaction of their own.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from concord.accounts.models import User
from concord.audit.models import GENESIS_HASH, AuditChainHead, AuditEvent, Outcome
from concord.clock import now
from concord.dates import local_date
from concord.db import on_finish
from concord.errors import NotFound

if TYPE_CHECKING:
    from concord.accounts.models import User


@dataclass
class PendingEvent:
    occurred_at: datetime
    organization_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    actor_role: str | None
    channel: str
    action: str
    object_type: str
    object_id: str | None
    patient_id: uuid.UUID | None
    outcome: str
    detail: dict[str, Any] = field(default_factory=dict)
    ip: str | None = None


def set_context(
    session: Session, *, channel: str, ip: str | None = None, via: str | None = None
) -> None:
    """Where the unit of work came from: web, api, fhir, cli or system; with `via`, the SMART
    app (its id) acting for the person, named in every event's detail (`smart_client`)."""
    session.info["audit_context"] = {"channel": channel, "ip": ip, "via": via}


def refused(
    session: Session,
    *,
    by: User | None,
    action: str,
    object_type: str,
    asked_for: object,
    message: Any,
) -> NotFound:
    """The answer for a record that is not there or not the asker's: a denied line in the
    trail naming what was asked for (its first 64 characters, as given), and not found, the
    same answer whichever it was. Raise what it returns."""
    record(
        session,
        by=by,
        action=action,
        object_type=object_type,
        object_id=str(asked_for)[:64],
        outcome=Outcome.denied,
    )
    return NotFound(message)


def record(
    session: Session,
    *,
    by: User | None,
    action: str,
    object_type: str,
    object_id: uuid.UUID | str | None = None,
    patient_id: uuid.UUID | None = None,
    outcome: Outcome = Outcome.success,
    detail: dict[str, Any] | None = None,
    organization_id: uuid.UUID | None = None,
) -> None:
    """Note an access or change. `detail` holds field names and codes, never free text."""
    context = session.info.get("audit_context", {"channel": "system", "ip": None})
    session.info.setdefault("audit_pending", []).append(
        PendingEvent(
            occurred_at=now(),
            organization_id=organization_id or (by.organization_id if by else None),
            actor_id=by.id if by else None,
            actor_role=by.role if by else None,
            channel=context["channel"],
            action=action,
            object_type=object_type,
            object_id=str(object_id) if object_id is not None else None,
            patient_id=patient_id,
            outcome=str(outcome),
            detail=(
                {**(detail or {}), "smart_client": context["via"]}
                if context.get("via")
                else detail or {}
            ),
            ip=context.get("ip"),
        )
    )


def pending(session: Session) -> list[PendingEvent]:
    return list(session.info.get("audit_pending", []))


def write_pending(session: Session) -> None:
    events: list[PendingEvent] = session.info.pop("audit_pending", [])
    if events:
        _append(session, events)
        session.flush()


def write_pending_after_rollback(session: Session, factory: sessionmaker[Session]) -> None:
    events: list[PendingEvent] = session.info.pop("audit_pending", [])
    kept = [e for e in events if e.outcome != Outcome.success]
    if not kept:
        return
    with factory() as fresh:
        _append(fresh, kept)
        fresh.commit()


# The unit of work (concord.db, below this module) writes the pending events at its end.
on_finish(before_commit=write_pending, after_rollback=write_pending_after_rollback)


def _content(pending_event: PendingEvent) -> dict[str, Any]:
    return {name: getattr(pending_event, name) for name in CONTENT_FIELDS}


# Built once: the trail is written by every request, and building a statement costs more than
# running it on SQLite. They run on the session's connection (Core, not the ORM's bulk path).
_EVENTS = AuditEvent.__table__
_HEAD = AuditChainHead.__table__
_APPEND_PG = text("SELECT concord_audit_append(CAST(:events AS jsonb))")
_READ_HEAD = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1)
_INSERT_EVENTS = insert(_EVENTS)
_INSERT_HEAD = insert(_HEAD)
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == 1)


def _append(session: Session, events: list[PendingEvent]) -> None:
    """Chain and insert `events` (version 2 links, see event_hash). On PostgreSQL one call to
    concord_audit_append() (migration 0006) locks the head, links, inserts and moves the head,
    so concurrent writers queue on the head for one statement and the commit, not for three
    round trips through the application (the bottleneck of the check-in benchmark with two
    app processes). Elsewhere (SQLite, one writer at a time) the same steps run here."""
    contents = [_content(e) for e in events]
    digests = [content_digest(c) for c in contents]
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        payload = [
            {**{k: _json_value(v) for k, v in c.items()}, "content": d}
            for c, d in zip(contents, digests, strict=True)
        ]
        connection.execute(_APPEND_PG, {"events": json.dumps(payload, ensure_ascii=False)})
        return
    head = connection.execute(_READ_HEAD).one_or_none()
    seq, prev = (0, GENESIS_HASH) if head is None else (head.seq, head.hash)
    rows = []
    for content, digest in zip(contents, digests, strict=True):
        seq += 1
        link = link_hash(seq, prev, digest)
        rows.append(
            {**content, "seq": seq, "prev_hash": prev, "hash": link, "chain_version": CHAIN_VERSION}
        )
        prev = link
    # One executemany (a page listing 150 patients writes 150 events).
    connection.execute(_INSERT_EVENTS, rows)
    if head is None:
        connection.execute(_INSERT_HEAD, {"id": 1, "seq": seq, "hash": prev})
    else:
        connection.execute(_MOVE_HEAD, {"seq": seq, "hash": prev})


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()  # microseconds kept: the digest covers them
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


# The fields an event's hash covers, in order (the previous event's hash included).
HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "organization_id",
    "actor_id",
    "actor_role",
    "channel",
    "action",
    "object_type",
    "object_id",
    "patient_id",
    "outcome",
    "detail",
    "ip",
    "prev_hash",
)


def hashed_fields(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in HASHED_FIELDS}


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


CHAIN_VERSION = 2
# Version 2 hashes these first (the content digest), then links seq|previous hash|digest.
CONTENT_FIELDS = tuple(name for name in HASHED_FIELDS if name not in ("seq", "prev_hash"))


def _digest(fields: dict[str, Any], names: tuple[str, ...]) -> str:
    payload = json.dumps(
        [_canonical(fields[name]) for name in names],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def content_digest(fields: dict[str, Any]) -> str:
    """SHA-256 over an event's recorded fields (not its place in the chain), canonical form."""
    return _digest(fields, CONTENT_FIELDS)


def link_hash(seq: int, prev_hash: str, digest: str) -> str:
    """The version 2 chain link; concord_audit_append() computes the same in PostgreSQL."""
    return hashlib.sha256(f"{seq}|{prev_hash}|{digest}".encode()).hexdigest()


def event_hash(fields: dict[str, Any], version: int = CHAIN_VERSION) -> str:
    """An event's hash from its fields (seq and the previous hash included). Version 1:
    SHA-256 over all of them in one canonical form; version 2: link_hash over the content
    digest."""
    if version == 1:
        return _digest(fields, HASHED_FIELDS)
    return link_hash(fields["seq"], fields["prev_hash"], content_digest(fields))


@dataclass
class VerifyResult:
    ok: bool
    events: int
    first_broken_seq: int | None = None
    problem: str | None = None


def _iter_events(session: Session, batch: int = 5000) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify(session: Session) -> VerifyResult:
    """Walk the chain from the first event; report the first one that does not hold."""
    # Columns, not an ORM object a session may hold from before the last append.
    head = session.execute(
        select(AuditChainHead.seq, AuditChainHead.hash).where(AuditChainHead.id == 1)
    ).one_or_none()
    expected_seq, prev, count = 1, GENESIS_HASH, 0
    for event in _iter_events(session):
        if event.seq != expected_seq:
            return VerifyResult(
                False,
                count,
                expected_seq,
                f"event {expected_seq} is missing (next present is {event.seq})",
            )
        if event.prev_hash != prev:
            return VerifyResult(
                False, count, event.seq, "its previous-hash does not match the event before it"
            )
        if event_hash(hashed_fields(event), event.chain_version) != event.hash:
            return VerifyResult(False, count, event.seq, "its contents do not match its hash")
        prev = event.hash
        expected_seq += 1
        count += 1
    head_seq = head.seq if head else 0
    head_hash = head.hash if head else GENESIS_HASH
    if head_seq != count or head_hash != prev:
        return VerifyResult(
            False,
            count,
            count + 1,
            f"the chain ends at event {count} but the head records {head_seq}: "
            "events were removed from the end",
        )
    return VerifyResult(True, count)


def count_events(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


@dataclass
class AccessLogRow:
    event: AuditEvent
    actor_name: str | None


def access_log(
    session: Session, *, patient_id: uuid.UUID, before: int | None = None, limit: int = 100
) -> list[AccessLogRow]:
    """Who looked at or changed one patient's record, newest first (keyset by seq)."""
    query = (
        select(AuditEvent, User.name)
        .outerjoin(User, User.id == AuditEvent.actor_id)
        .where(AuditEvent.patient_id == patient_id)
        .order_by(AuditEvent.seq.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(AuditEvent.seq < before)
    return [AccessLogRow(event, name) for event, name in session.execute(query)]


@dataclass
class AccessLogEntry:
    """Events of one day that say the same thing (the same person did the same to the same
    kind of thing, with the same outcome), shown as one line: "looked at your care plan, 3
    times"."""

    actor_id: uuid.UUID | None
    actor_name: str | None
    actor_role: str | None
    action: str
    object_type: str
    outcome: str
    channel: str
    first_at: datetime
    last_at: datetime
    count: int = 1


@dataclass
class AccessLogDay:
    day: date
    entries: list[AccessLogEntry]


def group_access_log(rows: list[AccessLogRow], where: Any) -> list[AccessLogDay]:
    """The rows (newest first) grouped by the organization's local day, then by what they
    say; a group sits where its latest event is."""
    days: dict[date, dict[tuple[Any, ...], AccessLogEntry]] = {}
    for row in rows:
        e = row.event
        day = local_date(e.occurred_at, where)
        assert day is not None
        key = (e.actor_id, e.actor_role, e.action, e.object_type, e.outcome, e.channel)
        entries = days.setdefault(day, {})
        entry = entries.get(key)
        if entry is None:
            entries[key] = AccessLogEntry(
                actor_id=e.actor_id,
                actor_name=row.actor_name,
                actor_role=e.actor_role,
                action=e.action,
                object_type=e.object_type,
                outcome=e.outcome,
                channel=e.channel,
                first_at=e.occurred_at,
                last_at=e.occurred_at,
            )
        else:
            entry.count += 1
            entry.first_at = min(entry.first_at, e.occurred_at)
            entry.last_at = max(entry.last_at, e.occurred_at)
    return [AccessLogDay(day, list(entries.values())) for day, entries in days.items()]

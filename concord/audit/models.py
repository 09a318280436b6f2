from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, SmallInteger, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from concord.categories import DataCategory
from concord.db import Base


class Outcome(StrEnum):
    success = "success"
    denied = "denied"
    failed = "failed"


class AuditEvent(Base):
    """One access to or change of the record. Append-only: database triggers refuse UPDATE and
    DELETE, and each event's hash covers the previous event's hash, so a removed or altered
    event breaks the chain (`concord audit verify`).

    Deliberately without foreign keys (as job-server's AuditableEvent): the trail must outlive
    and never block anything it describes.
    """

    __tablename__ = "audit_event"
    data_category = DataCategory.general
    __table_args__ = (
        Index("ix_audit_event_patient_seq", "patient_id", "seq"),
        Index("ix_audit_event_actor_seq", "actor_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    occurred_at: Mapped[datetime]
    organization_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    actor_role: Mapped[str | None] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]]
    ip: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # How `hash` was made (concord.audit.service.event_hash); 1 for events before 2026-11-22.
    chain_version: Mapped[int] = mapped_column(SmallInteger, server_default="1")


class AuditChainHead(Base):
    """The newest event's sequence number and hash. Appending locks this single row, which
    orders concurrent appenders; it is taken just before commit so it is held briefly."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))


GENESIS_HASH = "0" * 64

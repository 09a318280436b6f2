"""Notices (the bell), each person's channels and quiet hours, and the delivery log.

A delivery row holds no content: the text is made from its kind and link when it is sent, in
the person's language, and says only that something is waiting in Concord."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from concord.clock import now
from concord.db import Base, IdMixin


class Channel(StrEnum):
    email = "email"
    sms = "sms"


class DeliveryStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"  # given up on this channel after its attempts
    bounced = "bounced"  # refused for good by the gateway or server
    skipped = "skipped"  # no address for this channel


class Notice(IdMixin, Base):
    """A line under a person's bell: a kind of thing waiting and where to see it."""

    __tablename__ = "notice"
    __table_args__ = (Index("ix_notice_user_unread", "user_id", "read_at"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    kind: Mapped[str] = mapped_column(String(40))
    link: Mapped[str] = mapped_column(String(300))
    # What raised it (e.g. "visit:<id>:booked"): the same source never makes a second notice.
    source: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(default=now)
    read_at: Mapped[datetime | None]


class NotifyPreference(Base):
    """How a person wants to be told: channels in order (the first that works is used) and
    quiet hours in the organization's zone (nothing leaves then; it waits until they end)."""

    __tablename__ = "notify_preference"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"), primary_key=True)
    channels: Mapped[str] = mapped_column(String(60), default="email")
    phone: Mapped[str | None] = mapped_column(String(40))
    quiet_from: Mapped[int | None] = mapped_column(Integer)  # hour 0-23
    quiet_until: Mapped[int | None] = mapped_column(Integer)  # hour 0-23
    updated_at: Mapped[datetime] = mapped_column(default=now)


class Delivery(IdMixin, Base):
    """One notice on its way out by one channel; retried with back-off; never its text."""

    __tablename__ = "notice_delivery"
    __table_args__ = (
        Index("ix_notice_delivery_due", "status", "send_after"),
        Index("uq_notice_delivery_key", "key", unique=True),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    notice_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("notice.id"))
    kind: Mapped[str] = mapped_column(String(40))
    link: Mapped[str] = mapped_column(String(300))
    # Deduplication: the notice's source and the channel; a second ask is the same row.
    key: Mapped[str] = mapped_column(String(220))
    channel: Mapped[str] = mapped_column(String(20))
    # The channels still to try after this one, in order (the fallback).
    fallback: Mapped[str] = mapped_column(String(60), default="")
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    send_after: Mapped[datetime] = mapped_column(default=now)
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=now)

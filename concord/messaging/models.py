"""Secure messages (issue 22): threads between a patient and their care team, and between team
members about a patient, the messages in them, and who has read how far.

FHIR's shape (as Medplum threads messages): a thread is a header `Communication`, each message
a `Communication` that is `partOf` it; who must reply next is a registry task. A thread records
whose turn it is (`awaiting`) and by when the clinic has said it answers (`reply_due_at`).

Read state is a row per person and thread (`MessageRead.upto`, the number of the last message
they read): a person's unread count is the messages numbered after it written by someone else,
counted from the messages themselves, so it cannot drift from them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from concord.accounts.models import User
from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin


class ThreadKind(StrEnum):
    patient = "patient"  # the patient (and who they chose) with the care team
    team = "team"  # care team members about the patient; the patient does not see it


class Awaiting(StrEnum):
    team = "team"
    patient = "patient"


class MessageThread(IdMixin, Base):
    __tablename__ = "message_thread"
    __table_args__ = (
        Index("ix_message_thread_patient", "patient_id", "last_message_at"),
        Index("ix_message_thread_topic", "patient_id", "topic"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    kind: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(200))
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)
    last_message_at: Mapped[datetime] = mapped_column(default=now)
    awaiting: Mapped[str | None] = mapped_column(String(10))
    reply_due_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # What the thread is about when Concord opened it for something the patient did
    # ("careplan", "decision:<id>"): a later suggestion of the same kind joins the open thread.
    topic: Mapped[str | None] = mapped_column(String(80))
    message_count: Mapped[int] = mapped_column(Integer, default=0)

    created_by: Mapped[User] = relationship(lazy="joined", foreign_keys=[created_by_id])

    @property
    def data_category(self) -> DataCategory:
        return DataCategory.mental_health

    def about_path(self, *, for_patient: bool) -> str | None:
        """Where what the thread is about is read: the patient's own page or the team's."""
        topic = self.topic or ""
        if topic == "careplan":
            return "/my/plan" if for_patient else f"/patients/{self.patient_id}/plan"
        if topic.startswith("decision:"):
            ident = topic.removeprefix("decision:")
            if for_patient:
                return f"/my/decisions/{ident}"
            return f"/patients/{self.patient_id}/decisions/{ident}"
        return None


class Message(IdMixin, Base):
    __tablename__ = "message"
    __table_args__ = (UniqueConstraint("thread_id", "number"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    thread_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("message_thread.id"))
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, ... in the thread: the order
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    from_patient: Mapped[bool] = mapped_column(default=False)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)
    # The crisis phrase list's rule that matched (never the words themselves), if any.
    crisis_rule: Mapped[str | None] = mapped_column(String(60))

    author: Mapped[User] = relationship(lazy="joined", foreign_keys=[author_id])
    attachments: Mapped[list[MessageAttachment]] = relationship(
        lazy="selectin", order_by="MessageAttachment.filename"
    )

    @property
    def data_category(self) -> DataCategory:
        return DataCategory.mental_health

    @property
    def side(self) -> str:
        """Who wrote it, as the reader is told: "patient", "family" (a family member the
        patient's consent lets take part) or "team"."""
        if self.from_patient:
            return "patient"
        if self.author.is_related_person:
            return "family"
        return "team"


class MessageAttachment(IdMixin, Base):
    """A file sent with a message: PDF, PNG or JPEG, checked by its first bytes, not its name."""

    __tablename__ = "message_attachment"

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("message.id"))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)


class MessageRead(IdMixin, Base):
    __tablename__ = "message_read"
    __table_args__ = (UniqueConstraint("thread_id", "user_id"),)

    thread_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("message_thread.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    read_at: Mapped[datetime] = mapped_column(default=now)
    upto: Mapped[int] = mapped_column(Integer, default=0)  # read the messages numbered 1..upto
    # Who read, for the patient's "read by the team": a team member or the patient.
    team: Mapped[bool] = mapped_column(default=True)


__all__ = ["Awaiting", "Message", "MessageAttachment", "MessageRead", "MessageThread", "ThreadKind"]

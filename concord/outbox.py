"""Messages to send (email now), recorded in the same transaction as the change that causes
them and sent after it commits, so a rollback sends nothing. A failed send stays in the
outbox, is retried, and is visible to administrators. No message carries clinical content."""

from __future__ import annotations

import logging
import smtplib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from sqlalchemy import ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from concord.clock import now
from concord.db import Base, IdMixin
from concord.errors import NotFound
from concord.settings import get_settings

log = logging.getLogger("concord.outbox")
MAX_ATTEMPTS = 10


class OutboxMessage(IdMixin, Base):
    __tablename__ = "outbox_message"
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "send_after"),)

    # The organization the message is for (None for installation-wide messages), so its
    # administrators see what could not be delivered and no one else does.
    organization_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organization.id"))
    kind: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)
    send_after: Mapped[datetime] = mapped_column(default=now)
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))


def queue_email(
    session: Session,
    *,
    kind: str,
    to: str,
    subject: str,
    body: str,
    organization_id: uuid.UUID | None = None,
) -> OutboxMessage:
    message = OutboxMessage(
        organization_id=organization_id,
        kind=kind,
        recipient=to,
        subject=subject,
        body=body,
        created_at=now(),
        send_after=now(),
    )
    session.add(message)
    session.flush()
    return message


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    body: str


class Mailer(Protocol):
    def send(self, email: Email) -> None: ...


class FakeMailer:
    """For tests: keeps what it was asked to send; can be told to fail."""

    def __init__(self) -> None:
        self.sent: list[Email] = []
        self.failing = False

    def send(self, email: Email) -> None:
        if self.failing:
            raise OSError("the mail server is down (fake)")
        self.sent.append(email)


class FolderMailer:
    """For the demo and development: writes each message as a .eml file to read."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, email: Email) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        message = _message(email, "concord@localhost")
        (self.folder / f"{now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.eml").write_bytes(
            bytes(message)
        )


class SmtpMailer:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        username: str | None,
        password: str | None,
        starttls: bool,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls = username, password, starttls

    def send(self, email: Email) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=15) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(_message(email, self.sender))


def _message(email: Email, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message.set_content(email.body)
    return message


def mailer_from_settings() -> Mailer:
    settings = get_settings()
    if settings.smtp_host:
        return SmtpMailer(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            settings.smtp_username,
            settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            settings.smtp_starttls,
        )
    return FolderMailer(settings.instance_dir / "mail")


def send_pending(
    factory: sessionmaker[Session],
    mailer: Mailer,
    *,
    limit: int = 100,
    on_error: Callable[[OutboxMessage, Exception], None] | None = None,
) -> int:
    """Send what is due, one transaction per message; returns how many were sent."""
    sent = 0
    with factory() as session:
        ids = session.scalars(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.sent_at.is_(None),
                OutboxMessage.send_after <= now(),
                OutboxMessage.attempts < MAX_ATTEMPTS,
            )
            .order_by(OutboxMessage.created_at)
            .limit(limit)
        ).all()
    for message_id in ids:
        with factory() as session:
            message = session.scalar(
                select(OutboxMessage)
                .where(OutboxMessage.id == message_id, OutboxMessage.sent_at.is_(None))
                .with_for_update(skip_locked=True)
            )
            if message is None:
                continue  # another worker has it
            try:
                mailer.send(Email(message.recipient, message.subject, message.body))
            except Exception as exc:  # any failure: keep it, retry later
                message.attempts += 1
                message.last_error = f"{type(exc).__name__}: {exc}"[:500]
                # Back off: 1, 2, 4 ... minutes, at most an hour.
                message.send_after = now() + timedelta(minutes=min(2 ** (message.attempts - 1), 60))
                log.warning(
                    "could not send outbox message %s (attempt %s): %s",
                    message.id,
                    message.attempts,
                    type(exc).__name__,
                )
                if on_error:
                    on_error(message, exc)
            else:
                message.sent_at = now()
                message.attempts += 1
                message.last_error = None
                sent += 1
            session.commit()
    return sent


def failing_messages(session: Session, organization_id: uuid.UUID) -> list[OutboxMessage]:
    """The organization's messages that failed at least once and are not yet sent (for its
    administrators), oldest first. Given-up messages (MAX_ATTEMPTS) are among them."""
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.organization_id == organization_id,
                OutboxMessage.sent_at.is_(None),
                OutboxMessage.last_error.is_not(None),
            )
            .order_by(OutboxMessage.created_at)
            .limit(500)
        )
    )


def count_failing(session: Session, organization_id: uuid.UUID) -> int:
    from sqlalchemy import func

    return (
        session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.organization_id == organization_id,
                OutboxMessage.sent_at.is_(None),
                OutboxMessage.last_error.is_not(None),
            )
        )
        or 0
    )


def retry_now(session: Session, message_id: str, organization_id: uuid.UUID) -> None:
    """Send again at the next pass, with a fresh count of attempts."""
    try:
        mid = uuid.UUID(str(message_id))
    except ValueError:
        raise NotFound("No such message.") from None
    message = session.get(OutboxMessage, mid)
    if message is None or message.organization_id != organization_id or message.sent_at:
        raise NotFound("No such message.")
    message.attempts = 0
    message.send_after = now()

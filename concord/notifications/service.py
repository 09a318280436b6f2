"""One notification service: the bell in the app, email and SMS (issue 22).

`notify()` is called inside the transaction of the change that causes it: it writes the notice
under the person's bell and one delivery row for the first channel they chose; nothing leaves
before the transaction commits. `send_due()` (the worker) sends what is due, one transaction
per delivery, retrying with back-off; a channel that fails for good (or has no address) hands
over to the person's next channel. The text is made at sending time from the kind and the
link, in the person's language, and says only that something is waiting: no name, no
diagnosis, no medication, no score, no time of a visit. The log keeps no content.

Messaging calls `notify(kind="message_waiting", ...)` from concord/actions/messaging.py."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
import uuid
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from concord.accounts.models import Organization, User
from concord.clock import now
from concord.dates import zone
from concord.errors import InvalidInput, NotFound
from concord.i18n import N_, Msg, gettext
from concord.notifications.models import (
    Channel,
    Delivery,
    DeliveryStatus,
    Notice,
    NotifyPreference,
)
from concord.outbox import Email, Mailer
from concord.settings import get_settings

log = logging.getLogger("concord.notifications")

# Attempts per channel before the next channel is tried.
ATTEMPTS = 4

# kind -> (subject, line). Only that something is waiting; the link says where.
KINDS: dict[str, tuple[str, str]] = {
    "visit_requested": (
        N_("Concord: a visit request is waiting"),
        N_("A patient on your care team asked for a visit."),
    ),
    "visit_booked": (
        N_("Concord: you have a visit update"),
        N_("A visit was booked or changed. Sign in to see when and where."),
    ),
    "visit_proposed": (
        N_("Concord: a visit time is waiting for your answer"),
        N_("Your care team suggested a visit time. Sign in to accept it or ask for another."),
    ),
    "visit_cancelled": (
        N_("Concord: you have a visit update"),
        N_("A visit was cancelled. Sign in to see which one."),
    ),
    "visit_reminder": (
        N_("Concord: reminder of a visit"),
        N_("You have a visit coming up. Sign in to see when and how to join."),
    ),
    "checkin_waiting": (
        N_("Concord: you have a check-in waiting"),
        N_("You have a check-in waiting in Concord."),
    ),
    "message_waiting": (
        N_("Concord: you have a new message"),
        N_("You have a new message in Concord."),
    ),
}
# The words on the bell, in the app (behind the sign-in, so they may say a little more).
BELL: dict[str, str] = {
    "visit_requested": N_("A patient asked for a visit"),
    "visit_booked": N_("A visit was booked or changed"),
    "visit_proposed": N_("A visit time is waiting for your answer"),
    "visit_cancelled": N_("A visit was cancelled"),
    "visit_reminder": N_("You have a visit coming up"),
    "checkin_waiting": N_("You have a check-in waiting"),
    "message_waiting": N_("You have a new message"),
}


def render(kind: str, link: str, lang: str) -> tuple[str, str, str]:
    """(subject, email body, SMS text) for a notice: the same few words in every channel."""
    subject, line = KINDS[kind]
    base = get_settings().base_url.rstrip("/")
    url = f"{base}{link}"
    subject_t = gettext(lang, subject)
    line_t = gettext(lang, line)
    body = "\n\n".join(
        [
            line_t,
            gettext(lang, "Sign in to see it: %(url)s", url=url),
            gettext(
                lang,
                "This message was sent by Concord. It holds no health information; "
                "everything is behind your sign-in.",
            ),
        ]
    )
    sms = f"Concord: {line_t} {url}"
    return subject_t, body, sms


# --- preferences ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Preferences:
    channels: list[str]
    phone: str | None
    quiet_from: int | None
    quiet_until: int | None


def preferences(session: Session, user: User) -> Preferences:
    pref = session.get(NotifyPreference, user.id)
    if pref is None:
        return Preferences([Channel.email], None, None, None)
    return Preferences(
        [c for c in pref.channels.split(",") if c], pref.phone, pref.quiet_from, pref.quiet_until
    )


def set_preferences(
    session: Session,
    *,
    by: User,
    channels: list[str],
    phone: str | None,
    quiet_from: int | None,
    quiet_until: int | None,
) -> Preferences:
    """A person's own channels (in order), phone for SMS and quiet hours."""
    errors: dict[str, Any] = {}
    chosen = list(dict.fromkeys(c.strip() for c in channels if c.strip()))
    allowed = [c.value for c in Channel]
    if any(c not in allowed for c in chosen):
        errors["channels"] = Msg("must be among: %(allowed)s", allowed=", ".join(allowed))
    digits = "".join(ch for ch in (phone or "") if ch.isdigit())
    if phone and not (8 <= len(digits) <= 15):
        errors["phone"] = Msg("must be a phone number of 8 to 15 digits, e.g. +1 555 010 0199")
    if Channel.sms in chosen and not phone:
        errors["phone"] = Msg("is needed for text messages")
    for field, hour in (("quiet_from", quiet_from), ("quiet_until", quiet_until)):
        if hour is not None and not 0 <= hour <= 23:
            errors[field] = Msg("must be an hour from 0 to 23")
    if (quiet_from is None) != (quiet_until is None):
        errors["quiet_until"] = Msg("give both hours, or neither")
    if errors:
        raise InvalidInput(Msg("Your choices were not saved."), errors=errors)
    pref = session.get(NotifyPreference, by.id)
    if pref is None:
        pref = NotifyPreference(user_id=by.id)
        session.add(pref)
    pref.channels = ",".join(chosen)
    pref.phone = ("+" + digits) if phone else None
    pref.quiet_from, pref.quiet_until = quiet_from, quiet_until
    pref.updated_at = now()
    session.flush()
    return preferences(session, by)


def after_quiet_hours(moment: datetime, prefs: Preferences, organization: Organization) -> datetime:
    """`moment`, or the end of the person's quiet hours when it falls inside them."""
    if prefs.quiet_from is None or prefs.quiet_until is None:
        return moment
    local = moment.astimezone(zone(organization))
    start, end = prefs.quiet_from, prefs.quiet_until
    hour = local.hour
    inside = start <= hour < end if start < end else (hour >= start or hour < end)
    if start == end or not inside:
        return moment
    target = local.replace(hour=end, minute=0, second=0, microsecond=0)
    if target <= local:
        target += timedelta(days=1)
    return target.astimezone(moment.tzinfo)


# --- notify --------------------------------------------------------------------------------


def notify(
    session: Session,
    *,
    user: User,
    kind: str,
    link: str,
    source: str,
    bell: bool = True,
    send_after: datetime | None = None,
) -> Notice | None:
    """Tell `user` something is waiting at `link`. The same `source` never notifies twice."""
    if kind not in KINDS:
        raise ValueError(f"unknown notice kind {kind}")
    if not user.active:
        return None
    done = session.scalar(
        select(Notice.id).where(Notice.user_id == user.id, Notice.source == source[:160])
    )
    if done is not None:
        return None
    notice = Notice(
        organization_id=user.organization_id,
        user_id=user.id,
        kind=kind,
        link=link,
        source=source[:160],
        created_at=now(),
        read_at=None if bell else now(),
    )
    session.add(notice)
    session.flush()
    prefs = preferences(session, user)
    if prefs.channels:
        first, *rest = prefs.channels
        due = after_quiet_hours(send_after or now(), prefs, user.organization)
        session.add(
            Delivery(
                organization_id=user.organization_id,
                user_id=user.id,
                notice_id=notice.id,
                kind=kind,
                link=link,
                key=f"{source[:160]}:{user.id}:{first}",
                channel=first,
                fallback=",".join(rest),
                status=DeliveryStatus.pending,
                attempts=0,
                send_after=due,
                created_at=now(),
            )
        )
        session.flush()
    return notice


def unread_count(session: Session, user: User) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Notice)
            .where(Notice.user_id == user.id, Notice.read_at.is_(None))
        )
        or 0
    )


def list_notices(session: Session, user: User, limit: int = 50) -> list[Notice]:
    return list(
        session.scalars(
            select(Notice)
            .where(Notice.user_id == user.id)
            .order_by(Notice.created_at.desc(), Notice.id)
            .limit(limit)
        )
    )


def mark_read(session: Session, *, by: User, notice_id: Any = None) -> int:
    """Mark one of the person's notices read (or all of them, without an id)."""
    query = update(Notice).where(Notice.user_id == by.id, Notice.read_at.is_(None))
    if notice_id is not None:
        try:
            nid = uuid.UUID(str(notice_id))
        except ValueError:
            raise NotFound(Msg("No such notice.")) from None
        if (
            session.scalar(select(Notice.id).where(Notice.id == nid, Notice.user_id == by.id))
            is None
        ):
            raise NotFound(Msg("No such notice."))
        query = query.where(Notice.id == nid)
    result = session.execute(query.values(read_at=now()))
    return int(getattr(result, "rowcount", 0) or 0)


def mark_read_from(session: Session, *, by: User, source_prefix: str) -> int:
    """Mark read the person's notices raised by `source_prefix` (e.g. one message thread's,
    once they have read the thread): the bell says only what still waits."""
    escaped = source_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    result = session.execute(
        update(Notice)
        .where(
            Notice.user_id == by.id,
            Notice.read_at.is_(None),
            Notice.source.like(escaped + "%", escape="\\"),
        )
        .values(read_at=now())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- channels ------------------------------------------------------------------------------


class Bounced(Exception):
    """The server or gateway refused for good: do not retry this channel."""


class SmsGateway(Protocol):
    def send(self, to: str, text: str) -> None: ...


class FileSmsGateway:
    """For the demo and development: appends each text to a file to read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, to: str, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"at": now().isoformat(), "to": to, "text": text}) + "\n")


class HttpSmsGateway:
    """A generic HTTP gateway: POST {"to", "text"} as JSON to a URL template ({to} and {text}
    replaced, URL-encoded), with basic auth when credentials are set. 2xx is sent; 4xx other
    than 429 is bounced; anything else raises to be retried."""

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10,
    ) -> None:
        self.url, self.username, self.password, self.timeout = url, username, password, timeout

    def send(self, to: str, text: str) -> None:
        url = self.url.replace("{to}", urllib.parse.quote(to, safe="")).replace(
            "{text}", urllib.parse.quote(text, safe="")
        )
        request = urllib.request.Request(
            url,
            data=json.dumps({"to": to, "text": text}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        if self.username:
            token = b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                answer.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            if 400 <= exc.code < 500 and exc.code != 429:
                raise Bounced(f"gateway refused: HTTP {exc.code}") from None
            raise OSError(f"gateway answered HTTP {exc.code}") from None


def sms_from_settings() -> SmsGateway | None:
    settings = get_settings()
    if settings.sms_backend == "http" and settings.sms_url:
        return HttpSmsGateway(
            settings.sms_url,
            settings.sms_username,
            settings.sms_password.get_secret_value() if settings.sms_password else None,
        )
    if settings.sms_backend == "file":
        return FileSmsGateway(settings.instance_dir / "sms.log")
    return None


# --- sending -------------------------------------------------------------------------------


def _fall_back(session: Session, delivery: Delivery) -> None:
    """Hand the notice over to the person's next channel, if any."""
    rest = [c for c in delivery.fallback.split(",") if c]
    if not rest:
        return
    following, *after = rest
    key = delivery.key.rsplit(":", 1)[0] + f":{following}"
    if session.scalar(select(Delivery.id).where(Delivery.key == key)) is not None:
        return
    session.add(
        Delivery(
            organization_id=delivery.organization_id,
            user_id=delivery.user_id,
            notice_id=delivery.notice_id,
            kind=delivery.kind,
            link=delivery.link,
            key=key,
            channel=following,
            fallback=",".join(after),
            status=DeliveryStatus.pending,
            attempts=0,
            send_after=now(),
            created_at=now(),
        )
    )


def _send_one(
    user: User, delivery: Delivery, mailer: Mailer, sms: SmsGateway | None, session: Session
) -> None:
    subject, body, text = render(delivery.kind, delivery.link, user.language or "en")
    if delivery.channel == Channel.email:
        mailer.send(Email(user.email, subject, body))
        return
    if delivery.channel == Channel.sms:
        phone = preferences(session, user).phone
        if sms is None or not phone:
            raise LookupError("no SMS gateway or no phone number")
        sms.send(phone, text)
        return
    raise LookupError(f"unknown channel {delivery.channel}")


def send_due(
    factory: sessionmaker[Session],
    mailer: Mailer,
    sms: SmsGateway | None,
    *,
    limit: int = 200,
    on_error: Callable[[Delivery, Exception], None] | None = None,
) -> int:
    """Send the deliveries that are due, one transaction each; returns how many were sent."""
    sent = 0
    done: set[uuid.UUID] = set()
    # A delivery that fails for good hands over to the next channel: a second pass sends that
    # one at once (at most three passes: one per channel).
    for _ in range(len(Channel) + 1):
        with factory() as session:
            ids = [
                i
                for i in session.scalars(
                    select(Delivery.id)
                    .where(Delivery.status == DeliveryStatus.pending, Delivery.send_after <= now())
                    .order_by(Delivery.send_after)
                    .limit(limit)
                ).all()
                if i not in done
            ]
        if not ids:
            break
        done.update(ids)
        sent += _send_batch(factory, ids, mailer, sms, on_error)
    return sent


def _send_batch(
    factory: sessionmaker[Session],
    ids: list[uuid.UUID],
    mailer: Mailer,
    sms: SmsGateway | None,
    on_error: Callable[[Delivery, Exception], None] | None,
) -> int:
    sent = 0
    for delivery_id in ids:
        with factory() as session:
            delivery = session.scalar(
                select(Delivery)
                .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.pending)
                .with_for_update(skip_locked=True)
            )
            if delivery is None:
                continue
            user = session.get(User, delivery.user_id)
            delivery.attempts += 1
            try:
                if user is None or not user.active:
                    raise LookupError("no such person")
                _send_one(user, delivery, mailer, sms, session)
            except (Bounced, LookupError) as exc:
                delivery.status = (
                    DeliveryStatus.bounced if isinstance(exc, Bounced) else DeliveryStatus.skipped
                )
                delivery.last_error = type(exc).__name__
                _fall_back(session, delivery)
                if on_error:
                    on_error(delivery, exc)
            except Exception as exc:  # any other failure: retry with back-off, then fall back
                delivery.last_error = f"{type(exc).__name__}"[:200]
                if delivery.attempts >= ATTEMPTS:
                    delivery.status = DeliveryStatus.failed
                    _fall_back(session, delivery)
                else:
                    # 1, 2, 4 ... minutes.
                    delivery.send_after = now() + timedelta(minutes=2 ** (delivery.attempts - 1))
                log.warning(
                    "could not deliver notice %s by %s (attempt %s): %s",
                    delivery.id,
                    delivery.channel,
                    delivery.attempts,
                    type(exc).__name__,
                )
                if on_error:
                    on_error(delivery, exc)
            else:
                delivery.status = DeliveryStatus.sent
                delivery.sent_at = now()
                delivery.last_error = None
                sent += 1
            session.commit()
    return sent


def deliveries_for(session: Session, *, by: User, limit: int = 100) -> list[Delivery]:
    """The person's own delivery log (what went out, by which channel, how it went)."""
    return list(
        session.scalars(
            select(Delivery)
            .where(Delivery.user_id == by.id)
            .order_by(Delivery.created_at.desc())
            .limit(limit)
        )
    )

"""Safety notices: written in-app (and queued as email) when an alert needs someone; read back."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.orm import Session

from concord.access import parse_id
from concord.accounts.models import Clinic, User
from concord.clock import now
from concord.notifications.models import Notice
from concord.outbox import queue_email
from concord.patients.models import CareTeam, CareTeamMember, Patient
from concord.safety.emails import _email_text, _local_time
from concord.safety.models import (
    Notification,
    SafetyAlert,
)
from concord.safety.notices import KINDS
from concord.settings import get_settings


def _notify(
    session: Session,
    users: Iterable[User],
    *,
    kind: str,
    alert: SafetyAlert,
    email: bool = True,
) -> None:
    """In-app at once, and an email through the outbox (sent after commit) with no patient
    name and no clinical detail: only that an alert needs them, and by when."""
    base = get_settings().base_url.rstrip("/")
    seen: set[uuid.UUID] = set()
    for user in users:
        if user.id in seen or not user.active:
            continue
        seen.add(user.id)
        # One unread line per person, alert and kind: a reminder repeated is not a new line.
        unread = session.scalar(
            select(Notification.id).where(
                Notification.user_id == user.id,
                Notification.alert_id == alert.id,
                Notification.kind == kind,
                Notification.read_at.is_(None),
            )
        )
        if unread is None:
            session.add(
                Notification(
                    user_id=user.id,
                    kind=kind,
                    alert_id=alert.id,
                    patient_id=alert.patient_id,
                    created_at=now(),
                )
            )
        if not email:
            continue
        deadline = _local_time(alert.due_at, user.organization.timezone, user.language)
        subject, body = _email_text(user.language, kind, deadline, f"{base}/alerts/{alert.id}")
        queue_email(
            session,
            kind=f"safety_{kind}",
            to=user.email,
            subject=subject,
            body=body,
            organization_id=user.organization_id,
        )


def _shown_notifications(user: User) -> Any:
    """The unread notices a person is shown: about patients still on their care teams (one
    rule for the list and for the count in the navigation, so the two always agree)."""
    return _shown_to(user.id)


def _shown_to(user_id: Any) -> Any:
    return (
        select(Notification, Patient)
        .join(Patient, Patient.id == Notification.patient_id)
        .join(CareTeam, CareTeam.patient_id == Patient.id)
        .join(CareTeamMember, CareTeamMember.care_team_id == CareTeam.id)
        .where(
            Notification.user_id == user_id,
            Notification.read_at.is_(None),
            CareTeamMember.user_id == user_id,
            CareTeamMember.ended_at.is_(None),
        )
    )


def unread_notifications(session: Session, user: User) -> int:
    """How many notices wait for this person (the number in the navigation: no names)."""
    if not user.is_clinician:
        return 0
    shown = _shown_notifications(user).with_only_columns(Notification.id).distinct()
    return session.scalar(select(func.count()).select_from(shown.subquery())) or 0


@dataclass(frozen=True)
class NotificationRow:
    id: uuid.UUID
    kind: str
    created_at: datetime
    alert_id: uuid.UUID | None
    patient_id: uuid.UUID | None
    patient_name: str


def notifications_for(session: Session, user: User, *, limit: int = 20) -> list[NotificationRow]:
    """This person's unread notifications, newest first, for patients still on their teams."""
    if not user.is_clinician:
        return []
    rows = session.execute(
        _shown_notifications(user).order_by(Notification.created_at.desc()).limit(limit)
    ).all()
    return [
        NotificationRow(n.id, n.kind, n.created_at, n.alert_id, p.id, p.display_name)
        for n, p in rows
    ]


# The notice a privacy officer gets when withheld records are opened in an emergency
# (concord.actions.part2.break_glass): no patient named; the page /privacy/notices says whose.
EMERGENCY_NOTICE = "emergency_access"


def _officer_columns(user_id: Any) -> tuple[Any, Any]:
    unread = (
        select(func.count())
        .select_from(Notification)
        .where(
            Notification.user_id == user_id,
            Notification.kind == EMERGENCY_NOTICE,
            Notification.read_at.is_(None),
        )
        .scalar_subquery()
    )
    return exists().where(Clinic.privacy_officer_id == user_id), unread


def privacy_officer_status(session: Session, user: User) -> tuple[bool, int]:
    """Whether this person is a clinic's privacy officer, and how many emergency-access notices
    wait for them (a number only), in one statement: the navigation links the page for an
    officer always, and for anyone a notice waits for (an administrator standing in)."""
    row = session.execute(select(*_officer_columns(user.id))).one()
    return bool(row[0]), int(row[1] or 0)


@dataclass(frozen=True)
class NavigationCounts:
    unread: int  # `unread_notifications`
    officer: bool  # `privacy_officer_status`
    officer_notices: int
    bell: int = 0  # the person's unread notices (concord.notifications: the bell)


def _bell(user_id: Any) -> Any:
    return (
        select(func.count())
        .select_from(Notice)
        .where(Notice.user_id == user_id, Notice.read_at.is_(None))
        .scalar_subquery()
    )


def navigation_counts(session: Session, user: User) -> NavigationCounts:
    """`unread_notifications`, `privacy_officer_status` and the bell's unread count in one
    statement: the numbers the navigation shows on every page (one statement, not three)."""
    if not user.is_clinician:
        row = session.execute(select(*_officer_columns(user.id), _bell(user.id))).one()
        return NavigationCounts(0, bool(row[0]), int(row[1] or 0), int(row[2] or 0))
    row = session.execute(_navigation_statement(), {"user": user.id}).one()
    return NavigationCounts(int(row[0] or 0), bool(row[1]), int(row[2] or 0), int(row[3] or 0))


@functools.cache
def _navigation_statement() -> Any:
    # Built once, the person bound when it runs: it runs on every page a clinician opens.
    user_id = bindparam("user", type_=Notification.__table__.c.user_id.type)
    shown = _shown_to(user_id).with_only_columns(Notification.id).distinct()
    unread = select(func.count()).select_from(shown.subquery()).scalar_subquery()
    return select(unread, *_officer_columns(user_id), _bell(user_id))


def mark_privacy_notices_read(session: Session, user: User) -> None:
    session.execute(
        update(Notification)
        .where(
            Notification.user_id == user.id,
            Notification.kind == EMERGENCY_NOTICE,
            Notification.read_at.is_(None),
        )
        .values(read_at=now())
    )


def mark_read(
    session: Session,
    user: User,
    alert_id: uuid.UUID | None = None,
    notification_id: uuid.UUID | None = None,
) -> None:
    query = update(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)
    )
    if alert_id is not None:
        query = query.where(Notification.alert_id == alert_id)
    if notification_id is not None:
        query = query.where(Notification.id == notification_id)
    session.execute(query.values(read_at=now()))


def open_notification(session: Session, user: User, notification_id: Any) -> str | None:
    """Mark one of this person's notices read and say where on the record to read it; None
    when it is not theirs or its patient is no longer on their teams."""
    parsed = parse_id(notification_id)
    if parsed is None:
        return None
    row = session.execute(
        _shown_notifications(user).where(Notification.id == parsed).limit(1)
    ).first()
    if row is None:
        return None
    notice, patient = row
    mark_read(session, user, notification_id=notice.id)
    if notice.alert_id is not None:
        return f"/patients/{patient.id}/alerts/{notice.alert_id}"
    return f"/patients/{patient.id}/{KINDS.get(notice.kind, '')}"

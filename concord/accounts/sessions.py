"""Server-side web sessions: start, look up (idle and absolute time-outs), end."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from concord.accounts.models import (
    CLINICAL_ROLES,
    Role,
    User,
    WebSession,
)
from concord.audit.service import record
from concord.clock import now
from concord.settings import get_settings


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(
    session: Session, *, user: User, ip: str | None, user_agent: str | None, mfa_verified: bool
) -> tuple[str, WebSession]:
    settings = get_settings()
    token = secrets.token_urlsafe(32)
    web_session = WebSession(
        token_hash=token_hash(token),
        user_id=user.id,
        created_at=now(),
        last_seen_at=now(),
        expires_at=now() + timedelta(hours=settings.session_absolute_hours),
        csrf_token=secrets.token_urlsafe(32),
        mfa_verified=mfa_verified,
        ip=(ip or "")[:64],
        user_agent=(user_agent or "")[:300],
    )
    session.add(web_session)
    session.flush()
    return token, web_session


@dataclass
class SessionLookup:
    web_session: WebSession | None
    expired_reason: str | None = None


def session_for_token(session: Session, token: str | None) -> SessionLookup:
    if not token:
        return SessionLookup(None)
    settings = get_settings()
    web_session = session.scalar(
        select(WebSession).where(WebSession.token_hash == token_hash(token))
    )
    if web_session is None or web_session.revoked_at is not None:
        return SessionLookup(None)
    current = now()
    if current >= web_session.expires_at:
        web_session.revoked_at = current
        return SessionLookup(None, "absolute")
    if current - web_session.last_seen_at > timedelta(minutes=settings.session_idle_minutes):
        web_session.revoked_at = current
        return SessionLookup(None, "idle")
    if not web_session.user.active:
        web_session.revoked_at = current
        return SessionLookup(None)
    # Record activity at most every 30 seconds: the idle time-out needs no finer grain.
    if current - web_session.last_seen_at > timedelta(seconds=30):
        web_session.last_seen_at = current
    return SessionLookup(web_session)


def end_session(session: Session, web_session: WebSession) -> None:
    web_session.revoked_at = now()
    record(
        session,
        by=web_session.user,
        action="sign_out",
        object_type="User",
        object_id=web_session.user_id,
    )


def end_all_sessions(session: Session, *, user: User, by: User) -> int:
    result = session.execute(
        update(WebSession)
        .where(WebSession.user_id == user.id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now())
    )
    record(
        session,
        by=by,
        action="sign_out_everywhere",
        object_type="User",
        object_id=user.id,
        detail={"sessions": result.rowcount},
    )  # type: ignore[attr-defined]
    return int(result.rowcount)  # type: ignore[attr-defined]


def mark_mfa_verified(web_session: WebSession) -> None:
    web_session.mfa_verified = True


def mfa_required(user: User) -> bool:
    """Whether this user must pass a second factor: they enrolled, or their organization
    requires it of clinicians."""
    if user.mfa_enabled:
        return True
    return user.organization.require_mfa_for_clinicians and Role(user.role) in CLINICAL_ROLES

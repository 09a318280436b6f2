"""Sign-in: checking an email and password, and throttling failed attempts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from concord.accounts.models import (
    LoginAttempt,
    User,
)
from concord.accounts.oidc import sso_required_for
from concord.accounts.passwords import check_password, hash_password, hasher, normalize_email
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.clock import now
from concord.i18n import Msg
from concord.settings import get_settings


@dataclass
class SignInResult:
    user: User | None
    error: str | None = None
    throttled: bool = False


def _failures(session: Session, *conditions: Any, since: datetime, reset: Any = None) -> int:
    """Failed attempts matching `conditions` since `since`, or since the last success matching
    `reset` when that is later."""
    start = since
    if reset is not None:
        last_success = session.scalar(
            select(func.max(LoginAttempt.at)).where(*reset, LoginAttempt.success.is_(True))
        )
        if last_success is not None and last_success > start:
            start = last_success
    return (
        session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(*conditions, LoginAttempt.success.is_(False), LoginAttempt.at > start)
        )
        or 0
    )


def _throttle(session: Session, *, email: str, ip: str) -> Msg | None:
    """Why this attempt may not be tried now, or None.

    A lock is kept per (account, address): failing at one address does not lock the account
    at another, so someone who knows a clinician's email cannot lock them out (of a safety
    alert, say). One address failing for many accounts is throttled as well. Across every
    address, an account that keeps failing is slowed down, one try per back-off, but only
    for addresses it has not signed in from: its owner at their usual address is never
    stopped by what others do. Addresses come from concord.web.deps.client_ip, which trusts
    X-Forwarded-For only from a configured proxy."""
    settings = get_settings()
    window_start = now() - timedelta(minutes=settings.login_lockout_minutes)
    pair = (LoginAttempt.email == email, LoginAttempt.ip == ip)
    if _failures(session, *pair, since=window_start, reset=pair) >= settings.login_max_failures:
        return Msg(
            "Too many failed sign-ins. Wait %(minutes)s minutes and try again, "
            "or ask your administrator to reset your password.",
            minutes=settings.login_lockout_minutes,
        )
    # Not reset by a success: an attacker's own account must not clear its address's count.
    if (
        _failures(session, LoginAttempt.ip == ip, since=window_start)
        >= settings.login_max_failures_per_ip
    ):
        return Msg(
            "Too many failed sign-ins from this address. Wait %(minutes)s minutes and try again.",
            minutes=settings.login_lockout_minutes,
        )
    account = (LoginAttempt.email == email,)
    # Not reset by the owner's success either: it slows only addresses the owner never used.
    if _failures(session, *account, since=window_start) < settings.login_account_max_failures:
        return None
    known_since = now() - timedelta(days=settings.login_known_address_days)
    known = session.scalar(
        select(LoginAttempt.id)
        .where(*pair, LoginAttempt.success.is_(True), LoginAttempt.at > known_since)
        .limit(1)
    )
    if known is not None:
        return None
    last_failure = session.scalar(
        select(func.max(LoginAttempt.at)).where(*account, LoginAttempt.success.is_(False))
    )
    wait = timedelta(seconds=settings.login_account_backoff_seconds)
    if last_failure is not None and now() - _aware(last_failure) < wait:
        return Msg(
            "There have been many failed sign-ins to this account. Wait %(seconds)s seconds "
            "and try again, or sign in from a place you have signed in from before.",
            seconds=settings.login_account_backoff_seconds,
        )
    return None


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they are UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def authenticate(session: Session, *, email: str, password: str, ip: str) -> SignInResult:
    """Check an email and password. Never raises for a wrong password: the failed attempt
    must be committed so throttling can count it."""
    email = normalize_email(email)[:254]
    ip = ip[:64]
    throttled = _throttle(session, email=email, ip=ip)
    if throttled is not None:
        session.add(LoginAttempt(email=email, ip=ip, success=False))
        record(
            session,
            by=None,
            action="sign_in",
            object_type="User",
            outcome=Outcome.denied,
            detail={"reason": "throttled"},
        )
        return SignInResult(None, throttled, throttled=True)

    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        # Spend the same time as a real check so response time does not reveal accounts.
        check_password(_dummy_hash(), password)
        ok = False
    else:
        ok = check_password(user.password_hash, password) and user.active
    session.add(LoginAttempt(email=email, ip=ip, success=ok))
    if not ok or user is None:
        # The attempt is not the account holder's act, so it names no actor.
        record(
            session,
            by=None,
            action="sign_in",
            object_type="User",
            object_id=user.id if user else None,
            outcome=Outcome.failed,
            organization_id=user.organization_id if user else None,
        )
        return SignInResult(None, "That email and password do not match an active account.")
    if sso_required_for(user):
        record(
            session,
            by=None,
            action="sign_in",
            object_type="User",
            object_id=user.id,
            outcome=Outcome.denied,
            organization_id=user.organization_id,
            detail={"reason": "sso_required"},
        )
        return SignInResult(
            None, Msg("Your organization signs you in with single sign-on: use the button below.")
        )
    if hasher().check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    record(session, by=user, action="sign_in", object_type="User", object_id=user.id)
    return SignInResult(user)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))

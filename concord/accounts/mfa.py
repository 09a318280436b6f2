"""Two-step sign-in (TOTP): setup, verification and its throttle, recovery codes, reset."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import timedelta

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from concord.accounts.admin import require_admin, same_org
from concord.accounts.models import (
    MfaRecoveryCode,
    User,
)
from concord.accounts.sessions import end_all_sessions, token_hash
from concord.audit.models import AuditEvent, Outcome
from concord.audit.service import record
from concord.clock import now
from concord.errors import Conflict, InvalidInput
from concord.i18n import Msg
from concord.settings import get_settings


def _fernet() -> Fernet:
    key = hashlib.sha256(b"concord:totp:" + get_settings().effective_secret_key().encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _secret_of(user: User) -> str | None:
    if not user.totp_secret_encrypted:
        return None
    try:
        return _fernet().decrypt(user.totp_secret_encrypted.encode()).decode()
    except InvalidToken:
        return None


def begin_mfa_setup(session: Session, *, user: User) -> str:
    """A fresh secret for the authenticator app; it takes effect once a code confirms it."""
    if user.mfa_enabled:
        raise Conflict("Two-step sign-in is already set up for this account.")
    secret = pyotp.random_base32()
    user.totp_secret_encrypted = _fernet().encrypt(secret.encode()).decode()
    return secret


def pending_mfa_secret(user: User) -> str | None:
    return None if user.mfa_enabled else _secret_of(user)


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name="Concord")


def _verify_totp(user: User, code: str) -> bool:
    secret = _secret_of(user)
    code = re.sub(r"\s", "", code or "")
    if not secret or not code.isdigit() or len(code) != 6:
        return False
    totp = pyotp.TOTP(secret)
    current = now()
    step_now = int(current.timestamp()) // totp.interval
    for offset in (-1, 0, 1):
        step = step_now + offset
        if user.totp_last_step is not None and step <= user.totp_last_step:
            continue  # already used: a code is good once
        if hmac.compare_digest(totp.at(step * totp.interval), code):
            user.totp_last_step = step
            return True
    return False


def confirm_mfa_setup(session: Session, *, user: User, code: str) -> list[str]:
    """Turn MFA on once the app shows a right code; returns one-time recovery codes."""
    if user.mfa_enabled:
        raise Conflict("Two-step sign-in is already set up for this account.")
    if not _verify_totp(user, code):
        raise InvalidInput.field("code", "is not the 6-digit code your app shows now")
    user.mfa_enabled = True
    codes = [secrets.token_hex(5) for _ in range(10)]
    session.execute(
        update(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user.id).values(used_at=now())
    )
    for code_value in codes:
        session.add(MfaRecoveryCode(user_id=user.id, code_hash=token_hash(code_value)))
    record(session, by=user, action="mfa_enable", object_type="User", object_id=user.id)
    return codes


def second_factor_throttle(session: Session, *, user: User) -> Msg | None:
    """Why a second-factor code may not be tried now, or None. Someone who has the password
    must not be able to try every 6-digit code: after CONCORD_LOGIN_MAX_FAILURES wrong codes
    within the lockout window, codes wait out the window. Counted per account from the
    audit trail (each wrong code is a failed mfa_verify), which a right password does not
    reset."""
    settings = get_settings()
    since = now() - timedelta(minutes=settings.login_lockout_minutes)
    failures = session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.actor_id == user.id,
            AuditEvent.action == "mfa_verify",
            AuditEvent.outcome == Outcome.failed,
            AuditEvent.occurred_at > since,
        )
    )
    if (failures or 0) < settings.login_max_failures:
        return None
    return Msg(
        "Too many failed sign-ins. Wait %(minutes)s minutes and try again, "
        "or ask your administrator to reset your password.",
        minutes=settings.login_lockout_minutes,
    )


def verify_second_factor(session: Session, *, user: User, code: str) -> bool:
    """A 6-digit code from the app, or an unused recovery code."""
    if _verify_totp(user, code):
        record(session, by=user, action="mfa_verify", object_type="User", object_id=user.id)
        return True
    cleaned = re.sub(r"\s", "", code or "").lower()
    if cleaned:
        recovery = session.scalar(
            select(MfaRecoveryCode).where(
                MfaRecoveryCode.user_id == user.id,
                MfaRecoveryCode.code_hash == token_hash(cleaned),
                MfaRecoveryCode.used_at.is_(None),
            )
        )
        if recovery is not None:
            recovery.used_at = now()
            record(
                session, by=user, action="mfa_recovery_code", object_type="User", object_id=user.id
            )
            return True
    record(
        session,
        by=user,
        action="mfa_verify",
        object_type="User",
        object_id=user.id,
        outcome=Outcome.failed,
    )
    return False


def reset_mfa(session: Session, *, user: User, by: User) -> None:
    require_admin(session, by, action="mfa_reset", object_id=user.id)
    same_org(by, user)
    user.mfa_enabled = False
    user.totp_secret_encrypted = None
    user.totp_last_step = None
    end_all_sessions(session, user=user, by=by)
    record(session, by=by, action="mfa_reset", object_type="User", object_id=user.id)

"""Accounts: passwords, sign-in and its throttling, sessions, MFA, API tokens, administration."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from concord.accounts.models import (
    CLINICAL_ROLES,
    ApiToken,
    Clinic,
    LoginAttempt,
    MfaRecoveryCode,
    Organization,
    Role,
    TokenScope,
    User,
    WebSession,
)
from concord.audit.models import AuditEvent, Outcome
from concord.audit.service import record
from concord.clock import now
from concord.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from concord.i18n import Msg
from concord.settings import get_settings
from concord.validation import MAX_DATE

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 12
TOKEN_PREFIX = "cnc_"
LANGUAGES = ("en", "es")


# --- passwords ---------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


def hasher() -> PasswordHasher:
    settings = get_settings()
    return _hasher(settings.argon2_time_cost, settings.argon2_memory_kib)


def hash_password(password: str) -> str:
    return hasher().hash(password)


def check_password(password_hash: str, password: str) -> bool:
    try:
        return hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def validate_new_password(password: str, *, email: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput.field(field, f"must be at least {MIN_PASSWORD_LENGTH} characters long")
    if len(password) > 256:
        raise InvalidInput.field(field, "must be at most 256 characters long")
    if password.strip().lower() == email.strip().lower():
        raise InvalidInput.field(field, "must not be your email address")


def normalize_email(email: str) -> str:
    return email.strip().lower()


def validate_email(email: str, field: str = "email") -> str:
    email = normalize_email(email)
    if not EMAIL_RE.match(email) or len(email) > 254:
        raise InvalidInput.field(field, "must be an email address such as name@example.org")
    return email


def generate_password() -> str:
    """A temporary password for a new account: 4 groups of 5 letters and digits."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))


# --- sign-in -------------------------------------------------------------------------------


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
            "Too many failed sign-ins from this address. Wait %(minutes)s minutes and try "
            "again.",
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
    if hasher().check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    record(session, by=user, action="sign_in", object_type="User", object_id=user.id)
    return SignInResult(user)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


# --- sessions ------------------------------------------------------------------------------


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


# --- MFA (TOTP) ----------------------------------------------------------------------------


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
    _require_admin(session, by, action="mfa_reset", object_id=user.id)
    _same_org(by, user)
    user.mfa_enabled = False
    user.totp_secret_encrypted = None
    user.totp_last_step = None
    end_all_sessions(session, user=user, by=by)
    record(session, by=by, action="mfa_reset", object_type="User", object_id=user.id)


# --- API tokens ----------------------------------------------------------------------------


DURATION_RE = re.compile(r"^(\d+)\s*([dhm])$")


def parse_duration(text: str) -> timedelta:
    """'30d', '12h' or '90m'."""
    match = DURATION_RE.match(text.strip().lower())
    if not match:
        raise InvalidInput.field("expires_in", "must be a number followed by d, h or m, e.g. 30d")
    amount, unit = int(match.group(1)), match.group(2)
    if amount <= 0:
        raise InvalidInput.field("expires_in", "must be more than zero")
    try:
        duration = {
            "d": timedelta(days=amount),
            "h": timedelta(hours=amount),
            "m": timedelta(minutes=amount),
        }[unit]
        ends = now() + duration
    except OverflowError:
        ends = None
    # An expiry past 2200 is a typo (and past year 9999 it crashed the command).
    if ends is None or ends.year > MAX_DATE.year:
        raise InvalidInput.field("expires_in", Msg("must end before the year 2201"))
    return duration


def create_api_token(
    session: Session,
    *,
    user: User,
    by: User | None,
    name: str = "API token",
    expires_in: timedelta | None = None,
    scope: TokenScope = TokenScope.write,
) -> tuple[str, ApiToken]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    api_token = ApiToken(
        user_id=user.id,
        name=name.strip()[:100] or "API token",
        token_hash=token_hash(token),
        prefix=token[:10],
        scope=scope,
        created_at=now(),
        expires_at=now() + expires_in if expires_in else None,
    )
    session.add(api_token)
    session.flush()
    record(
        session,
        by=by or user,
        action="token_create",
        object_type="ApiToken",
        object_id=api_token.id,
        detail={"user": str(user.id), "scope": str(scope)},
    )
    return token, api_token


# Every API request asks it (the token, its user and their organization, by the joined
# loads): built once.
_TOKEN_BY_HASH = select(ApiToken).where(ApiToken.token_hash == bindparam("hash"))


def user_for_api_token(session: Session, token: str) -> tuple[User, ApiToken] | None:
    api_token = session.scalar(_TOKEN_BY_HASH, {"hash": token_hash(token)})
    if api_token is None or api_token.revoked_at is not None:
        return None
    current = now()
    if api_token.expires_at is not None and current >= api_token.expires_at:
        return None
    if not api_token.user.active:
        return None
    if api_token.last_used_at is None or current - api_token.last_used_at > timedelta(minutes=1):
        api_token.last_used_at = current
    return api_token.user, api_token


def list_api_tokens(session: Session, *, user: User) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
        )
    )


def revoke_api_token(
    session: Session, *, token_id: uuid.UUID | str, by: User | None, owner: User | None = None
) -> ApiToken:
    """Revoke a token. With `owner`, only that user's tokens are reachable."""
    query = select(ApiToken)
    try:
        query = query.where(ApiToken.id == uuid.UUID(str(token_id)))
    except ValueError:
        query = query.where(ApiToken.prefix == str(token_id))
    if owner is not None:
        query = query.where(ApiToken.user_id == owner.id)
    api_token = session.scalar(query)
    if api_token is None:
        raise NotFound("No such token.")
    if api_token.revoked_at is None:
        api_token.revoked_at = now()
        record(
            session,
            by=by or api_token.user,
            action="token_revoke",
            object_type="ApiToken",
            object_id=api_token.id,
        )
    return api_token


# --- users ---------------------------------------------------------------------------------


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def _require_admin(session: Session, by: User, *, action: str, object_id: object = None) -> None:
    if not by.can_administer:
        record(
            session,
            by=by,
            action=action,
            object_type="User",
            object_id=str(object_id) if object_id else None,
            outcome=Outcome.denied,
        )
        raise PermissionDenied("Only an administrator can do that.")


def _same_org(by: User, user: User) -> None:
    if user.organization_id != by.organization_id:
        raise NotFound("No such user.")


def create_organization(
    session: Session,
    *,
    name: str,
    slug: str,
    timezone: str = "UTC",
    require_mfa_for_clinicians: bool = False,
) -> Organization:
    if session.scalar(select(Organization).where(Organization.slug == slug)) is not None:
        raise Conflict(f"An organization called {slug!r} already exists.")
    org = Organization(
        name=name,
        slug=slug,
        timezone=timezone,
        require_mfa_for_clinicians=require_mfa_for_clinicians,
    )
    session.add(org)
    session.flush()
    return org


def create_clinic(session: Session, *, organization: Organization, name: str) -> Clinic:
    clinic = Clinic(organization_id=organization.id, name=name)
    session.add(clinic)
    session.flush()
    return clinic


def list_clinics(session: Session, *, organization_id: uuid.UUID) -> list[Clinic]:
    return list(
        session.scalars(
            select(Clinic).where(Clinic.organization_id == organization_id).order_by(Clinic.name)
        )
    )


def create_user(
    session: Session,
    *,
    by: User | None,
    organization: Organization,
    email: str,
    name: str,
    role: Role,
    password: str | None = None,
    clinic: Clinic | None = None,
    is_admin: bool = False,
    language: str = "en",
    must_change_password: bool | None = None,
) -> tuple[User, str]:
    """Create an account; returns it and its password (generated when none is given).

    `by` is None only for operator commands (the CLI), which run with the machine's trust."""
    if by is not None:
        _require_admin(session, by, action="user_create")
        if by.organization_id != organization.id:
            raise NotFound("No such organization.")
    errors: dict[str, str] = {}
    try:
        email = validate_email(email)
    except InvalidInput as exc:
        errors.update(exc.errors)
    if not name.strip():
        errors["name"] = "is required"
    if language not in LANGUAGES:
        errors["language"] = "must be one of: " + ", ".join(LANGUAGES)
    generated = password is None
    password = password or generate_password()
    if not generated:
        try:
            validate_new_password(password, email=email)
        except InvalidInput as exc:
            errors.update(exc.errors)
    if errors:
        raise InvalidInput("Some fields need attention.", errors=errors)
    if get_user_by_email(session, email) is not None:
        raise InvalidInput.field("email", "is already used by another account")
    user = User(
        organization_id=organization.id,
        clinic_id=clinic.id if clinic else None,
        email=email,
        name=name.strip()[:200],
        role=str(role),
        is_admin=is_admin,
        language=language,
        password_hash=hash_password(password),
        must_change_password=generated if must_change_password is None else must_change_password,
        password_changed_at=now(),
    )
    session.add(user)
    session.flush()
    record(
        session,
        by=by,
        action="user_create",
        object_type="User",
        object_id=user.id,
        organization_id=organization.id,
        detail={"role": str(role)},
    )
    return user, password


def update_user(
    session: Session,
    *,
    user: User,
    by: User,
    name: str | None = None,
    role: Role | None = None,
    is_admin: bool | None = None,
    active: bool | None = None,
    clinic: Clinic | None = None,
    language: str | None = None,
) -> User:
    _require_admin(session, by, action="user_update", object_id=user.id)
    _same_org(by, user)
    changed: list[str] = []
    if name is not None and name.strip() and name.strip() != user.name:
        user.name = name.strip()[:200]
        changed.append("name")
    if role is not None and str(role) != user.role:
        if user.role in (Role.patient, Role.related_person) or role in (
            Role.patient,
            Role.related_person,
        ):
            raise InvalidInput.field("role", "a patient or family account cannot change role")
        user.role = str(role)
        changed.append("role")
    if is_admin is not None and is_admin != user.is_admin:
        if user.id == by.id and not is_admin and user.role != Role.admin:
            raise InvalidInput.field("is_admin", "you cannot remove your own administrator rights")
        user.is_admin = is_admin
        changed.append("is_admin")
    if active is not None and active != user.active:
        if user.id == by.id and not active:
            raise InvalidInput.field("active", "you cannot deactivate your own account")
        user.active = active
        changed.append("active")
        if not active:
            end_all_sessions(session, user=user, by=by)
    if clinic is not None and clinic.id != user.clinic_id:
        user.clinic_id = clinic.id
        changed.append("clinic")
    if language is not None and language != user.language:
        if language not in LANGUAGES:
            raise InvalidInput.field("language", "must be one of: " + ", ".join(LANGUAGES))
        user.language = language
        changed.append("language")
    if changed:
        record(
            session,
            by=by,
            action="user_update",
            object_type="User",
            object_id=user.id,
            detail={"fields": changed},
        )
    return user


def reset_password(session: Session, *, user: User, by: User | None) -> str:
    """A new temporary password the user must change at next sign-in."""
    if by is not None:
        _require_admin(session, by, action="password_reset", object_id=user.id)
        _same_org(by, user)
    password = generate_password()
    user.password_hash = hash_password(password)
    user.must_change_password = True
    user.password_changed_at = now()
    session.execute(
        update(WebSession)
        .where(WebSession.user_id == user.id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now())
    )
    record(
        session,
        by=by,
        action="password_reset",
        object_type="User",
        object_id=user.id,
        organization_id=user.organization_id,
    )
    return password


def change_password(session: Session, *, user: User, current: str, new: str, confirm: str) -> None:
    errors: dict[str, str] = {}
    if not check_password(user.password_hash, current):
        errors["current_password"] = "is not your current password"
    if new != confirm:
        errors["confirm_password"] = "does not match the new password"
    try:
        validate_new_password(new, email=user.email, field="new_password")
    except InvalidInput as exc:
        errors.update(exc.errors)
    if not errors and new == current:
        errors["new_password"] = "must differ from your current password"
    if errors:
        raise InvalidInput("Your password was not changed.", errors=errors)
    user.password_hash = hash_password(new)
    user.must_change_password = False
    user.password_changed_at = now()
    record(session, by=user, action="password_change", object_type="User", object_id=user.id)


def set_language(session: Session, *, user: User, language: str) -> None:
    if language not in LANGUAGES:
        raise InvalidInput.field("language", "must be one of: " + ", ".join(LANGUAGES))
    user.language = language


def list_users(session: Session, *, by: User) -> list[User]:
    _require_admin(session, by, action="user_list")
    return list(
        session.scalars(
            select(User).where(User.organization_id == by.organization_id).order_by(User.name)
        )
    )


def get_user_for_admin(session: Session, *, by: User, user_id: str | uuid.UUID) -> User:
    _require_admin(session, by, action="user_read", object_id=user_id)
    try:
        uid = uuid.UUID(str(user_id))
    except ValueError:
        raise NotFound("No such user.") from None
    user = session.get(User, uid)
    if user is None or user.organization_id != by.organization_id:
        raise NotFound("No such user.")
    return user


def parse_crisis_resources(text: str) -> dict[str, Any] | None:
    """One resource a line: name | how to reach it | link (tel: or https:) | more detail.
    Empty means Concord's defaults."""
    resources = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise InvalidInput.field(
                "crisis_resources",
                Msg("line %(n)s needs at least a name and how to reach it, separated by |", n=n),
            )
        href = parts[2] if len(parts) > 2 else ""
        if href and not (href.startswith("tel:") or href.startswith("https://")):
            raise InvalidInput.field(
                "crisis_resources",
                Msg("line %(n)s: the link must start with tel: or https://", n=n),
            )
        resources.append(
            {
                "name": {"en": parts[0]},
                "contact": {"en": parts[1]},
                "href": href,
                "detail": {"en": parts[3] if len(parts) > 3 else ""},
            }
        )
    return {"resources": resources} if resources else None


def crisis_resources_text(org: Organization) -> str:
    if not org.crisis_resources:
        return ""
    return "\n".join(
        " | ".join(
            [
                r["name"].get("en", ""),
                r["contact"].get("en", ""),
                r.get("href", ""),
                r.get("detail", {}).get("en", ""),
            ]
        ).rstrip(" |")
        for r in org.crisis_resources["resources"]
    )


def update_organization_settings(
    session: Session,
    *,
    by: User,
    require_mfa_for_clinicians: bool,
    review_interval_days: int | None,
    crisis_resources: str | None = None,
    on_call_user_id: str | None = None,
) -> Organization:
    """The organization's own settings. An empty review interval means the installation's
    default (CONCORD_REVIEW_INTERVAL_DAYS). `on_call_user_id` ("" for nobody) names the
    clinician who takes safety alerts nobody on the care team acknowledged in time."""
    _require_admin(session, by, action="organization_update")
    if review_interval_days is not None and not 1 <= review_interval_days <= 366:
        raise InvalidInput.field(
            "review_interval_days", Msg("must be a number of days from 1 to 366")
        )
    org = session.get(Organization, by.organization_id)
    assert org is not None
    org.require_mfa_for_clinicians = require_mfa_for_clinicians
    org.review_interval_days = review_interval_days
    if crisis_resources is not None:
        org.crisis_resources = parse_crisis_resources(crisis_resources)
    if on_call_user_id is not None:
        org.on_call_user_id = _on_call(session, org, on_call_user_id)
    record(
        session,
        by=by,
        action="organization_update",
        object_type="Organization",
        object_id=org.id,
        detail={
            "require_mfa_for_clinicians": require_mfa_for_clinicians,
            "review_interval_days": review_interval_days,
            "on_call": str(org.on_call_user_id) if org.on_call_user_id else None,
        },
    )
    return org


def _on_call(session: Session, org: Organization, value: str) -> uuid.UUID | None:
    if not value.strip():
        return None
    try:
        uid = uuid.UUID(value.strip())
    except ValueError:
        uid = None
    user = session.get(User, uid) if uid is not None else None
    if user is None or user.organization_id != org.id or not user.active or not user.is_clinician:
        raise InvalidInput.field(
            "on_call_user_id", Msg("must be an active clinician of this organization, or nobody")
        )
    return user.id

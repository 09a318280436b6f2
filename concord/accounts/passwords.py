"""Passwords: hashing (argon2), the rules for a new one, temporary ones, changing and resetting."""

from __future__ import annotations

import re
import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import update
from sqlalchemy.orm import Session

from concord.accounts.admin import require_admin, same_org
from concord.accounts.models import (
    User,
    WebSession,
)
from concord.audit.service import record
from concord.clock import now
from concord.errors import InvalidInput
from concord.settings import get_settings

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 12


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


def reset_password(session: Session, *, user: User, by: User | None) -> str:
    """A new temporary password the user must change at next sign-in."""
    if by is not None:
        require_admin(session, by, action="password_reset", object_id=user.id)
        same_org(by, user)
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

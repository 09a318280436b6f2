"""Users and roles: create, update, list and find accounts; a user's language."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.accounts.admin import require_admin, same_org
from concord.accounts.models import (
    CLINICAL_ROLES,
    Clinic,
    Organization,
    Role,
    User,
)
from concord.accounts.passwords import (
    generate_password,
    hash_password,
    normalize_email,
    validate_email,
    validate_new_password,
)
from concord.accounts.sessions import end_all_sessions
from concord.accounts.tokens import forget_usable_tokens
from concord.audit.service import record
from concord.clock import now
from concord.errors import InvalidInput, NotFound

LANGUAGES = ("en", "es")


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalize_email(email)))


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
        require_admin(session, by, action="user_create")
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
    require_admin(session, by, action="user_update", object_id=user.id)
    same_org(by, user)
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
            forget_usable_tokens()
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


def set_language(session: Session, *, user: User, language: str) -> None:
    if language not in LANGUAGES:
        raise InvalidInput.field("language", "must be one of: " + ", ".join(LANGUAGES))
    user.language = language


def list_users(session: Session, *, by: User) -> list[User]:
    require_admin(session, by, action="user_list")
    return list(
        session.scalars(
            select(User).where(User.organization_id == by.organization_id).order_by(User.name)
        )
    )


def get_user_for_admin(session: Session, *, by: User, user_id: str | uuid.UUID) -> User:
    require_admin(session, by, action="user_read", object_id=user_id)
    try:
        uid = uuid.UUID(str(user_id))
    except ValueError:
        raise NotFound("No such user.") from None
    user = session.get(User, uid)
    if user is None or user.organization_id != by.organization_id:
        raise NotFound("No such user.")
    return user


def get_colleague(session: Session, *, by: User, user_id: str | uuid.UUID) -> User | None:
    """A clinician of `by`'s organization (a Practitioner in the FHIR API), or None."""
    try:
        user = session.get(User, uuid.UUID(str(user_id)))
    except ValueError:
        return None
    if user is None or user.organization_id != by.organization_id:
        return None
    return user if Role(user.role) in CLINICAL_ROLES else None

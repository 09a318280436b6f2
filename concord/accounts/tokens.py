"""API tokens: create, look up on each request, list, revoke."""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from concord.accounts.models import (
    ApiToken,
    ClientScope,
    Clinic,
    Organization,
    Role,
    TokenScope,
    User,
)
from concord.accounts.passwords import hash_password
from concord.accounts.sessions import token_hash
from concord.audit.service import record
from concord.clock import now
from concord.errors import InvalidInput, NotFound
from concord.i18n import Msg
from concord.validation import MAX_DATE

TOKEN_PREFIX = "cnc_"


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


CLIENT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def client_email(organization: Organization, name: str) -> str:
    """The account name of an integration client: never a mailbox (.invalid, RFC 2606)."""
    return f"{name}@{organization.slug}.client.invalid"


def create_client_token(
    session: Session,
    *,
    organization: Organization,
    name: str,
    scopes: list[str],
    clinic: Clinic | None = None,
    expires_in: timedelta | None = None,
) -> tuple[str, ApiToken]:
    """A token for an integration client acting for `organization` (made on first use: a user
    of role `client` that cannot sign in), with the scopes named (import, quality). Its
    requests are audited under the client, as a person's are under them. Operator only."""
    if not CLIENT_NAME_RE.match(name):
        raise InvalidInput.field(
            "client", "must be 1-40 lowercase letters, digits or dashes, e.g. ehr-feed"
        )
    wanted = []
    for scope in scopes or []:
        try:
            wanted.append(str(ClientScope(scope)))
        except ValueError:
            raise InvalidInput.field(
                "scope", "a client's scopes are: " + ", ".join(s.value for s in ClientScope)
            ) from None
    if not wanted:
        raise InvalidInput.field("scope", "name at least one: import, quality")
    email = client_email(organization, name)
    client = session.scalar(select(User).where(User.email == email))
    if client is None:
        client = User(
            organization_id=organization.id,
            clinic_id=clinic.id if clinic else None,
            email=email,
            name=name,
            role=str(Role.client),
            # No one knows this password: a client has only its tokens.
            password_hash=hash_password(secrets.token_urlsafe(32)),
            password_changed_at=now(),
        )
        session.add(client)
        session.flush()
        record(
            session,
            by=None,
            action="user_create",
            object_type="User",
            object_id=client.id,
            organization_id=organization.id,
            detail={"role": str(Role.client)},
        )
    elif not client.is_client or not client.active:
        raise InvalidInput.field("client", "is not an active integration client")
    elif clinic is not None:
        client.clinic_id = clinic.id
    return create_api_token(
        session,
        user=client,
        by=None,
        name=f"client {name}",
        expires_in=expires_in,
        scope=" ".join(sorted(set(wanted))),  # type: ignore[arg-type]
    )


def token_scopes(api_token: ApiToken | None) -> frozenset[str]:
    """The scopes a token carries (a client's are several, space-separated)."""
    if api_token is None:
        return frozenset()
    return frozenset(str(api_token.scope).split())


# Every API request asks it (the token, its user and their organization, by the joined
# loads): built once.
_TOKEN_BY_HASH = select(ApiToken).where(ApiToken.token_hash == bindparam("hash"))


def _usable(revoked_at: object, expires_at: Any, active: bool, current: Any) -> bool:
    if revoked_at is not None:
        return False
    if expires_at is not None and current >= expires_at:
        return False
    return bool(active)


def user_for_api_token(session: Session, token: str) -> tuple[User, ApiToken] | None:
    api_token = session.scalar(_TOKEN_BY_HASH, {"hash": token_hash(token)})
    if api_token is None:
        return None
    current = now()
    if not _usable(api_token.revoked_at, api_token.expires_at, api_token.user.active, current):
        return None
    if api_token.last_used_at is None or current - api_token.last_used_at > timedelta(minutes=1):
        api_token.last_used_at = current
    return api_token.user, api_token


# The same decision from three columns, not the token, its user and their organization as
# objects: what the check before a write's body is read needs (concord.web.limits), at a
# fraction of the cost. The request's own check (user_for_api_token) runs again in its
# transaction.
_TOKEN_USABLE = (
    select(ApiToken.revoked_at, ApiToken.expires_at, User.active)
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("hash"))
)


def api_token_usable(session: Session, token: str) -> bool:
    """Whether user_for_api_token would find this token's user (nothing is loaded or
    changed)."""
    row = session.execute(_TOKEN_USABLE, {"hash": token_hash(token)}).first()
    return row is not None and _usable(row[0], row[1], row[2], now())


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

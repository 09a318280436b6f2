"""The tables of SMART App Launch: registered apps, launch contexts, authorization codes,
grants (an app's standing leave to act for a person) and the server's signing key."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin, JSONType


class SmartClient(IdMixin, Base):
    """An app an administrator registered: who it is, where it may send people back, what it
    may ask for. A confidential app proves itself with a key (private_key_jwt) or a secret;
    a public one (a browser app) only with PKCE."""

    __tablename__ = "smart_client"

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    client_id: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    redirect_uris: Mapped[list[str]] = mapped_column(JSONType)
    launch_url: Mapped[str | None] = mapped_column(String(500))
    allowed_scopes: Mapped[str] = mapped_column(Text)
    confidential: Mapped[bool] = mapped_column(Boolean, default=False)
    secret_hash: Mapped[str | None] = mapped_column(String(128))
    jwks: Mapped[dict[str, Any] | None]
    jwks_url: Mapped[str | None] = mapped_column(String(500))
    # Origins allowed to call /fhir and the token endpoint from a browser (CORS), and to
    # embed Concord's pages in a frame (an EHR's, frame-ancestors).
    origins: Mapped[list[str]] = mapped_column(JSONType)
    # The account a backend service acts as (role client): its reads are audited under it.
    service_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    # The clinician whose access a backend service borrows (ADR 0028): its Bulk exports read
    # as that person. None: the service reads nothing.
    acts_for_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)
    disabled_at: Mapped[datetime | None]


class SmartLaunch(IdMixin, Base):
    """A launch context an EHR registered before opening an app: the patient, found by the
    EHR's identifier. The app brings back the opaque `launch` value; it is used once."""

    __tablename__ = "smart_launch"
    # Which patient an EHR opened an app for: registration-level, like the patient's own row.
    data_category = DataCategory.general

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    launch_hash: Mapped[str] = mapped_column(String(128), unique=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class SmartGrant(IdMixin, Base):
    """A person's leave for an app: the scopes granted, the patient in context, and the
    current refresh token (rotated at each use; an old one sent again revokes the grant)."""

    __tablename__ = "smart_grant"
    data_category = DataCategory.general  # which app may read whose record (no clinical data)

    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("smart_client.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"), index=True)
    patient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patient.id"), index=True)
    scopes: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(200))
    refresh_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    previous_refresh_hash: Mapped[str | None] = mapped_column(String(128), index=True)
    refresh_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=now)
    revoked_at: Mapped[datetime | None]

    client: Mapped[SmartClient] = relationship(lazy="joined")


class SmartCode(IdMixin, Base):
    """An authorization code: short-lived, used once, bound to the redirect URI and the PKCE
    challenge it was asked with."""

    __tablename__ = "smart_code"

    code_hash: Mapped[str] = mapped_column(String(128), unique=True)
    grant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("smart_grant.id"))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    code_challenge: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

    grant: Mapped[SmartGrant] = relationship(lazy="joined")


class SmartToken(Base):
    """Which grant an access token (an api_token row: hashed, expiring, revocable) was issued
    under; a backend service's token names its client and no grant."""

    __tablename__ = "smart_token"
    data_category = DataCategory.general  # which patient a token is kept to

    api_token_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("api_token.id"), primary_key=True
    )
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("smart_client.id"), index=True)
    grant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("smart_grant.id"), index=True)
    scopes: Mapped[str] = mapped_column(Text)
    patient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patient.id"))


class SmartKey(IdMixin, Base):
    """The server's key for signing id_tokens (ES384), made on first use and kept here so
    every process signs with the same one."""

    __tablename__ = "smart_key"

    kid: Mapped[str] = mapped_column(String(64), unique=True)
    private_jwk: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=now)

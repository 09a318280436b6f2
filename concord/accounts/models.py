from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Uuid, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from concord.clock import now
from concord.db import Base, IdMixin


class Role(StrEnum):
    admin = "admin"
    care_manager = "care_manager"
    psychiatric_consultant = "psychiatric_consultant"
    primary_care_provider = "primary_care_provider"
    psychiatrist = "psychiatrist"
    therapist = "therapist"
    addiction_counsellor = "addiction_counsellor"
    social_worker = "social_worker"
    peer_specialist = "peer_specialist"
    nurse = "nurse"
    patient = "patient"
    related_person = "related_person"
    # An integration client (an EHR feed, a quality tool): a program acting for the
    # organization with a scoped API token, never a person; it cannot sign in.
    client = "client"

    @property
    def is_clinical(self) -> bool:
        return self in CLINICAL_ROLES


CLINICAL_ROLES = frozenset(
    {
        Role.care_manager,
        Role.psychiatric_consultant,
        Role.primary_care_provider,
        Role.psychiatrist,
        Role.therapist,
        Role.addiction_counsellor,
        Role.social_worker,
        Role.peer_specialist,
        Role.nurse,
    }
)


class Organization(IdMixin, Base):
    __tablename__ = "organization"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    require_mfa_for_clinicians: Mapped[bool] = mapped_column(Boolean, default=False)
    # Staff (administrators excepted) sign in only with the OpenID Connect provider.
    sso_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    review_interval_days: Mapped[int | None] = mapped_column(Integer)
    # How often a patient on a medication for opioid use disorder should have a PDMP check
    # (issue 19). No default: state rules differ, so the clinic sets it; unset, no flag.
    pdmp_check_interval_days: Mapped[int | None] = mapped_column(Integer)
    # Crisis resources shown to a patient at risk; empty means the built-in defaults.
    crisis_resources: Mapped[dict[str, Any] | None]
    # The clinic's messaging policy (answer time, office hours, phone): concord.messaging.
    messaging_settings: Mapped[dict[str, Any] | None]
    # Instruments every patient is scheduled for when their plan becomes active.
    measurement_defaults: Mapped[dict[str, Any] | None]
    # The clinician who takes safety alerts the care team has not acknowledged in time (the
    # `on_call` step of an escalation chain).
    on_call_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("user_account.id", use_alter=True)
    )
    # Telehealth (issue 22): the clinic's own video service, e.g. https://meet.jit.si/{room};
    # {room} is a random name per visit. None: no video visits.
    video_url_template: Mapped[str | None] = mapped_column(String(300))
    # From how many minutes before a video visit its "Join" button shows.
    video_join_minutes: Mapped[int] = mapped_column(Integer, default=10)
    # Visit reminders, in minutes before the start (default: the day before and the hour before).
    visit_reminders: Mapped[str] = mapped_column(String(60), default="1440,60")
    created_at: Mapped[datetime] = mapped_column(default=now)


class Clinic(IdMixin, Base):
    __tablename__ = "clinic"

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # A federally assisted substance-use disorder program (42 CFR Part 2): what it holds is
    # labelled Part 2 (concord/part2/rules.yaml) and disclosed outside it only with consent.
    part2_program: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Told of every emergency access to the program's records (break the glass); the
    # organization's administrators when none is named.
    privacy_officer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("user_account.id", use_alter=True)
    )
    created_at: Mapped[datetime] = mapped_column(default=now)

    organization: Mapped[Organization] = relationship(lazy="joined", foreign_keys=[organization_id])


class User(IdMixin, Base):
    __tablename__ = "user_account"

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    clinic_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clinic.id"))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(40))
    # A clinician may also administer; a user whose role is admin administers and nothing else.
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(8), default="en")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    password_changed_at: Mapped[datetime | None]
    totp_secret_encrypted: Mapped[str | None] = mapped_column(String(400))
    mfa_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The last TOTP time step accepted, so a code cannot be replayed within its window.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=now)

    organization: Mapped[Organization] = relationship(lazy="joined", foreign_keys=[organization_id])

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    @property
    def is_clinician(self) -> bool:
        return Role(self.role).is_clinical

    @property
    def is_patient(self) -> bool:
        return self.role == Role.patient

    @property
    def is_related_person(self) -> bool:
        return self.role == Role.related_person

    @property
    def is_client(self) -> bool:
        return self.role == Role.client

    @property
    def can_administer(self) -> bool:
        return self.role == Role.admin or self.is_admin


class MfaRecoveryCode(IdMixin, Base):
    __tablename__ = "mfa_recovery_code"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(128))
    used_at: Mapped[datetime | None]


class WebSession(IdMixin, Base):
    __tablename__ = "web_session"

    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=now)
    last_seen_at: Mapped[datetime] = mapped_column(default=now)
    expires_at: Mapped[datetime]
    csrf_token: Mapped[str] = mapped_column(String(128))
    mfa_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    user: Mapped[User] = relationship(lazy="joined")


class LoginAttempt(IdMixin, Base):
    __tablename__ = "login_attempt"
    __table_args__ = (
        Index("ix_login_attempt_email_at", "email", "at"),
        Index("ix_login_attempt_ip_at", "ip", "at"),
    )

    email: Mapped[str] = mapped_column(String(254))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=now)
    success: Mapped[bool] = mapped_column(Boolean)


class TokenScope(StrEnum):
    read = "read"
    write = "write"
    # Only the CDS Hooks service (/cds-services): an EHR's token asks the medication rules and
    # reads nothing else (docs/cds-hooks.md).
    cds = "cds"
    # A SMART app's access token (concord.smart): only /fhir, within the scopes its
    # smart_token row names.
    smart = "smart"


class ClientScope(StrEnum):
    """What an integration client's token may do (several, space-separated in its scope)."""

    import_ = "import"  # POST /fhir Bundles of the EHR's data
    quality = "quality"  # read imported and measured data for quality measures


class ApiToken(IdMixin, Base):
    __tablename__ = "api_token"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    # The first characters of the token, shown so a person can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(20), default=TokenScope.write)
    created_at: Mapped[datetime] = mapped_column(default=now)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class Submission(Base):
    """A form or API submission already carried out, so a retry is not recorded twice."""

    __tablename__ = "submission"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=now, index=True)
    result: Mapped[str | None] = mapped_column(String(300))
    # SHA-256 of the request (method, path, body): a key sent again with a different request
    # is refused (409), never answered with the first one's result.
    body_hash: Mapped[str | None] = mapped_column(String(64))

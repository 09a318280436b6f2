from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from concord.accounts.models import Clinic, User
from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin


class AdministrativeGender(StrEnum):
    """FHIR Patient.gender (administrative gender)."""

    female = "female"
    male = "male"
    other = "other"
    unknown = "unknown"


class Patient(IdMixin, Base):
    __tablename__ = "patient"
    data_category = DataCategory.general
    __table_args__ = (UniqueConstraint("organization_id", "mrn"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"), index=True)
    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"), index=True)
    # The patient's own portal account, when they have one.
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"), unique=True)
    mrn: Mapped[str] = mapped_column(String(40))
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    preferred_name: Mapped[str | None] = mapped_column(String(100))
    pronouns: Mapped[str | None] = mapped_column(String(40))
    birth_date: Mapped[date]
    gender: Mapped[str] = mapped_column(String(16), default=AdministrativeGender.unknown)
    language: Mapped[str] = mapped_column(String(8), default="en")
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=now)
    # Raised by each change of the demographics (an update quotes the version it saw).
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(default=now)

    clinic: Mapped[Clinic] = relationship(lazy="joined")

    @property
    def display_name(self) -> str:
        return self.name_shown(self.preferred_name, self.given_name, self.family_name)

    @staticmethod
    def name_shown(preferred: str | None, given: str, family: str) -> str:
        """The name staff see: the one the patient prefers, else the given name."""
        return f"{preferred or given} {family}"

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


class CareTeam(IdMixin, Base):
    """FHIR CareTeam: the people looking after one patient."""

    __tablename__ = "care_team"
    data_category = DataCategory.general

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=now)

    members: Mapped[list[CareTeamMember]] = relationship(
        back_populates="care_team", lazy="raise", order_by="CareTeamMember.added_at"
    )


class CareTeamMember(IdMixin, Base):
    __tablename__ = "care_team_member"
    data_category = DataCategory.general
    __table_args__ = (
        UniqueConstraint("care_team_id", "user_id"),
        # At most one current lead per team.
        Index(
            "uq_care_team_member_one_lead",
            "care_team_id",
            unique=True,
            sqlite_where=text("is_lead AND ended_at IS NULL"),
            postgresql_where=text("is_lead AND ended_at IS NULL"),
        ),
        Index("ix_care_team_member_user_current", "user_id", "ended_at"),
    )

    care_team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("care_team.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    # The role this person plays on this team (usually their professional role).
    role: Mapped[str] = mapped_column(String(40))
    is_lead: Mapped[bool] = mapped_column(Boolean, default=False)
    added_at: Mapped[datetime] = mapped_column(default=now)
    added_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    ended_at: Mapped[datetime | None]

    care_team: Mapped[CareTeam] = relationship(back_populates="members", lazy="raise")
    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="joined")

    @property
    def current(self) -> bool:
        return self.ended_at is None


class RelatedPerson(IdMixin, Base):
    """A family member or carer. They see only what the patient has agreed to share."""

    __tablename__ = "related_person"
    data_category = DataCategory.general
    __table_args__ = (UniqueConstraint("patient_id", "user_id"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"), index=True)
    relationship_to_patient: Mapped[str] = mapped_column(String(60))
    # Consent to share the care plan, recorded by a team member with the patient's agreement.
    consent_recorded_at: Mapped[datetime | None]
    consent_recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    consent_note: Mapped[str | None] = mapped_column(String(500))
    consent_withdrawn_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=now)
    ended_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(foreign_keys=[user_id], lazy="joined")

    @property
    def has_consent(self) -> bool:
        return (
            self.consent_recorded_at is not None
            and self.consent_withdrawn_at is None
            and self.ended_at is None
        )

"""The tables of social-needs care: concerns, community services, referrals and their history.

A referral is one FHIR ServiceRequest (what is asked of whom, for which need) and the Task that
tracks its fulfilment (the SDOHCC referral-management Task statuses). The community partner
works the Task through a link whose token is stored only as a hash.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from concord.accounts.models import User
from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin, JSONType


class ConcernStatus(StrEnum):
    """Where a social-needs health concern stands with the patient."""

    proposed = "proposed"  # found by a screen; the patient has not said yet
    confirmed = "confirmed"  # the patient says it is a need (maybe in their own words)
    declined = "declined"  # the patient says it is not, or does not want it on the record
    resolved = "resolved"  # a later screen, or the team with the patient, found it met


class SocialConcern(IdMixin, Base):
    """A health concern about a social need (FHIR Condition, category health-concern and the
    SDOHCC domain), coded with SNOMED CT and ICD-10-CM where the needs file gives codes."""

    __tablename__ = "social_concern"
    __table_args__ = (Index("ix_social_concern_patient", "patient_id", "status"),)
    data_category = DataCategory.social_needs

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    domain: Mapped[str] = mapped_column(String(60))  # SDOHCC category code
    snomed: Mapped[str | None] = mapped_column(String(20))
    icd10: Mapped[str | None] = mapped_column(String(12))
    # The patient's own words for it ("I worry about food at the end of the month").
    patient_words: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(12), default=ConcernStatus.proposed)
    # An interpersonal-safety need: never shared with a community organization unless the
    # patient says so for that referral, and handled by the safety rules.
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    # The screening response (measure_response) it came from, if any.
    source_response_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("measure_response.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    decline_reason: Mapped[str | None] = mapped_column(String(500))
    resolved_at: Mapped[datetime | None]


class CommunityService(IdMixin, Base):
    """A service a clinic refers to (FHIR HealthcareService; Open Referral HSDS service)."""

    __tablename__ = "community_service"
    __table_args__ = (Index("ix_community_service_org", "organization_id", "active"),)
    data_category = DataCategory.general  # no patient data: a directory entry

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    provider_name: Mapped[str] = mapped_column(String(200))  # the community organization
    name: Mapped[str] = mapped_column(String(200))  # the service
    description: Mapped[str | None] = mapped_column(Text)
    categories: Mapped[list[Any]] = mapped_column(JSONType, default=list)  # SDOHCC domains
    eligibility: Mapped[str | None] = mapped_column(String(500))
    languages: Mapped[list[Any]] = mapped_column(JSONType, default=list)  # ISO 639-1 codes
    hours: Mapped[str | None] = mapped_column(String(300))
    address: Mapped[str | None] = mapped_column(String(300))
    postcode: Mapped[str | None] = mapped_column(String(12))
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(200))
    website: Mapped[str | None] = mapped_column(String(300))
    electronic_referrals: Mapped[bool] = mapped_column(Boolean, default=False)
    # Where it came from: "hsds:<service id>" for an Open Referral import, none by hand.
    source: Mapped[str | None] = mapped_column(String(120))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(default=now)


class PostcodeCentroid(Base):
    """The centre of a postcode (ZIP code), for distances without an outside geocoder."""

    __tablename__ = "postcode_centroid"

    postcode: Mapped[str] = mapped_column(String(12), primary_key=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)


class ReferralStatus(StrEnum):
    """The SDOHCC referral-management Task statuses (FHIR TaskStatus codes)."""

    draft = "draft"
    requested = "requested"
    accepted = "accepted"
    rejected = "rejected"
    cancelled = "cancelled"
    in_progress = "in-progress"
    on_hold = "on-hold"
    failed = "failed"
    completed = "completed"
    entered_in_error = "entered-in-error"


class Referral(IdMixin, Base):
    """A referral to a community service: the ServiceRequest and its Task in one row."""

    __tablename__ = "social_referral"
    __table_args__ = (
        Index("ix_social_referral_patient", "patient_id", "status"),
        Index("ix_social_referral_token", "token_hash"),
    )
    data_category = DataCategory.social_needs

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    concern_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("social_concern.id"))
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("community_service.id"))
    domain: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(20), default=ReferralStatus.requested)
    self_referral: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the service is told, and nothing more: the patient's first name, how to reach them
    # and what help they asked for, as the team wrote it with the patient.
    shared_summary: Mapped[str] = mapped_column(String(1000))
    contact: Mapped[str | None] = mapped_column(String(200))
    # The patient's consent to share what the referral says (concord.consents).
    consent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("consent.id"))
    requested_at: Mapped[datetime] = mapped_column(default=now)
    respond_by: Mapped[date]
    # The partner's link: sha256 of the token's random part, and when it stops working.
    token_hash: Mapped[str | None] = mapped_column(String(64))
    token_expires_at: Mapped[datetime | None]
    status_reason: Mapped[str | None] = mapped_column(String(500))
    outcome: Mapped[str | None] = mapped_column(String(1000))  # what was done
    patient_report: Mapped[str | None] = mapped_column(String(20))  # got_help, nobody_called
    patient_report_at: Mapped[datetime | None]
    # The referral this one re-sends (after a decline), if any.
    replaces_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("social_referral.id"))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    updated_at: Mapped[datetime] = mapped_column(default=now)
    closed_at: Mapped[datetime | None]

    service: Mapped[CommunityService] = relationship(lazy="joined")
    created_by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[created_by_id])


class ReferralEvent(IdMixin, Base):
    """One change of a referral's status: who (a user, the partner's link, the patient), when,
    from what to what, and why."""

    __tablename__ = "social_referral_event"
    __table_args__ = (Index("ix_social_referral_event_referral", "referral_id", "at"),)
    data_category = DataCategory.social_needs

    referral_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("social_referral.id"))
    seq: Mapped[int] = mapped_column(
        Integer
    )  # 1, 2, 3... within the referral: the order of the changes
    at: Mapped[datetime] = mapped_column(default=now)
    by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    party: Mapped[str] = mapped_column(String(12))  # requester, partner, patient, system
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(String(1000))

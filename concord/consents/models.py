"""A patient's consent to share (or not to share) part of their record.

One row is one FHIR Consent: who may receive (the grantee), what (all, or data categories), for
which purposes, permit or deny, from when to when, how it was given and who recorded it. A
consent is never deleted: it is revoked (at once, with when, by whom and why) or marked entered
in error; "expired" is not stored but read from the period (see `Consent.state`).

This module imports nothing from concord.patients (the family-sharing writer in
concord.patients.service keeps its columns and these rows in step through
concord.consents.family), so the foreign keys to patient tables are named as strings.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from concord.accounts.models import Organization, User
from concord.categories import DataCategory
from concord.clock import now
from concord.dates import local_date
from concord.db import Base, IdMixin, JSONType


class GranteeKind(StrEnum):
    """Who may receive (FHIR Consent.provision.actor, role "IRCP" recipient)."""

    related_person = "related_person"  # a family member or carer listed for the patient
    user = "user"  # a named person with an account here (a clinician)
    care_team = "care_team"  # the patient's care team as it is at the time of access
    organization = "organization"  # a clinic here, or an outside organization by name
    treating_providers = "treating_providers"  # "my treating providers" (§ 2.31(a)(4)(ii))


class Provision(StrEnum):
    permit = "permit"
    deny = "deny"


class Purpose(StrEnum):
    """Purposes of use (v3 PurposeOfUse codes in FHIR, see concord.fhir.consents)."""

    treatment = "treatment"
    payment = "payment"
    operations = "operations"  # health care operations
    research = "research"
    family_sharing = "family_sharing"  # a family member or carer following the care plan
    other = "other"  # named in purpose_other


class Method(StrEnum):
    """How the consent was given."""

    paper_scanned = "paper_scanned"  # signed on paper (wet signature), scanned
    portal_signature = "portal_signature"  # signed in the portal: typed name and date
    verbal = "verbal"  # said to a clinician; only for family and carers (not Part 2)
    # The patient's agreement recorded by the care team before consents were records of their
    # own (family sharing, migrated): how it was given was not recorded.
    recorded_by_team = "recorded_by_team"


class ConsentStatus(StrEnum):
    """Stored status. `expired` is never stored: it is read from the period."""

    active = "active"
    revoked = "revoked"
    entered_in_error = "entered_in_error"


class ConsentState(StrEnum):
    """What a consent is now: the stored status, or expired / not yet started from its period."""

    active = "active"
    not_started = "not_started"
    expired = "expired"
    revoked = "revoked"
    entered_in_error = "entered_in_error"


# Data categories a consent may name. The access layer's DataCategory (issue 17) uses the same
# string values; "all" is written as scope="all" with no categories.
CATEGORIES = (
    "general",
    "mental_health",
    "substance_use",
    "safety",
    "care_plan",
    "decisions",
    "social_needs",
    "psychotherapy_notes",
)


class Consent(IdMixin, Base):
    __tablename__ = "consent"
    __table_args__ = (
        Index("ix_consent_patient", "patient_id", "status"),
        Index("ix_consent_grantee_related", "grantee_related_person_id"),
    )
    # Who may see what is part of the patient's registration record (ADR 0020): the patient
    # and the team read it; a family member only the consents that name them (the service).
    data_category = DataCategory.general

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    # Who may disclose: the program or person whose records these are, in words (§ 2.31(a)(2)).
    discloser: Mapped[str | None] = mapped_column(String(200))
    grantee_kind: Mapped[str] = mapped_column(String(24))
    grantee_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    grantee_related_person_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("related_person.id")
    )
    grantee_clinic_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clinic.id"))
    # The grantee as written on the form ("Dr Ana Ruiz, Riverside Clinic"): the name shown.
    grantee_name: Mapped[str | None] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(12))  # "all" or "categories"
    categories: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    purposes: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    purpose_other: Mapped[str | None] = mapped_column(String(200))
    provision: Mapped[str] = mapped_column(String(8), default=Provision.permit)
    period_start: Mapped[date]
    period_end: Mapped[date | None]  # the last day covered; none: until revoked
    method: Mapped[str] = mapped_column(String(24))
    signed_name: Mapped[str | None] = mapped_column(String(200))  # typed or on the paper
    signed_on: Mapped[date | None]
    # Where the scanned paper is kept (a document id or location), never its content.
    document_reference: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(500))
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=now)
    status: Mapped[str] = mapped_column(String(20), default=ConsentStatus.active)
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    revoked_reason: Mapped[str | None] = mapped_column(String(500))

    organization: Mapped[Organization] = relationship(lazy="joined", foreign_keys=[organization_id])
    recorded_by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[recorded_by_id])
    grantee_user: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[grantee_user_id])

    def state(self, at: datetime) -> ConsentState:
        if self.status == ConsentStatus.revoked:
            return ConsentState.revoked
        if self.status == ConsentStatus.entered_in_error:
            return ConsentState.entered_in_error
        # The period's dates are the organization's local dates (ADR 0018).
        today = local_date(at, self.organization)
        if today < self.period_start:
            return ConsentState.not_started
        if self.period_end is not None and today > self.period_end:
            return ConsentState.expired
        return ConsentState.active

    @property
    def is_part2(self) -> bool:
        """Covers substance-use treatment records (42 CFR Part 2): all, or substance_use."""
        return self.scope == "all" or "substance_use" in (self.categories or [])

    @property
    def is_family_sharing(self) -> bool:
        return (
            self.grantee_kind == GranteeKind.related_person
            and Purpose.family_sharing in (self.purposes or [])
            and self.provision == Provision.permit
        )

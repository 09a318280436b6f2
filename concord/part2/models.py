"""A label correction and an emergency access (break the glass), one row each.

Imports nothing above the base modules and accounts, so that the access layer
(`concord.disclosure`) can read them.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin


class LabelOverride(IdMixin, Base):
    """An authorized person's correction of one record's Part 2 label, with the reason. The
    newest row for a record wins; rows are never changed or deleted."""

    __tablename__ = "part2_label_override"
    __table_args__ = (Index("ix_part2_label_override_patient", "patient_id"),)
    # That a record is (or is not) Part 2 says it is substance-use treatment data.
    data_category = DataCategory.substance_use

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    record_type: Mapped[str] = mapped_column(String(40))  # the table name
    record_id: Mapped[uuid.UUID]
    part2: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(500))
    by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    at: Mapped[datetime] = mapped_column(default=now)


class EmergencyAccess(IdMixin, Base):
    """A clinician on the team opened withheld records in a medical emergency (42 CFR
    2.51): who, whose, why, from when until when."""

    __tablename__ = "emergency_access"
    __table_args__ = (Index("ix_emergency_access_user_patient", "user_id", "patient_id"),)
    data_category = DataCategory.general

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    reason: Mapped[str] = mapped_column(String(500))
    started_at: Mapped[datetime] = mapped_column(default=now)
    expires_at: Mapped[datetime]

    def active(self, at: datetime) -> bool:
        return self.started_at <= at < self.expires_at

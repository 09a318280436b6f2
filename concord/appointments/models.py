"""Visits with a patient (FHIR Appointment): who, when, how, and what became of it."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from concord.accounts.models import User
from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin


class VisitKind(StrEnum):
    in_person = "in_person"
    video = "video"
    phone = "phone"
    home_visit = "home_visit"
    group = "group"


class VisitStatus(StrEnum):
    # FHIR AppointmentStatus codes (hl7.org/fhir/R4/valueset-appointmentstatus.html).
    proposed = "proposed"
    booked = "booked"
    arrived = "arrived"
    fulfilled = "fulfilled"
    cancelled = "cancelled"
    noshow = "noshow"


class Awaiting(StrEnum):
    """Who must answer a proposed visit: the clinic (the patient asked) or the patient (the
    clinic suggested a time)."""

    clinic = "clinic"
    patient = "patient"


class Appointment(IdMixin, Base):
    __tablename__ = "appointment"
    data_category = DataCategory.mental_health
    __table_args__ = (Index("ix_appointment_patient_start", "patient_id", "start"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=VisitStatus.proposed)
    awaiting: Mapped[str | None] = mapped_column(String(20))
    start: Mapped[datetime]
    minutes: Mapped[int] = mapped_column(Integer)
    place: Mapped[str | None] = mapped_column(String(300))
    # A random room name for a video visit: nothing about the patient in the link.
    room: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    cancelled_at: Mapped[datetime | None]
    cancelled_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    status_at: Mapped[datetime | None]
    status_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("registry_contact.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)

    clinicians: Mapped[list[AppointmentClinician]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="AppointmentClinician.position"
    )
    cancelled_by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[cancelled_by_id])

    @property
    def clinician_ids(self) -> list[uuid.UUID]:
        return [c.user_id for c in self.clinicians]


class AppointmentClinician(IdMixin, Base):
    __tablename__ = "appointment_clinician"
    data_category = DataCategory.mental_health
    __table_args__ = (Index("ix_appointment_clinician_user", "user_id", "appointment_id"),)

    appointment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("appointment.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)

    user: Mapped[User] = relationship(lazy="joined")

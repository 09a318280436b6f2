"""One row per request, recipient, patient and data category: a disclosure of 42 CFR Part 2
records outside the Part 2 program, or a break-the-glass (emergency) disclosure.

What was disclosed is named by kind and counted, never quoted: no clinical content is kept
here (the records themselves stay where they are; this says who received them)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from concord.accounts.models import User
from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin, JSONType


class Door(StrEnum):
    """How the records left: a page, the JSON API, FHIR, or an export (CSV, PDF, bulk)."""

    web = "web"
    api = "api"
    fhir = "fhir"
    export = "export"


class DisclosureLog(IdMixin, Base):
    __tablename__ = "disclosure_log"
    __table_args__ = (Index("ix_disclosure_log_patient", "patient_id", "disclosed_at"),)
    # Who received a patient's records is part of the patient's registration record, as their
    # consents are (ADR 0020): the patient and the team read it.
    data_category = DataCategory.general

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    # The recipient: the person signed in (a clinician outside the program, a family member).
    recipient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    category: Mapped[str] = mapped_column(String(32))
    # The kinds of record and how many of each ({"MeasureResponse": 3}): counts, no content.
    kinds: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    count: Mapped[int] = mapped_column(Integer, default=0)
    purpose: Mapped[str] = mapped_column(String(24))
    consent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("consent.id"))
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    door: Mapped[str] = mapped_column(String(8))
    # The request's own id, so the rows one request wrote read as one disclosure.
    request_id: Mapped[uuid.UUID] = mapped_column(Uuid, default=uuid.uuid4)
    disclosed_at: Mapped[datetime] = mapped_column(default=now)

    recipient: Mapped[User] = relationship(lazy="joined", foreign_keys=[recipient_id])

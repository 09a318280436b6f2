"""A decision made together: the aid used, what matters to the patient, their questions, the
SURE check, and the outcome recorded into the care plan."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from concord.accounts.models import User
from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin, JSONType


class DecisionStatus(StrEnum):
    open = "open"  # being worked through (at home, or in the visit)
    decided = "decided"  # an option was chosen
    not_decided = "not_decided"  # the visit ended without a choice (recorded as such)
    withdrawn = "withdrawn"  # started by mistake or no longer relevant


class Decision(IdMixin, Base):
    __tablename__ = "decision"
    data_category = DataCategory.decisions
    __table_args__ = (Index("ix_decision_patient", "patient_id", "status"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    aid_id: Mapped[str] = mapped_column(String(60))
    aid_version: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=DecisionStatus.open)
    # What matters most to the patient: value ids from the aid, most important first.
    values: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    values_note: Mapped[str | None] = mapped_column(Text)  # anything else, in their words
    leaning: Mapped[str | None] = mapped_column(String(40))  # the option they lean toward
    # Questions for the clinician: [{"text", "at", "by_patient", "answered"}]
    questions: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    # SURE: {"sure": bool, "understand": bool, "risk_benefit": bool, "encouragement": bool}
    sure: Mapped[dict[str, Any] | None]
    sure_score: Mapped[int | None] = mapped_column(Integer)
    sure_at: Mapped[datetime | None]
    considered: Mapped[list[Any]] = mapped_column(JSONType, default=list)  # option ids discussed
    choice: Mapped[str | None] = mapped_column(String(40))
    reasons: Mapped[str | None] = mapped_column(Text)  # in the patient's words
    # Who took part: [{"kind": "patient"|"clinician"|"family"|"other", "name", "user_id"?}]
    participants: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    decided_on: Mapped[date | None]
    recorded_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime | None]
    intervention_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("intervention.id"))
    plan_revision: Mapped[int | None] = mapped_column(Integer)
    # The CollaboRATE response the patient gave about this visit, once they give one.
    collaborate_response_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("measure_response.id")
    )
    started_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    started_by_patient: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)
    version: Mapped[int] = mapped_column(Integer, default=1)

    recorded_by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[recorded_by_id])
    started_by: Mapped[User] = relationship(lazy="joined", foreign_keys=[started_by_id])

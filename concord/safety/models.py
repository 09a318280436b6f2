"""Safety: risk alerts with owners and escalation, the patient's risk status, risk rules per
organization, in-app notifications, and safety plans written with the patient."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from concord.accounts.models import User
from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin, JSONType


class AlertStatus(StrEnum):
    open = "open"  # nobody has acknowledged it: the escalation timer runs
    acknowledged = "acknowledged"  # someone took it; it stays until closed with an outcome
    closed = "closed"


class AlertSource(StrEnum):
    measure = "measure"  # an answer in a questionnaire
    manual = "manual"  # a clinician's risk flag
    follow_up = "follow_up"  # a follow-up after an earlier alert was missed
    message = "message"  # words of crisis in a patient's secure message
    overdose_risk = "overdose_risk"  # an overdose-risk rule (medications, MOUD records)


class AlertOutcome(StrEnum):
    assessed = "assessed"  # safety assessment done; its result is the risk level after it
    safety_plan = "safety_plan"  # safety plan reviewed or created with the patient
    emergency = "emergency"  # referred to emergency services
    unreachable = "unreachable"  # could not reach the patient; the note says what was done


NO_RISK = "none"  # a risk level after assessment meaning "no current risk flag"


class SafetyAlert(IdMixin, Base):
    __tablename__ = "safety_alert"
    data_category = DataCategory.safety
    __table_args__ = (
        Index("ix_safety_alert_patient_status", "patient_id", "status"),
        Index("ix_safety_alert_status_due", "status", "due_at"),
        Index("ix_safety_alert_follow_up", "status", "follow_up_due_at"),
        # The banner on every clinician page: this person's open alerts, soonest due first.
        Index("ix_safety_alert_owner_status_due", "owner_id", "status", "due_at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    tier: Mapped[str] = mapped_column(String(40))
    source_kind: Mapped[str] = mapped_column(String(20))
    response_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("measure_response.id"))
    instrument: Mapped[str | None] = mapped_column(String(40))
    rule_id: Mapped[str] = mapped_column(String(60))  # the most serious rule that fired
    # Every rule that fired and the answers behind it (what the team needs to see).
    triggers: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    rules_version: Mapped[str] = mapped_column(String(80))
    raised_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    reason: Mapped[str | None] = mapped_column(Text)  # a clinician's words for a manual flag
    follow_up_of_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("safety_alert.id"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(default=now)
    status: Mapped[str] = mapped_column(String(20), default=AlertStatus.open)
    # Escalation: who holds it now, at which step of which chain, and until when.
    # `step` counts escalations (0 when raised) and only ever grows; `chain_position` is the
    # chain step the owner was found at.
    chain: Mapped[list[str]] = mapped_column(JSONType, default=list)
    step: Mapped[int] = mapped_column(Integer, default=0)
    chain_position: Mapped[int] = mapped_column(Integer, default=0)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    due_at: Mapped[datetime]
    acknowledged_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    acknowledged_at: Mapped[datetime | None]
    closed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    closed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(40))
    risk_after: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(Text)
    follow_up_due_at: Mapped[datetime | None]
    follow_up_done_at: Mapped[datetime | None]
    follow_up_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    follow_up_note: Mapped[str | None] = mapped_column(Text)

    owner: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[owner_id])
    acknowledged_by: Mapped[User | None] = relationship(
        lazy="joined", foreign_keys=[acknowledged_by_id]
    )
    closed_by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[closed_by_id])

    @property
    def is_open(self) -> bool:
        return self.status == AlertStatus.open

    @property
    def is_closed(self) -> bool:
        return self.status == AlertStatus.closed


class AlertEvent(IdMixin, Base):
    """Each step of an alert's life: raised, escalated, acknowledged, closed, followed up.
    One row per alert, kind and step: an escalation step can never be recorded twice."""

    __tablename__ = "safety_alert_event"
    data_category = DataCategory.safety
    __table_args__ = (UniqueConstraint("alert_id", "kind", "step"),)

    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("safety_alert.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    step: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=now)
    by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[by_id])
    owner: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[owner_id])


class Notification(IdMixin, Base):
    """An in-app message to one person; it names no clinical detail beyond the link."""

    __tablename__ = "notification"
    data_category = DataCategory.safety
    __table_args__ = (Index("ix_notification_user_unread", "user_id", "read_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    kind: Mapped[str] = mapped_column(String(40))
    alert_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("safety_alert.id"))
    patient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patient.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)
    read_at: Mapped[datetime | None]


class RiskRuleSet(IdMixin, Base):
    """A rule file an administrator loaded; the newest that still compiles is in force."""

    __tablename__ = "risk_rule_set"
    __table_args__ = (UniqueConstraint("organization_id", "number"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    number: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(60))
    version: Mapped[str] = mapped_column(String(60))
    text: Mapped[str] = mapped_column(Text)
    loaded_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    loaded_at: Mapped[datetime] = mapped_column(default=now)

    loaded_by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[loaded_by_id])


class RiskStatus(IdMixin, Base):
    """A patient's risk status over time: each row is a change; the highest `seq` is current
    (rows are written under a lock on the patient, so `seq` counts 1, 2, 3 ...)."""

    __tablename__ = "risk_status"
    data_category = DataCategory.safety
    __table_args__ = (UniqueConstraint("patient_id", "seq"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    seq: Mapped[int] = mapped_column(Integer)
    tier: Mapped[str | None] = mapped_column(String(40))  # None: no current risk flag
    since: Mapped[datetime]  # when the patient came to this tier
    at: Mapped[datetime] = mapped_column(default=now)  # when this row was written
    reason: Mapped[str] = mapped_column(String(30))  # alert, assessment
    alert_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("safety_alert.id"))
    set_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))

    set_by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[set_by_id])


class SafetyPlan(IdMixin, Base):
    """The patient's safety plan: the current text, and every earlier version below."""

    __tablename__ = "safety_plan"
    data_category = DataCategory.safety_plan

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))

    updated_by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[updated_by_id])


class SafetyPlanVersion(IdMixin, Base):
    __tablename__ = "safety_plan_version"
    data_category = DataCategory.safety_plan
    __table_args__ = (UniqueConstraint("plan_id", "version"),)

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("safety_plan.id"))
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    author_party: Mapped[str] = mapped_column(String(20))  # patient or clinician
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=now)

    author: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[author_id])


class SafetyPlanShare(IdMixin, Base):
    """The patient's consent to let one of their people see the safety plan, and only it."""

    __tablename__ = "safety_plan_share"
    data_category = DataCategory.safety_plan
    __table_args__ = (Index("ix_safety_plan_share_person", "related_person_id", "withdrawn_at"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), index=True)
    related_person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("related_person.id"))
    consented_at: Mapped[datetime] = mapped_column(default=now)
    recorded_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))

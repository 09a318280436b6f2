"""The shared care plan, modelled on FHIR CarePlan, Goal and CarePlan.activity.

The tables hold the plan as it is now. Every change also writes a PlanRevision holding a
snapshot of the whole plan, so history is never rewritten and any two revisions compare.
Each editable item carries a `version` that an edit must quote, so two people editing the
same item cannot silently overwrite each other.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from concord.accounts.models import User
from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin


class PlanStatus(StrEnum):
    draft = "draft"
    active = "active"
    completed = "completed"
    revoked = "revoked"


CURRENT_PLAN_STATUSES = (PlanStatus.draft, PlanStatus.active)


class GoalCategory(StrEnum):
    symptoms = "symptoms"
    daily_functioning = "daily_functioning"
    relationships = "relationships"
    work_or_school = "work_or_school"
    substance_use = "substance_use"
    physical_health = "physical_health"
    housing_and_social_needs = "housing_and_social_needs"
    wellbeing = "wellbeing"


class GoalStatus(StrEnum):
    proposed = "proposed"
    accepted = "accepted"
    in_progress = "in_progress"
    achieved = "achieved"
    revised = "revised"
    stopped = "stopped"


CLOSED_GOAL_STATUSES = (GoalStatus.achieved, GoalStatus.revised, GoalStatus.stopped)


class Priority(StrEnum):
    high = "high"
    medium = "medium"
    low = "low"


class InterventionKind(StrEnum):
    medication = "medication"
    psychotherapy = "psychotherapy"
    psychosocial_support = "psychosocial_support"
    lifestyle = "lifestyle"
    peer_support = "peer_support"
    referral = "referral"
    education = "education"


class InterventionStatus(StrEnum):
    """A subset of FHIR CarePlan.activity.detail.status."""

    not_started = "not_started"
    scheduled = "scheduled"
    in_progress = "in_progress"
    on_hold = "on_hold"
    completed = "completed"
    stopped = "stopped"


class StepStatus(StrEnum):
    to_do = "to_do"
    done = "done"
    not_done = "not_done"


class BarrierKind(StrEnum):
    transport = "transport"
    money = "money"
    caregiving = "caregiving"
    housing = "housing"
    stigma = "stigma"
    language = "language"
    work_schedule = "work_schedule"
    health = "health"
    technology = "technology"
    other = "other"


class BarrierStatus(StrEnum):
    open = "open"
    resolved = "resolved"


class ConcernStatus(StrEnum):
    active = "active"
    resolved = "resolved"


class CodeSystem(StrEnum):
    icd10 = "icd10"
    snomed = "snomed"


CODE_SYSTEM_URIS = {
    CodeSystem.icd10: "http://hl7.org/fhir/sid/icd-10-cm",
    CodeSystem.snomed: "http://snomed.info/sct",
}


class MonitoringIntensity(StrEnum):
    light = "light"
    standard = "standard"
    close = "close"


class AgreementParty(StrEnum):
    patient = "patient"
    lead_clinician = "lead_clinician"


class CarePlan(IdMixin, Base):
    __tablename__ = "care_plan"
    data_category = DataCategory.care_plan
    __table_args__ = (
        # A patient has at most one current (draft or active) plan.
        Index(
            "uq_care_plan_one_current",
            "patient_id",
            unique=True,
            sqlite_where=text("status IN ('draft', 'active')"),
            postgresql_where=text("status IN ('draft', 'active')"),
        ),
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=PlanStatus.draft)
    created_at: Mapped[datetime] = mapped_column(default=now)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    activated_on: Mapped[date | None]
    next_review_on: Mapped[date | None]
    last_reviewed_on: Mapped[date | None]
    ended_on: Mapped[date | None]
    end_reason: Mapped[str | None] = mapped_column(Text)
    # The number of the newest revision, and of the newest one that changed what was agreed.
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    substantive_revision_number: Mapped[int] = mapped_column(Integer, default=0)
    # Quoted by edits to the plan's own fields (title, preferences, review date).
    version: Mapped[int] = mapped_column(Integer, default=1)

    # Preferences and values (one set per plan).
    what_matters_most: Mapped[str | None] = mapped_column(Text)
    treatment_preferences: Mapped[str | None] = mapped_column(Text)
    monitoring_intensity: Mapped[str | None] = mapped_column(String(20))
    appointment_frequency: Mapped[str | None] = mapped_column(String(200))
    preferred_language: Mapped[str | None] = mapped_column(String(60))
    interpreter_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    cultural_considerations: Mapped[str | None] = mapped_column(Text)
    others_involved: Mapped[str | None] = mapped_column(Text)

    concerns: Mapped[list[Concern]] = relationship(lazy="raise", order_by="Concern.created_at")
    goals: Mapped[list[Goal]] = relationship(lazy="raise", order_by="Goal.created_at")
    interventions: Mapped[list[Intervention]] = relationship(
        lazy="raise", order_by="Intervention.created_at"
    )
    action_steps: Mapped[list[ActionStep]] = relationship(
        lazy="raise", order_by="ActionStep.created_at"
    )
    strengths: Mapped[list[Strength]] = relationship(lazy="raise", order_by="Strength.created_at")
    barriers: Mapped[list[Barrier]] = relationship(lazy="raise", order_by="Barrier.created_at")
    contingencies: Mapped[list[Contingency]] = relationship(
        lazy="raise", order_by="Contingency.created_at"
    )

    @property
    def is_current(self) -> bool:
        return self.status in CURRENT_PLAN_STATUSES


def _first_editor(context: Any) -> Any:
    """An item written without naming its author was written by its first editor."""
    return context.get_current_parameters().get("updated_by_id")


class PlanItem(IdMixin):
    """Columns every editable plan item shares."""

    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)
    updated_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    # Who wrote the item: never changes when someone else edits it. The item's Part 2 label
    # follows its author, not its last editor (concord/part2/rules.yaml, ADR 0021).
    author_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_account.id"), default=_first_editor
    )
    # Items are removed by marking them, so a revision can still name them.
    removed_at: Mapped[datetime | None]


class Concern(PlanItem, Base):
    """A problem the plan addresses (FHIR CarePlan.addresses -> Condition)."""

    __tablename__ = "concern"
    data_category = DataCategory.care_plan

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("care_plan.id"), index=True)
    description: Mapped[str] = mapped_column(Text)
    code_system: Mapped[str | None] = mapped_column(String(20))
    code: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default=ConcernStatus.active)


class Goal(PlanItem, Base):
    """FHIR Goal. The statement is in the patient's own words; the SMART parts sit beside it."""

    __tablename__ = "goal"
    data_category = DataCategory.care_plan

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("care_plan.id"), index=True)
    statement: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(40))
    measure: Mapped[str | None] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(Text)
    due_on: Mapped[date | None]
    proposed_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    proposed_by_patient: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[str] = mapped_column(String(10), default=Priority.medium)
    status: Mapped[str] = mapped_column(String(20), default=GoalStatus.proposed)
    status_changed_on: Mapped[date | None]
    # Optionally linked to a measure: "PHQ-9 below 10" (instrument, comparison, value).
    measure_instrument: Mapped[str | None] = mapped_column(String(40))
    measure_op: Mapped[str | None] = mapped_column(String(10))
    measure_value: Mapped[float | None]
    # The social need it addresses, if any (a social-needs health concern, concord.social):
    # FHIR Goal.addresses -> Condition/concord-sdoh-{id}.
    social_concern_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("social_concern.id"), index=True
    )
    # A substance-use goal (issue 19): the substance it is about and whether it aims at
    # abstinence or reduction (concord.substance.models.Substance, UseAim). Its measurable
    # target is the measure link above, naming a calendar figure (UseMeasure: days of use in
    # the last 30, drinks per drinking day) instead of a questionnaire.
    substance: Mapped[str | None] = mapped_column(String(30))
    use_aim: Mapped[str | None] = mapped_column(String(20))

    proposed_by: Mapped[User] = relationship(lazy="joined", foreign_keys=[proposed_by_id])
    milestones: Mapped[list[Milestone]] = relationship(
        lazy="raise", order_by="Milestone.created_at"
    )

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_GOAL_STATUSES


class Milestone(PlanItem, Base):
    __tablename__ = "milestone"
    data_category = DataCategory.care_plan

    goal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("goal.id"), index=True)
    description: Mapped[str] = mapped_column(Text)
    target_on: Mapped[date | None]
    reached_on: Mapped[date | None]


class Intervention(PlanItem, Base):
    """FHIR CarePlan.activity: what the team does."""

    __tablename__ = "intervention"
    data_category = DataCategory.care_plan

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("care_plan.id"), index=True)
    goal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("goal.id"))
    kind: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text)
    responsible_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    frequency: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=InterventionStatus.not_started)

    responsible: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[responsible_id])


class ActionStep(PlanItem, Base):
    """A small concrete step with one owner: the patient or a named team member."""

    __tablename__ = "action_step"
    data_category = DataCategory.care_plan
    __table_args__ = (Index("ix_action_step_owner_status", "owner_id", "status"),)

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("care_plan.id"), index=True)
    goal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("goal.id"))
    description: Mapped[str] = mapped_column(Text)
    owner_is_patient: Mapped[bool] = mapped_column(Boolean, default=True)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    due_on: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(20), default=StepStatus.to_do)
    done_on: Mapped[date | None]

    owner: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[owner_id])


class Strength(PlanItem, Base):
    __tablename__ = "strength"
    data_category = DataCategory.care_plan

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("care_plan.id"), index=True)
    description: Mapped[str] = mapped_column(Text)


class Barrier(PlanItem, Base):
    __tablename__ = "barrier"
    data_category = DataCategory.care_plan

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("care_plan.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    description: Mapped[str] = mapped_column(Text)
    way_around: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=BarrierStatus.open)


class Contingency(PlanItem, Base):
    """ "If this happens, we do that." """

    __tablename__ = "contingency"
    data_category = DataCategory.care_plan

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("care_plan.id"), index=True)
    if_this: Mapped[str] = mapped_column(Text)
    then_we: Mapped[str] = mapped_column(Text)


class PlanComment(IdMixin, Base):
    """Discussion about the plan. Comments are not plan content, so they make no revision."""

    __tablename__ = "plan_comment"
    data_category = DataCategory.care_plan

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("care_plan.id"), index=True)
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)

    author: Mapped[User] = relationship(lazy="joined")


class PlanRevision(IdMixin, Base):
    __tablename__ = "plan_revision"
    data_category = DataCategory.care_plan
    __table_args__ = (UniqueConstraint("plan_id", "number"),)

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("care_plan.id"))
    number: Mapped[int] = mapped_column(Integer)
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)
    reason: Mapped[str | None] = mapped_column(Text)
    # What changed, in sentences a person can read.
    summary: Mapped[dict[str, Any]]
    # Substantive changes need the plan to be agreed again; progress (a step done) does not.
    substantive: Mapped[bool] = mapped_column(Boolean, default=True)
    snapshot: Mapped[dict[str, Any]]

    author: Mapped[User] = relationship(lazy="joined")


class PlanAgreement(IdMixin, Base):
    __tablename__ = "plan_agreement"
    data_category = DataCategory.care_plan
    __table_args__ = (UniqueConstraint("plan_id", "revision_number", "party"),)

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("care_plan.id"), index=True)
    revision_number: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    party: Mapped[str] = mapped_column(String(20))
    agreed_at: Mapped[datetime] = mapped_column(default=now)

    user: Mapped[User] = relationship(lazy="joined")

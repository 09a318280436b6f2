"""The Collaborative Care registry: episodes of care, contacts and minutes, psychiatric case
reviews with their recommendations, relapse-prevention plans, tasks, and each person's saved
registry view."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from concord.accounts.models import User
from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin


class Program(StrEnum):
    depression = "depression"
    anxiety = "anxiety"
    ptsd = "ptsd"
    substance_use = "substance_use"
    co_occurring = "co_occurring"


class EpisodeStatus(StrEnum):
    awaiting_first_contact = "awaiting_first_contact"
    active = "active"
    relapse_prevention = "relapse_prevention"
    completed = "completed"
    disengaged = "disengaged"
    referred = "referred"


OPEN_STATUSES = (
    EpisodeStatus.awaiting_first_contact,
    EpisodeStatus.active,
    EpisodeStatus.relapse_prevention,
)
CLOSED_STATUSES = (EpisodeStatus.completed, EpisodeStatus.disengaged, EpisodeStatus.referred)


class ContactMode(StrEnum):
    in_person = "in_person"
    phone = "phone"
    video = "video"
    secure_message = "secure_message"


class ContactKind(StrEnum):
    initial_assessment = "initial_assessment"
    follow_up = "follow_up"
    outreach_attempt = "outreach_attempt"  # tried and did not reach the patient
    case_review = "case_review"  # the psychiatric consultant's review (no patient present)
    relapse_prevention = "relapse_prevention"


# Contacts that reached the patient (an outreach attempt did not; a case review is about them).
REACHED = (ContactKind.initial_assessment, ContactKind.follow_up, ContactKind.relapse_prevention)


class Episode(IdMixin, Base):
    """One episode of collaborative care. A patient has at most one open episode; a new one
    may follow a closed one, and every earlier one is kept."""

    __tablename__ = "episode"
    data_category = DataCategory.mental_health
    __table_args__ = (
        Index(
            "uq_episode_one_open",
            "patient_id",
            unique=True,
            sqlite_where=text("ended_on IS NULL"),
            postgresql_where=text("ended_on IS NULL"),
        ),
        Index("ix_episode_care_manager_open", "care_manager_id", "ended_on"),
        Index("ix_episode_org_status", "organization_id", "status"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), index=True)
    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinic.id"))
    program: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(30), default=EpisodeStatus.awaiting_first_contact)
    started_on: Mapped[date]
    ended_on: Mapped[date | None]
    end_reason: Mapped[str | None] = mapped_column(String(500))
    care_manager_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    consultant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    # The qualifying diagnosis (issue 20): a diagnosis the clinic's EHR sent (an imported
    # Condition, concord.ehr), chosen by a clinician on the team. Code, system and words are
    # copied as the EHR sent them, so the episode keeps them when the EHR sends a new version.
    diagnosis_code: Mapped[str | None] = mapped_column(String(40))
    diagnosis_system: Mapped[str | None] = mapped_column(String(200))
    diagnosis_display: Mapped[str | None] = mapped_column(String(200))
    diagnosis_resource_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ehr_resource.id"))
    diagnosis_set_at: Mapped[datetime | None]
    diagnosis_set_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))

    care_manager: Mapped[User] = relationship(lazy="joined", foreign_keys=[care_manager_id])
    consultant: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[consultant_id])
    diagnosis_set_by: Mapped[User | None] = relationship(
        lazy="joined", foreign_keys=[diagnosis_set_by_id]
    )

    @property
    def is_open(self) -> bool:
        return self.ended_on is None


class EpisodeChange(IdMixin, Base):
    """Each change of an episode's status, with who made it and why."""

    __tablename__ = "episode_change"
    data_category = DataCategory.mental_health

    episode_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("episode.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=now)
    by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    from_status: Mapped[str | None] = mapped_column(String(30))
    to_status: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str | None] = mapped_column(String(500))

    by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[by_id])


class Contact(IdMixin, Base):
    """A contact with (or about) the patient, and the minutes it took. A mistaken entry is
    voided with a reason, never deleted, so the month's minutes can be traced."""

    __tablename__ = "registry_contact"
    data_category = DataCategory.mental_health
    __table_args__ = (
        Index("ix_registry_contact_episode_on", "episode_id", "occurred_on"),
        Index("ix_registry_contact_org_on", "organization_id", "occurred_on"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), index=True)
    episode_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("episode.id"))
    occurred_on: Mapped[date]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    role: Mapped[str] = mapped_column(String(40))  # the person's role on the team that day
    mode: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(30))
    minutes: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    review_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("case_review.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    voided_at: Mapped[datetime | None]
    voided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    void_reason: Mapped[str | None] = mapped_column(String(500))

    user: Mapped[User] = relationship(lazy="joined", foreign_keys=[user_id])


class ReviewReason(StrEnum):
    not_improving = "not_improving"
    safety = "safety"
    nominated = "nominated"  # the care manager asked


class ReviewStatus(StrEnum):
    queued = "queued"
    reviewed = "reviewed"
    withdrawn = "withdrawn"


class CaseReview(IdMixin, Base):
    """A patient brought to the psychiatric consultant, with a question, and the review."""

    __tablename__ = "case_review"
    data_category = DataCategory.mental_health
    __table_args__ = (
        Index("ix_case_review_consultant_status", "consultant_id", "status"),
        Index("ix_case_review_episode", "episode_id", "status"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), index=True)
    episode_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("episode.id"))
    reason: Mapped[str] = mapped_column(String(30))
    question: Mapped[str | None] = mapped_column(Text)
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    requested_at: Mapped[datetime] = mapped_column(default=now)
    consultant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    status: Mapped[str] = mapped_column(String(20), default=ReviewStatus.queued)
    reviewed_on: Mapped[date | None]
    reviewed_at: Mapped[datetime | None]
    reviewed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    minutes: Mapped[int | None] = mapped_column(Integer)
    summary: Mapped[str | None] = mapped_column(Text)

    requested_by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[requested_by_id])
    consultant: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[consultant_id])
    reviewed_by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[reviewed_by_id])


class RecommendationKind(StrEnum):
    increase_dose = "increase_dose"
    decrease_dose = "decrease_dose"
    switch_medication = "switch_medication"
    add_medication = "add_medication"
    add_psychotherapy = "add_psychotherapy"
    change_psychotherapy = "change_psychotherapy"
    refer = "refer"
    other = "other"


class RecommendationStatus(StrEnum):
    proposed = "proposed"
    accepted = "accepted"
    declined = "declined"


class Recommendation(IdMixin, Base):
    """One recommendation of a review: a proposed change to the care plan that the team (and
    the patient) accept or decline, with a reason, so it never sits unread."""

    __tablename__ = "review_recommendation"
    data_category = DataCategory.mental_health
    __table_args__ = (Index("ix_recommendation_patient_status", "patient_id", "status"),)

    review_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("case_review.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    kind: Mapped[str] = mapped_column(String(30))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=RecommendationStatus.proposed)
    proposed_at: Mapped[datetime] = mapped_column(default=now)
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    decline_reason: Mapped[str | None] = mapped_column(String(1000))
    intervention_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("intervention.id"))
    patient_view: Mapped[str | None] = mapped_column(String(20))  # agree / disagree
    patient_view_reason: Mapped[str | None] = mapped_column(String(1000))
    patient_view_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)

    decided_by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[decided_by_id])


class RelapsePlan(IdMixin, Base):
    """What keeps the patient well after an episode, kept with their care plan; every save is
    a version."""

    __tablename__ = "relapse_plan"
    data_category = DataCategory.mental_health

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), unique=True)
    episode_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("episode.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=now)
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))

    updated_by: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[updated_by_id])


class RelapsePlanVersion(IdMixin, Base):
    __tablename__ = "relapse_plan_version"
    data_category = DataCategory.mental_health
    __table_args__ = (UniqueConstraint("plan_id", "version"),)

    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("relapse_plan.id"))
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    author_party: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=now)

    author: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[author_id])


class TaskStatus(StrEnum):
    open = "open"
    done = "done"
    cancelled = "cancelled"


class WorkTask(IdMixin, Base):
    """Work a person must do for a patient (FHIR Task). Rules open them (a registry flag, a
    review, a recommendation, an alert's follow-up) and close them when the work is done; a
    clinician can also give one to someone on the team. At most one open task per source."""

    __tablename__ = "work_task"
    data_category = DataCategory.mental_health
    __table_args__ = (
        Index("ix_work_task_owner_status", "owner_id", "status", "due_on"),
        Index(
            "uq_work_task_open_source",
            "patient_id",
            "source",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), index=True)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    title: Mapped[str] = mapped_column(String(300))
    detail: Mapped[str | None] = mapped_column(Text)
    # What opened it: flag:<code>, review:<id>, recommendation:review-<review id> (a review's
    # recommendations; recommendation:<id> before), alert:<id>, person:<id>
    source: Mapped[str] = mapped_column(String(120))
    priority: Mapped[str] = mapped_column(String(20), default="routine")
    due_on: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(20), default=TaskStatus.open)
    created_at: Mapped[datetime] = mapped_column(default=now)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_account.id"))
    close_note: Mapped[str | None] = mapped_column(String(1000))

    owner: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[owner_id])


class UserPreference(Base):
    """Something a person chose that a page remembers (the registry's sort and filters)."""

    __tablename__ = "user_preference"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=now)

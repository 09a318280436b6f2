"""Responses to questionnaires (FHIR QuestionnaireResponse), their scores (FHIR Observation),
and the schedules that say when each is due."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from concord.accounts.models import User
from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin
from concord.measures.library import library


class ResponseStatus(StrEnum):
    in_progress = "in_progress"
    completed = "completed"
    entered_in_error = "entered_in_error"
    # Replaced by an amendment (the row that `amends` it): kept as history, never current.
    superseded = "superseded"


class Mode(StrEnum):
    """How the answers were collected."""

    portal = "portal"
    in_person = "in_person"
    phone = "phone"
    video = "video"
    proxy = "proxy"
    external = "external"  # sent by another system through /fhir


def instrument_category(code: str) -> DataCategory | None:
    """The data category of an instrument's responses, scores and schedules (its file's
    `category`); None, withheld from everyone, for an instrument this installation lacks."""
    instrument = library().get(code)
    return instrument.category if instrument is not None else None


class _ByInstrument:
    """A row whose data category is its instrument's (a PHQ-9 is mental health, an AUDIT-C
    substance use): one lookup in the loaded library, no query."""

    @property
    def data_category(self) -> DataCategory | None:
        return instrument_category(self.instrument)  # type: ignore[attr-defined]


class MeasureResponse(_ByInstrument, IdMixin, Base):
    __tablename__ = "measure_response"
    __table_args__ = (
        Index("ix_measure_response_patient_instrument", "patient_id", "instrument", "completed_at"),
        # The same submission sent twice (same client identifier) is stored once.
        UniqueConstraint("patient_id", "client_system", "client_identifier"),
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    instrument: Mapped[str] = mapped_column(String(40))
    instrument_version: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(8), default="en")
    status: Mapped[str] = mapped_column(String(20), default=ResponseStatus.in_progress)
    mode: Mapped[str] = mapped_column(String(20))
    # Who answered: the patient, or someone on their behalf (a proxy).
    answered_by: Mapped[str] = mapped_column(String(20), default="patient")
    proxy_name: Mapped[str | None] = mapped_column(String(200))
    proxy_relationship: Mapped[str | None] = mapped_column(String(60))
    entered_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("measure_schedule.id"))
    started_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)
    completed_at: Mapped[datetime | None]
    client_system: Mapped[str | None] = mapped_column(String(200))
    client_identifier: Mapped[str | None] = mapped_column(String(200))
    answers: Mapped[dict[str, Any]]
    scores: Mapped[dict[str, Any]]
    flags: Mapped[dict[str, Any]]
    version: Mapped[int] = mapped_column(Integer, default=1)
    # SHA-256 of the request that sent it (another system's submission): the same identifier
    # again is a replay only when the request is byte for byte the same.
    content_hash: Mapped[str | None] = mapped_column(String(64))
    # The earlier version this one amends (FHIR status "amended"), kept as "superseded".
    amends_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("measure_response.id"))

    entered_by: Mapped[User] = relationship(lazy="joined", foreign_keys=[entered_by_id])

    @property
    def flag_list(self) -> list[dict[str, Any]]:
        return list(self.flags.get("items", []))


class MeasureObservation(_ByInstrument, IdMixin, Base):
    """One score of one completed response: what FHIR Observation searches return."""

    __tablename__ = "measure_observation"
    __table_args__ = (
        Index("ix_measure_observation_patient_code_time", "patient_id", "code", "effective_at"),
    )

    response_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("measure_response.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    instrument: Mapped[str] = mapped_column(String(40))
    score_id: Mapped[str] = mapped_column(String(40))
    code: Mapped[str] = mapped_column(String(80))
    code_system: Mapped[str] = mapped_column(String(200))
    value: Mapped[float]
    band: Mapped[str | None] = mapped_column(String(40))
    effective_at: Mapped[datetime]

    # Declared so one flush inserts a new response before its observations.
    response: Mapped[MeasureResponse] = relationship(lazy="raise")


class MeasureSchedule(_ByInstrument, IdMixin, Base):
    """An instrument a patient is asked to complete every `every_days` days."""

    __tablename__ = "measure_schedule"
    __table_args__ = (Index("ix_measure_schedule_patient", "patient_id", "stopped_at"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    instrument: Mapped[str] = mapped_column(String(40))
    every_days: Mapped[int] = mapped_column(Integer)
    start_on: Mapped[date]
    end_on: Mapped[date | None]
    stopped_at: Mapped[datetime | None]
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)
    reason: Mapped[str | None] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(Integer, default=1)


class ReminderSent(Base):
    """A reminder already queued for one due date of one schedule (never twice)."""

    __tablename__ = "measure_reminder"

    schedule_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("measure_schedule.id"), primary_key=True
    )
    due_on: Mapped[date] = mapped_column(primary_key=True)
    queued_at: Mapped[datetime] = mapped_column(default=now)

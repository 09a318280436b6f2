"""Days of substance use, recorded in the Timeline Followback style (issue 19, "Substance-use
goals and measures").

The Timeline Followback (TLFB; Sobell & Sobell 1992, docs/clinical-sources.md) asks a person to
go back over a calendar, day by day, and say on which days they used a substance and, for
alcohol, how many standard drinks. Concord keeps one row per patient, substance and day: the
day was a day of use or not, and for alcohol the drinks. A day nobody recorded is unknown, never
counted as a day without use. The figures read from the calendar (days of use in the last 30,
drinks per drinking day) are computed when read (concord.substance.service), never stored.

Always substance-use data (DataCategory.substance_use): a patient who has or had a Part 2
episode has every row labelled 42 CFR Part 2 by the category rule, and rows a Part 2 program's
staff wrote by the staff rule (concord/part2/rules.yaml).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base, IdMixin


class Substance(StrEnum):
    """The substance a goal or a calendar day is about: the substance classes of DSM-5's
    "Substance-Related and Addictive Disorders" (caffeine left out: no goal or calendar of
    Concord's is about it). Sources in docs/clinical-sources.md."""

    alcohol = "alcohol"
    cannabis = "cannabis"
    hallucinogens = "hallucinogens"
    inhalants = "inhalants"
    opioids = "opioids"
    sedatives = "sedatives"  # sedatives, hypnotics or anxiolytics
    stimulants = "stimulants"
    tobacco = "tobacco"
    other = "other"


class UseAim(StrEnum):
    """What a substance-use goal aims at: no use at all, or less use."""

    abstinence = "abstinence"
    reduction = "reduction"


class UseMeasure(StrEnum):
    """The figures a substance-use goal's target may name, read from the calendar. Stored in
    a goal's `measure_instrument`, where a questionnaire-linked goal names its instrument."""

    days_of_use = "days-of-use-30"  # days of use in the last 30 days
    drinks_per_drinking_day = "drinks-per-drinking-day"  # alcohol only, last 30 days


# What a target may be, per figure: days of use out of 30; drinks per drinking day (a software
# bound, wide enough for any real answer; not a clinical threshold).
MEASURE_RANGE: dict[str, tuple[float, float]] = {
    UseMeasure.days_of_use: (0, 30),
    UseMeasure.drinks_per_drinking_day: (0, 100),
}
MAX_DRINKS = 100  # per day, the same software bound


class SubstanceUseDay(IdMixin, Base):
    """One day on a patient's calendar for one substance: used or not, and for alcohol the
    number of standard drinks. Recorded by the patient (portal, check-in) or by a clinician on
    the care team; a day recorded again takes the newer answer (both audited)."""

    __tablename__ = "substance_use_day"
    __table_args__ = (
        UniqueConstraint("patient_id", "substance", "on"),
        Index("ix_substance_use_day_patient_on", "patient_id", "on"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organization.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    substance: Mapped[str] = mapped_column(String(30))
    on: Mapped[date]
    used: Mapped[bool] = mapped_column(Boolean)
    drinks: Mapped[int | None] = mapped_column(Integer)  # alcohol on a day of use
    # Who recorded it first (its author, for the Part 2 staff rule) and who last changed it.
    by_patient: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=now)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))
    updated_at: Mapped[datetime] = mapped_column(default=now)
    updated_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id"))

    @property
    def data_category(self) -> DataCategory:
        return DataCategory.substance_use

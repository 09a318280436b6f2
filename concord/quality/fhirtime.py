"""FHIR date-times and the interval arithmetic the eCQM logic (CQL) uses.

A point is an aware UTC datetime; a FHIR date without a time is midnight UTC of that day. An
interval (`Span`) is closed; a bound of None is unbounded (CQL's closed null boundary, as
FHIRHelpers makes of a Period without an end). Most measure timing compares "day of": the
`*_days` functions compare the calendar dates in UTC, which is what the test decks use
(all their times carry +00:00 or Z).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache


def parse(value: object) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware UTC datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    return _parse(value)


@lru_cache(maxsize=1 << 16)
def _parse(value: str) -> datetime | None:
    text = value.strip()
    try:
        if len(text) == 4:
            return datetime(int(text), 1, 1, tzinfo=UTC)
        if len(text) == 7:
            return datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
        if len(text) == 10:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def day(moment: datetime | None) -> date | None:
    return None if moment is None else moment.date()


def at_midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def add_months(d: date, months: int) -> date:
    """CQL calendar arithmetic: the same day of the month, clipped to the month's last day
    (and to the calendar's ends, for a feed's year 9999)."""
    index = d.year * 12 + (d.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    if year > date.max.year:
        return date.max
    if year < date.min.year:
        return date.min
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def add_years(d: date, years: int) -> date:
    return add_months(d, 12 * years)


def age_in_years(birth: date | None, at: date | None) -> int | None:
    if birth is None or at is None:
        return None
    years = at.year - birth.year
    if (at.month, at.day) < (birth.month, birth.day):
        years -= 1
    return years


@dataclass(frozen=True)
class Span:
    """A closed interval of points; None at either end is unbounded."""

    low: datetime | None
    high: datetime | None

    @classmethod
    def point(cls, moment: datetime | None) -> Span | None:
        return None if moment is None else cls(moment, moment)

    @classmethod
    def of_period(cls, period: object) -> Span | None:
        """FHIRHelpers.ToInterval(Period): no end means still going (unbounded)."""
        if not isinstance(period, dict):
            return None
        low, high = parse(period.get("start")), parse(period.get("end"))
        if low is None and high is None:
            return None
        return cls(low, high)

    def days(self) -> DaySpan:
        return DaySpan(day(self.low), day(self.high))


@dataclass(frozen=True)
class DaySpan:
    """A closed interval of calendar days; None at either end is unbounded."""

    low: date | None
    high: date | None

    def contains(self, d: date | None) -> bool:
        if d is None:
            return False
        return (self.low is None or self.low <= d) and (self.high is None or d <= self.high)

    def overlaps(self, other: DaySpan | None) -> bool:
        if other is None:
            return False
        return (self.low is None or other.high is None or self.low <= other.high) and (
            self.high is None or other.low is None or self.high >= other.low
        )

    def includes(self, other: DaySpan | None) -> bool:
        """`other during self`: both of other's ends inside self (an unbounded end is not)."""
        if other is None or other.low is None or other.high is None:
            return False
        return self.contains(other.low) and self.contains(other.high)


def overlaps(a: Span | None, b: Span | None) -> bool:
    """CQL `overlaps` at full precision."""
    if a is None or b is None:
        return False
    return (a.low is None or b.high is None or a.low <= b.high) and (
        a.high is None or b.low is None or a.high >= b.low
    )


def within(moment: datetime | None, span: Span | None) -> bool:
    """A point `during` an interval at full precision."""
    if moment is None or span is None:
        return False
    return (span.low is None or span.low <= moment) and (span.high is None or moment <= span.high)


def shift(d: date | None, days: int) -> date | None:
    """A date moved by some days, kept within the calendar."""
    if d is None:
        return None
    try:
        return d + timedelta(days=days)
    except OverflowError:
        return date.max if days > 0 else date.min

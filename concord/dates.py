"""Dates and numbers as a person reads them: the one place that turns the clock's UTC instant
into the organization's local date, and a date or score into text in the reader's language.

Storage is UTC (DESIGN, habit 10). Everything shown is the organization's local date: at
6:40 PM in Chicago on Dec 6 it is 00:40 UTC on Dec 7, and a page that took `.date()` of the
UTC instant dated a clinical record a day late. So no page, PDF, email, export or service
computes "today" or a datetime's date on its own: they call `org_today` and `local_date`
(tests/test_dates.py greps the code for other ways).
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from functools import lru_cache
from typing import Any, Protocol, overload
from zoneinfo import ZoneInfo

from babel import dates as babel_dates
from babel.numbers import format_decimal

from concord.clock import now
from concord.i18n import DATE_FORMAT, LONG_FORMATS, gettext
from concord.i18n import format_day as _format_date
from concord.i18n import locale_of as _locale


class HasTimezone(Protocol):
    timezone: str


Zone = str | HasTimezone | tzinfo


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name or "UTC")


def zone(where: Zone | None) -> tzinfo:
    """The zone of an organization (anything with `.timezone`), a zone's name, or a zone."""
    if where is None:
        return _zone("UTC")
    if isinstance(where, tzinfo):
        return where
    return _zone(where if isinstance(where, str) else where.timezone)  # type: ignore[union-attr]


def org_today(where: Zone | None) -> date:
    """Today's date where the organization is (its clinical dates are local dates)."""
    return now().astimezone(zone(where)).date()


# What Concord accepts and shows as a date (concord.validation refuses any other on input).
# A record stored before every path checked its dates can hold one outside (year 0001): it is
# shown, marked as not valid, rather than breaking the page that shows it.
FIRST_YEAR, LAST_YEAR = 1900, 2200


def in_range(value: datetime | date | None) -> bool:
    return value is None or FIRST_YEAR <= value.year <= LAST_YEAR


def local_datetime(value: datetime, where: Zone | None) -> datetime:
    """An instant in the organization's zone (a naive value is taken as UTC, as stored). An
    instant at the very edge of what Python can hold (year 0001 or 9999), which no zone can
    take, stays in UTC: an old bad record must not break the page that lists it."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_zone("UTC"))
    try:
        return value.astimezone(zone(where))
    except OverflowError:
        return value.astimezone(_zone("UTC"))


def _not_valid(text: str, lang: str) -> str:
    return gettext(lang, "%(date)s (not a valid date)", date=text)


@overload
def local_date(value: None, where: Zone | None) -> None: ...
@overload
def local_date(value: datetime | date, where: Zone | None) -> date: ...
def local_date(value: datetime | date | None, where: Zone | None) -> date | None:
    """The organization's local date of an instant; a date is already one."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return local_datetime(value, where).date()
    return value


@lru_cache(maxsize=8192)
def _format_datetime(value: datetime, format: str, tz: tzinfo, lang: str) -> str:
    local = local_datetime(value, tz)
    day = _format_date(local.date(), format if format in LONG_FORMATS else DATE_FORMAT, lang)
    time = babel_dates.format_time(local, format="short", locale=_locale(lang))
    pattern = babel_dates.get_datetime_format(DATE_FORMAT, locale=_locale(lang))
    return str(pattern).replace("{1}", day).replace("{0}", time)


def format_date(
    value: datetime | date | str | None, *, lang: str, where: Zone | None, format: str = "medium"
) -> str:
    """A date in the reader's language; an instant is first turned into the organization's
    local date."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            return value
    local = local_date(value, where)
    assert local is not None
    text = _format_date(local, format if format in LONG_FORMATS else DATE_FORMAT, lang)
    return text if in_range(local) else _not_valid(text, lang)


def format_datetime(
    value: datetime | None, *, lang: str, where: Zone | None, format: str = "medium"
) -> str:
    """An instant in the organization's zone: the one date format and the locale's short time
    ("Dec 6, 2026, 6:41 PM", "6 dic 2026, 18:41")."""
    if value is None:
        return ""
    text = _format_datetime(value, format, zone(where), lang)
    return text if in_range(value) else _not_valid(text, lang)


def format_time(value: datetime | None, *, lang: str, where: Zone | None) -> str:
    if value is None:
        return ""
    return babel_dates.format_time(
        local_datetime(value, where), format="short", locale=_locale(lang)
    )


def format_month(value: date, *, lang: str) -> str:
    """A month and year ("December 2026", "diciembre de 2026")."""
    return babel_dates.format_skeleton("yMMMM", value, locale=_locale(lang))


def score(value: Any, lang: str = "en") -> str:
    """A score as people write it: 7, not 7.0; one decimal where there is a fraction, with
    the locale's decimal sign (7.5, 7,5)."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return str(value)
    try:
        number = round(float(value), 1)
    except (TypeError, ValueError):
        return str(value)
    if number == int(number):
        return str(int(number))
    return format_decimal(number, format="0.0", locale=_locale(lang))

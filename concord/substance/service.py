"""The days-of-use calendar (Timeline Followback style): record days, read them, and the
figures read from them (days of use in the last 30 days; drinks per drinking day).

Who may do what (deny by default; every read and write audited):
- The care team and the patient read the calendar (`record_access`: family and strangers get
  the stranger's 404). Every row passes the disclosure decision by its category (substance
  use) and Part 2 label (`disclosure.filter_records`), so a reader without a permitting consent
  sees none of a Part 2 patient's days.
- The patient (portal, check-in) and the care team record days. A day recorded again takes the
  newer answer; the same answer again changes nothing (a retry is not recorded twice). Someone
  who may not see a day already recorded may not overwrite it.

The figures (`window`) are computed when read, never stored: a day nobody recorded is
unknown, not a day without use, so every figure says how many of its 30 days were recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import PatientAccess, deny, refuse_record
from concord.audit.service import record as audit
from concord.clock import now
from concord.errors import InvalidInput
from concord.i18n import Msg
from concord.substance.models import Substance, SubstanceUseDay, UseMeasure
from concord.substance.schemas import DaysIn

OBJECT = "SubstanceUseDay"
WINDOW_DAYS = 30


# --- reads ---------------------------------------------------------------------------------


def list_days(
    session: Session,
    *,
    access: PatientAccess,
    substance: str | None = None,
    since: date | None = None,
) -> list[SubstanceUseDay]:
    """The patient's recorded days the asker may see (one substance, from a day on, when
    asked), oldest first. Audited: one event for the read, and the disclosure decision's own
    events for anything withheld or disclosed under consent."""
    if not access.can_read_record:
        raise refuse_record(session, access, action="list", object_type=OBJECT)
    query = select(SubstanceUseDay).where(SubstanceUseDay.patient_id == access.patient.id)
    if substance is not None:
        query = query.where(SubstanceUseDay.substance == substance)
    if since is not None:
        query = query.where(SubstanceUseDay.on >= since)
    rows = list(session.scalars(query.order_by(SubstanceUseDay.on, SubstanceUseDay.substance)))
    shown = disclosure.filter_records(session, access, rows, object_type=OBJECT, action="list")
    audit(
        session,
        by=access.by,
        action="list",
        object_type=OBJECT,
        patient_id=access.patient.id,
        detail={"count": len(shown)},
    )
    return shown


# --- the figures ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One substance over the 30 days that end on `end` (inclusive)."""

    substance: str
    start: date
    end: date
    recorded: int  # days recorded, of 30
    days_of_use: int  # recorded days of use (a lower bound while days are missing)
    drinking_days: int  # alcohol: days of use with the drinks recorded
    drinks: int  # alcohol: the drinks on those days

    @property
    def complete(self) -> bool:
        return self.recorded == WINDOW_DAYS

    @property
    def drinks_per_drinking_day(self) -> float | None:
        """The mean number of standard drinks on the days with drinking (alcohol only)."""
        if self.substance != Substance.alcohol or self.drinking_days == 0:
            return None
        return round(self.drinks / self.drinking_days, 1)

    def value(self, measure: str) -> float | None:
        if measure == UseMeasure.days_of_use:
            return float(self.days_of_use) if self.recorded else None
        if measure == UseMeasure.drinks_per_drinking_day:
            return self.drinks_per_drinking_day
        return None


def window(days: Iterable[SubstanceUseDay], substance: str, end: date) -> Window:
    """The figures of the 30 days ending on `end`, from the days given (already decided)."""
    start = end - timedelta(days=WINDOW_DAYS - 1)
    recorded = used = drinking = drinks = 0
    for day in days:
        if day.substance != substance or not start <= day.on <= end:
            continue
        recorded += 1
        if day.used:
            used += 1
            if day.drinks is not None:
                drinking += 1
                drinks += day.drinks
    return Window(substance, start, end, recorded, used, drinking, drinks)


def series(days: list[SubstanceUseDay], substance: str, today: date) -> list[Window]:
    """Consecutive 30-day windows back from `today` (the newest last), from the first one
    holding a recorded day of this substance: what a chart of the figure draws."""
    mine = [d for d in days if d.substance == substance and d.on <= today]
    if not mine:
        return []
    first = min(d.on for d in mine)
    windows = []
    end = today
    while end >= first:
        w = window(mine, substance, end)
        if w.recorded:
            windows.append(w)
        end -= timedelta(days=WINDOW_DAYS)
    return list(reversed(windows))


def target_met(op: str | None, target: float | None, w: Window, measure: str) -> bool | None:
    """Whether a window meets a goal's target: True or False, or None while it cannot be
    told (days missing could still change the answer, or nothing was recorded)."""
    value = w.value(measure)
    if value is None or target is None or op is None:
        return None
    meets = {
        "below": value < target,
        "at_most": value <= target,
        "at_least": value >= target,
    }.get(op)
    if meets is None:
        return None
    if measure == UseMeasure.days_of_use and not w.complete:
        # Recorded days of use only grow as missing days are filled in.
        if op in ("below", "at_most") and not meets:
            return False
        if op == "at_least" and meets:
            return True
        return None
    if measure == UseMeasure.drinks_per_drinking_day and not w.complete:
        return None
    return meets


# --- writes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """What a calendar post did: days new, days changed, days sent again as they were."""

    created: list[SubstanceUseDay]
    changed: list[SubstanceUseDay]
    unchanged: int


def _check(data: DaysIn, today: date) -> list[tuple[date, bool, int | None]]:
    """The days to record (rows left blank dropped), or InvalidInput naming the field."""
    errors: dict[str, Msg] = {}
    found: list[tuple[date, bool, int | None]] = []
    seen: set[date] = set()
    alcohol = data.substance == Substance.alcohol
    for day in data.days:
        where = day.on.isoformat()
        if day.used is None:
            if day.drinks is not None:
                errors.setdefault(
                    "days.used",
                    Msg("on %(day)s: say whether it was a day of use", day=where),
                )
            continue
        if day.on > today:
            errors.setdefault("days.on", Msg("%(day)s is in the future", day=where))
        if day.on in seen:
            errors.setdefault("days.on", Msg("%(day)s is sent twice", day=where))
        seen.add(day.on)
        drinks = day.drinks
        if not alcohol and drinks is not None:
            errors.setdefault("days.drinks", Msg("drinks are counted for alcohol only"))
        elif alcohol and day.used and (drinks is None or drinks < 1):
            errors.setdefault(
                "days.drinks",
                Msg(
                    "on %(day)s: how many standard drinks (at least 1 on a day of drinking)",
                    day=where,
                ),
            )
        elif alcohol and not day.used and drinks:
            errors.setdefault(
                "days.drinks", Msg("on %(day)s: no drinks on a day without drinking", day=where)
            )
        found.append((day.on, bool(day.used), drinks if day.used else None))
    if not found and not errors:
        errors["days.used"] = Msg("mark at least one day: used or not used")
    if errors:
        raise InvalidInput(Msg("The calendar was not saved."), errors=errors)
    return found


def record_days(session: Session, *, access: PatientAccess, data: DaysIn, today: date) -> Recorded:
    """Record days of one substance (the patient or the care team). A day already recorded
    takes the newer answer; the same answer again changes nothing."""
    if not (access.on_team or access.is_self):
        raise deny(
            session,
            access,
            action="create",
            object_type=OBJECT,
            message="Only the patient and the care team record days of use.",
        )
    wanted = _check(data, today)
    on_days = [on for on, _, _ in wanted]
    existing = list(
        session.scalars(
            select(SubstanceUseDay).where(
                SubstanceUseDay.patient_id == access.patient.id,
                SubstanceUseDay.substance == data.substance,
                SubstanceUseDay.on.in_(on_days),
            )
        )
    )
    visible = disclosure.filter_records(
        session, access, existing, object_type=OBJECT, action="update"
    )
    if len(visible) < len(existing):
        raise deny(
            session,
            access,
            action="update",
            object_type=OBJECT,
            message="Some of these days were recorded where you may not see them.",
        )
    by_day = {row.on: row for row in existing}
    at = now()
    created: list[SubstanceUseDay] = []
    changed: list[SubstanceUseDay] = []
    unchanged = 0
    for on, used, drinks in wanted:
        row = by_day.get(on)
        if row is None:
            row = SubstanceUseDay(
                organization_id=access.patient.organization_id,
                patient_id=access.patient.id,
                substance=str(data.substance),
                on=on,
                used=used,
                drinks=drinks,
                by_patient=access.is_self,
                created_at=at,
                created_by_id=access.by.id,
                updated_at=at,
                updated_by_id=access.by.id,
            )
            session.add(row)
            created.append(row)
        elif row.used != used or row.drinks != drinks:
            row.used, row.drinks = used, drinks
            row.updated_at, row.updated_by_id = at, access.by.id
            changed.append(row)
        else:
            unchanged += 1
    session.flush()
    if created or changed:
        audit(
            session,
            by=access.by,
            action="create" if not changed else "update",
            object_type=OBJECT,
            patient_id=access.patient.id,
            detail={
                "substance": str(data.substance),
                "created": len(created),
                "changed": len(changed),
            },
        )
    return Recorded(created, changed, unchanged)

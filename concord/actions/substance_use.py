"""Substance-use goals and the days-of-use calendar (issue 19).

The calendar is the substance domain's; the goals and their targets are the care plan's.
This module records days (every door: the patient's portal and check-in, the team's page, the
JSON API) and joins the two for every door that shows the figures against a goal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.careplans.models import Goal
from concord.careplans.service import treatment_start_and_goals
from concord.dates import org_today
from concord.substance import service as calendar
from concord.substance.models import Substance, SubstanceUseDay, UseMeasure
from concord.substance.schemas import DaysIn
from concord.substance.service import Recorded, Window

FIGURES = {m.value for m in UseMeasure}


def record_days(session: Session, *, access: PatientAccess, data: DaysIn) -> Recorded:
    """Days of one substance, from the patient or the care team (one action, every door)."""
    return calendar.record_days(
        session, access=access, data=data, today=org_today(access.by.organization)
    )


@dataclass(frozen=True)
class GoalStanding:
    """A substance-use goal with a target, read against the last 30 days."""

    goal: Goal
    measure: str
    value: float | None
    met: bool | None  # None: cannot be told yet (days missing, or none recorded)


@dataclass
class SubstanceView:
    """One substance on the calendar: its 30-day windows (the chart), the last 30 days, and
    the goals about it with their standing."""

    substance: str
    windows: list[Window]
    current: Window
    goals: list[GoalStanding] = field(default_factory=list)


@dataclass
class CalendarView:
    today: date
    days: list[SubstanceUseDay]
    substances: list[SubstanceView]


def substance_goals(session: Session, access: PatientAccess) -> list[Goal]:
    """The current plan's open substance-use goals with a calendar target that `access` may
    see (through the care plan's own decision)."""
    _, goals = treatment_start_and_goals(session, access)
    return [g for g in goals if g.substance and g.measure_instrument in FIGURES and g.is_open]


def calendar_view(session: Session, *, access: PatientAccess) -> CalendarView:
    """The calendar as `access` may see it, with each substance's figures and goals (the
    days and the goals each pass their own disclosure decision, audited by their domains)."""
    today = org_today(access.by.organization)
    days = calendar.list_days(session, access=access)
    goals = substance_goals(session, access)
    names = {d.substance for d in days} | {g.substance for g in goals if g.substance}
    order = [s.value for s in Substance]
    views = []
    for name in sorted(names, key=lambda n: order.index(n) if n in order else len(order)):
        current = calendar.window(days, name, today)
        standing = []
        for goal in goals:
            if goal.substance != name:
                continue
            measure = str(goal.measure_instrument)
            standing.append(
                GoalStanding(
                    goal,
                    measure,
                    current.value(measure),
                    calendar.target_met(goal.measure_op, goal.measure_value, current, measure),
                )
            )
        views.append(SubstanceView(name, calendar.series(days, name, today), current, standing))
    return CalendarView(today, days, views)

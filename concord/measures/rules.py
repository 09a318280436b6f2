"""The date and progress rules of measurement-based care, as pure functions.

Schedules: a schedule of every N days from a start date has one due date per period. A due
date can be met from a few days before it; after a few days' grace it is overdue, until the
next due date's window opens. Progress: the baseline, the change, and the status against the
instrument's targets (remission, response, meaningful improvement), with the 8-week cue for a
psychiatric review when a patient is not 50% better (docs/clinical-sources.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from concord.dates import score
from concord.i18n import Msg
from concord.measures.library import Instrument

EARLY_DAYS = 3  # a check-in can be done up to 3 days before it is due
GRACE_DAYS = 3  # and is overdue when still not done 3 days after
REVIEW_WEEK = 8  # not 50% better at week 8 or later: the cue for psychiatric review


def early_days(every_days: int) -> int:
    return min(EARLY_DAYS, every_days // 2)


def grace_days(every_days: int) -> int:
    return min(GRACE_DAYS, max(every_days - early_days(every_days) - 1, 0))


@dataclass(frozen=True)
class ScheduleState:
    status: str  # upcoming, due, overdue, completed, ended
    due_on: date | None  # the due date the status is about
    next_due_on: date | None
    missed: int = 0  # earlier due dates that passed without a response


def schedule_state(
    *,
    start_on: date,
    every_days: int,
    end_on: date | None,
    completed_on: Sequence[date],
    today: date,
    count_missed: bool = True,
) -> ScheduleState:
    """Where a schedule stands today, given the local dates of its completed responses
    (`count_missed=False` skips counting earlier due dates that were missed)."""
    early = early_days(every_days)
    grace = grace_days(every_days)
    done = sorted(completed_on)

    def met(due: date) -> bool:
        window_start = due - timedelta(days=early)
        window_end = due + timedelta(days=every_days - early)  # exclusive
        return any(window_start <= d < window_end for d in done)

    def due_after(day: date) -> date:
        if day < start_on:
            return start_on
        periods = -(-(day - start_on).days // every_days)
        return start_on + timedelta(days=periods * every_days)

    if end_on is not None and today > end_on:
        return ScheduleState("ended", None, None)
    if today < start_on - timedelta(days=early):
        return ScheduleState("upcoming", start_on, start_on)
    # The due date whose window holds today: windows open `early` days before each due date.
    periods = (today - start_on + timedelta(days=early)).days // every_days
    current = start_on + timedelta(days=max(periods, 0) * every_days)
    following = current + timedelta(days=every_days)
    if end_on is not None and following > end_on:
        following = None  # type: ignore[assignment]
    missed = (
        sum(1 for k in range(max(periods, 0)) if not met(start_on + timedelta(days=k * every_days)))
        if count_missed
        else 0
    )
    if met(current):
        return ScheduleState("completed", current, following, missed)
    if today <= current + timedelta(days=grace):
        return ScheduleState("due", current, following, missed)
    return ScheduleState("overdue", current, following, missed)


@dataclass(frozen=True)
class Point:
    on: date
    value: float
    band: str | None = None
    response_id: str | None = None


@dataclass(frozen=True)
class Progress:
    status: str
    rule: Msg | None
    baseline: Point | None
    latest: Point | None
    change_points: float | None
    change_percent: float | None
    weeks: int | None
    improved_meaningfully: bool = False
    review_cue: bool = False


def _percent(baseline: float, latest: float) -> float | None:
    if baseline <= 0:
        return None
    return round((baseline - latest) / baseline * 100, 1)


def choose_baseline(points: Sequence[Point], treatment_start: date | None) -> Point | None:
    """The first score of this treatment: the first from 30 days before it began, or the
    first at all when there is no treatment start."""
    ordered = sorted(points, key=lambda p: p.on)
    if not ordered:
        return None
    if treatment_start is None:
        return ordered[0]
    window = treatment_start - timedelta(days=30)
    for point in ordered:
        if point.on >= window:
            return point
    return None


def progress(
    instrument: Instrument, points: Sequence[Point], *, treatment_start: date | None, today: date
) -> Progress:
    """Status against target for the instrument's main score. Targets assume a lower score is
    better; an instrument without targets gets its change but no status."""
    ordered = sorted(points, key=lambda p: p.on)
    weeks = (today - treatment_start).days // 7 if treatment_start else None
    baseline = choose_baseline(ordered, treatment_start)
    if baseline is None:
        return Progress("no_data", None, None, None, None, None, weeks)
    after = [p for p in ordered if p.on >= baseline.on]
    latest = after[-1]
    if latest is baseline or len(after) == 1:
        return Progress("baseline_only", None, baseline, latest, None, None, weeks)
    change = baseline.value - latest.value
    percent = _percent(baseline.value, latest.value)
    targets = instrument.targets
    remission = targets.get("remission")
    response = targets.get("response")
    improvement = targets.get("improvement")
    improved = improvement is not None and change >= (improvement.drop_points or 0)
    common = {
        "baseline": baseline,
        "latest": latest,
        "change_points": change,
        "change_percent": percent,
        "weeks": weeks,
        "improved_meaningfully": improved,
    }
    if remission is not None and remission.below is not None and latest.value < remission.below:
        return Progress(
            "remission",
            Msg("Remission: the latest score is below %(below)s.", below=_num(remission.below)),
            **common,
        )
    if response is not None and percent is not None and percent >= (response.drop_percent or 0):
        return Progress(
            "response",
            Msg(
                "Response: at least %(pct)s%% lower than the baseline.",
                pct=_num(response.drop_percent),
            ),
            **common,
        )
    if response is not None and weeks is not None and weeks >= REVIEW_WEEK:
        return Progress(
            "not_improving",
            Msg(
                "Not improving: less than %(pct)s%% lower than the baseline at week "
                "%(weeks)s (from week %(cue)s this is the cue for a psychiatric case review).",
                pct=_num(response.drop_percent),
                weeks=weeks,
                cue=REVIEW_WEEK,
            ),
            review_cue=True,
            **common,
        )
    if improved and response is not None:
        return Progress(
            "partial_response",
            Msg(
                "Partial response: %(points)s points lower (at least %(mcid)s, the smallest "
                "change that matters) but less than %(pct)s%% lower than the baseline.",
                points=_num(change),
                mcid=_num(improvement.drop_points),  # type: ignore[union-attr]
                pct=_num(response.drop_percent),
            ),
            **common,
        )
    if improved:
        return Progress(
            "improving",
            Msg(
                "Improving: %(points)s points lower (at least %(mcid)s, the smallest change "
                "that matters).",
                points=_num(change),
                mcid=_num(improvement.drop_points),
            ),  # type: ignore[union-attr]
            **common,
        )
    if response is None:
        return Progress("tracking", None, **common)
    return Progress(
        "early",
        Msg(
            "Too early to judge: week %(weeks)s of treatment; the cue for review comes at "
            "week %(cue)s.",
            weeks=weeks or 0,
            cue=REVIEW_WEEK,
        ),
        **common,
    )


def _num(value: float | None) -> str:
    return score(value)


def plain_change(baseline: float, latest: float) -> Msg:
    """The change in words a patient reads (for instruments where lower is better)."""
    if latest == baseline:
        return Msg("Your score is the same as when you started (%(b)s).", b=_num(baseline))
    if latest > baseline:
        return Msg(
            "Your score went from %(b)s to %(l)s: higher than when you started. Your "
            "team will talk with you about it.",
            b=_num(baseline),
            l=_num(latest),
        )
    fraction = latest / baseline if baseline else 0
    if fraction <= 0.05:
        how = Msg("almost nothing left of where you started")
    elif fraction <= 0.15:
        how = Msg("a small part of where you started")
    elif fraction <= 0.3:
        how = Msg("about a quarter of where you started")
    elif fraction <= 0.4:
        how = Msg("about a third of where you started")
    elif fraction <= 0.6:
        how = Msg("about half of where you started")
    elif fraction <= 0.8:
        how = Msg("about two thirds of where you started")
    else:
        how = Msg("a little lower than where you started")
    return Msg(
        "Your score went from %(b)s to %(l)s, %(how)s.", b=_num(baseline), l=_num(latest), how=how
    )

"""The collaborative-care process measures (issue 20), from Concord's own registry data, as
pure functions of one episode's facts: no database, no access decision (the action gathers the
facts through the domain reads). Definitions and sources: docs/quality-measures.md, "Process
measures"; thresholds from ../shared/reference/clinical.md sections 2 and 3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import median

FOLLOW_UP_DAYS = 28  # a follow-up within 4 weeks of the initial assessment (Bao et al. 2016)
BASELINE_BEFORE_DAYS = 30  # the baseline: the first PHQ-9 from 30 days before the episode
ELEVATED_ABOVE = 9  # a baseline PHQ-9 above 9 (CMS159's index assessment; DRR-E)
REMISSION_BELOW = 5  # PHQ-9 below 5 (CMS159 numerator)
RESPONSE_DROP = 0.5  # at least 50% lower than the baseline (NQF 1885; DRR-E)
SIX_MONTHS = (120, 240)  # days after the baseline: DRR-E's window (120-240 days)
TWELVE_MONTHS_MARGIN = 60  # 12 months plus or minus 60 days (CMS159, NQF 1885)
REVIEW_BY_WEEK = 12  # psychiatric consultation during weeks 8-12 (Bao et al. 2016)

DAYS_MEASURES = ("days_to_first_contact", "days_to_first_treatment")
PROPORTION_MEASURES = (
    "follow_up_4_weeks",
    "phq9_utilization",
    "response_6_months",
    "remission_6_months",
    "response_12_months",
    "remission_12_months",
    "review_not_improving",
)
MEASURES = DAYS_MEASURES + PROPORTION_MEASURES

REACHED = ("initial_assessment", "follow_up", "relapse_prevention")
TREATMENT = ("follow_up", "relapse_prevention")


@dataclass(frozen=True)
class EpisodeFacts:
    """One episode: its start (the referral to the care manager, the enrolment), its contacts
    (date, kind; voided ones left out), the patient's PHQ-9 totals (date, total) and the
    dates of its psychiatric case reviews."""

    started_on: date
    depression: bool  # a program whose main measure is the PHQ-9
    contacts: Sequence[tuple[date, str]] = ()
    phq9: Sequence[tuple[date, float]] = ()
    reviews: Sequence[date] = ()
    # The measure spec's denominator exclusions over a window of days (first day, last day):
    # the reason, or None (concord.quality.cms159.Exclusions over the patient's EHR record).
    excluded: Callable[[date, date], str | None] | None = None
    # NQF 0712 / CMS160's exclusions for PHQ-9 utilization over a 4-month period (first day,
    # last day): the reason, or None (concord.quality.cms159.Exclusions.utilization_reason).
    excluded_utilization: Callable[[date, date], str | None] | None = None


@dataclass(frozen=True)
class Unit:
    """One counted unit (an episode, or an episode's 4-month period for PHQ-9 utilization):
    in the denominator, whether in the numerator, and the month it is counted in."""

    measure: str
    month: date
    numerator: bool
    # Left out of the denominator by the measure's exclusions (hospice, palliative care...).
    excluded: bool = False


@dataclass(frozen=True)
class DaysValue:
    measure: str
    month: date
    days: int


@dataclass
class EpisodeResult:
    units: list[Unit] = field(default_factory=list)
    days: list[DaysValue] = field(default_factory=list)


def _month(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    year, index = divmod(day.year * 12 + day.month - 1 + months, 12)
    month_start = date(year, index + 1, 1)
    following = date(year + (index + 1) // 12, (index + 1) % 12 + 1, 1)
    return month_start.replace(day=min(day.day, (following - timedelta(days=1)).day))


def four_month_period(day: date) -> tuple[date, date]:
    """NQF 0712's assessment periods: January-April, May-August, September-December."""
    first = ((day.month - 1) // 4) * 4 + 1
    start = date(day.year, first, 1)
    end = add_months(start, 4) - timedelta(days=1)
    return start, end


def baseline(facts: EpisodeFacts) -> tuple[date, float] | None:
    opened = facts.started_on - timedelta(days=BASELINE_BEFORE_DAYS)
    scores = sorted(s for s in facts.phq9 if s[0] >= opened)
    return scores[0] if scores else None


def _last_in(scores: Iterable[tuple[date, float]], start: date, end: date) -> float | None:
    inside = sorted(s for s in scores if start <= s[0] <= end)
    return inside[-1][1] if inside else None


def _responded(base: float, value: float) -> bool:
    return base > 0 and (base - value) >= base * RESPONSE_DROP


def evaluate(facts: EpisodeFacts, period_start: date, period_end: date) -> EpisodeResult:
    """The episode's units and day counts whose anchor falls in the period:

    - days to first contact / first treatment, and follow-up within 4 weeks: episodes that
      began in the period (anchor: the start; the follow-up: the initial assessment);
    - PHQ-9 utilization: each 4-month period wholly in the measurement period with a contact
      that reached the patient in a PHQ-9 program; met by a PHQ-9 in that 4-month period;
    - response and remission at 6 and 12 months: baseline above 9, anchored on the window's
      last day; met by the last PHQ-9 in the window;
    - psychiatric review: not responding (neither remission nor response) by week 8, anchored
      on the last day of week 12; met by a review by then.
    """
    out = EpisodeResult()

    def within(day: date) -> bool:
        return period_start <= day <= period_end

    contacts = sorted(facts.contacts)
    reached = [d for d, kind in contacts if kind in REACHED]
    if within(facts.started_on):
        month = _month(facts.started_on)
        if reached:
            out.days.append(
                DaysValue("days_to_first_contact", month, (reached[0] - facts.started_on).days)
            )
        treated = [d for d, kind in contacts if kind in TREATMENT]
        if treated:
            out.days.append(
                DaysValue("days_to_first_treatment", month, (treated[0] - facts.started_on).days)
            )
    initial = [d for d, kind in contacts if kind == "initial_assessment"]
    if initial and within(initial[0]):
        due = initial[0] + timedelta(days=FOLLOW_UP_DAYS)
        met = any(initial[0] < d <= due and kind in TREATMENT for d, kind in contacts)
        out.units.append(Unit("follow_up_4_weeks", _month(initial[0]), met))
    if not facts.depression:
        return out
    periods = sorted({four_month_period(d) for d in reached})
    for start, end in periods:
        if start >= period_start and end <= period_end:
            # NQF 0712's exclusions (hospice, death, excluding diagnoses) over the period.
            left_out = (
                facts.excluded_utilization is not None
                and facts.excluded_utilization(start, end) is not None
            )
            met = not left_out and any(start <= d <= end for d, _ in facts.phq9)
            out.units.append(Unit("phq9_utilization", _month(start), met, left_out))
    base = baseline(facts)
    if base is None or base[1] <= ELEVATED_ABOVE:
        return out
    base_on, base_value = base
    twelve = add_months(base_on, 12)
    windows = {
        "6_months": (
            base_on + timedelta(days=SIX_MONTHS[0]),
            base_on + timedelta(days=SIX_MONTHS[1]),
        ),
        "12_months": (
            twelve - timedelta(days=TWELVE_MONTHS_MARGIN),
            twelve + timedelta(days=TWELVE_MONTHS_MARGIN),
        ),
    }
    for name, (start, end) in windows.items():
        if not within(end):
            continue
        last = _last_in(facts.phq9, start, end)
        month = _month(end)
        # CMS159's exclusions, from the baseline to the window's last day.
        out_ = facts.excluded is not None and facts.excluded(base_on, end) is not None
        responded = last is not None and _responded(base_value, last) and not out_
        remitted = last is not None and last < REMISSION_BELOW and not out_
        out.units.append(Unit(f"response_{name}", month, responded, out_))
        out.units.append(Unit(f"remission_{name}", month, remitted, out_))
    week8 = facts.started_on + timedelta(weeks=8)
    week12_end = facts.started_on + timedelta(weeks=REVIEW_BY_WEEK) - timedelta(days=1)
    if within(week12_end):
        by_week8 = [s for s in facts.phq9 if base_on < s[0] <= week8]
        latest = max(by_week8)[1] if by_week8 else None
        improving = latest is not None and (
            latest < REMISSION_BELOW or _responded(base_value, latest)
        )
        if not improving:
            met = any(d <= week12_end for d in facts.reviews)
            out.units.append(Unit("review_not_improving", _month(week12_end), met))
    return out


@dataclass(frozen=True)
class Tally:
    """A proportion: units in the denominator and in the numerator."""

    denominator: int  # less the excluded
    numerator: int
    excluded: int = 0


@dataclass(frozen=True)
class DaysTally:
    count: int
    median: float | None
    within_28: int  # how many within 4 weeks


def tally(units: Iterable[Unit], measure: str) -> Tally:
    chosen = [u for u in units if u.measure == measure]
    counted = [u for u in chosen if not u.excluded]
    return Tally(len(counted), sum(1 for u in counted if u.numerator), len(chosen) - len(counted))


def days_tally(values: Iterable[DaysValue], measure: str) -> DaysTally:
    days = [v.days for v in values if v.measure == measure]
    return DaysTally(
        len(days), float(median(days)) if days else None, sum(1 for d in days if d <= 28)
    )


def by_month(units: Iterable[Unit], measure: str) -> dict[date, Tally]:
    """The measure's tally per month of anchor, in month order."""
    months: dict[date, list[Unit]] = {}
    for u in units:
        if u.measure == measure:
            months.setdefault(u.month, []).append(u)
    return {m: tally(months[m], measure) for m in sorted(months)}

"""The registry's rules as pure functions: the caseload flags, the next contact due, and how a
month's care-manager minutes roll up into the collaborative-care billing codes. Sources are in
docs/clinical-sources.md ("Collaborative care registry"); each flag carries its rule in words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from concord.i18n import Msg
from concord.registry.models import REACHED, ContactKind

FOLLOW_UP_WITHIN_DAYS = 28  # Bao et al. 2016: a follow-up within 4 weeks of the initial contact
NO_CONTACT_DAYS = 30
REVIEW_WEEK = 8  # Bao et al. 2016: not responding by week 8 -> psychiatric consultation
ESCALATE_WEEK = 10  # ... during weeks 8-12; escalate by 10-12
RECOMMENDATION_DAYS = 14  # issue 5: recommendations not acted on in 2 weeks


@dataclass(frozen=True)
class ContactFact:
    on: date
    kind: str


@dataclass(frozen=True)
class Flag:
    code: str
    rule: Msg
    since: date | None = None  # when it started to apply, where that is known
    urgent: bool = False


@dataclass
class CaseFacts:
    """Everything the flags look at for one open episode (gathered in a few queries for a
    whole caseload, never one patient at a time)."""

    today: date
    status: str
    started_on: date
    contacts: Sequence[ContactFact] = ()
    weeks: int | None = None
    review_cue: bool = False  # the program's main measure says "not improving"
    has_response_target: bool = True
    checkins_overdue: Sequence[str] = ()
    open_alerts: int = 0
    alert_since: date | None = None  # the local date the oldest open alert was raised
    plan_review: str = "not_scheduled"
    awaiting_agreement: bool = False
    pending_recommendations: Sequence[date] = field(default_factory=list)
    review_queued: bool = False
    # Opioid use disorder treatment (concord.medications.service.moud_state): on a MOUD now,
    # the PDMP check overdue at the clinic's interval (never without one), naloxone on file,
    # the latest missed dose or visit reported.
    on_moud: bool = False
    pdmp_due_on: date | None = None
    pdmp_overdue: bool = False
    naloxone_on_file: bool = True
    missed_reported_on: date | None = None
    missed_visit_on: date | None = None  # the latest no-show (issue 22), the local date


def initial_assessment_on(contacts: Sequence[ContactFact]) -> date | None:
    dates = [c.on for c in contacts if c.kind == ContactKind.initial_assessment]
    return min(dates) if dates else None


def last_reached_on(contacts: Sequence[ContactFact]) -> date | None:
    dates = [c.on for c in contacts if c.kind in REACHED]
    return max(dates) if dates else None


def followed_up(contacts: Sequence[ContactFact], initial: date) -> bool:
    return any(
        c.on > initial and c.kind in (ContactKind.follow_up, ContactKind.relapse_prevention)
        for c in contacts
    )


def next_contact_due(facts: CaseFacts) -> date:
    """The initial assessment as soon as possible; the first follow-up within 4 weeks of it;
    after that, a contact at least every 30 days."""
    initial = initial_assessment_on(facts.contacts)
    if initial is None:
        return facts.started_on
    if not followed_up(facts.contacts, initial):
        return initial + timedelta(days=FOLLOW_UP_WITHIN_DAYS)
    last = last_reached_on(facts.contacts) or initial
    return last + timedelta(days=NO_CONTACT_DAYS)


def flags(facts: CaseFacts) -> list[Flag]:
    """The flags of one open episode, most pressing first."""
    found: list[Flag] = []
    today = facts.today
    if facts.open_alerts:
        found.append(
            Flag(
                "open_safety_alert",
                Msg("A safety alert is not closed."),
                since=facts.alert_since,
                urgent=True,
            )
        )
    initial = initial_assessment_on(facts.contacts)
    if initial is None:
        found.append(
            Flag(
                "needs_initial_assessment",
                Msg("No initial assessment is recorded for this episode yet."),
                since=facts.started_on,
            )
        )
    elif not followed_up(facts.contacts, initial):
        deadline = initial + timedelta(days=FOLLOW_UP_WITHIN_DAYS)
        if today > deadline:
            found.append(
                Flag(
                    "no_follow_up_4_weeks",
                    Msg(
                        "No follow-up contact within 4 weeks (%(days)s days) of the initial "
                        "assessment on %(date)s.",
                        days=FOLLOW_UP_WITHIN_DAYS,
                        date=initial,
                    ),
                    since=deadline + timedelta(days=1),
                )
            )
    if facts.review_cue and facts.weeks is not None and facts.weeks >= ESCALATE_WEEK:
        found.append(
            Flag(
                "not_improving_escalate",
                Msg(
                    "Not 50%% better at week %(weeks)s (week %(week)s or later): the "
                    "psychiatric consultant should review now (weeks 8-12).",
                    weeks=facts.weeks,
                    week=ESCALATE_WEEK,
                ),
                since=facts.started_on + timedelta(weeks=ESCALATE_WEEK),
                urgent=True,
            )
        )
    elif facts.review_cue and facts.weeks is not None and facts.weeks >= REVIEW_WEEK:
        found.append(
            Flag(
                "not_improving",
                Msg(
                    "Not 50%% better at week %(weeks)s (week %(week)s or later): bring to the "
                    "psychiatric case review.",
                    weeks=facts.weeks,
                    week=REVIEW_WEEK,
                ),
                since=facts.started_on + timedelta(weeks=REVIEW_WEEK),
            )
        )
    if facts.checkins_overdue:
        found.append(
            Flag(
                "checkin_overdue",
                Msg("A check-in is overdue: %(which)s.", which=", ".join(facts.checkins_overdue)),
            )
        )
    reached = last_reached_on(facts.contacts)
    if facts.missed_visit_on is not None and (reached is None or reached < facts.missed_visit_on):
        found.append(
            Flag(
                "missed_visit",
                Msg(
                    "Missed a visit on %(date)s and not reached since.",
                    date=facts.missed_visit_on,
                ),
                since=facts.missed_visit_on,
            )
        )
    last = last_reached_on(facts.contacts) or facts.started_on
    if (today - last).days > NO_CONTACT_DAYS:
        found.append(
            Flag(
                "no_contact_30_days",
                Msg(
                    "No contact that reached the patient in more than %(days)s days (last: "
                    "%(date)s).",
                    days=NO_CONTACT_DAYS,
                    date=last,
                ),
                since=last + timedelta(days=NO_CONTACT_DAYS + 1),
            )
        )
    if facts.plan_review == "overdue":
        found.append(Flag("plan_review_overdue", Msg("The care plan's review date has passed.")))
    if facts.awaiting_agreement:
        found.append(
            Flag(
                "plan_awaiting_agreement",
                Msg("The current care plan is not yet agreed by the patient and the lead."),
            )
        )
    waiting = [d for d in facts.pending_recommendations if (today - d).days > RECOMMENDATION_DAYS]
    if waiting:
        found.append(
            Flag(
                "recommendation_not_acted_on",
                Msg(
                    "A psychiatric consultant's recommendation has waited more than %(days)s "
                    "days for the team's decision.",
                    days=RECOMMENDATION_DAYS,
                ),
                since=min(waiting) + timedelta(days=RECOMMENDATION_DAYS + 1),
            )
        )
    if facts.on_moud and facts.pdmp_overdue:
        found.append(
            Flag(
                "moud_pdmp_check_due",
                Msg(
                    "No PDMP check within the clinic's interval: one was due on %(date)s.",
                    date=facts.pdmp_due_on,
                ),
                since=facts.pdmp_due_on,
            )
        )
    if facts.on_moud and not facts.naloxone_on_file:
        found.append(
            Flag(
                "moud_no_naloxone",
                Msg(
                    "On a medication for opioid use disorder with no naloxone prescribed, "
                    "dispensed or on the list."
                ),
            )
        )
    reached = last_reached_on(facts.contacts)
    if facts.missed_reported_on is not None and (
        reached is None or facts.missed_reported_on > reached
    ):
        found.append(
            Flag(
                "moud_missed_reported",
                Msg(
                    "Missed doses or visits reported on %(date)s, with no contact that "
                    "reached the patient since.",
                    date=facts.missed_reported_on,
                ),
                since=facts.missed_reported_on,
            )
        )
    return found


FLAG_CODES = (
    "open_safety_alert",
    "needs_initial_assessment",
    "no_follow_up_4_weeks",
    "not_improving",
    "not_improving_escalate",
    "checkin_overdue",
    "no_contact_30_days",
    "missed_visit",
    "plan_review_overdue",
    "plan_awaiting_agreement",
    "recommendation_not_acted_on",
    "moud_pdmp_check_due",
    "moud_no_naloxone",
    "moud_missed_reported",
)

# Which flags put a patient in the consultant's review queue, and how urgently (lower first).
REVIEW_FLAGS = {"open_safety_alert": 0, "not_improving_escalate": 1, "not_improving": 2}


# --- minutes and codes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeRule:
    code: str
    description: str


@dataclass(frozen=True)
class BillingRules:
    """Minutes of behavioral health care manager time in one calendar month. A code's time
    counts once more than half of it has passed (the CPT time rule), so 99492 (first 70
    minutes) from 36, 99493 (first 60) from 31, G2214 (first 30) from 16, and each 99494 (30
    more minutes) once 16 of them have passed. Sources in docs/clinical-sources.md."""

    initial_minutes: int = 70
    subsequent_minutes: int = 60
    g2214_minutes: int = 30
    add_on_minutes: int = 30
    add_on_cap: int | None = None  # a payer's limit on 99494 units per month, if any

    @staticmethod
    def passed(minutes: int) -> int:
        """The least time that counts for a unit of `minutes`: more than half of it."""
        return minutes // 2 + 1


DEFAULT_BILLING = BillingRules()


@dataclass(frozen=True)
class MonthCodes:
    codes: tuple[tuple[str, int], ...]  # (code, units)
    rule: Msg


def codes_for_month(
    minutes: int, *, initial: bool, rules: BillingRules = DEFAULT_BILLING
) -> MonthCodes:
    """The codes a month's care-manager minutes support for one patient."""
    base_minutes = rules.initial_minutes if initial else rules.subsequent_minutes
    base_code = "99492" if initial else "99493"
    base_from = rules.passed(base_minutes)
    g_from = rules.passed(rules.g2214_minutes)
    if minutes >= base_from:
        codes: list[tuple[str, int]] = [(base_code, 1)]
        add_from = base_minutes + rules.passed(rules.add_on_minutes)
        units = 0 if minutes < add_from else 1 + (minutes - add_from) // rules.add_on_minutes
        if rules.add_on_cap is not None:
            units = min(units, rules.add_on_cap)
        if units:
            codes.append(("99494", units))
        if initial:
            rule = Msg(
                "%(minutes)s minutes in a first month: 99492 from %(base_from)s minutes; 99494 "
                "for each further 30 minutes, from %(add_from)s.",
                minutes=minutes,
                base_from=base_from,
                add_from=add_from,
            )
        else:
            rule = Msg(
                "%(minutes)s minutes in a later month: 99493 from %(base_from)s minutes; 99494 "
                "for each further 30 minutes, from %(add_from)s.",
                minutes=minutes,
                base_from=base_from,
                add_from=add_from,
            )
        return MonthCodes(tuple(codes), rule)
    if minutes >= g_from:
        return MonthCodes(
            (("G2214", 1),),
            Msg(
                "%(minutes)s minutes: fewer than the %(base_from)s that %(code)s needs; "
                "G2214 (first 30 minutes) from %(g_from)s.",
                minutes=minutes,
                base_from=base_from,
                code=base_code,
                g_from=g_from,
            ),
        )
    return MonthCodes(
        (),
        Msg(
            "%(minutes)s minutes: fewer than the %(g_from)s any code needs.",
            minutes=minutes,
            g_from=g_from,
        ),
    )


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)

"""Figures a clinic can check: time to acknowledge, escalations, open past deadline (no names)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.accounts.models import User
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.clock import now
from concord.dates import local_datetime
from concord.errors import PermissionDenied
from concord.i18n import Msg
from concord.safety.alerts import outcomes_by_alert
from concord.safety.models import (
    AlertStatus,
    SafetyAlert,
)
from concord.safety.rulesets import rules_for


@dataclass
class TierFigures:
    tier: str
    raised: int = 0
    acknowledged: int = 0
    acknowledged_in_time: int = 0
    escalated: int = 0
    open_past_deadline: int = 0
    minutes: list[float] = field(default_factory=list)

    @property
    def median_minutes(self) -> float | None:
        return _percentile(self.minutes, 50)

    @property
    def p90_minutes(self) -> float | None:
        return _percentile(self.minutes, 90)


def _percentile(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    # Nearest-rank percentile: the smallest value with at least pct% of values at or below it.
    rank = max(1, -(-pct * len(ordered) // 100))
    return round(ordered[rank - 1], 1)


@dataclass
class Figures:
    since: datetime
    until: datetime
    tiers: list[TierFigures]
    total: TierFigures
    rows: list[dict[str, Any]]


def _local_iso(value: datetime | None, zone_of: datetime) -> str:
    """An instant for a spreadsheet: ISO 8601 in the organization's zone (`since` is local),
    so the date a person reads in the cell is the clinic's date."""
    if value is None:
        return ""
    return local_datetime(value, zone_of.tzinfo).isoformat(timespec="seconds")  # type: ignore[arg-type]


def figures(
    session: Session, *, organization_id: uuid.UUID, since: datetime, until: datetime
) -> Figures:
    """Time from trigger to acknowledgement, alerts escalated, alerts open past deadline,
    for alerts raised in [since, until). No patient is named."""
    rules = rules_for(session, organization_id)
    at = now()
    alerts = session.scalars(
        select(SafetyAlert)
        .where(
            SafetyAlert.organization_id == organization_id,
            SafetyAlert.created_at >= since,
            SafetyAlert.created_at < until,
        )
        .order_by(SafetyAlert.created_at)
    ).all()
    outcomes = outcomes_by_alert(session, alerts)
    by_tier = {t.code: TierFigures(t.code) for t in rules.tiers}
    total = TierFigures("all")
    rows = []
    for alert in alerts:
        figures_for = by_tier.setdefault(alert.tier, TierFigures(alert.tier))
        allowed = (
            rules.tier(alert.tier).acknowledge_within
            if rules.has_tier(alert.tier)
            else rules.highest.acknowledge_within
        )
        # The deadline that counts is the first one: the time allowed before any escalation.
        deadline = alert.created_at + allowed
        minutes = None
        if alert.acknowledged_at is not None:
            minutes = (alert.acknowledged_at - alert.created_at).total_seconds() / 60
        past_deadline_now = alert.status == AlertStatus.open and alert.due_at <= at
        for bucket in (figures_for, total):
            bucket.raised += 1
            if minutes is not None:
                bucket.acknowledged += 1
                bucket.minutes.append(minutes)
                if alert.acknowledged_at is not None and alert.acknowledged_at <= deadline:
                    bucket.acknowledged_in_time += 1
            if alert.step > 0:
                bucket.escalated += 1
            if past_deadline_now:
                bucket.open_past_deadline += 1
        rows.append(
            {
                "alert": str(alert.id),
                "tier": alert.tier,
                "rule": alert.rule_id,
                "source": alert.source_kind,
                "raised_at": _local_iso(alert.created_at, since),
                "acknowledged_at": _local_iso(alert.acknowledged_at, since),
                "minutes_to_acknowledge": round(minutes, 1) if minutes is not None else "",
                "acknowledged_in_time": (
                    "yes"
                    if alert.acknowledged_at and alert.acknowledged_at <= deadline
                    else ("no" if alert.acknowledged_at or at > deadline else "")
                ),
                "escalations": alert.step,
                "status": alert.status,
                "open_past_deadline": "yes" if past_deadline_now else "no",
                "outcome": alert.outcome or "",
                # Everything that was done, not only the main outcome ("assessed; safety_plan").
                "outcomes": "; ".join(outcomes.get(alert.id) or []),
                "closed_at": _local_iso(alert.closed_at, since),
            }
        )
    ordered = [by_tier[t.code] for t in rules.tiers] + [
        f for code, f in by_tier.items() if not rules.has_tier(code)
    ]
    return Figures(since=since, until=until, tiers=ordered, total=total, rows=rows)


def get_figures(session: Session, *, by: User, start: date, end: date) -> Figures:
    """The figures for the days start..end (the organization's dates), for a clinician or an
    administrator of `by`'s organization; audited as a report (the CSV export reads here too)."""
    if not by.active or not (by.is_clinician or by.can_administer):
        record(session, by=by, action="report", object_type="SafetyFigures", outcome=Outcome.denied)
        raise PermissionDenied(Msg("Safety figures are for clinicians and administrators."))
    tz = ZoneInfo(by.organization.timezone)
    since = datetime.combine(start, datetime.min.time(), tz)
    until = datetime.combine(end + timedelta(days=1), datetime.min.time(), tz)
    record(
        session,
        by=by,
        action="report",
        object_type="SafetyFigures",
        detail={"from": start.isoformat(), "to": end.isoformat()},
    )
    return figures(session, organization_id=by.organization_id, since=since, until=until)

"""Social-needs figures per clinic (issue 23), for the program view and its CSV: the share of
patients screened in the last 12 months, the share positive by domain (on each patient's latest
screen), referrals sent, accepted and completed, the median days from sending to completion,
and needs resolved at a rescreen. Counts only: no patient is named."""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.accounts.models import User
from concord.audit.service import record
from concord.categories import DataCategory
from concord.clock import now
from concord.errors import PermissionDenied
from concord.i18n import Msg
from concord.measures.library import library
from concord.measures.models import MeasureResponse
from concord.measures.scoring import score_response
from concord.patients.models import Patient
from concord.social.models import ConcernStatus, Referral, ReferralEvent, SocialConcern

YEAR = timedelta(days=365)
ACCEPTED = {"accepted", "in-progress", "on-hold", "completed", "failed"}


@dataclass
class SocialFigures:
    patients: int = 0
    screened: int = 0
    positive: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    accepted: int = 0
    completed: int = 0
    median_days_to_close: float | None = None
    resolved_at_rescreen: int = 0

    @staticmethod
    def percent(part: int, whole: int) -> float | None:
        return round(100 * part / whole, 1) if whole else None

    def rows(self) -> list[tuple[str, object]]:
        """The figures as (name, value) rows, for the CSV."""
        rows: list[tuple[str, object]] = [
            ("patients", self.patients),
            ("screened_12_months", self.screened),
            ("screened_12_months_percent", self.percent(self.screened, self.patients)),
        ]
        for domain, count in sorted(self.positive.items()):
            rows.append((f"positive_{domain}_percent", self.percent(count, self.screened)))
        rows += [
            ("referrals_sent_12_months", self.sent),
            ("referrals_accepted", self.accepted),
            ("referrals_completed", self.completed),
            ("median_days_to_close", self.median_days_to_close),
            ("needs_resolved_at_rescreen", self.resolved_at_rescreen),
        ]
        return rows


def social_figures(
    session: Session, *, by: User, clinic_id: uuid.UUID | None = None
) -> SocialFigures:
    if not (by.is_clinician or by.can_administer) or not by.active:
        raise PermissionDenied(Msg("The registry is for clinicians and administrators."))
    since = now() - YEAR
    scope = [Patient.organization_id == by.organization_id]
    if clinic_id is not None:
        scope.append(Patient.clinic_id == clinic_id)
    patient_ids = set(session.scalars(select(Patient.id).where(*scope)))
    figures = SocialFigures(patients=len(patient_ids))
    instruments = {i.code: i for i in library().all() if i.category == DataCategory.social_needs}
    latest: dict[uuid.UUID, MeasureResponse] = {}
    if instruments:
        responses = session.scalars(
            select(MeasureResponse)
            .where(
                MeasureResponse.instrument.in_(list(instruments)),
                MeasureResponse.completed_at >= since,
                MeasureResponse.patient_id.in_(patient_ids) if patient_ids else False,
            )
            .order_by(MeasureResponse.completed_at)
        )
        for response in responses:
            latest[response.patient_id] = response
    figures.screened = len(latest)
    for response in latest.values():
        instrument = instruments[response.instrument]
        flags = {f.id for f in score_response(instrument, response.answers, None).flags}
        for flag in instrument.flags:
            if flag.domain:
                figures.positive.setdefault(flag.domain, 0)
                if flag.id in flags:
                    figures.positive[flag.domain] += 1
    referrals = list(
        session.scalars(
            select(Referral).where(
                Referral.organization_id == by.organization_id,
                Referral.requested_at >= since,
                Referral.patient_id.in_(patient_ids) if patient_ids else False,
            )
        )
    )
    figures.sent = len(referrals)
    reached = set(
        session.scalars(
            select(ReferralEvent.referral_id).where(
                ReferralEvent.referral_id.in_([r.id for r in referrals]) if referrals else False,
                ReferralEvent.to_status == "accepted",
            )
        )
    )
    figures.accepted = sum(1 for r in referrals if r.id in reached or r.status in ACCEPTED)
    done = [r for r in referrals if r.status == "completed" and r.closed_at is not None]
    figures.completed = len(done)
    if done:
        figures.median_days_to_close = float(
            statistics.median((r.closed_at - r.requested_at).total_seconds() / 86400 for r in done)
        )
        figures.median_days_to_close = round(figures.median_days_to_close, 1)
    # A need resolved by a later screen is closed with no one's decision (the screen's).
    figures.resolved_at_rescreen = len(
        list(
            session.scalars(
                select(SocialConcern.id).where(
                    SocialConcern.organization_id == by.organization_id,
                    SocialConcern.status == ConcernStatus.resolved,
                    SocialConcern.decided_by_id.is_(None),
                    SocialConcern.resolved_at >= since,
                    SocialConcern.patient_id.in_(patient_ids) if patient_ids else False,
                )
            )
        )
    )
    record(session, by=by, action="report", object_type="SocialFigures")
    return figures

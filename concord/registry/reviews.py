"""Psychiatric case review: the consultant's queue, the review, and its recommendations.

The queue is built from the registry's flags (not improving at week 8, or at week 10 and
later; an open safety alert) and from the care manager's own requests, most urgent first. A
review records the consultant, the date, the question, the recommendations and the minutes
(as a case-review contact). Each recommendation is a proposed change to the care plan that the
team accepts (it becomes an intervention in a new plan revision) or declines with a reason; the
patient can say what they think of it. None sits unread: it is a task for the care manager,
and the caseload flags it after two weeks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import PatientAccess, deny, parse_id
from concord.accounts.models import Organization, Role, User
from concord.audit.service import record
from concord.clock import now
from concord.dates import local_date, org_today
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import N_, Msg
from concord.patients.models import CareTeam, CareTeamMember, Patient
from concord.patients.service import join_team
from concord.registry import tasks
from concord.registry.caseload import build_rows, open_episodes
from concord.registry.labels import LABELS
from concord.registry.models import (
    CaseReview,
    ContactKind,
    ContactMode,
    Episode,
    Recommendation,
    RecommendationKind,
    RecommendationStatus,
    ReviewReason,
    ReviewStatus,
)
from concord.registry.rules import RECOMMENDATION_DAYS, REVIEW_FLAGS
from concord.registry.service import ContactIn, log_contact
from concord.safety.notices import notify_care_team

# After a review, a patient flagged "not improving" comes back to the queue four weeks later if
# still not improving (the weekly review looks at everyone new; the flagged come back monthly).
REREVIEW_DAYS = 28
INTERVENTION_KIND = {
    RecommendationKind.increase_dose: "medication",
    RecommendationKind.decrease_dose: "medication",
    RecommendationKind.switch_medication: "medication",
    RecommendationKind.add_medication: "medication",
    RecommendationKind.add_psychotherapy: "psychotherapy",
    RecommendationKind.change_psychotherapy: "psychotherapy",
    RecommendationKind.refer: "referral",
    RecommendationKind.other: "psychosocial_support",
}
URGENCY = {**REVIEW_FLAGS, ReviewReason.nominated.value: 3}


def _open_episode(session: Session, patient_id: uuid.UUID) -> Episode:
    episode = session.scalar(
        select(Episode).where(Episode.patient_id == patient_id, Episode.ended_on.is_(None))
    )
    if episode is None:
        raise Conflict(Msg("This patient has no open episode of care."))
    return episode


def _join_team(session: Session, patient_id: uuid.UUID, user: User) -> None:
    """A consultant asked to review a patient joins their care team (audited), so the access
    rules let them read the record."""
    join_team(
        session,
        patient_id=patient_id,
        user=user,
        organization_id=team_org(session, patient_id),
        why="asked for a psychiatric case review",
    )


def team_org(session: Session, patient_id: uuid.UUID) -> uuid.UUID:
    patient = session.get(Patient, patient_id)
    assert patient is not None
    return patient.organization_id


def _consultant(session: Session, access: PatientAccess, episode: Episode, given: Any) -> User:
    if given:
        uid = parse_id(given)
        user = session.get(User, uid) if uid is not None else None
        if (
            user is None
            or user.organization_id != access.patient.organization_id
            or not user.active
            or user.role != Role.psychiatric_consultant
        ):
            raise InvalidInput.field(
                "consultant_id",
                Msg("must be an active psychiatric consultant of this organization"),
            )
        return user
    if episode.consultant_id:
        user = session.get(User, episode.consultant_id)
        if user is not None and user.active:
            return user
    member = session.scalar(
        select(CareTeamMember)
        .join(CareTeam, CareTeam.id == CareTeamMember.care_team_id)
        .where(
            CareTeam.patient_id == access.patient.id,
            CareTeamMember.ended_at.is_(None),
            CareTeamMember.role == Role.psychiatric_consultant,
        )
    )
    if member is None:
        raise InvalidInput.field(
            "consultant_id",
            Msg("this care team has no psychiatric consultant: name the one to ask"),
        )
    return member.user


def request_review(
    session: Session,
    *,
    access: PatientAccess,
    question: str,
    reason: str = ReviewReason.nominated,
    consultant_id: Any = None,
) -> CaseReview:
    """The care manager (or anyone on the team) brings a patient to the consultant with a
    question. A patient already waiting is not queued twice."""
    if not (access.on_team and access.by.is_clinician):
        raise deny(
            session, access, action="create", object_type="CaseReview", message="Only the team."
        )
    episode = _open_episode(session, access.patient.id)
    words = (question or "").strip()
    if not words:
        raise InvalidInput.field(
            "question", Msg("say what you would like the consultant to answer")
        )
    if len(words) > 2000:
        raise InvalidInput.field("question", Msg("must be at most %(max)s characters", max=2000))
    try:
        why = ReviewReason(reason)
    except ValueError:
        raise InvalidInput.field(
            "reason",
            Msg("must be one of: %(allowed)s", allowed=", ".join(r.value for r in ReviewReason)),
        ) from None
    consultant = _consultant(session, access, episode, consultant_id)
    waiting = session.scalar(
        select(CaseReview).where(
            CaseReview.episode_id == episode.id, CaseReview.status == ReviewStatus.queued
        )
    )
    if waiting is not None:
        raise Conflict(Msg("This patient is already waiting for a case review."))
    review = CaseReview(
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        episode_id=episode.id,
        reason=why,
        question=words,
        requested_by_id=access.by.id,
        requested_at=now(),
        consultant_id=consultant.id,
        status=ReviewStatus.queued,
    )
    session.add(review)
    session.flush()
    _join_team(session, access.patient.id, consultant)
    tasks.open_task(
        session,
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        owner_id=consultant.id,
        title=N_("Psychiatric case review"),
        detail=words,
        source=f"review:{review.id}",
        due_on=_today(session, access.patient.organization_id) + timedelta(days=7),
        priority="urgent",
        by=access.by,
    )
    record(
        session,
        by=access.by,
        action="create",
        object_type="CaseReview",
        object_id=review.id,
        patient_id=access.patient.id,
        detail={"reason": why.value},
    )
    return review


def _today(session: Session, organization_id: uuid.UUID) -> date:
    org = session.get(Organization, organization_id)
    assert org is not None
    return org_today(org)


# --- the queue ---------------------------------------------------------------------------------


@dataclass
class QueueItem:
    patient: Patient
    episode: Episode
    reason: str  # open_safety_alert, not_improving_escalate, not_improving, nominated
    urgency: int
    waiting_since: date
    review: CaseReview | None  # a request, when someone asked
    row: Any  # the caseload row (weeks, measures, flags)


def queue(session: Session, *, by: User) -> list[QueueItem]:
    """The consultant's review queue: the patients asked about, and the flagged patients of the
    care teams they serve, most urgent first, then longest waiting."""
    if not by.is_clinician:
        return []
    org = session.get(Organization, by.organization_id)
    assert org is not None
    on = org_today(org)
    pairs = open_episodes(session, by, scope="teams")
    # Decided as the caseload is (consent, Part 2): a withheld episode is not in the queue.
    rows = {r.episode.id: r for r in build_rows(session, pairs, today=on, tz=org.timezone, by=by)}
    asked: dict[uuid.UUID, list[CaseReview]] = {}
    for r in session.scalars(
        select(CaseReview).where(
            CaseReview.episode_id.in_(list(rows)), CaseReview.status == ReviewStatus.queued
        )
    ):
        asked.setdefault(rows[r.episode_id].patient.id, []).append(r)
    # A request written by a Part 2 program's staff is the program's record: decided too.
    patients = {row.patient.id: row.patient for row in rows.values()}
    requests = {
        r.episode_id: r
        for kept in disclosure.filter_many(
            session,
            by,
            [(patients[pid], found) for pid, found in asked.items()],
            object_type="CaseReview",
        ).values()
        for r in kept
    }
    recent = recently_reviewed(session, list(rows), on)
    serves = {
        patient_id
        for (patient_id,) in session.execute(
            select(CareTeam.patient_id)
            .join(CareTeamMember, CareTeamMember.care_team_id == CareTeam.id)
            .where(
                CareTeamMember.user_id == by.id,
                CareTeamMember.ended_at.is_(None),
                CareTeamMember.role == Role.psychiatric_consultant,
            )
        )
    }
    items = []
    for episode_id, row in rows.items():
        request = requests.get(episode_id)
        flagged = [f for f in row.flags if f.code in REVIEW_FLAGS]
        if request is not None and request.consultant_id not in (None, by.id):
            request = None  # asked of another consultant
        if request is None and (not flagged or row.patient.id not in serves):
            continue
        if request is None and episode_id in recent:
            continue
        reasons = [(REVIEW_FLAGS[f.code], f.code) for f in flagged]
        if request is not None:
            reasons.append((URGENCY.get(request.reason, 3), request.reason))
        urgency, reason = min(reasons)
        # When the request was made (the organization's date), else when the flag began: never
        # the episode's start, which is weeks before anyone asked.
        since = (
            local_date(request.requested_at, org)
            if request is not None
            else min((f.since for f in flagged if f.since), default=on)
        )
        items.append(QueueItem(row.patient, row.episode, reason, urgency, since, request, row))
    items.sort(key=lambda i: (i.urgency, i.waiting_since))
    for item in items:
        record(
            session,
            by=by,
            action="list",
            object_type="CaseReview",
            object_id=item.review.id if item.review else item.episode.id,
            patient_id=item.patient.id,
        )
    return items


def recently_reviewed(
    session: Session, episode_ids: list[uuid.UUID], on: date
) -> dict[uuid.UUID, date]:
    if not episode_ids:
        return {}
    found: dict[uuid.UUID, date] = {}
    for episode_id, reviewed_on in session.execute(
        select(CaseReview.episode_id, CaseReview.reviewed_on).where(
            CaseReview.episode_id.in_(episode_ids),
            CaseReview.status == ReviewStatus.reviewed,
            CaseReview.reviewed_on > on - timedelta(days=REREVIEW_DAYS),
        )
    ):
        found[episode_id] = max(reviewed_on, found.get(episode_id, reviewed_on))
    return found


# --- recording a review --------------------------------------------------------------------------


@dataclass
class RecommendationIn:
    kind: str
    text: str


@dataclass
class ReviewIn:
    minutes: Any
    summary: str
    recommendations: list[RecommendationIn]
    reviewed_on: date | None = None
    question: str | None = None
    reason: str | None = None  # for a flagged patient nobody asked about


def record_review(
    session: Session, *, access: PatientAccess, data: ReviewIn, review_id: Any = None
) -> CaseReview:
    """The consultant's review: its minutes become a case-review contact, each recommendation
    a proposed change to the plan and a task for the care manager."""
    if not (access.on_team and access.by.is_clinician):
        raise deny(
            session, access, action="update", object_type="CaseReview", message="Only the team."
        )
    if access.by.role != Role.psychiatric_consultant:
        raise InvalidInput.field(
            "consultant", Msg("a case review is recorded by a psychiatric consultant")
        )
    episode = _open_episode(session, access.patient.id)
    errors: dict[str, str] = {}
    minutes = data.minutes
    if isinstance(minutes, str):
        minutes = int(minutes) if minutes.strip().isdigit() else None
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 240:
        errors["minutes"] = Msg("must be a whole number of minutes from 1 to 240")
    summary = (data.summary or "").strip()
    if not summary:
        errors["summary"] = Msg("write what you found and why you recommend what you do")
    elif len(summary) > 5000:
        errors["summary"] = Msg("must be at most %(max)s characters", max=5000)
    recommendations = []
    for index, rec in enumerate(data.recommendations, start=1):
        text = (rec.text or "").strip()
        if not text:
            continue
        try:
            kind = RecommendationKind(rec.kind)
        except ValueError:
            errors[f"recommendations[{index}].kind"] = Msg(
                "must be one of: %(allowed)s",
                allowed=", ".join(k.value for k in RecommendationKind),
            )
            continue
        if len(text) > 1000:
            errors[f"recommendations[{index}].text"] = Msg(
                "must be at most %(max)s characters", max=1000
            )
            continue
        recommendations.append((kind, text))
    on = _today(session, access.patient.organization_id)
    reviewed_on = data.reviewed_on or on
    if reviewed_on > on:
        errors["reviewed_on"] = Msg("cannot be in the future")
    review = None
    if review_id:
        rid = parse_id(review_id)
        review = (
            session.scalar(
                select(CaseReview).where(CaseReview.id == rid).with_for_update(of=CaseReview)
            )
            if rid
            else None
        )
        if review is None or review.patient_id != access.patient.id:
            raise NotFound(Msg("No such review."))
        if review.status != ReviewStatus.queued:
            raise Conflict(Msg("This review is already recorded."))
    else:
        review = session.scalar(
            select(CaseReview)
            .where(CaseReview.episode_id == episode.id, CaseReview.status == ReviewStatus.queued)
            .with_for_update(of=CaseReview)
        )
    if review is None:
        try:
            reason = ReviewReason(data.reason or ReviewReason.not_improving)
        except ValueError:
            errors["reason"] = Msg(
                "must be one of: %(allowed)s", allowed=", ".join(r.value for r in ReviewReason)
            )
            reason = ReviewReason.not_improving
    if errors:
        raise InvalidInput(Msg("The review was not recorded."), errors=errors)
    if review is None:
        review = CaseReview(
            organization_id=access.patient.organization_id,
            patient_id=access.patient.id,
            episode_id=episode.id,
            reason=reason,
            question=(data.question or "").strip() or None,
            requested_by_id=None,
            requested_at=now(),
            consultant_id=access.by.id,
        )
        session.add(review)
    review.status = ReviewStatus.reviewed
    review.reviewed_on = reviewed_on
    review.reviewed_at = now()
    review.reviewed_by_id = access.by.id
    review.consultant_id = access.by.id
    review.minutes = minutes
    review.summary = summary
    session.flush()
    log_contact(
        session,
        access=access,
        data=ContactIn(
            kind=ContactKind.case_review,
            mode=ContactMode.in_person,  # the team's review meeting
            minutes=minutes,
            occurred_on=reviewed_on,
            note=None,
        ),
        review_id=review.id,
    )
    for kind, text in recommendations:
        session.add(
            Recommendation(
                review_id=review.id,
                patient_id=access.patient.id,
                kind=kind,
                text=text,
                status=RecommendationStatus.proposed,
                proposed_at=now(),
            )
        )
    if recommendations:
        session.flush()
        # One task for the review's recommendations, not one identical task each: the care
        # manager decides them together with the patient; it closes when the last is decided.
        tasks.open_task(
            session,
            organization_id=access.patient.organization_id,
            patient_id=access.patient.id,
            owner_id=episode.care_manager_id,
            title=N_("Decide on the psychiatric consultant's recommendation with the patient")
            if len(recommendations) == 1
            else N_("Decide on the psychiatric consultant's recommendations with the patient"),
            detail="\n".join(f"- {text}" for _, text in recommendations),
            source=f"recommendation:review-{review.id}",
            due_on=on + timedelta(days=RECOMMENDATION_DAYS),
            priority="urgent",
            by=access.by,
        )
    tasks.close_tasks(
        session,
        patient_id=access.patient.id,
        source=f"review:{review.id}",
        note=N_("Reviewed."),
        by=access.by,
    )
    for code in ("not_improving", "not_improving_escalate"):
        tasks.close_tasks(
            session,
            patient_id=access.patient.id,
            source=tasks.flag_source(code, episode.id),
            note=N_("Reviewed at the psychiatric case review."),
            by=access.by,
        )
    record(
        session,
        by=access.by,
        action="update",
        object_type="CaseReview",
        object_id=review.id,
        patient_id=access.patient.id,
        detail={"recommendations": len(recommendations), "minutes": minutes},
    )
    return review


@disclosure.discloses("CaseReview")
def reviews_for(session: Session, access: PatientAccess) -> list[CaseReview]:
    if not access.on_team:
        raise NotFound(Msg("No such patient."))
    return list(
        session.scalars(
            select(CaseReview)
            .where(CaseReview.patient_id == access.patient.id)
            .order_by(CaseReview.requested_at.desc())
        )
    )


@disclosure.discloses("Recommendation")
def recommendations_for(
    session: Session, access: PatientAccess, *, status: str | None = None
) -> list[Recommendation]:
    if not (access.on_team or access.is_self):
        raise NotFound(Msg("No such patient."))
    query = select(Recommendation).where(Recommendation.patient_id == access.patient.id)
    if status:
        query = query.where(Recommendation.status == status)
    return list(session.scalars(query.order_by(Recommendation.proposed_at.desc())))


# --- deciding -----------------------------------------------------------------------------------


def _recommendation(session: Session, access: PatientAccess, rec_id: Any) -> Recommendation:
    rid = parse_id(rec_id)
    rec = (
        session.scalar(
            select(Recommendation)
            .where(Recommendation.id == rid)
            .with_for_update(of=Recommendation)
        )
        if rid is not None
        else None
    )
    if rec is None or rec.patient_id != access.patient.id:
        raise NotFound(Msg("No such recommendation."))
    return rec


def check_decision(
    session: Session,
    *,
    access: PatientAccess,
    rec_id: Any,
    accept: bool,
    reason: str | None = None,
    version: int | None = None,
) -> tuple[Recommendation, str]:
    """The recommendation the team may decide on now, and the reason in one line; refused
    (changing nothing) otherwise. The decision itself is concord.actions.recommendation: an
    accepted one becomes an intervention in a new revision of the care plan first."""
    if not (access.on_team and access.by.is_clinician):
        raise deny(
            session,
            access,
            action="update",
            object_type="Recommendation",
            message="Only the care team decides on a recommendation.",
        )
    rec = _recommendation(session, access, rec_id)
    if version is not None and version != rec.version:
        raise Conflict(Msg("Someone else decided on this recommendation. Reload the page."))
    if rec.status != RecommendationStatus.proposed:
        raise Conflict(
            Msg("This recommendation was already %(status)s.", status=Msg(LABELS[rec.status]))
        )
    words = " ".join((reason or "").split())
    if not accept and not words:
        raise InvalidInput.field("reason", Msg("say why the team declines it"))
    if len(words) > 1000:
        raise InvalidInput.field("reason", Msg("must be at most %(max)s characters", max=1000))
    return rec, words


def accepted_by(session: Session, rec: Recommendation) -> tuple[str, date | None]:
    """Who made the recommendation `rec` and when it was reviewed: the care plan revision's
    reason names them when it is accepted."""
    review = session.get(CaseReview, rec.review_id)
    assert review is not None
    # By its id: the relationship can still hold what it was before the review was recorded.
    consultant = session.get(User, review.reviewed_by_id) if review.reviewed_by_id else None
    return consultant.name if consultant is not None else "", review.reviewed_on


def record_decision(
    session: Session,
    *,
    access: PatientAccess,
    rec: Recommendation,
    words: str,
    intervention_id: uuid.UUID | None = None,
) -> Recommendation:
    """Record a decision `check_decision` allowed: accepted when it names the plan's new
    intervention, else declined with `words`; the review's task closes when every
    recommendation is decided."""
    if intervention_id is not None:
        rec.intervention_id = intervention_id
        rec.status = RecommendationStatus.accepted
    else:
        rec.status = RecommendationStatus.declined
        rec.decline_reason = words
    rec.decided_at = now()
    rec.decided_by = access.by
    rec.version += 1
    session.flush()
    undecided = session.scalar(
        select(func.count()).where(
            Recommendation.review_id == rec.review_id,
            Recommendation.status == RecommendationStatus.proposed,
        )
    )
    if not undecided:
        tasks.close_tasks(
            session,
            patient_id=access.patient.id,
            source=f"recommendation:review-{rec.review_id}",
            note=N_("Every recommendation decided."),
            by=access.by,
        )
    # A task opened one per recommendation (before one per review).
    tasks.close_tasks(
        session,
        patient_id=access.patient.id,
        source=f"recommendation:{rec.id}",
        note=N_("Recommendation accepted.")
        if rec.status == RecommendationStatus.accepted
        else N_("Recommendation declined."),
        by=access.by,
    )
    record(
        session,
        by=access.by,
        action="update",
        object_type="Recommendation",
        object_id=rec.id,
        patient_id=access.patient.id,
        detail={"status": rec.status},
    )
    return rec


def patient_view(
    session: Session, *, access: PatientAccess, rec_id: Any, agree: bool, reason: str | None
) -> Recommendation:
    """The patient says whether they agree with a proposed change (the team sees it)."""
    if not access.is_self:
        raise deny(
            session,
            access,
            action="update",
            object_type="Recommendation",
            message="Only the patient gives their own view.",
        )
    rec = _recommendation(session, access, rec_id)
    words = " ".join((reason or "").split())
    if len(words) > 1000:
        raise InvalidInput.field("reason", Msg("must be at most %(max)s characters", max=1000))
    rec.patient_view = "agree" if agree else "disagree"
    rec.patient_view_reason = words or None
    rec.patient_view_at = now()
    record(
        session,
        by=access.by,
        action="update",
        object_type="Recommendation",
        object_id=rec.id,
        patient_id=access.patient.id,
        detail={"patient_view": rec.patient_view},
    )

    notify_care_team(session, patient_id=access.patient.id, kind="patient_view")
    return rec

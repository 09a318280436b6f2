"""Risk alerts: raised by the organization's risk rules, owned by a named person, escalated
along a chain when nobody acknowledges them in time, and closed with an outcome and a note.

A critical answer is never silently stored: the alert is written in the same transaction as
the response, is shown at the top of its owner's pages and on the care team's, and its
notifications (in-app, and email without clinical content) go through the outbox after the
transaction commits. The escalation timer is the worker's `escalate_due`, which reads the
deadline from the database, so it survives restarts, and moves an alert on with a
conditional update, so two workers never fire the same step twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session

from concord.access import PatientAccess, deny, parse_id
from concord.accounts.models import Organization, Role, User
from concord.audit.service import record
from concord.clock import now
from concord.db import core, isolated
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import Msg, gettext
from concord.measures.models import MeasureResponse, ResponseStatus
from concord.patients.models import CareTeam, CareTeamMember, Patient
from concord.patients.service import members_of_patient
from concord.safety.models import (
    NO_RISK,
    AlertEvent,
    AlertOutcome,
    AlertSource,
    AlertStatus,
    Notification,
    RiskRuleSet,
    RiskStatus,
    SafetyAlert,
)
from concord.safety.rules import (
    TIER_CHOSEN,
    RiskRule,
    RuleFileError,
    RuleSet,
    compile_rules,
    default_rules,
    evaluate_response,
    flag_items,
    parse_rules,
)
from concord.validation import blank_to_none

log = logging.getLogger("concord.safety")
CRISIS_FILE = Path(__file__).parent / "crisis-resources.yaml"
MAX_NOTE = 5000
MAX_FOLLOW_UP = timedelta(days=90)


# --- crisis resources ----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def default_crisis_resources() -> dict[str, Any]:
    return yaml.safe_load(CRISIS_FILE.read_text(encoding="utf-8"))


def crisis_resources(org: Organization, lang: str) -> list[dict[str, str]]:
    """The resources to show, in the person's language (English where none is given)."""
    data = org.crisis_resources or default_crisis_resources()
    shown = []
    for resource in data["resources"]:

        def pick(key: str, res: dict[str, Any] = resource) -> str:
            value = res.get(key) or {}
            return str(value.get(lang) or value.get("en") or "")

        shown.append(
            {
                "name": pick("name"),
                "contact": pick("contact"),
                "detail": pick("detail"),
                "href": str(resource.get("href") or ""),
            }
        )
    return shown


# --- the rules in force --------------------------------------------------------------------------


def rules_for(session: Session, organization_id: uuid.UUID) -> RuleSet:
    """The organization's newest rule file that still compiles, else Concord's defaults.

    A file is checked fully when it is loaded; this second check only guards against the
    instrument library changing under it (a clinic removing an instrument its rules name).
    Stored rule files never change (a new file is a new set), so each text is read once per
    process; every call still asks the database which sets are newest, so a file loaded
    through another process is in force here at once."""
    connection = core(session)
    newest = connection.execute(_NEWEST_SETS, {"organization": organization_id}).scalars().all()
    for set_id in newest:
        text = _set_texts.get(set_id)
        if text is None:
            text = connection.execute(_SET_TEXT, {"id": set_id}).scalar() or ""
            if len(_set_texts) >= 256:
                _set_texts.clear()
            _set_texts[set_id] = text
        try:
            return compile_rules(text)
        except RuleFileError as exc:
            log.error("risk rule set %s no longer compiles: %s", set_id, exc.problem)
    return default_rules()


# A stored rule set's text by its id (sets are immutable once stored).
_set_texts: dict[uuid.UUID, str] = {}
# Asked on every check-in and every clinician's page: built once.
_NEWEST_SETS = (
    select(RiskRuleSet.id)
    .where(RiskRuleSet.organization_id == bindparam("organization"))
    .order_by(RiskRuleSet.number.desc())
    .limit(5)
)
_SET_TEXT = select(RiskRuleSet.text).where(RiskRuleSet.id == bindparam("id"))


def current_rule_set(session: Session, organization_id: uuid.UUID) -> RiskRuleSet | None:
    return session.scalar(
        select(RiskRuleSet)
        .where(RiskRuleSet.organization_id == organization_id)
        .order_by(RiskRuleSet.number.desc())
        .limit(1)
    )


def load_rules(
    session: Session, *, by: User | None, organization: Organization, text: str
) -> RiskRuleSet:
    """Check a rule file fully and, if it passes, put it in force. A refused file writes
    nothing: the rules already in force stay."""
    from concord.measures.library import library

    if not text.strip():
        raise InvalidInput.field("rules", Msg("is empty: paste or upload a risk-rules file"))
    try:
        parsed = parse_rules(text, name="rules", library=library())
    except RuleFileError as exc:
        raise InvalidInput(
            Msg("The rules were not loaded; the rules in force are unchanged."),
            errors={"rules": f"{exc.where}: {exc.problem}"},
        ) from None
    last = session.scalar(
        select(func.max(RiskRuleSet.number)).where(RiskRuleSet.organization_id == organization.id)
    )
    row = RiskRuleSet(
        organization_id=organization.id,
        number=(last or 0) + 1,
        code=parsed.code,
        version=parsed.version,
        text=text,
        loaded_by_id=by.id if by else None,
        loaded_at=now(),
    )
    session.add(row)
    session.flush()
    record(
        session,
        by=by,
        action="update",
        object_type="RiskRules",
        object_id=row.id,
        organization_id=organization.id,
        detail={"code": parsed.code, "version": parsed.version, "number": row.number},
    )
    return row


def rule_sets(session: Session, organization_id: uuid.UUID) -> list[RiskRuleSet]:
    return list(
        session.scalars(
            select(RiskRuleSet)
            .where(RiskRuleSet.organization_id == organization_id)
            .order_by(RiskRuleSet.number.desc())
        )
    )


# --- who owns an alert ---------------------------------------------------------------------------


def _active_members(session: Session, patient_id: uuid.UUID) -> list[CareTeamMember]:
    """The patient's current care team, lead first, without anyone whose account is closed."""
    return [m for m in members_of_patient(session, patient_id=patient_id) if m.user.active]


def resolve_step(
    session: Session, step: str, patient_id: uuid.UUID, org: Organization
) -> User | None:
    """The one person a chain step names for this patient, or None when nobody fills it."""
    members = _active_members(session, patient_id)
    if step == "lead":
        return next((m.user for m in members if m.is_lead), None)
    if step == "on_call":
        if org.on_call_user_id is None:
            return None
        user = session.get(User, org.on_call_user_id)
        if user is None or not user.active or not user.is_clinician:
            return None
        return user
    return next((m.user for m in members if m.role == step), None)


def _next_owner(
    session: Session,
    alert: SafetyAlert,
    org: Organization,
    start: int,
) -> tuple[int, User] | None:
    """The first chain step from `start` that names someone other than the current owner."""
    for position in range(start, len(alert.chain)):
        user = resolve_step(session, alert.chain[position], alert.patient_id, org)
        if user is not None and user.id != alert.owner_id:
            return position, user
    return None


def _bring_onto_team(session: Session, alert: SafetyAlert, user: User) -> None:
    """An owner from outside the care team (the on-call clinician) joins it, so the usual
    access rules let them open the record and act. The change is audited and shows on the
    team page; the team lead can remove them afterwards."""
    team = session.scalar(select(CareTeam).where(CareTeam.patient_id == alert.patient_id))
    assert team is not None
    member = session.scalar(
        select(CareTeamMember).where(
            CareTeamMember.care_team_id == team.id, CareTeamMember.user_id == user.id
        )
    )
    if member is not None and member.ended_at is None:
        return
    if member is None:
        member = CareTeamMember(care_team_id=team.id, user_id=user.id, role=user.role)
        session.add(member)
    member.ended_at = None
    member.is_lead = False
    member.role = user.role
    member.added_at = now()
    member.added_by_id = None
    session.flush()
    record(
        session,
        by=None,
        action="team_add",
        object_type="CareTeam",
        object_id=team.id,
        patient_id=alert.patient_id,
        organization_id=alert.organization_id,
        detail={"user": str(user.id), "why": "on-call owner of a safety alert"},
    )


def _everyone_on_chain(session: Session, alert: SafetyAlert, org: Organization) -> list[User]:
    people: dict[uuid.UUID, User] = {}
    for step in alert.chain:
        user = resolve_step(session, step, alert.patient_id, org)
        if user is not None:
            people.setdefault(user.id, user)
    return list(people.values())


# --- notifications -------------------------------------------------------------------------------


def _notify(
    session: Session,
    users: Iterable[User],
    *,
    kind: str,
    alert: SafetyAlert,
    email: bool = True,
) -> None:
    """In-app at once, and an email through the outbox (sent after commit) with no patient
    name and no clinical detail: only that an alert needs them, and by when."""
    from concord.outbox import queue_email
    from concord.settings import get_settings

    base = get_settings().base_url.rstrip("/")
    seen: set[uuid.UUID] = set()
    for user in users:
        if user.id in seen or not user.active:
            continue
        seen.add(user.id)
        # One unread line per person, alert and kind: a reminder repeated is not a new line.
        unread = session.scalar(
            select(Notification.id).where(
                Notification.user_id == user.id,
                Notification.alert_id == alert.id,
                Notification.kind == kind,
                Notification.read_at.is_(None),
            )
        )
        if unread is None:
            session.add(
                Notification(
                    user_id=user.id,
                    kind=kind,
                    alert_id=alert.id,
                    patient_id=alert.patient_id,
                    created_at=now(),
                )
            )
        if not email:
            continue
        deadline = _local_time(alert.due_at, user.organization.timezone, user.language)
        subject, body = _email_text(user.language, kind, deadline, f"{base}/alerts/{alert.id}")
        queue_email(
            session,
            kind=f"safety_{kind}",
            to=user.email,
            subject=subject,
            body=body,
            organization_id=user.organization_id,
        )


def _local_time(when: datetime, tz: str, lang: str) -> str:
    """The deadline in the organization's zone, in the reader's format, with the zone named
    (an email is read away from the clinic)."""
    from concord.dates import format_datetime, local_datetime

    zone_name = local_datetime(when, tz).tzname() or tz
    return f"{format_datetime(when, lang=lang, where=tz, format='medium')} ({zone_name})"


def _email_text(lang: str, kind: str, deadline: str, url: str) -> tuple[str, str]:
    if kind == "escalated":
        subject = gettext(lang, "Concord: a safety alert was passed to you")
        intro = gettext(
            lang,
            "A safety alert for a patient was not acknowledged in time and is now yours.",
        )
    elif kind == "reminder":
        subject = gettext(lang, "Concord: a safety alert is still waiting")
        intro = gettext(lang, "A safety alert has still not been acknowledged by anyone.")
    elif kind == "no_owner":
        subject = gettext(lang, "Concord: a safety alert has no owner")
        intro = gettext(
            lang,
            "A safety alert was raised for a patient on your care team and nobody in its "
            "escalation chain could be found. Please take it.",
        )
    else:
        subject = gettext(lang, "Concord: a safety alert needs you")
        intro = gettext(lang, "A patient on your care team needs attention.")
    body = "\n\n".join(
        [
            intro,
            gettext(lang, "Please acknowledge it by %(deadline)s.", deadline=deadline),
            gettext(lang, "Sign in to see it: %(url)s", url=url),
            gettext(
                lang,
                "This message has no patient details on purpose. Do not reply to it.",
            ),
        ]
    )
    return subject, body


def _shown_notifications(user: User) -> Any:
    """The unread notices a person is shown: about patients still on their care teams (one
    rule for the list and for the count in the navigation, so the two always agree)."""
    return (
        select(Notification, Patient)
        .join(Patient, Patient.id == Notification.patient_id)
        .join(CareTeam, CareTeam.patient_id == Patient.id)
        .join(CareTeamMember, CareTeamMember.care_team_id == CareTeam.id)
        .where(
            Notification.user_id == user.id,
            Notification.read_at.is_(None),
            CareTeamMember.user_id == user.id,
            CareTeamMember.ended_at.is_(None),
        )
    )


def unread_notifications(session: Session, user: User) -> int:
    """How many notices wait for this person (the number in the navigation: no names)."""
    if not user.is_clinician:
        return 0
    shown = _shown_notifications(user).with_only_columns(Notification.id).distinct()
    return session.scalar(select(func.count()).select_from(shown.subquery())) or 0


@dataclass(frozen=True)
class NotificationRow:
    id: uuid.UUID
    kind: str
    created_at: datetime
    alert_id: uuid.UUID | None
    patient_id: uuid.UUID | None
    patient_name: str


def notifications_for(session: Session, user: User, *, limit: int = 20) -> list[NotificationRow]:
    """This person's unread notifications, newest first, for patients still on their teams."""
    if not user.is_clinician:
        return []
    rows = session.execute(
        _shown_notifications(user).order_by(Notification.created_at.desc()).limit(limit)
    ).all()
    return [
        NotificationRow(n.id, n.kind, n.created_at, n.alert_id, p.id, p.display_name)
        for n, p in rows
    ]


def mark_read(
    session: Session,
    user: User,
    alert_id: uuid.UUID | None = None,
    notification_id: uuid.UUID | None = None,
) -> None:
    query = update(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)
    )
    if alert_id is not None:
        query = query.where(Notification.alert_id == alert_id)
    if notification_id is not None:
        query = query.where(Notification.id == notification_id)
    session.execute(query.values(read_at=now()))


def open_notification(session: Session, user: User, notification_id: Any) -> str | None:
    """Mark one of this person's notices read and say where on the record to read it; None
    when it is not theirs or its patient is no longer on their teams."""
    from concord.safety.notices import KINDS

    parsed = parse_id(notification_id)
    if parsed is None:
        return None
    row = session.execute(
        _shown_notifications(user).where(Notification.id == parsed).limit(1)
    ).first()
    if row is None:
        return None
    notice, patient = row
    mark_read(session, user, notification_id=notice.id)
    if notice.alert_id is not None:
        return f"/patients/{patient.id}/alerts/{notice.alert_id}"
    return f"/patients/{patient.id}/{KINDS.get(notice.kind, '')}"


# --- raising alerts ------------------------------------------------------------------------------


def _event(
    session: Session,
    alert: SafetyAlert,
    kind: str,
    *,
    by: User | None = None,
    detail: dict[str, Any] | None = None,
    step: int | None = None,
) -> AlertEvent:
    event = AlertEvent(
        alert_id=alert.id,
        kind=kind,
        step=alert.step if step is None else step,
        at=now(),
        by_id=by.id if by else None,
        owner_id=alert.owner_id,
        detail=detail or {},
    )
    session.add(event)
    return event


def _create(
    session: Session,
    *,
    org: Organization,
    patient: Patient,
    rules: RuleSet,
    rule: RiskRule,
    tier: str,
    triggers: list[dict[str, Any]],
    source_kind: AlertSource,
    by: User | None,
    response: Any = None,
    reason: str | None = None,
    follow_up_of: SafetyAlert | None = None,
) -> SafetyAlert:
    tier_def = rules.tier(tier)
    at = now()
    alert = SafetyAlert(
        organization_id=org.id,
        patient_id=patient.id,
        tier=tier,
        source_kind=source_kind,
        response_id=response.id if response is not None else None,
        instrument=response.instrument if response is not None else None,
        rule_id=rule.id,
        triggers=triggers,
        rules_version=f"{rules.code} {rules.version}",
        raised_by_id=by.id if by is not None and source_kind == AlertSource.manual else None,
        reason=reason,
        follow_up_of_id=follow_up_of.id if follow_up_of is not None else None,
        created_at=at,
        status=AlertStatus.open,
        chain=list(rules.chains[rule.chain]),
        step=0,
        chain_position=0,
        due_at=at + tier_def.acknowledge_within,
    )
    session.add(alert)
    session.flush()
    first = _next_owner(session, alert, org, 0)
    if first is not None:
        alert.chain_position, owner = first
        alert.owner = owner
        session.flush()
        _bring_onto_team(session, alert, owner)
        _notify(session, [owner], kind="raised", alert=alert)
    else:
        # Nobody in the chain is on this team: everyone on the team is told, and the alert
        # says so until someone takes it.
        team = [m.user for m in _active_members(session, patient.id)]
        _notify(session, team, kind="no_owner", alert=alert)
    _event(session, alert, "raised", by=by, detail={"rule": rule.id, "tier": tier})
    record(
        session,
        by=by,
        action="create",
        object_type="SafetyAlert",
        object_id=alert.id,
        patient_id=patient.id,
        organization_id=org.id,
        detail={"tier": tier, "rule": rule.id, "source": str(source_kind)},
    )
    _raise_risk(session, patient=patient, rules=rules, tier=tier, alert=alert, by=by)
    return alert


def raise_for_response(
    session: Session,
    *,
    access: PatientAccess,
    response: Any,
    instrument: Any,
    scored: Any,
) -> SafetyAlert | None:
    """Apply the organization's rules to a completed response; one alert for the most
    serious rule that fired, listing every rule that did."""
    patient = access.patient
    org = session.get(Organization, patient.organization_id)
    assert org is not None
    rules = rules_for(session, org.id)
    scores = {score_id: result.value for score_id, result in scored.scores.items()}
    flag_ids = {f.id for f in scored.flags}
    fired = evaluate_response(
        rules,
        instrument=instrument,
        answers=response.answers,
        scores=scores,
        flag_ids=flag_ids,
        previous_scores=_previous_scores(session, response),
    )
    triggers = [_trigger(f.rule, f.evidence, instrument) for f in fired]
    uncovered = [f for f in scored.critical if not _flag_has_rule(rules, instrument.code, f.id)]
    if not fired and not uncovered:
        return None
    if uncovered:
        # A critical answer no rule names (an instrument added after the rules were written)
        # is never silently stored: it takes the most serious tier and the first chain.
        for flag in uncovered:
            evidence = {"items": flag_items(instrument, flag.id, response.answers)}
            triggers.insert(
                0,
                {
                    "rule": "critical-answer",
                    "name": dict(next(f for f in instrument.flags if f.id == flag.id).name),
                    "items": _trigger_items(instrument, evidence),
                },
            )
        tier = rules.highest.code
        rule = RiskRule(
            id="critical-answer",
            name={"en": "A critical answer that no rule names"},
            when=fired[0].rule.when if fired else rules.rules[0].when,
            tier=tier,
            chain=next(iter(rules.chains)),
            source="Concord: a critical answer is never silently stored",
        )
    else:
        rule, tier = fired[0].rule, fired[0].tier
    return _create(
        session,
        org=org,
        patient=patient,
        rules=rules,
        rule=rule,
        tier=tier,
        triggers=triggers,
        source_kind=AlertSource.measure,
        by=access.by,
        response=response,
    )


def _flag_has_rule(rules: RuleSet, instrument: str, flag_id: str) -> bool:
    return any(r.when.instrument == instrument and r.when.flag == flag_id for r in rules.rules)


def _trigger(rule: RiskRule, evidence: dict[str, Any], instrument: Any) -> dict[str, Any]:
    trigger: dict[str, Any] = {"rule": rule.id, "name": dict(rule.name)}
    if "items" in evidence:
        trigger["items"] = _trigger_items(instrument, evidence)
    if "score" in evidence:
        trigger["score"] = evidence["score"]
        trigger["value"] = evidence["value"]
        if "previous" in evidence:
            trigger["previous"] = evidence["previous"]
    return trigger


def _trigger_items(instrument: Any, evidence: dict[str, Any]) -> list[dict[str, Any]]:
    """The question and the answer given, in English, as the team needs to read them."""
    shown = []
    for entry in evidence.get("items", []):
        item = instrument.item(entry["item"])
        value = entry.get("value")
        answer = item.answer_for(value) if item is not None and value is not None else None
        shown.append(
            {
                "item": entry["item"],
                "question": dict(item.text) if item is not None else {},
                "value": value,
                "answer": dict(answer.text) if answer is not None else None,
            }
        )
    return shown


def _previous_scores(session: Session, response: Any) -> dict[str, float | None]:
    """The scores of the patient's previous completed response to the same instrument (as
    stored on that response when it was scored)."""
    scores = (
        core(session)
        .execute(
            _PREVIOUS_SCORES,
            {
                "patient": response.patient_id,
                "instrument": response.instrument,
                "response": response.id,
                "at": response.completed_at,
            },
        )
        .scalar()
    )
    return {score_id: score.get("value") for score_id, score in (scores or {}).items()}


_PREVIOUS_SCORES = (
    select(MeasureResponse.scores)
    .where(
        MeasureResponse.patient_id == bindparam("patient"),
        MeasureResponse.instrument == bindparam("instrument"),
        MeasureResponse.status == ResponseStatus.completed,
        MeasureResponse.id != bindparam("response"),
        MeasureResponse.completed_at <= bindparam("at"),
    )
    .order_by(MeasureResponse.completed_at.desc())
    .limit(1)
)


def raise_manual_flag(
    session: Session, *, access: PatientAccess, tier: str, reason: str
) -> SafetyAlert:
    """A clinician's own concern: an alert like any other, at the tier they choose."""
    if not (access.on_team and access.by.is_clinician):
        raise deny(
            session,
            access,
            action="create",
            object_type="SafetyAlert",
            message="Only the care team raises a risk flag.",
        )
    org = session.get(Organization, access.patient.organization_id)
    assert org is not None
    rules = rules_for(session, org.id)
    rule = rules.event_rule("manual-flag")
    chosen = rule.tier if rule.tier != TIER_CHOSEN else tier
    errors = {}
    if not rules.has_tier(chosen):
        errors["tier"] = Msg(
            "must be one of: %(tiers)s", tiers=", ".join(t.code for t in rules.tiers)
        )
    words = (reason or "").strip()
    if not words:
        errors["reason"] = Msg("say what worries you, so the next person can act on it")
    elif len(words) > MAX_NOTE:
        errors["reason"] = Msg("must be at most %(max)s characters", max=MAX_NOTE)
    if errors:
        raise InvalidInput(Msg("The risk flag was not raised."), errors=errors)
    return _create(
        session,
        org=org,
        patient=access.patient,
        rules=rules,
        rule=rule,
        tier=chosen,
        triggers=[{"rule": rule.id, "name": dict(rule.name)}],
        source_kind=AlertSource.manual,
        by=access.by,
        reason=words,
    )


# --- acting on an alert --------------------------------------------------------------------------


def _alert_for_update(session: Session, access: PatientAccess, alert_id: Any) -> SafetyAlert:
    aid = parse_id(alert_id)
    alert = (
        session.scalar(
            select(SafetyAlert).where(SafetyAlert.id == aid).with_for_update(of=SafetyAlert)
        )
        if aid is not None
        else None
    )
    if alert is None or alert.patient_id != access.patient.id:
        raise NotFound(Msg("No such alert."))
    return alert


def _team_clinician(session: Session, access: PatientAccess, action: str, alert_id: Any) -> None:
    if not (access.on_team and access.by.is_clinician):
        raise deny(
            session,
            access,
            action=action,
            object_type="SafetyAlert",
            object_id=str(alert_id)[:64],
            message="Only the care team acts on alerts.",
        )


def acknowledge(session: Session, *, access: PatientAccess, alert_id: Any) -> SafetyAlert:
    """A team member takes the alert: it becomes theirs, and the escalation timer stops."""
    _team_clinician(session, access, "acknowledge", alert_id)
    alert = _alert_for_update(session, access, alert_id)
    if alert.status != AlertStatus.open:
        taken_by = session.get(User, alert.acknowledged_by_id) if alert.acknowledged_by_id else None
        raise Conflict(
            Msg(
                "This alert was already acknowledged by %(name)s.",
                name=taken_by.name if taken_by else "",
            )
        )
    at = now()
    alert.status = AlertStatus.acknowledged
    alert.acknowledged_by = access.by
    alert.acknowledged_at = at
    alert.owner = access.by
    _event(session, alert, "acknowledged", by=access.by)
    mark_read(session, access.by, alert.id)
    record(
        session,
        by=access.by,
        action="acknowledge",
        object_type="SafetyAlert",
        object_id=alert.id,
        patient_id=access.patient.id,
        detail={"minutes": int((at - alert.created_at).total_seconds() // 60)},
    )
    return alert


@dataclass
class Closing:
    outcome: str | list[str]  # what was done: one or several (an assessment and a safety plan)
    note: str
    risk_after: str | None = None
    follow_up_due_at: datetime | None = None
    no_follow_up: bool = False


OUTCOME_ORDER = (
    AlertOutcome.assessed,
    AlertOutcome.emergency,
    AlertOutcome.safety_plan,
    AlertOutcome.unreachable,
)


def outcomes_of(events: Sequence[AlertEvent], alert: SafetyAlert) -> list[str]:
    """Everything recorded as done when the alert was closed (one, for alerts closed before
    several could be recorded)."""
    closed = next((e for e in events if e.kind == "closed"), None)
    listed = (closed.detail or {}).get("outcomes") if closed is not None else None
    return list(listed) if listed else ([alert.outcome] if alert.outcome else [])


def outcomes_by_alert(
    session: Session, alerts: Sequence[SafetyAlert]
) -> dict[uuid.UUID, list[str]]:
    """`outcomes_of` for many alerts in one query (lists, exports, FHIR searches): the
    alert's column keeps only the main outcome; the closed event keeps them all."""
    closed_ids = [a.id for a in alerts if a.outcome]
    listed: dict[uuid.UUID, list[str]] = {}
    for start in range(0, len(closed_ids), 500):
        for alert_id, detail in session.execute(
            select(AlertEvent.alert_id, AlertEvent.detail).where(
                AlertEvent.alert_id.in_(closed_ids[start : start + 500]),
                AlertEvent.kind == "closed",
            )
        ):
            outcomes = (detail or {}).get("outcomes")
            if outcomes and alert_id not in listed:
                listed[alert_id] = [str(o) for o in outcomes]
    return {
        a.id: listed.get(a.id) or ([a.outcome] if a.outcome else []) for a in alerts
    }


def close(
    session: Session, *, access: PatientAccess, alert_id: Any, closing: Closing
) -> SafetyAlert:
    """Close with an outcome and a note. An assessment records the risk level it found,
    which becomes the patient's risk status; a follow-up contact is due unless the clinician
    says none is needed."""
    _team_clinician(session, access, "close", alert_id)
    alert = _alert_for_update(session, access, alert_id)
    if alert.status == AlertStatus.closed:
        raise Conflict(Msg("This alert is already closed."))
    rules = rules_for(session, alert.organization_id)
    errors: dict[str, str] = {}
    raw = closing.outcome if isinstance(closing.outcome, list) else [closing.outcome]
    outcomes: list[AlertOutcome] = []
    try:
        outcomes = list(dict.fromkeys(AlertOutcome(str(o)) for o in raw if str(o or "").strip()))
    except ValueError:
        outcomes = []
    if not outcomes:
        errors["outcome"] = Msg(
            "choose what was done: %(allowed)s", allowed=", ".join(o.value for o in AlertOutcome)
        )
    elif AlertOutcome.unreachable in outcomes and (
        {AlertOutcome.assessed, AlertOutcome.safety_plan} & set(outcomes)
    ):
        errors["outcome"] = Msg(
            "the patient could not be reached: an assessment or a safety plan with them cannot "
            "also have been done"
        )
    # Several things may have been done; the one that decides the patient's risk status comes
    # first (an assessment), and the alert keeps it as its outcome. Every one is recorded.
    outcome = next((o for o in OUTCOME_ORDER if o in outcomes), None)
    note = (closing.note or "").strip()
    if not note:
        errors["note"] = Msg("write what happened, so the team can read it later")
    elif len(note) > MAX_NOTE:
        errors["note"] = Msg("must be at most %(max)s characters", max=MAX_NOTE)
    risk_after = blank_to_none(closing.risk_after)
    allowed_levels = [t.code for t in rules.tiers] + [NO_RISK]
    if AlertOutcome.assessed in outcomes and risk_after is None:
        errors["risk_after"] = Msg("say what the assessment found (a risk level, or none)")
    elif risk_after is not None and risk_after not in allowed_levels:
        errors["risk_after"] = Msg("must be one of: %(allowed)s", allowed=", ".join(allowed_levels))
    at = now()
    follow_up = None
    if not closing.no_follow_up:
        follow_up = (closing.follow_up_due_at or at + rules.follow_up_within).astimezone(UTC)
        if follow_up <= at:
            errors["follow_up_due_at"] = Msg("must be in the future")
        elif follow_up > at + MAX_FOLLOW_UP:
            errors["follow_up_due_at"] = Msg("must be within 90 days")
    if errors:
        raise InvalidInput(Msg("The alert was not closed."), errors=errors)
    assert outcome is not None
    if alert.acknowledged_at is None:
        alert.acknowledged_at = at
        alert.acknowledged_by = access.by
        _event(session, alert, "acknowledged", by=access.by)
    alert.status = AlertStatus.closed
    if alert.owner_id is None:
        alert.owner = access.by
    alert.closed_at = at
    alert.closed_by = access.by
    alert.outcome = outcome
    alert.risk_after = risk_after
    alert.note = note
    alert.follow_up_due_at = follow_up
    _event(
        session,
        alert,
        "closed",
        by=access.by,
        detail={
            "outcome": str(outcome),
            "outcomes": [str(o) for o in outcomes],
            "risk_after": risk_after,
        },
    )
    mark_read(session, access.by, alert.id)
    record(
        session,
        by=access.by,
        action="close",
        object_type="SafetyAlert",
        object_id=alert.id,
        patient_id=access.patient.id,
        detail={
            "outcome": str(outcome),
            "outcomes": [str(o) for o in outcomes],
            "risk_after": risk_after,
        },
    )
    session.flush()
    _settle_risk(session, patient=access.patient, rules=rules, alert=alert, by=access.by)
    return alert


def record_follow_up(
    session: Session, *, access: PatientAccess, alert_id: Any, note: str
) -> SafetyAlert:
    _team_clinician(session, access, "follow_up", alert_id)
    alert = _alert_for_update(session, access, alert_id)
    if alert.status != AlertStatus.closed or alert.follow_up_due_at is None:
        raise Conflict(Msg("This alert has no follow-up due."))
    if alert.follow_up_done_at is not None:
        raise Conflict(Msg("The follow-up was already recorded."))
    words = (note or "").strip()
    if not words:
        raise InvalidInput.field(
            "note", Msg("write how the patient was contacted and how they are")
        )
    if len(words) > MAX_NOTE:
        raise InvalidInput.field("note", Msg("must be at most %(max)s characters", max=MAX_NOTE))
    alert.follow_up_done_at = now()
    alert.follow_up_by_id = access.by.id
    alert.follow_up_note = words
    _event(session, alert, "followed_up", by=access.by)
    record(
        session,
        by=access.by,
        action="follow_up",
        object_type="SafetyAlert",
        object_id=alert.id,
        patient_id=access.patient.id,
    )
    return alert


# --- escalation and missed follow-ups (the worker) -----------------------------------------------


def escalate_due(session: Session, *, limit: int = 100) -> int:
    """Move every open alert past its deadline to the next person in its chain."""
    at = now()
    query = (
        select(SafetyAlert)
        .where(SafetyAlert.status == AlertStatus.open, SafetyAlert.due_at <= at)
        .order_by(SafetyAlert.due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=SafetyAlert)
    moved = 0
    for alert in session.scalars(query).all():
        # One alert at a time (concord.db.isolated): one that cannot be moved is reported
        # and the others still are.
        if isolated(
            session,
            partial(_escalate, session, alert, at),
            job="escalation",
            object_type="SafetyAlert",
            object_id=alert.id,
        ):
            moved += 1
    return moved


def _escalate(session: Session, alert: SafetyAlert, at: datetime) -> bool:
    org = session.get(Organization, alert.organization_id)
    assert org is not None
    rules = rules_for(session, alert.organization_id)
    within = (
        rules.tier(alert.tier).acknowledge_within
        if rules.has_tier(alert.tier)
        else rules.highest.acknowledge_within
    )
    previous_owner = alert.owner
    found = _next_owner(session, alert, org, alert.chain_position + 1)
    new_step = alert.step + 1
    if found is not None:
        position, owner = found
        new_owner_id: uuid.UUID | None = owner.id
        kind = "escalated"
    else:
        position, owner, new_owner_id = alert.chain_position, None, alert.owner_id
        kind = "reminder"  # the chain is used up: everyone on it is told again
    # Only the worker that moves the alert from this exact step wins; a second worker (or a
    # second pass over a stale read) updates nothing and sends nothing.
    result = session.execute(
        update(SafetyAlert)
        .where(
            SafetyAlert.id == alert.id,
            SafetyAlert.step == alert.step,
            SafetyAlert.status == AlertStatus.open,
        )
        .values(
            step=new_step,
            chain_position=position,
            owner_id=new_owner_id,
            due_at=at + within,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.expire(alert)
        return False
    session.expire(alert)
    session.refresh(alert)
    _event(
        session,
        alert,
        kind,
        detail={
            "from": str(previous_owner.id) if previous_owner else None,
            "chain_step": alert.chain[position] if alert.chain else None,
        },
    )
    if owner is not None:
        _bring_onto_team(session, alert, owner)
        _notify(session, [owner], kind="escalated", alert=alert)
        if previous_owner is not None:
            _notify(session, [previous_owner], kind="passed_on", alert=alert, email=False)
    else:
        people = _everyone_on_chain(session, alert, org) or [
            m.user for m in _active_members(session, alert.patient_id)
        ]
        _notify(session, people, kind="reminder", alert=alert)
    record(
        session,
        by=None,
        action="escalate",
        object_type="SafetyAlert",
        object_id=alert.id,
        patient_id=alert.patient_id,
        organization_id=alert.organization_id,
        detail={"step": new_step, "kind": kind},
    )
    return True


def raise_missed_follow_ups(session: Session, *, limit: int = 100) -> int:
    """A closed alert whose follow-up is past due with none recorded goes back to the team,
    once: the new alert names the old one, and that link is unique."""
    at = now()
    child = SafetyAlert.__table__.alias("child")
    query = (
        select(SafetyAlert)
        .where(
            SafetyAlert.status == AlertStatus.closed,
            SafetyAlert.follow_up_due_at.is_not(None),
            SafetyAlert.follow_up_due_at <= at,
            SafetyAlert.follow_up_done_at.is_(None),
            ~exists().where(child.c.follow_up_of_id == SafetyAlert.id),
        )
        .order_by(SafetyAlert.follow_up_due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=SafetyAlert)
    raised = 0
    for parent in session.scalars(query).all():
        # Each in its own savepoint (concord.db.isolated): one that fails is reported and
        # the others are still raised.
        if isolated(
            session,
            partial(_raise_missed_follow_up, session, parent),
            job="follow_ups",
            object_type="SafetyAlert",
            object_id=parent.id,
        ):
            raised += 1
    return raised


def _raise_missed_follow_up(session: Session, parent: SafetyAlert) -> bool:
    patient = session.get(Patient, parent.patient_id)
    org = session.get(Organization, parent.organization_id)
    assert patient is not None and org is not None
    rules = rules_for(session, org.id)
    rule = rules.event_rule("missed-follow-up")
    _create(
        session,
        org=org,
        patient=patient,
        rules=rules,
        rule=rule,
        tier=rule.tier,
        triggers=[
            {
                "rule": rule.id,
                "name": dict(rule.name),
                "follow_up_of": str(parent.id),
                "due": parent.follow_up_due_at.isoformat() if parent.follow_up_due_at else None,
            }
        ],
        source_kind=AlertSource.follow_up,
        by=None,
        follow_up_of=parent,
    )
    return True


# --- the patient's risk status -------------------------------------------------------------------


def current_risk(session: Session, patient_id: uuid.UUID) -> RiskStatus | None:
    return session.scalar(
        select(RiskStatus)
        .where(RiskStatus.patient_id == patient_id)
        .order_by(RiskStatus.seq.desc())
        .limit(1)
    )


def _write_risk(
    session: Session,
    *,
    patient: Patient,
    tier: str | None,
    reason: str,
    alert: SafetyAlert | None,
    by: User | None,
) -> None:
    # One writer at a time per patient, so the sequence has no gaps or repeats.
    session.execute(select(Patient.id).where(Patient.id == patient.id).with_for_update(of=Patient))
    current = current_risk(session, patient.id)
    if (current.tier if current else None) == tier:
        return
    at = now()
    session.add(
        RiskStatus(
            patient_id=patient.id,
            seq=(current.seq if current else 0) + 1,
            tier=tier,
            since=at,
            at=at,
            reason=reason,
            alert_id=alert.id if alert else None,
            set_by_id=by.id if by else None,
        )
    )
    session.flush()


def _raise_risk(
    session: Session,
    *,
    patient: Patient,
    rules: RuleSet,
    tier: str,
    alert: SafetyAlert,
    by: User | None,
) -> None:
    current = current_risk(session, patient.id)
    if current is None or rules.rank(tier) > rules.rank(current.tier):
        _write_risk(session, patient=patient, tier=tier, reason="alert", alert=alert, by=by)


def _settle_risk(
    session: Session,
    *,
    patient: Patient,
    rules: RuleSet,
    alert: SafetyAlert,
    by: User,
) -> None:
    """After a close: the assessed level, but never below an alert still open."""
    current = current_risk(session, patient.id)
    level = current.tier if current else None
    if alert.outcome == AlertOutcome.assessed:
        level = None if alert.risk_after in (None, NO_RISK) else alert.risk_after
    still_open = session.scalars(
        select(SafetyAlert.tier).where(
            SafetyAlert.patient_id == patient.id,
            SafetyAlert.status != AlertStatus.closed,
            SafetyAlert.id != alert.id,
        )
    ).all()
    for tier in still_open:
        if rules.rank(tier) > rules.rank(level):
            level = tier
    _write_risk(session, patient=patient, tier=level, reason="assessment", alert=alert, by=by)


def risk_history(session: Session, patient_id: uuid.UUID) -> list[RiskStatus]:
    return list(
        session.scalars(
            select(RiskStatus)
            .where(RiskStatus.patient_id == patient_id)
            .order_by(RiskStatus.seq.desc())
        )
    )


def current_risks(
    session: Session, patient_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, RiskStatus]:
    """Each patient's current risk status (patients with none are left out)."""
    if not patient_ids:
        return {}
    latest = (
        select(RiskStatus.patient_id, func.max(RiskStatus.seq).label("seq"))
        .where(RiskStatus.patient_id.in_(list(patient_ids)))
        .group_by(RiskStatus.patient_id)
        .subquery()
    )
    rows = session.scalars(
        select(RiskStatus).join(
            latest,
            and_(RiskStatus.patient_id == latest.c.patient_id, RiskStatus.seq == latest.c.seq),
        )
    ).all()
    return {row.patient_id: row for row in rows if row.tier is not None}


# --- reading alerts ------------------------------------------------------------------------------


def _on_my_teams(user: User) -> Any:
    return exists().where(
        and_(
            CareTeam.patient_id == SafetyAlert.patient_id,
            CareTeamMember.care_team_id == CareTeam.id,
            CareTeamMember.user_id == user.id,
            CareTeamMember.ended_at.is_(None),
        )
    )


@dataclass(frozen=True)
class OwnedAlert:
    """An alert in the banner, as plain values: the banner is drawn even on an error page,
    after the request's transaction has been rolled back."""

    alert_id: uuid.UUID
    tier: str
    due_at: datetime
    patient_id: uuid.UUID
    patient_name: str


@dataclass
class Banner:
    """What the top of every clinician page shows: alerts this person owns (by patient), and
    how many others need their teams."""

    owned: list[OwnedAlert] = field(default_factory=list)
    team_count: int = 0


def banner_for(session: Session, user: User) -> Banner:
    if not user.is_clinician:
        return Banner()
    # Columns, not entities: the entities' joined relationships made a ten-table join whose
    # planning (2 ms) cost more than running it, on every clinician page.
    owned = [
        OwnedAlert(
            row.id,
            row.tier,
            row.due_at,
            row.patient_id,
            Patient.name_shown(row.first, row.given, row.family),
        )
        for row in session.execute(
            select(
                SafetyAlert.id,
                SafetyAlert.tier,
                SafetyAlert.due_at,
                SafetyAlert.patient_id,
                Patient.preferred_name.label("first"),
                Patient.given_name.label("given"),
                Patient.family_name.label("family"),
            )
            .join(Patient, Patient.id == SafetyAlert.patient_id)
            .where(
                SafetyAlert.status == AlertStatus.open,
                SafetyAlert.owner_id == user.id,
                _on_my_teams(user),
            )
            .order_by(SafetyAlert.due_at)
            .limit(5)
        )
    ]
    # From the person's own care teams to their patients' alerts (index on patient and
    # status): the cost follows the size of their caseload, not of the organization.
    team_count = (
        session.scalar(
            select(func.count())
            .select_from(CareTeamMember)
            .join(CareTeam, CareTeam.id == CareTeamMember.care_team_id)
            .join(SafetyAlert, SafetyAlert.patient_id == CareTeam.patient_id)
            .where(
                CareTeamMember.user_id == user.id,
                CareTeamMember.ended_at.is_(None),
                SafetyAlert.status != AlertStatus.closed,
                or_(
                    SafetyAlert.owner_id.is_(None),
                    SafetyAlert.owner_id != user.id,
                    SafetyAlert.status == AlertStatus.acknowledged,
                ),
            )
        )
        or 0
    )
    return Banner(owned=owned, team_count=team_count)


def count_open_alerts(session: Session, user: User) -> int:
    """How many alerts need the care teams this clinician is on (no patient named)."""
    if not user.is_clinician:
        return 0
    return (
        session.scalar(
            select(func.count())
            .select_from(SafetyAlert)
            .where(SafetyAlert.status != AlertStatus.closed, _on_my_teams(user))
        )
        or 0
    )


@dataclass
class AlertRow:
    alert: SafetyAlert
    patient: Patient
    mine: bool = False


def list_alerts(session: Session, *, by: User, include_closed: bool = False) -> list[AlertRow]:
    """The alerts on this clinician's teams: theirs first, then the most serious, oldest."""
    if not by.is_clinician:
        return []
    query = (
        select(SafetyAlert, Patient)
        .join(Patient, Patient.id == SafetyAlert.patient_id)
        .where(_on_my_teams(by))
    )
    if not include_closed:
        query = query.where(SafetyAlert.status != AlertStatus.closed)
    else:
        query = query.where(SafetyAlert.created_at >= now() - timedelta(days=90))
    rules_cache: dict[uuid.UUID, RuleSet] = {}

    def order(row: AlertRow) -> tuple[Any, ...]:
        rules = rules_cache.setdefault(
            row.alert.organization_id, rules_for(session, row.alert.organization_id)
        )
        return (
            row.alert.status == AlertStatus.closed,
            not (row.mine and row.alert.status == AlertStatus.open),
            row.alert.status != AlertStatus.open,
            -rules.rank(row.alert.tier),
            row.alert.created_at,
        )

    rows = [AlertRow(a, p, a.owner_id == by.id) for a, p in session.execute(query.limit(500))]
    rows.sort(key=order)
    for row in rows:
        record(
            session,
            by=by,
            action="list",
            object_type="SafetyAlert",
            object_id=row.alert.id,
            patient_id=row.patient.id,
        )
    return rows


def alerts_for_patient(
    session: Session, *, access: PatientAccess, include_closed: bool = False
) -> list[SafetyAlert]:
    if not access.on_team:
        return []
    query = select(SafetyAlert).where(SafetyAlert.patient_id == access.patient.id)
    if not include_closed:
        query = query.where(SafetyAlert.status != AlertStatus.closed)
    return list(session.scalars(query.order_by(SafetyAlert.created_at.desc())))


def get_alert(session: Session, *, access: PatientAccess, alert_id: Any) -> SafetyAlert:
    if not access.on_team:
        raise NotFound(Msg("No such alert."))
    aid = parse_id(alert_id)
    alert = session.get(SafetyAlert, aid) if aid is not None else None
    if alert is None or alert.patient_id != access.patient.id:
        raise NotFound(Msg("No such alert."))
    record(
        session,
        by=access.by,
        action="read",
        object_type="SafetyAlert",
        object_id=alert.id,
        patient_id=access.patient.id,
    )
    return alert


def patient_of_alert(session: Session, alert_id: Any) -> uuid.UUID | None:
    aid = parse_id(alert_id)
    if aid is None:
        return None
    return session.scalar(select(SafetyAlert.patient_id).where(SafetyAlert.id == aid))


EVENT_ORDER = {"raised": 0, "escalated": 1, "reminder": 1, "acknowledged": 2, "closed": 3}


def alert_events(session: Session, alert_id: uuid.UUID) -> list[AlertEvent]:
    """In the order they happened (events of one instant in the order an alert lives)."""
    events = session.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id)).all()
    return sorted(events, key=lambda e: (e.at, e.step, EVENT_ORDER.get(e.kind, 4)))


def follow_up_alert(session: Session, alert_id: uuid.UUID) -> SafetyAlert | None:
    return session.scalar(select(SafetyAlert).where(SafetyAlert.follow_up_of_id == alert_id))


# --- figures a clinic can check ------------------------------------------------------------------


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
    from concord.dates import local_datetime

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


def role_label(step: str) -> str:
    """A chain step in words (for pages)."""
    if step == "lead":
        return "team lead"
    if step == "on_call":
        return "on-call clinician"
    return Role(step).value.replace("_", " ")

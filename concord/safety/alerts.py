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

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, select
from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import PatientAccess, deny, parse_id, team_access
from concord.accounts.models import Organization, User
from concord.audit.service import record
from concord.categories import DataCategory
from concord.clock import now
from concord.db import core
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import Msg
from concord.measures.models import MeasureResponse, ResponseStatus
from concord.patients.models import CareTeam, CareTeamMember, Patient
from concord.safety.chain import _active_members, _bring_onto_team, _next_owner
from concord.safety.models import (
    NO_RISK,
    AlertEvent,
    AlertOutcome,
    AlertSource,
    AlertStatus,
    SafetyAlert,
)
from concord.safety.notifications import _notify, mark_read
from concord.safety.risk import _raise_risk, _settle_risk
from concord.safety.rules import (
    TIER_CHOSEN,
    RiskRule,
    RuleSet,
    default_rules,
    evaluate_response,
    flag_items,
)
from concord.safety.rulesets import rules_for
from concord.validation import blank_to_none

MAX_NOTE = 5000


MAX_FOLLOW_UP = timedelta(days=90)


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


def raise_for_message(
    session: Session, *, patient: Patient, by: User | None, phrase_rule: str, message_id: Any
) -> SafetyAlert:
    """Words of crisis in a patient's message (the phrase list's rule `phrase_rule`): an alert
    through the escalation chain at the tier the organization's "message-phrase" risk rule
    sets (the default file's where the organization's rules are older than messaging). The
    alert names the message, never its words."""
    org = session.get(Organization, patient.organization_id)
    assert org is not None
    rules = rules_for(session, org.id)
    try:
        rule = rules.event_rule("message-phrase")
    except KeyError:
        rules = default_rules()
        rule = rules.event_rule("message-phrase")
    return _create(
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
                "phrase_rule": phrase_rule,
                "message_id": str(message_id),
            }
        ],
        source_kind=AlertSource.message,
        by=by,
    )


def raise_overdose_risk(
    session: Session, *, patient: Patient, triggers: list[dict[str, Any]], by: User | None
) -> SafetyAlert:
    """An alert for the overdose-risk rules that fired (concord.medications.overdose), through
    the organization's `overdose-risk` event rule: its tier and escalation chain. `triggers`
    name each rule, its source and what to do, never the record's contents."""
    org = session.get(Organization, patient.organization_id)
    assert org is not None
    rules = rules_for(session, org.id)
    rule = rules.optional_event_rule(
        "overdose-risk",
        {"en": "Overdose risk", "es": "Riesgo de sobredosis"},
        "Concord: overdose-risk rules (docs/clinical-sources.md)",
    )
    return _create(
        session,
        org=org,
        patient=patient,
        rules=rules,
        rule=rule,
        tier=rule.tier,
        triggers=triggers,
        source_kind=AlertSource.overdose_risk,
        by=by,
    )


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
    return {a.id: listed.get(a.id) or ([a.outcome] if a.outcome else []) for a in alerts}


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


def _on_my_teams(user: User) -> Any:
    return exists().where(
        and_(
            CareTeam.patient_id == SafetyAlert.patient_id,
            CareTeamMember.care_team_id == CareTeam.id,
            CareTeamMember.user_id == user.id,
            CareTeamMember.ended_at.is_(None),
        )
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

    found = [AlertRow(a, p, a.owner_id == by.id) for a, p in session.execute(query.limit(500))]
    if found and DataCategory.safety not in disclosure.permitted_to(by, session=session):
        disclosure.audit_withheld_search(session, by, len(found), object_type="SafetyAlert")
        return []
    # Each patient's alerts pass the disclosure decision (a consent refusing safety data to
    # this clinician withholds them): one load of labels and consents for all the patients.
    by_patient: dict[uuid.UUID, tuple[Patient, list[SafetyAlert]]] = {}
    for row in found:
        by_patient.setdefault(row.patient.id, (row.patient, []))[1].append(row.alert)
    kept = disclosure.filter_many(session, by, by_patient.values(), object_type="SafetyAlert")
    shown = {alert.id for alerts in kept.values() for alert in alerts}
    rows = [row for row in found if row.alert.id in shown]
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


@disclosure.discloses("SafetyAlert")
def alerts_for_patient(
    session: Session, *, access: PatientAccess, include_closed: bool = False
) -> list[SafetyAlert]:
    if not access.on_team:
        return []
    query = select(SafetyAlert).where(SafetyAlert.patient_id == access.patient.id)
    if not include_closed:
        query = query.where(SafetyAlert.status != AlertStatus.closed)
    return list(session.scalars(query.order_by(SafetyAlert.created_at.desc())))


@disclosure.discloses("SafetyAlert")
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


# --- reads for the FHIR API (access and audit applied here, once) -------------------------------


@dataclass
class AlertRecord:
    """An alert with who raised it (None: a rule did) and everything done when it closed."""

    alert: SafetyAlert
    patient: Patient
    raised_by: User | None
    outcomes: list[str]


def alert_records(
    session: Session, rows: Sequence[tuple[SafetyAlert, Patient]]
) -> list[AlertRecord]:
    outcomes = outcomes_by_alert(session, [alert for alert, _ in rows])
    return [
        AlertRecord(
            alert,
            patient,
            session.get(User, alert.raised_by_id) if alert.raised_by_id else None,
            outcomes.get(alert.id, []),
        )
        for alert, patient in rows
    ]


def get_team_alert(session: Session, *, by: User, ident: str) -> AlertRecord | None:
    """An alert by its id, for its patient's care team only (NotFound, audited, for anyone
    else); None when there is no alert with this id. The read is in the trail."""
    key = parse_id(ident)
    alert = session.get(SafetyAlert, key) if key is not None else None
    if alert is None:
        return None
    acc = team_access(session, by, alert.patient_id, action="search", object_type="Task")
    # A consent refusing safety data to this clinician: NotFound, as for a stranger.
    disclosure.check_record(
        session, acc, alert, object_type="SafetyAlert", message=Msg("No such record.")
    )
    record(
        session,
        by=by,
        action="read",
        object_type="Task",
        object_id=alert.id,
        patient_id=acc.patient.id,
    )
    return alert_records(session, [(alert, acc.patient)])[0]


def team_alerts_query(
    by: User,
    scope: list[PatientAccess] | None,
    *,
    statuses: list[str] | None = None,
    owners: list[uuid.UUID] | None = None,
) -> Any:
    """(alert, patient) for the patients in `scope`, or every patient on `by`'s care teams."""
    query = select(SafetyAlert, Patient).join(Patient, Patient.id == SafetyAlert.patient_id)
    if scope is None:
        query = query.where(_on_my_teams(by))
    else:
        query = query.where(SafetyAlert.patient_id.in_([a.patient.id for a in scope]))
    if statuses is not None:
        query = query.where(SafetyAlert.status.in_(statuses))
    if owners is not None:
        query = query.where(SafetyAlert.owner_id.in_(owners))
    return query

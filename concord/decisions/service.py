"""Decisions made together: start one from an aid, mark what matters, ask questions, check
readiness with SURE, and record the outcome, which proposes the chosen option as an
intervention in the care plan (a new revision the patient and the team then agree to).

Who may do what: the patient works on their own decisions; any clinician on the care team may
open, fill in (side by side in a visit) and record them; a person the patient chose may read
them. Nobody else sees that a decision exists (404).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import PatientAccess, deny, parse_id, record_access, refuse_record
from concord.accounts.models import User
from concord.audit.models import Outcome as AuditOutcome
from concord.audit.service import record
from concord.careplans import service as plans
from concord.careplans.models import Intervention, InterventionKind
from concord.careplans.reasons import DECISION_MADE, system_reason
from concord.careplans.schemas import InterventionIn
from concord.clock import now
from concord.dates import org_today
from concord.decisions.aids import Aid, Fit, Option, Value, all_aids, get_aid
from concord.decisions.models import Decision, DecisionStatus
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import Msg
from concord.patients.service import members_of_patient
from concord.safety.notices import notify_care_team

OBJECT = "Decision"
MAX_TEXT = 2000
MAX_QUESTIONS = 30

# The SURE test (Légaré F et al., Can Fam Physician 2010;56(8):e308-14): four yes/no items; yes
# scores 1; a total under 4 signals decisional conflict. Each item names what is missing when
# it is answered "no" (the four domains of the Decisional Conflict Scale).
SURE_ITEMS = ("sure", "understand", "risk_benefit", "encouragement")
SURE_MISSING = {
    "sure": "certainty",
    "understand": "information",
    "risk_benefit": "values",
    "encouragement": "support",
}


# --- reading ------------------------------------------------------------------------------------


def _aid(aid_id: str, field: str = "aid") -> Aid:
    aid = get_aid(aid_id)
    if aid is None:
        raise InvalidInput.field(field, Msg("must be one of the decision aids offered here"))
    return aid


def aid_of(decision: Decision) -> Aid | None:
    return get_aid(decision.aid_id)


def _can_work(session: Session, access: PatientAccess, action: str) -> None:
    """The patient, or a clinician on the care team, may work on a decision."""
    if access.is_self or (access.on_team and access.by.is_clinician):
        return
    raise deny(
        session,
        access,
        action=action,
        object_type=OBJECT,
        message="Only the patient and their care team work on a decision.",
    )


def _can_read(session: Session, access: PatientAccess, action: str) -> None:
    """Decisions are the patient's record (their values, their questions): the patient and
    the care team, as on the pages; a family member who may read the plan gets not found."""
    if not access.can_read_record:
        raise refuse_record(session, access, action=action, object_type=OBJECT)


@disclosure.discloses("Decision")
def list_decisions(session: Session, *, access: PatientAccess) -> list[Decision]:
    _can_read(session, access, "list")
    decisions = list(
        session.scalars(
            select(Decision)
            .where(Decision.patient_id == access.patient.id)
            .order_by(Decision.created_at.desc())
        )
    )
    record(
        session,
        by=access.by,
        action="list",
        object_type=OBJECT,
        patient_id=access.patient.id,
        detail={"count": len(decisions)},
    )
    return decisions


@disclosure.discloses("Decision")
def get_decision(
    session: Session, *, access: PatientAccess, decision_id: Any, audit: bool = True
) -> Decision:
    _can_read(session, access, "read")
    key = parse_id(decision_id)
    decision = session.get(Decision, key) if key else None
    if decision is None or decision.patient_id != access.patient.id:
        raise NotFound("No such decision.")
    if audit:
        record(
            session,
            by=access.by,
            action="read",
            object_type=OBJECT,
            object_id=decision.id,
            patient_id=access.patient.id,
        )
    return decision


# --- working on it ------------------------------------------------------------------------------


def start(session: Session, *, access: PatientAccess, aid_id: str) -> Decision:
    """The open decision on this aid, or a new one (starting twice gives the same one)."""
    _can_read(session, access, "create")
    _can_work(session, access, "create")
    aid = _aid(aid_id)
    existing = session.scalar(
        select(Decision).where(
            Decision.patient_id == access.patient.id,
            Decision.aid_id == aid.id,
            Decision.status == DecisionStatus.open,
        )
    )
    if existing is not None:
        return existing
    decision = Decision(
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        aid_id=aid.id,
        aid_version=aid.version,
        status=DecisionStatus.open,
        values=[],
        questions=[],
        considered=[o.id for o in aid.options],
        participants=[],
        started_by_id=access.by.id,
        started_by_patient=access.is_self,
        created_at=now(),
        updated_at=now(),
        version=1,
    )
    session.add(decision)
    session.flush()
    record(
        session,
        by=access.by,
        action="create",
        object_type=OBJECT,
        object_id=decision.id,
        patient_id=access.patient.id,
        detail={"aid": aid.id},
    )
    return decision


def _open(
    session: Session, access: PatientAccess, decision_id: Any, base_version: int | None
) -> tuple[Decision, Aid]:
    decision = get_decision(session, access=access, decision_id=decision_id, audit=False)
    if decision.status != DecisionStatus.open:
        raise Conflict(Msg("This decision is already recorded."))
    if base_version is not None and base_version != decision.version:
        raise Conflict(Msg("Someone else changed this decision. Reload and try again."))
    aid = aid_of(decision)
    if aid is None:
        raise Conflict(Msg("This decision aid is no longer offered here."))
    return decision, aid


def _touch(session: Session, access: PatientAccess, decision: Decision, fields: list[str]) -> None:
    decision.version += 1
    decision.updated_at = now()
    record(
        session,
        by=access.by,
        action="update",
        object_type=OBJECT,
        object_id=decision.id,
        patient_id=access.patient.id,
        detail={"fields": fields},
    )


def _words(value: Any, field: str, *, required: bool = False, limit: int = MAX_TEXT) -> str | None:
    text = " ".join(str(value or "").split())
    if not text:
        if required:
            raise InvalidInput.field(field, Msg("is required"))
        return None
    if len(text) > limit:
        raise InvalidInput.field(field, Msg("must be at most %(max)s characters", max=limit))
    return text


def save_values(
    session: Session,
    *,
    access: PatientAccess,
    decision_id: Any,
    values: list[str],
    note: str | None = None,
    leaning: str | None = None,
    base_version: int | None = None,
) -> Decision:
    """What matters most to the patient (in order), anything else in their words, and the
    option they lean toward (or none yet)."""
    _can_work(session, access, "update")
    decision, aid = _open(session, access, decision_id, base_version)
    chosen: list[str] = []
    for value in values:
        if aid.value(value) is None:
            raise InvalidInput.field("values", Msg("must be among the things listed"))
        if value not in chosen:
            chosen.append(value)
    lean = (leaning or "").strip() or None
    if lean is not None and lean != "unsure" and aid.option(lean) is None:
        raise InvalidInput.field("leaning", Msg("must be one of the options, or not sure yet"))
    decision.values = chosen
    decision.values_note = _words(note, "values_note")
    decision.leaning = None if lean == "unsure" else lean
    _touch(session, access, decision, ["values", "values_note", "leaning"])
    return decision


def add_question(
    session: Session, *, access: PatientAccess, decision_id: Any, text: str
) -> Decision:
    """A question for the clinician, seen on the team's page before the visit."""
    _can_work(session, access, "update")
    decision, _ = _open(session, access, decision_id, None)
    words = _words(text, "question", required=True, limit=1000)
    if len(decision.questions) >= MAX_QUESTIONS:
        raise InvalidInput.field(
            "question", Msg("at most %(max)s questions; ask the rest in the visit", max=30)
        )
    decision.questions = [
        *decision.questions,
        {
            "text": words,
            "at": now().isoformat(),
            "by_patient": access.is_self,
            "by": access.by.name,
            "answered": False,
        },
    ]
    _touch(session, access, decision, ["questions"])
    if access.is_self:
        notify_care_team(session, patient_id=access.patient.id, kind="patient_question")
    return decision


def mark_answered(
    session: Session, *, access: PatientAccess, decision_id: Any, index: Any
) -> Decision:
    if not (access.on_team and access.by.is_clinician):
        raise deny(
            session, access, action="update", object_type=OBJECT, message="For the care team."
        )
    decision, _ = _open(session, access, decision_id, None)
    try:
        index = int(index)
    except (TypeError, ValueError):
        index = -1  # not a number: no such question, as for one out of range
    if not 0 <= index < len(decision.questions):
        raise InvalidInput.field("question", Msg("No such question."))
    questions = [dict(q) for q in decision.questions]
    questions[index]["answered"] = True
    decision.questions = questions
    _touch(session, access, decision, ["questions"])
    return decision


def parse_sure(form: dict[str, Any]) -> dict[str, bool]:
    answers: dict[str, bool] = {}
    errors: dict[str, Msg] = {}
    for item in SURE_ITEMS:
        raw = str(form.get(f"sure_{item}", "")).strip().lower()
        if raw in ("yes", "true", "1"):
            answers[item] = True
        elif raw in ("no", "false", "0"):
            answers[item] = False
        else:
            errors[f"sure_{item}"] = Msg("answer yes or no")
    if errors:
        raise InvalidInput(Msg("Please answer all four questions."), errors=errors)
    return answers


def save_sure(
    session: Session, *, access: PatientAccess, decision_id: Any, answers: dict[str, bool]
) -> Decision:
    _can_work(session, access, "update")
    decision, _ = _open(session, access, decision_id, None)
    missing = [item for item in SURE_ITEMS if not isinstance(answers.get(item), bool)]
    if missing:
        raise InvalidInput(
            Msg("Please answer all four questions."),
            errors={f"sure_{m}": Msg("answer yes or no") for m in missing},
        )
    decision.sure = {item: answers[item] for item in SURE_ITEMS}
    decision.sure_score = sum(1 for item in SURE_ITEMS if answers[item])
    decision.sure_at = now()
    _touch(session, access, decision, ["sure"])
    return decision


@dataclass(frozen=True)
class Readiness:
    score: int
    ready: bool
    missing: list[str]  # information, values, support, certainty


def readiness(decision: Decision) -> Readiness | None:
    if decision.sure is None or decision.sure_score is None:
        return None
    missing = [SURE_MISSING[item] for item in SURE_ITEMS if not decision.sure.get(item)]
    return Readiness(decision.sure_score, decision.sure_score == 4, missing)


# --- what fits what matters ---------------------------------------------------------------------


@dataclass(frozen=True)
class OptionFit:
    option: Option
    fits: list[tuple[Value, Fit]]  # each marked value, in the patient's order
    good: int
    some: int
    poor: int


def fit_summary(aid: Aid, values: list[str]) -> list[OptionFit]:
    """Every option (none hidden) with how it fits each value the patient marked, listed with
    the most good fits first, then the fewest poor ones; ties keep the aid's order."""
    marked = [v for v in (aid.value(x) for x in values) if v is not None]
    summaries = []
    for option in aid.options:
        fits = [(value, value.fits[option.id]) for value in marked]
        summaries.append(
            OptionFit(
                option=option,
                fits=fits,
                good=sum(1 for _, f in fits if f.fit == "good"),
                some=sum(1 for _, f in fits if f.fit == "some"),
                poor=sum(1 for _, f in fits if f.fit == "poor"),
            )
        )
    if not marked:
        return summaries
    order = {o.id: i for i, o in enumerate(aid.options)}
    return sorted(summaries, key=lambda s: (-s.good, s.poor, order[s.option.id]))


# --- the outcome --------------------------------------------------------------------------------


@dataclass
class Outcome:
    choice: str | None  # an option id, or None: not decided yet
    reasons: str | None
    considered: list[str]
    decided_on: date
    clinician_ids: list[str]
    others: str | None = None  # family or others who took part, as the patient names them


def record_outcome(
    session: Session,
    *,
    access: PatientAccess,
    decision_id: Any,
    outcome: Outcome,
    base_version: int | None = None,
) -> Decision:
    """Record the decision (in the visit). A choice proposes its intervention in the care plan:
    a new revision that the patient and the lead clinician are asked to agree to."""
    if not (access.on_team and access.by.is_clinician):
        raise deny(
            session,
            access,
            action="update",
            object_type=OBJECT,
            message="A clinician on the care team records the decision, with the patient.",
        )
    decision, aid = _open(session, access, decision_id, base_version)
    errors: dict[str, Msg] = {}
    choice = (outcome.choice or "").strip() or None
    if choice is not None and aid.option(choice) is None:
        errors["choice"] = Msg("must be one of the options, or not decided yet")
    considered = [c for c in dict.fromkeys(outcome.considered) if aid.option(c) is not None]
    if len(considered) != len(set(outcome.considered)) or not considered:
        errors["considered"] = Msg("tick the options you talked about (at least one)")
    elif choice is not None and choice not in considered:
        errors["considered"] = Msg("the choice must be among the options considered")
    try:
        reasons = _words(outcome.reasons, "reasons", required=choice is not None)
    except InvalidInput as exc:
        errors.update(exc.errors)
        reasons = None
    today = org_today(access.by.organization)  # the clinic's date, not UTC's
    if outcome.decided_on > today + timedelta(days=1) or outcome.decided_on < today - timedelta(
        days=365
    ):
        errors["decided_on"] = Msg("must be within the last year")
    try:
        others = _words(outcome.others, "others", limit=500)
    except InvalidInput as exc:
        errors.update(exc.errors)
        others = None
    team_ids = {str(m.user_id) for m in members_of_patient(session, patient_id=access.patient.id)}
    clinicians = list(dict.fromkeys([str(access.by.id), *outcome.clinician_ids]))
    if any(c not in team_ids for c in clinicians):
        errors["clinician_ids"] = Msg("must be clinicians on this patient's care team")
    if errors:
        raise InvalidInput(Msg("The decision was not recorded."), errors=errors)

    option = aid.option(choice) if choice is not None else None
    if option is not None and plans.current_plan(session, access.patient.id) is None:
        raise Conflict(
            Msg("This patient has no current care plan: start one, then record the decision.")
        )

    people = {
        str(u.id): u
        for u in session.scalars(
            select(User).where(User.id.in_([uuid.UUID(c) for c in clinicians]))
        )
    }
    # All or nothing: if the plan refuses the change, the decision stays open as it was.
    with session.begin_nested():
        decision.participants = [
            {"kind": "patient", "name": access.patient.display_name},
            *(
                {
                    "kind": "clinician",
                    "name": people[c].name,
                    "user_id": c,
                    "role": str(people[c].role),
                }
                for c in clinicians
                if c in people
            ),
            *([{"kind": "other", "name": others}] if others else []),
        ]
        decision.considered = considered
        decision.choice = choice
        decision.reasons = reasons
        decision.decided_on = outcome.decided_on
        decision.recorded_by_id = access.by.id
        decision.recorded_at = now()
        decision.status = DecisionStatus.decided if choice else DecisionStatus.not_decided
        if option is not None:
            lang = access.patient.language or "en"
            description = option.intervention.get(lang) or option.intervention["en"]
            same = next(
                (
                    i
                    for i in treatments_in_plan(session, access)
                    if " ".join(i.description.split()).casefold()
                    == " ".join(description.split()).casefold()
                ),
                None,
            )
            if same is not None:
                # The plan already has this very treatment: the decision points at it, and no
                # second copy is added (the page says so).
                item = same
                decision.reused_treatment = True  # type: ignore[attr-defined]  (for the page)
            else:
                reason, reason_message = system_reason(
                    DECISION_MADE, aid=dict(aid.title), option=dict(option.name)
                )
                item = plans.add_item(
                    session,
                    access=access,
                    section="interventions",
                    data=InterventionIn(
                        kind=InterventionKind(option.category),
                        description=description,
                        responsible_id=None,
                    ),
                    reason=reason,
                    reason_message=reason_message,
                )
            decision.intervention_id = item.id
            plan = plans.current_plan(session, access.patient.id)
            decision.plan_revision = plan.revision_number if plan is not None else None
    _touch(session, access, decision, ["outcome"])
    return decision


ENDED_TREATMENT = ("completed", "stopped")


def treatments_in_plan(session: Session, access: PatientAccess) -> list[Any]:
    """The current care plan's interventions that are not completed or stopped, of those
    `access` may see (one written by a Part 2 program's staff is withheld without a
    permitting consent, as on the plan page)."""
    return [
        i
        for i in plans.list_interventions(session, access=access)
        if str(i.status) not in ENDED_TREATMENT
    ]


def overlapping_treatments(
    session: Session, access: PatientAccess, decision: Decision, aid: Aid
) -> list[Any]:
    """Treatments already in the plan of the kinds the decision's choice adds (other than the
    one it added): "do both" beside an antidepressant the plan already has is shown, not
    silently added."""
    option = aid.option(decision.choice) if decision.choice else None
    if option is None:
        return []
    return [
        i
        for i in treatments_in_plan(session, access)
        if str(i.kind) in option.kinds and i.id != decision.intervention_id
    ]


def withdraw(session: Session, *, access: PatientAccess, decision_id: Any) -> Decision:
    _can_work(session, access, "update")
    decision, _ = _open(session, access, decision_id, None)
    decision.status = DecisionStatus.withdrawn
    _touch(session, access, decision, ["status"])
    return decision


def offered_aids(programs: Iterable[str] = ()) -> list[Aid]:
    """Every aid, those for the patient's programs (their open episode's) first."""
    wanted = set(programs)
    return sorted(
        all_aids().values(), key=lambda a: (not (wanted & set(a.programs)), a.title["en"])
    )


# --- reads for the FHIR API ---------------------------------------------------------------------


def find_decision(session: Session, *, by: User, ident: str) -> tuple[Decision, uuid.UUID | None]:
    """A decision by its id alone (the FHIR read), with the plan its chosen intervention is in:
    for the care team and the patient (their record, not a family member's shared plan);
    NotFound for anyone else and for a missing one alike (audited)."""
    key = parse_id(ident)
    decision = session.get(Decision, key) if key else None
    acc = None
    if decision is not None:
        try:
            acc = record_access(session, by, decision.patient_id, object_type=OBJECT)
        except NotFound:
            acc = None
    if decision is None or acc is None:
        record(
            session,
            by=by,
            action="read",
            object_type=OBJECT,
            object_id=ident[:64],
            outcome=AuditOutcome.denied,
        )
        raise NotFound("No such decision.")
    decision = get_decision(session, access=acc, decision_id=decision.id)
    item = session.get(Intervention, decision.intervention_id) if decision.intervention_id else None
    return decision, item.plan_id if item else None


def decisions_for_plan(session: Session, plan_id: uuid.UUID) -> dict[uuid.UUID, uuid.UUID]:
    """The decisions whose choice is an intervention of this plan: intervention -> decision."""
    return {
        intervention_id: decision_id
        for decision_id, intervention_id in session.execute(
            select(Decision.id, Decision.intervention_id)
            .join(Intervention, Intervention.id == Decision.intervention_id)
            .where(Intervention.plan_id == plan_id)
        )
    }

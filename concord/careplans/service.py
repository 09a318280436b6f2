"""The rules of the shared care plan.

Every mutation: checks what the actor may do (through PatientAccess), locks the plan row so
changes to one plan queue rather than interleave, checks the version the editor saw, applies
the change, writes a revision (a snapshot and what changed, in words), and audits it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import (
    PatientAccess,
    Relation,
    deny,
    in_scope,
    owned_by_id,
    owned_record,
    page_in_scope,
    parse_id,
    refuse_record,
)
from concord.accounts.models import Organization, User
from concord.audit.service import record
from concord.careplans import history
from concord.careplans.history import Change, PlanContents
from concord.careplans.labels import SECTION_LABELS
from concord.careplans.models import (
    CURRENT_PLAN_STATUSES,
    ActionStep,
    AgreementParty,
    Barrier,
    CarePlan,
    CodeSystem,
    Concern,
    Contingency,
    Goal,
    GoalCategory,
    GoalStatus,
    Intervention,
    Milestone,
    PlanAgreement,
    PlanComment,
    PlanRevision,
    PlanStatus,
    StepStatus,
    Strength,
)
from concord.careplans.schemas import (
    ICD10_RE,
    SNOMED_RE,
    ConcernIn,
    GoalProposal,
    Input,
    PlanStart,
    PreferencesIn,
    ReviewIn,
)
from concord.clock import now
from concord.dates import org_today as _org_today
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import Msg
from concord.measures.library import library
from concord.measures.service import schedule_defaults
from concord.paging import Page
from concord.patients.models import CareTeam, CareTeamMember, Patient
from concord.patients.service import members_of_patient
from concord.safety.notices import notify_care_team
from concord.settings import get_settings
from concord.substance.models import MEASURE_RANGE, Substance, UseAim, UseMeasure
from concord.validation import check_date_range

REVIEW_DUE_WINDOW_DAYS = 7


@dataclass(frozen=True)
class ItemSpec:
    section: str
    model: Any
    object_type: str  # the name used in the audit trail (FHIR's where one matches)


SPECS: dict[str, ItemSpec] = {
    "concerns": ItemSpec("concerns", Concern, "Condition"),
    "goals": ItemSpec("goals", Goal, "Goal"),
    "milestones": ItemSpec("milestones", Milestone, "Milestone"),
    "interventions": ItemSpec("interventions", Intervention, "CarePlanActivity"),
    "action_steps": ItemSpec("action_steps", ActionStep, "ActionStep"),
    "strengths": ItemSpec("strengths", Strength, "Strength"),
    "barriers": ItemSpec("barriers", Barrier, "Barrier"),
    "contingencies": ItemSpec("contingencies", Contingency, "Contingency"),
}

# Changes that record progress rather than change what was agreed, so the plan does not need
# to be agreed again: a step done, a milestone reached, a treatment started.
PROGRESS = {
    "plan": {
        "status",
        "activated_on",
        "next_review_on",
        "last_reviewed_on",
        "ended_on",
        "end_reason",
    },
    "goals": {"status"},
    "milestones": {"reached_on"},
    "interventions": {"status"},
    "action_steps": {"status"},
    "barriers": {"status"},
}
PROGRESS_GOAL_STATUSES = {GoalStatus.in_progress, GoalStatus.achieved}


def spec_for(section: str) -> ItemSpec:
    try:
        return SPECS[section]
    except KeyError:
        raise NotFound("No such part of a care plan.") from None


def is_substantive(changes: list[Change]) -> bool:
    for change in changes:
        if change.change != "changed":
            return True
        allowed = PROGRESS.get(change.section, set())
        for field_change in change.fields:
            if field_change.field not in allowed:
                return True
            if change.section == "goals" and field_change.new not in PROGRESS_GOAL_STATUSES:
                return True
    return False


# --- reading -------------------------------------------------------------------------------


def _org(session: Session, patient: Patient) -> Organization:
    org = session.get(Organization, patient.organization_id)
    assert org is not None
    return org


def org_today(session: Session, patient: Patient) -> date:
    return _org_today(_org(session, patient))


def current_plan(session: Session, patient_id: uuid.UUID) -> CarePlan | None:
    return session.scalar(
        select(CarePlan).where(
            CarePlan.patient_id == patient_id,
            CarePlan.status.in_([str(s) for s in CURRENT_PLAN_STATUSES]),
        )
    )


def treatment_start_and_goals(
    session: Session, access: PatientAccess
) -> tuple[date | None, list[Goal]]:
    """When treatment began (the current plan's activation) and the plan's goals linked to a
    measure that `access` may see: what a measure's progress is read against (concord.
    actions.progress). A goal written by a Part 2 program's staff is withheld as on the plan
    page (disclosure.filter_records: audited, counted in the withheld line)."""
    plan = current_plan(session, access.patient.id)
    if plan is None:
        return None, []
    goals = session.scalars(
        select(Goal)
        .where(
            Goal.plan_id == plan.id,
            Goal.removed_at.is_(None),
            Goal.measure_instrument.is_not(None),
        )
        .order_by(Goal.created_at)
    )
    return plan.activated_on, disclosure.filter_records(
        session, access, list(goals), object_type="Goal", action="read"
    )


@disclosure.discloses("CarePlan")
def list_plans(session: Session, *, access: PatientAccess) -> list[CarePlan]:
    plans = list(
        session.scalars(
            select(CarePlan)
            .where(CarePlan.patient_id == access.patient.id)
            .order_by(CarePlan.created_at.desc())
        )
    )
    record(
        session, by=access.by, action="search", object_type="CarePlan", patient_id=access.patient.id
    )
    return plans


@disclosure.discloses("CarePlan")
def get_plan(
    session: Session, *, access: PatientAccess, plan_id: uuid.UUID | str | None = None
) -> CarePlan | None:
    """The patient's current plan, or a named one of theirs (audited)."""
    if plan_id is None:
        plan = current_plan(session, access.patient.id)
    else:
        try:
            plan = session.get(CarePlan, uuid.UUID(str(plan_id)))
        except ValueError:
            plan = None
        if plan is None or plan.patient_id != access.patient.id:
            raise NotFound("No such care plan.")
    if plan is not None:
        record(
            session,
            by=access.by,
            action="read",
            object_type="CarePlan",
            object_id=plan.id,
            patient_id=access.patient.id,
        )
    return plan


def load_contents(session: Session, plan: CarePlan) -> PlanContents:
    def items(model: Any) -> list[Any]:
        return list(
            session.scalars(
                select(model)
                .where(model.plan_id == plan.id, model.removed_at.is_(None))
                .order_by(model.created_at)
            )
        )

    goals = items(Goal)
    milestones: list[Milestone] = []
    if goals:
        milestones = list(
            session.scalars(
                select(Milestone)
                .where(Milestone.goal_id.in_([g.id for g in goals]), Milestone.removed_at.is_(None))
                .order_by(Milestone.created_at)
            )
        )
    return PlanContents(
        plan=plan,
        concerns=items(Concern),
        goals=goals,
        milestones=milestones,
        interventions=items(Intervention),
        action_steps=items(ActionStep),
        strengths=items(Strength),
        barriers=items(Barrier),
        contingencies=items(Contingency),
    )


_SECTION_MODELS: dict[str, Any] = {
    "concerns": Concern,
    "goals": Goal,
    "milestones": Milestone,
    "interventions": Intervention,
    "action_steps": ActionStep,
    "strengths": Strength,
    "barriers": Barrier,
    "contingencies": Contingency,
}


def visible_contents(session: Session, access: PatientAccess, plan: CarePlan) -> PlanContents:
    """The plan's items `access` may see: each section through the disclosure decision, by
    category and Part 2 label (items written by a Part 2 program's staff: concord/part2/
    rules.yaml), so a team member without a permitting consent does not see them; withheld
    items are audited and counted in the withheld line (disclosure.filter_records). The
    plan's revisions are written from `load_contents`, never from this."""
    contents = load_contents(session, plan)
    kept = {
        section: disclosure.filter_records(
            session,
            access,
            getattr(contents, section),
            object_type=_SECTION_MODELS[section].__name__,
            action="read",
        )
        for section in history.SECTIONS
    }
    return PlanContents(plan=plan, **kept)


def list_interventions(session: Session, *, access: PatientAccess) -> list[Intervention]:
    """The current plan's interventions (not removed) that `access` may see, in the order
    they were added: one written by a Part 2 program's staff passes the disclosure decision
    as on the plan page (what the decisions domain lists beside a choice)."""
    plan = current_plan(session, access.patient.id)
    if plan is None:
        return []
    rows = list(
        session.scalars(
            select(Intervention)
            .where(Intervention.plan_id == plan.id, Intervention.removed_at.is_(None))
            .order_by(Intervention.created_at)
        )
    )
    return disclosure.filter_records(
        session, access, rows, object_type="Intervention", action="read"
    )


def withheld_item_ids(session: Session, access: PatientAccess, plan: CarePlan) -> set[str]:
    """The ids of the plan's items, removed ones included, that `access` may not see (what
    its revisions' snapshots must not show): decided by disclosure.filter_records, so the
    withholding is audited and a Part 2 item disclosed under consent is logged."""
    return _item_labels(session, access, plan)[0]


def _item_labels(
    session: Session, access: PatientAccess, plan: CarePlan
) -> tuple[set[str], set[str]]:
    """The ids of the plan's items (removed ones included) withheld from `access`, and of
    those shown that carry the 42 CFR Part 2 label (the history's badge)."""
    withheld: set[str] = set()
    part2: set[str] = set()
    for section, model in _SECTION_MODELS.items():
        if section == "milestones":
            query = (
                select(Milestone)
                .join(Goal, Milestone.goal_id == Goal.id)
                .where(Goal.plan_id == plan.id)
            )
        else:
            query = select(model).where(model.plan_id == plan.id)
        rows = list(session.scalars(query))
        kept = disclosure.filter_records(
            session, access, rows, object_type=model.__name__, action="history"
        )
        withheld |= {str(r.id) for r in rows} - {str(r.id) for r in kept}
        part2 |= {str(r.id) for r in kept if disclosure.label_of(session, access, r).part2}
    return withheld, part2


def _badge(changes: list[Change], part2: set[str]) -> list[Change]:
    for change in changes:
        change.part2 = change.item_id is not None and change.item_id in part2
    return changes


def _redact(snapshot: dict[str, Any] | None, withheld: set[str]) -> dict[str, Any] | None:
    """A snapshot without the withheld items, nor a withheld goal's statement where another
    item names its goal."""
    if snapshot is None or not withheld:
        return snapshot
    hidden_goals = {
        values.get("statement")
        for item_id, values in snapshot.get("goals", {}).items()
        if item_id in withheld
    }
    out = dict(snapshot)
    for section in history.SECTIONS:
        items = {}
        for item_id, values in snapshot.get(section, {}).items():
            if item_id in withheld:
                continue
            if values.get("goal") is not None and values.get("goal") in hidden_goals:
                values = {**values, "goal": None}
            items[item_id] = values
        out[section] = items
    return out


class RedactedRevision:
    """A revision as one reader sees it: its snapshot without the items withheld from them,
    and its changes recomputed from the redacted snapshots, each naming its item and whether
    that item carries the Part 2 label (read-only; the stored revision is never changed)."""

    def __init__(
        self,
        revision: PlanRevision,
        previous: PlanRevision | None,
        withheld: set[str],
        part2: set[str] | None = None,
    ):
        self._revision = revision
        self.snapshot = _redact(revision.snapshot, withheld)
        before = _redact(previous.snapshot, withheld) if previous is not None else None
        changes = _badge(history.diff(before, self.snapshot or {}), part2 or set())
        self.summary = {**(revision.summary or {}), "changes": [c.to_dict() for c in changes]}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._revision, name)


@dataclass
class AgreementState:
    revision: int
    patient: PlanAgreement | None
    lead: PlanAgreement | None
    ever_agreed: bool

    @property
    def agreed(self) -> bool:
        return self.patient is not None and self.lead is not None

    @property
    def awaiting(self) -> list[str]:
        missing = []
        if self.patient is None:
            missing.append(AgreementParty.patient.value)
        if self.lead is None:
            missing.append(AgreementParty.lead_clinician.value)
        return missing

    @property
    def changed_since_agreed(self) -> bool:
        return self.ever_agreed and not self.agreed


def agreement_state(
    session: Session, plan: CarePlan, agreements: list[PlanAgreement] | None = None
) -> AgreementState:
    if agreements is None:
        agreements = list(
            session.scalars(
                select(PlanAgreement)
                .where(PlanAgreement.plan_id == plan.id)
                .order_by(PlanAgreement.revision_number.desc())
            )
        )
    valid = [a for a in agreements if a.revision_number >= plan.substantive_revision_number]
    patient = next((a for a in valid if a.party == AgreementParty.patient), None)
    lead = next((a for a in valid if a.party == AgreementParty.lead_clinician), None)
    return AgreementState(plan.substantive_revision_number, patient, lead, bool(agreements))


def review_state(plan: CarePlan, on: date) -> str:
    """not_scheduled, scheduled, due (within a week) or overdue."""
    if plan.status != PlanStatus.active or plan.next_review_on is None:
        return "not_scheduled"
    if plan.next_review_on < on:
        return "overdue"
    if plan.next_review_on - on <= timedelta(days=REVIEW_DUE_WINDOW_DAYS):
        return "due"
    return "scheduled"


@dataclass
class PlanView:
    plan: CarePlan
    contents: PlanContents
    agreement: AgreementState
    review: str
    today: date
    comments: list[PlanComment]
    members: list[CareTeamMember]


def plan_view(
    session: Session, *, access: PatientAccess, plan_id: uuid.UUID | str | None = None
) -> PlanView | None:
    plan = get_plan(session, access=access, plan_id=plan_id)
    if plan is None:
        return None
    on = org_today(session, access.patient)
    comments: list[PlanComment] = []
    if access.can_comment:
        # A comment written by a Part 2 program's staff is the program's record.
        comments = disclosure.filter_records(
            session,
            access,
            list(
                session.scalars(
                    select(PlanComment)
                    .where(PlanComment.plan_id == plan.id)
                    .order_by(PlanComment.created_at)
                )
            ),
            object_type="PlanComment",
            action="read",
        )
    return PlanView(
        plan=plan,
        contents=visible_contents(session, access, plan),
        agreement=agreement_state(session, plan),
        review=review_state(plan, on),
        today=on,
        comments=comments,
        members=members_of_patient(session, patient_id=access.patient.id),
    )


# --- revisions -----------------------------------------------------------------------------


def _latest_snapshot(session: Session, plan: CarePlan) -> dict[str, Any] | None:
    if plan.revision_number == 0:
        return None
    return session.scalar(
        select(PlanRevision.snapshot).where(
            PlanRevision.plan_id == plan.id, PlanRevision.number == plan.revision_number
        )
    )


def _revise(
    session: Session,
    *,
    access: PatientAccess,
    plan: CarePlan,
    reason: str | None,
    reason_message: dict[str, Any] | None = None,
) -> PlanRevision | None:
    """Write a revision if the plan's content changed; none if nothing did."""
    session.flush()
    snap = history.snapshot(load_contents(session, plan))
    changes = history.diff(_latest_snapshot(session, plan), snap)
    if not changes and plan.revision_number > 0:
        return None
    substantive = plan.revision_number == 0 or is_substantive(changes)
    plan.revision_number += 1
    if substantive:
        plan.substantive_revision_number = plan.revision_number
    revision = PlanRevision(
        plan_id=plan.id,
        number=plan.revision_number,
        author_id=access.by.id,
        created_at=now(),
        reason=reason,
        summary={"changes": [_stored(c) for c in changes]}
        # A reason the system wrote, as a message each reader sees in their language.
        | ({"reason": reason_message} if reason_message else {}),
        substantive=substantive,
        snapshot=snap,
    )
    session.add(revision)
    session.flush()
    return revision


def _stored(change: Change) -> dict[str, Any]:
    """A change as a revision keeps it: the label is the reader's, decided when read."""
    data = change.to_dict()
    data.pop("part2")
    return data


def list_revisions(
    session: Session, *, access: PatientAccess, plan: CarePlan
) -> list[PlanRevision]:
    _require_history(session, access)
    record(
        session,
        by=access.by,
        action="history",
        object_type="CarePlan",
        object_id=plan.id,
        patient_id=access.patient.id,
    )
    revisions = list(
        session.scalars(
            select(PlanRevision)
            .where(PlanRevision.plan_id == plan.id)
            .order_by(PlanRevision.number.desc())
        )
    )
    withheld, part2 = _item_labels(session, access, plan)
    by_number = {r.number: r for r in revisions}
    # Each revision's changes are recomputed from the snapshots, so every change names its
    # item (revisions stored before changes did too) and carries the item's Part 2 badge.
    return [
        RedactedRevision(r, by_number.get(r.number - 1), withheld, part2)  # type: ignore[misc]
        for r in revisions
    ]


def compare_revisions(
    session: Session, *, access: PatientAccess, plan: CarePlan, older: int, newer: int
) -> tuple[PlanRevision, PlanRevision, list[Change]]:
    """What changed between two revisions of the plan, in either order (the team's)."""
    _require_history(session, access)
    return _compare(session, access=access, plan=plan, older=older, newer=newer)


def changes_since(
    session: Session, *, access: PatientAccess, plan: CarePlan, revision: int
) -> list[Change]:
    """What changed in the plan since `revision` (the one the patient last agreed to), for
    the patient's portal: the patient and their team; never a family member."""
    if not (access.is_self or access.on_team):
        raise refuse_record(session, access, action="compare", object_type="CarePlan")
    return _compare(session, access=access, plan=plan, older=revision, newer=plan.revision_number)[
        2
    ]


def _require_history(session: Session, access: PatientAccess) -> None:
    if not access.can_read_history:
        raise refuse_record(session, access, action="history", object_type="CarePlan")


def _compare(
    session: Session, *, access: PatientAccess, plan: CarePlan, older: int, newer: int
) -> tuple[PlanRevision, PlanRevision, list[Change]]:
    older, newer = sorted((older, newer))
    revisions = {
        r.number: r
        for r in session.scalars(
            select(PlanRevision).where(
                PlanRevision.plan_id == plan.id, PlanRevision.number.in_([older, newer])
            )
        )
    }
    if older not in revisions or newer not in revisions:
        raise NotFound(Msg("This plan has no revision with that number."))
    record(
        session,
        by=access.by,
        action="compare",
        object_type="CarePlan",
        object_id=plan.id,
        patient_id=access.patient.id,
        detail={"from": older, "to": newer},
    )
    first, second = revisions[older], revisions[newer]
    withheld, part2 = _item_labels(session, access, plan)
    before, after = _redact(first.snapshot, withheld), _redact(second.snapshot, withheld)
    changes = history.diff(before, after or {})
    return first, second, _badge(changes, part2)


# --- changing the plan ---------------------------------------------------------------------


def _require_editor(
    session: Session, access: PatientAccess, *, action: str, object_type: str
) -> None:
    if not access.can_edit_plan:
        raise deny(
            session,
            access,
            action=action,
            object_type=object_type,
            message="Only the care team can change this part of the plan.",
        )


def _lock(session: Session, plan: CarePlan) -> CarePlan:
    locked = session.scalar(
        select(CarePlan)
        .where(CarePlan.id == plan.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert locked is not None
    return locked


def _editable_plan(
    session: Session, access: PatientAccess, plan_id: uuid.UUID | None = None
) -> CarePlan:
    plan = current_plan(session, access.patient.id)
    if plan is None:
        raise NotFound(Msg("This patient has no current care plan. Start one first."))
    if plan_id is not None and plan.id != plan_id:
        raise Conflict(Msg("That plan is no longer the current one; open the current plan."))
    plan = _lock(session, plan)
    if plan.status not in CURRENT_PLAN_STATUSES:
        raise Conflict(Msg("This plan has ended; start a new plan to make changes."))
    return plan


def _touch(item: Any, by: User) -> None:
    item.version = (item.version or 0) + 1
    item.updated_at = now()
    item.updated_by_id = by.id


def _stale(session: Session, item: Any, section: str) -> Conflict:
    editor = session.get(User, item.updated_by_id) if item.updated_by_id else None
    return Conflict(
        Msg(
            "Someone else changed this %(item)s after you opened it. Your changes were not saved; "
            "they are still in the form. Check the current version and save again.",
            item=Msg(history_label(section)),
        ),
        current_version=item.version,
        updated_at=item.updated_at.isoformat() if item.updated_at else None,
        updated_by=editor.name if editor else None,
    )


def history_label(section: str) -> str:
    return SECTION_LABELS.get(section, section)


def start_plan(session: Session, *, access: PatientAccess, data: PlanStart) -> CarePlan:
    _require_editor(session, access, action="create", object_type="CarePlan")
    if current_plan(session, access.patient.id) is not None:
        raise Conflict(Msg("This patient already has a current care plan."))
    plan = CarePlan(
        patient_id=access.patient.id,
        title=data.title,
        status=PlanStatus.draft,
        created_by_id=access.by.id,
        created_at=now(),
    )
    session.add(plan)
    session.flush()
    _revise(session, access=access, plan=plan, reason=data.reason)
    record(
        session,
        by=access.by,
        action="create",
        object_type="CarePlan",
        object_id=plan.id,
        patient_id=access.patient.id,
    )
    return plan


def review_interval(session: Session, patient: Patient) -> int:
    org = _org(session, patient)
    return org.review_interval_days or get_settings().review_interval_days


def activate_plan(session: Session, *, access: PatientAccess, version: int) -> CarePlan:
    _require_editor(session, access, action="activate", object_type="CarePlan")
    plan = _editable_plan(session, access)
    if plan.version != version:
        raise Conflict(Msg("The plan changed after you opened it. Check it and try again."))
    if plan.status == PlanStatus.active:
        raise Conflict(Msg("This plan is already active."))
    on = org_today(session, access.patient)
    plan.status = PlanStatus.active
    plan.activated_on = on
    plan.next_review_on = on + timedelta(days=review_interval(session, access.patient))
    plan.version += 1
    _revise(session, access=access, plan=plan, reason=None)
    record(
        session,
        by=access.by,
        action="activate",
        object_type="CarePlan",
        object_id=plan.id,
        patient_id=access.patient.id,
    )
    # Active treatment starts measurement: the organization's default check-ins.
    schedule_defaults(session, access=access, start_on=on)
    return plan


def end_plan(
    session: Session, *, access: PatientAccess, status: PlanStatus, reason: str
) -> CarePlan:
    """Complete or withdraw (revoke) the current plan. Its history stays."""
    if status not in (PlanStatus.completed, PlanStatus.revoked):
        raise InvalidInput.field("status", Msg("must be completed or revoked"))
    _require_editor(session, access, action="end", object_type="CarePlan")
    plan = _editable_plan(session, access)
    plan.status = status
    plan.ended_on = org_today(session, access.patient)
    plan.end_reason = reason
    plan.next_review_on = None
    plan.version += 1
    _revise(session, access=access, plan=plan, reason=reason)
    record(
        session,
        by=access.by,
        action="end",
        object_type="CarePlan",
        object_id=plan.id,
        patient_id=access.patient.id,
        detail={"status": str(status)},
    )
    return plan


def record_review(session: Session, *, access: PatientAccess, data: ReviewIn) -> CarePlan:
    """The team reviewed the plan: note it, and set the next review (default: one interval on)."""
    _require_editor(session, access, action="review", object_type="CarePlan")
    plan = _editable_plan(session, access)
    if plan.version != data.version:
        raise Conflict(Msg("The plan changed after you opened it. Check it and try again."))
    if plan.status != PlanStatus.active:
        raise Conflict(Msg("Activate the plan before recording a review."))
    on = org_today(session, access.patient)
    check_date_range(data.next_review_on, "next_review_on")
    if data.next_review_on is not None and data.next_review_on <= on:
        raise InvalidInput.field("next_review_on", Msg("must be after today"))
    plan.last_reviewed_on = on
    plan.next_review_on = data.next_review_on or on + timedelta(
        days=review_interval(session, access.patient)
    )
    plan.version += 1
    _revise(session, access=access, plan=plan, reason=data.note)
    record(
        session,
        by=access.by,
        action="review",
        object_type="CarePlan",
        object_id=plan.id,
        patient_id=access.patient.id,
    )
    return plan


def update_preferences(session: Session, *, access: PatientAccess, data: PreferencesIn) -> CarePlan:
    _require_editor(session, access, action="update", object_type="CarePlan")
    plan = _editable_plan(session, access)
    if plan.version != data.version:
        raise Conflict(
            Msg(
                "Someone else changed the preferences after you opened them. Your "
                "changes were not saved; they are still in the form. Check the "
                "current version and save again."
            ),
            current_version=plan.version,
        )
    for name in history.PREFERENCE_FIELDS:
        value = getattr(data, name)
        setattr(plan, name, str(value) if hasattr(value, "value") else value)
    plan.version += 1
    _revise(session, access=access, plan=plan, reason=data.reason)
    record(
        session,
        by=access.by,
        action="update",
        object_type="CarePlan",
        object_id=plan.id,
        patient_id=access.patient.id,
        detail={"part": "preferences"},
    )
    return plan


# --- items ---------------------------------------------------------------------------------


def _plan_goal(
    session: Session, plan: CarePlan, goal_id: uuid.UUID | None, field: str = "goal_id"
) -> Goal | None:
    if goal_id is None:
        return None
    goal = session.get(Goal, goal_id)
    if goal is None or goal.plan_id != plan.id or goal.removed_at is not None:
        raise InvalidInput.field(field, Msg("must be one of this plan's goals"))
    return goal


def _team_member_id(
    session: Session, patient: Patient, user_id: uuid.UUID | str | None, field: str
) -> uuid.UUID | None:
    if user_id is None:
        return None
    try:
        uid = uuid.UUID(str(user_id))
    except ValueError:
        raise InvalidInput.field(
            field, Msg("must be the patient or someone on the care team")
        ) from None
    member = session.scalar(
        select(CareTeamMember)
        .join(CareTeam, CareTeam.id == CareTeamMember.care_team_id)
        .where(
            CareTeam.patient_id == patient.id,
            CareTeamMember.user_id == uid,
            CareTeamMember.ended_at.is_(None),
        )
    )
    if member is None:
        raise InvalidInput.field(field, Msg("must be someone on this patient's care team"))
    return uid


def _check_concern_code(data: ConcernIn) -> tuple[str | None, str | None]:
    if not data.code:
        return None, None
    if data.code_system is None:
        raise InvalidInput.field("code_system", Msg("choose ICD-10-CM or SNOMED CT for the code"))
    code = data.code.strip()
    if data.code_system == CodeSystem.icd10:
        code = code.upper()
        if not ICD10_RE.match(code):
            raise InvalidInput.field(
                "code", Msg("must be an ICD-10-CM code such as F32.1 or F10.20")
            )
    elif not SNOMED_RE.match(code):
        raise InvalidInput.field("code", Msg("must be a SNOMED CT concept id (6 to 18 digits)"))
    return str(data.code_system), code


def _columns(
    session: Session, access: PatientAccess, plan: CarePlan, section: str, data: Input
) -> dict[str, Any]:
    """Turn validated input into column values, checking references into the plan and team."""
    values = {k: (str(v) if hasattr(v, "value") else v) for k, v in data.model_dump().items()}
    values.pop("version", None)
    values.pop("reason", None)
    for name in ("due_on", "target_on", "reached_on"):
        if name in values:
            check_date_range(values[name], name)
    if section == "goals":
        _check_substance_goal(values)
        _check_goal_measure(values)
    if section == "concerns":
        assert isinstance(data, ConcernIn)
        values["code_system"], values["code"] = _check_concern_code(data)
    elif section == "milestones":
        _plan_goal(session, plan, values["goal_id"])
        if values["reached_on"] and values["reached_on"] > org_today(session, access.patient):
            raise InvalidInput.field("reached_on", Msg("cannot be in the future"))
    elif section == "interventions":
        _plan_goal(session, plan, values["goal_id"])
        values["responsible_id"] = _team_member_id(
            session, access.patient, values["responsible_id"], "responsible_id"
        )
    elif section == "action_steps":
        _plan_goal(session, plan, values["goal_id"])
        owner = values.pop("owner")
        values["owner_is_patient"] = owner == "patient"
        values["owner_id"] = (
            None if owner == "patient" else _team_member_id(session, access.patient, owner, "owner")
        )
    return values


def _check_substance_goal(values: dict[str, Any]) -> None:
    """A substance-use goal (issue 19) names its substance and its aim, abstinence or
    reduction, and is in the substance-use area of life. An abstinence goal's target is no
    days of use in the last 30 (filled in when none is given; any other target is refused); a
    reduction goal's target, when it has one, is days of use or, for alcohol, drinks per
    drinking day. A calendar figure is only a substance-use goal's target."""
    substance, aim = values.get("substance"), values.get("use_aim")
    measure = values.get("measure_instrument")
    figure = measure in {m.value for m in UseMeasure}
    if substance is None and aim is None:
        if figure:
            raise InvalidInput.field("substance", Msg("is needed for a days-of-use target"))
        return
    if substance is None:
        raise InvalidInput.field("substance", Msg("is needed for a substance-use goal"))
    if aim is None:
        raise InvalidInput.field("use_aim", Msg("choose not using at all, or using less"))
    if values.get("category") != "substance_use":
        raise InvalidInput.field(
            "category", Msg("must be alcohol or drug use for a goal about a substance")
        )
    if measure is not None and not figure:
        raise InvalidInput.field(
            "measure_instrument",
            Msg("a substance-use goal is followed on the days-of-use calendar"),
        )
    if measure == UseMeasure.drinks_per_drinking_day and substance != Substance.alcohol:
        raise InvalidInput.field("measure_instrument", Msg("drinks are counted for alcohol only"))
    if aim == UseAim.abstinence:
        none = (UseMeasure.days_of_use.value, "at_most", 0.0)
        if measure is None and values.get("measure_op") is None:
            if values.get("measure_value") is None:
                values["measure_instrument"], values["measure_op"], values["measure_value"] = none
                return
        given = (measure, values.get("measure_op"), values.get("measure_value"))
        if given not in (none, (UseMeasure.days_of_use.value, "below", 1.0)):
            raise InvalidInput.field(
                "measure_value",
                Msg("an abstinence goal's target is no days of use (at most 0)"),
            )


def _check_goal_measure(values: dict[str, Any]) -> None:
    """A goal linked to a measure names the instrument, a comparison and a value in range."""
    parts = [
        values.get("measure_instrument"),
        values.get("measure_op"),
        values.get("measure_value"),
    ]
    if all(p is None for p in parts):
        return
    if any(p is None for p in parts):
        missing = [
            name
            for name, part in zip(
                ("measure_instrument", "measure_op", "measure_value"), parts, strict=True
            )
            if part is None
        ]
        raise InvalidInput.field(missing[0], Msg("is needed to link the goal to a measure"))
    bounds = MEASURE_RANGE.get(str(values["measure_instrument"]))
    if bounds is not None:  # a calendar figure (checked by _check_substance_goal)
        low, high = bounds
        if not low <= float(values["measure_value"]) <= high:
            raise InvalidInput.field(
                "measure_value",
                Msg("must be between %(min)s and %(max)s", min=f"{low:g}", max=f"{high:g}"),
            )
        return
    instrument = library().get(str(values["measure_instrument"]))
    if instrument is None or instrument.main_score is None:
        raise InvalidInput.field("measure_instrument", Msg("must be a questionnaire with a score"))
    score = instrument.main_score
    if not score.min <= float(values["measure_value"]) <= score.max:
        raise InvalidInput.field(
            "measure_value",
            Msg(
                "must be between %(min)s and %(max)s for %(code)s",
                min=f"{score.min:g}",
                max=f"{score.max:g}",
                code=instrument.code,
            ),
        )
    values["measure_instrument"] = instrument.code


def _apply_status_dates(
    session: Session, access: PatientAccess, item: Any, section: str, old_status: str | None
) -> None:
    on = org_today(session, access.patient)
    if section == "action_steps":
        item.done_on = on if item.status == StepStatus.done else None
    if section == "goals" and item.status != old_status:
        item.status_changed_on = on


def add_item(
    session: Session,
    *,
    access: PatientAccess,
    section: str,
    data: Input,
    reason: str | None = None,
    reason_message: dict[str, Any] | None = None,
) -> Any:
    """`reason_message`: a reason the system writes (concord.careplans.reasons), shown to each
    reader in their language; `reason` is then its English text."""
    spec = spec_for(section)
    _require_editor(session, access, action="create", object_type=spec.object_type)
    plan = _editable_plan(session, access)
    values = _columns(session, access, plan, section, data)
    if section == "goals":
        values["proposed_by_id"] = access.by.id
        values["proposed_by_patient"] = False
    if section != "milestones":
        values["plan_id"] = plan.id
    item = spec.model(
        **values,
        author_id=access.by.id,
        updated_by_id=access.by.id,
        created_at=now(),
        updated_at=now(),
    )
    _apply_status_dates(session, access, item, section, None)
    session.add(item)
    session.flush()
    _revise(session, access=access, plan=plan, reason=reason, reason_message=reason_message)
    record(
        session,
        by=access.by,
        action="create",
        object_type=spec.object_type,
        object_id=item.id,
        patient_id=access.patient.id,
    )
    return item


def get_item(
    session: Session,
    *,
    plan: CarePlan,
    section: str,
    item_id: uuid.UUID | str,
    access: PatientAccess | None = None,
) -> Any:
    """An item of the plan (not removed); with `access`, one that `access` may see: an item
    written by a Part 2 program's staff is "no such item" (audited) to someone the
    disclosure decision withholds it from, as on the plan page, so a change by id cannot
    reach what the page does not show."""
    spec = spec_for(section)
    try:
        iid = uuid.UUID(str(item_id))
    except ValueError:
        raise NotFound(Msg("No such item in this plan.")) from None
    item = session.get(spec.model, iid)
    if item is None or item.removed_at is not None:
        raise NotFound(Msg("No such item in this plan."))
    plan_id = (
        item.plan_id
        if section != "milestones"
        else session.scalar(select(Goal.plan_id).where(Goal.id == item.goal_id))
    )
    if plan_id != plan.id:
        raise NotFound(Msg("No such item in this plan."))
    if access is not None:
        disclosure.check_record(
            session,
            access,
            item,
            object_type=spec.model.__name__,
            message=Msg("No such item in this plan."),
        )
    return item


def update_item(
    session: Session,
    *,
    access: PatientAccess,
    section: str,
    item_id: uuid.UUID | str,
    data: Input,
    version: int,
    reason: str | None,
) -> Any:
    spec = spec_for(section)
    _require_editor(session, access, action="update", object_type=spec.object_type)
    plan = _editable_plan(session, access)
    item = get_item(session, plan=plan, section=section, item_id=item_id, access=access)
    if item.version != version:
        raise _stale(session, item, section)
    values = _columns(session, access, plan, section, data)
    old_status = getattr(item, "status", None)
    for name, value in values.items():
        setattr(item, name, value)
    _apply_status_dates(session, access, item, section, old_status)
    _touch(item, access.by)
    _revise(session, access=access, plan=plan, reason=reason)
    record(
        session,
        by=access.by,
        action="update",
        object_type=spec.object_type,
        object_id=item.id,
        patient_id=access.patient.id,
    )
    return item


def remove_item(
    session: Session,
    *,
    access: PatientAccess,
    section: str,
    item_id: uuid.UUID | str,
    version: int,
    reason: str,
) -> None:
    spec = spec_for(section)
    _require_editor(session, access, action="delete", object_type=spec.object_type)
    plan = _editable_plan(session, access)
    item = get_item(session, plan=plan, section=section, item_id=item_id, access=access)
    if item.version != version:
        raise _stale(session, item, section)
    if section == "goals":
        # A goal with milestones, steps or treatments linked to it is stopped, not removed,
        # so what refers to it still makes sense.
        raise Conflict(
            Msg("Goals are not removed: set the goal's status to stopped or revised instead.")
        )
    item.removed_at = now()
    _touch(item, access.by)
    _revise(session, access=access, plan=plan, reason=reason)
    record(
        session,
        by=access.by,
        action="delete",
        object_type=spec.object_type,
        object_id=item.id,
        patient_id=access.patient.id,
    )


def set_step_status(
    session: Session,
    *,
    access: PatientAccess,
    step_id: uuid.UUID | str,
    status: StepStatus,
    version: int,
) -> ActionStep:
    """Mark an action step done (or not). The patient may do this for their own steps."""
    plan = current_plan(session, access.patient.id)
    if plan is None:
        raise NotFound(Msg("No such item in this plan."))
    step = get_item(session, plan=plan, section="action_steps", item_id=step_id, access=access)
    allowed = access.can_edit_plan or (access.is_self and step.owner_is_patient)
    if not allowed:
        raise deny(
            session,
            access,
            action="update",
            object_type="ActionStep",
            object_id=step.id,
            message="Only the care team, or you for your own steps, can mark this.",
        )
    plan = _editable_plan(session, access)
    if step.version != version:
        raise _stale(session, step, "action_steps")
    if step.status != status:
        step.status = str(status)
        _apply_status_dates(session, access, step, "action_steps", None)
        _touch(step, access.by)
        _revise(session, access=access, plan=plan, reason=None)
        record(
            session,
            by=access.by,
            action="update",
            object_type="ActionStep",
            object_id=step.id,
            patient_id=access.patient.id,
            detail={"status": str(status)},
        )
    return step


def propose_goal(
    session: Session,
    *,
    access: PatientAccess,
    data: GoalProposal,
    social_concern_id: uuid.UUID | None = None,
) -> Goal:
    """A goal the patient (or the team, on their behalf) proposes in the patient's words. If
    there is no plan yet, this starts a draft for the team to build on. `social_concern_id`:
    the social need it addresses, checked by the caller (concord.actions.social)."""
    if not access.can_propose_goal:
        raise deny(
            session,
            access,
            action="create",
            object_type="Goal",
            message="You cannot propose goals for this person.",
        )
    plan = current_plan(session, access.patient.id)
    if plan is None:
        plan = CarePlan(
            patient_id=access.patient.id,
            title="Care plan",
            status=PlanStatus.draft,
            created_by_id=access.by.id,
            created_at=now(),
        )
        session.add(plan)
        session.flush()
        _revise(session, access=access, plan=plan, reason=None)
        record(
            session,
            by=access.by,
            action="create",
            object_type="CarePlan",
            object_id=plan.id,
            patient_id=access.patient.id,
        )
    plan = _editable_plan(session, access)
    goal = Goal(
        plan_id=plan.id,
        statement=data.statement,
        category=str(data.category or GoalCategory.wellbeing),
        priority=str(data.priority),
        status=GoalStatus.proposed,
        proposed_by_id=access.by.id,
        proposed_by_patient=access.is_self,
        social_concern_id=social_concern_id,
        author_id=access.by.id,
        updated_by_id=access.by.id,
        created_at=now(),
        updated_at=now(),
    )
    session.add(goal)
    session.flush()
    _revise(session, access=access, plan=plan, reason=data.why)
    record(
        session,
        by=access.by,
        action="propose",
        object_type="Goal",
        object_id=goal.id,
        patient_id=access.patient.id,
    )
    if access.is_self:
        _tell_the_team(session, access, "patient_goal")
    return goal


def _tell_the_team(session: Session, access: PatientAccess, kind: str) -> None:
    """The patient did something the team must read: tell the lead and the care managers."""
    notify_care_team(session, patient_id=access.patient.id, kind=kind)


def add_comment(session: Session, *, access: PatientAccess, body: str) -> PlanComment:
    if not access.can_comment:
        raise deny(
            session,
            access,
            action="create",
            object_type="PlanComment",
            message="You cannot comment on this plan.",
        )
    plan = current_plan(session, access.patient.id)
    if plan is None:
        raise NotFound(Msg("There is no plan to comment on yet."))
    comment = PlanComment(plan_id=plan.id, author_id=access.by.id, body=body, created_at=now())
    session.add(comment)
    session.flush()
    record(
        session,
        by=access.by,
        action="create",
        object_type="PlanComment",
        object_id=comment.id,
        patient_id=access.patient.id,
    )
    if access.is_self:
        _tell_the_team(session, access, "patient_comment")
    return comment


def agree(session: Session, *, access: PatientAccess, revision: int) -> PlanAgreement:
    """Sign off the plan as it stood at `revision` (the one the person was looking at)."""
    if access.is_self:
        party = AgreementParty.patient
    elif access.on_team and access.is_lead:
        party = AgreementParty.lead_clinician
    else:
        raise deny(
            session,
            access,
            action="agree",
            object_type="CarePlan",
            message="Only the patient and the team's lead clinician sign off the plan.",
        )
    plan = _editable_plan(session, access)
    if revision > plan.revision_number or revision < 1:
        raise InvalidInput.field("revision", Msg("is not a revision of this plan"))
    if revision < plan.substantive_revision_number:
        raise Conflict(
            Msg(
                "The plan changed after you opened it. Read the changes, then agree "
                "to the current version."
            ),
            current_revision=plan.revision_number,
        )
    existing = session.scalar(
        select(PlanAgreement).where(
            PlanAgreement.plan_id == plan.id,
            PlanAgreement.party == party,
            PlanAgreement.revision_number >= plan.substantive_revision_number,
        )
    )
    if existing is not None:
        return existing
    agreement = PlanAgreement(
        plan_id=plan.id,
        revision_number=revision,
        user_id=access.by.id,
        party=party,
        agreed_at=now(),
    )
    session.add(agreement)
    session.flush()
    record(
        session,
        by=access.by,
        action="agree",
        object_type="CarePlan",
        object_id=plan.id,
        patient_id=access.patient.id,
        detail={"revision": revision, "party": str(party)},
    )
    return agreement


# --- lists across patients -----------------------------------------------------------------


@dataclass
class PlanSummary:
    plan: CarePlan | None
    review: str
    agreement: AgreementState | None
    # The most recent plan that ended, for a patient with no current one.
    last_ended: CarePlan | None = None


def plan_summaries(
    session: Session, patients: list[Patient], on: date
) -> dict[uuid.UUID, PlanSummary]:
    """Each patient's current plan (or last ended one), review and agreement state, in two
    queries."""
    ids = [p.id for p in patients]
    if not ids:
        return {}
    current: dict[uuid.UUID, CarePlan] = {}
    ended: dict[uuid.UUID, CarePlan] = {}
    for plan in session.scalars(
        select(CarePlan).where(CarePlan.patient_id.in_(ids)).order_by(CarePlan.created_at.desc())
    ):
        if plan.is_current:
            current[plan.patient_id] = plan
        else:
            ended.setdefault(plan.patient_id, plan)
    agreements: dict[uuid.UUID, list[PlanAgreement]] = {}
    if current:
        for agreement in session.scalars(
            select(PlanAgreement)
            .where(PlanAgreement.plan_id.in_([p.id for p in current.values()]))
            .order_by(PlanAgreement.revision_number.desc())
        ):
            agreements.setdefault(agreement.plan_id, []).append(agreement)
    result = {}
    for patient_id in ids:
        plan = current.get(patient_id)
        result[patient_id] = PlanSummary(
            plan=plan,
            review=review_state(plan, on) if plan else "not_scheduled",
            agreement=agreement_state(session, plan, agreements.get(plan.id, [])) if plan else None,
            last_ended=None if plan else ended.get(patient_id),
        )
    return result


@dataclass
class StepRow:
    step: ActionStep
    patient: Patient
    goal: str | None


def my_action_steps(session: Session, *, by: User, include_done: bool = False) -> list[StepRow]:
    """Steps this person owns: a clinician's across their patients; a patient's own. Each
    patient's steps, and the goals they name, pass the disclosure decision as on the plan
    page: a step or goal written by a Part 2 program's staff is withheld (audited, counted in
    the withheld line) from a clinician outside the program without a permitting consent; a
    step whose goal is withheld is shown without the goal's statement."""
    query = (
        select(ActionStep, Patient, Goal)
        .join(CarePlan, CarePlan.id == ActionStep.plan_id)
        .join(Patient, Patient.id == CarePlan.patient_id)
        .outerjoin(Goal, Goal.id == ActionStep.goal_id)
        .where(
            ActionStep.removed_at.is_(None),
            CarePlan.status.in_([str(s) for s in CURRENT_PLAN_STATUSES]),
            Patient.organization_id == by.organization_id,
        )
    )
    if not include_done:
        query = query.where(ActionStep.status == StepStatus.to_do)
    if by.is_patient:
        relation = Relation.self
        query = query.where(Patient.user_id == by.id, ActionStep.owner_is_patient.is_(True))
    elif by.is_clinician:
        relation = Relation.team
        query = query.where(
            ActionStep.owner_id == by.id,
            # still on the patient's team
            select(CareTeamMember.id)
            .join(CareTeam, CareTeam.id == CareTeamMember.care_team_id)
            .where(
                CareTeam.patient_id == Patient.id,
                CareTeamMember.user_id == by.id,
                CareTeamMember.ended_at.is_(None),
            )
            .exists(),
        )
    else:
        return []
    found = list(
        session.execute(
            query.order_by(ActionStep.due_on.is_(None), ActionStep.due_on, ActionStep.created_at)
        )
    )
    patients = {patient.id: patient for _, patient, _ in found}
    # One load of the labels and consents for every patient listed (no query per patient).
    disclosure.prepare(session, by.organization_id, list(patients))
    kept_steps: set[uuid.UUID] = set()
    kept_goals: set[uuid.UUID] = set()
    for patient_id, patient in patients.items():
        # The query proved the relation: the patient themself, or a clinician on the team.
        acc = PatientAccess(by, patient, relation)
        steps = [step for step, p, _ in found if p.id == patient_id]
        goals = list(
            {g.id: g for _, p, g in found if p.id == patient_id and g is not None}.values()
        )
        kept_steps |= {
            s.id
            for s in disclosure.filter_records(
                session, acc, steps, object_type="ActionStep", action="list"
            )
        }
        kept_goals |= {
            g.id
            for g in disclosure.filter_records(
                session, acc, goals, object_type="Goal", action="list"
            )
        }
    rows = [
        StepRow(
            step, patient, goal.statement if goal is not None and goal.id in kept_goals else None
        )
        for step, patient, goal in found
        if step.id in kept_steps
    ]
    for patient_id in {row.patient.id for row in rows}:
        record(session, by=by, action="list", object_type="ActionStep", patient_id=patient_id)
    return rows


def count_plans(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(CarePlan)) or 0


# --- reads for the FHIR API and exports (access and audit applied here, once) ------------------


@dataclass
class PlanRecord:
    """A plan with what a whole-record view of it shows beside it."""

    plan: CarePlan
    access: PatientAccess
    team: CareTeam | None
    contents: PlanContents
    latest: PlanRevision | None
    author: User | None


def _plan_record(session: Session, plan: CarePlan, acc: PatientAccess) -> PlanRecord:
    return PlanRecord(
        plan=plan,
        access=acc,
        team=session.scalar(select(CareTeam).where(CareTeam.patient_id == plan.patient_id)),
        contents=visible_contents(session, acc, plan),
        latest=session.scalar(
            select(PlanRevision).where(
                PlanRevision.plan_id == plan.id, PlanRevision.number == plan.revision_number
            )
        ),
        author=session.get(User, plan.created_by_id),
    )


def _read(session: Session, by: User, object_type: str, item: Any, acc: PatientAccess) -> None:
    record(
        session,
        by=by,
        action="read",
        object_type=object_type,
        object_id=item.id,
        patient_id=acc.patient.id,
    )


def get_plan_record(session: Session, *, by: User, ident: str) -> PlanRecord:
    """A plan by its id, if `by` may read its patient's whole record; NotFound (audited) for a
    missing one and one outside the scope alike. The read is in the trail."""
    plan, acc = owned_by_id(session, by, CarePlan, ident, object_type="CarePlan")
    _read(session, by, "CarePlan", plan, acc)
    return _plan_record(session, plan, acc)


def get_goal(session: Session, *, by: User, ident: str) -> tuple[Goal, PatientAccess, PlanContents]:
    """A goal (not removed) by its id, its patient's access and its plan's contents, if `by`
    may read the patient's whole record; NotFound (audited) otherwise."""
    goal_id = parse_id(ident)
    goal = session.get(Goal, goal_id) if goal_id is not None else None
    plan = session.get(CarePlan, goal.plan_id) if goal is not None else None
    acc = owned_record(
        session,
        by,
        goal,
        asked=ident,
        patient_id=plan.patient_id if plan else None,
        object_type="Goal",
    )
    assert goal is not None and plan is not None
    if goal.removed_at is not None:
        raise NotFound(Msg("No such record."))
    # A goal written by a Part 2 program's staff: NotFound (audited) without consent.
    disclosure.check_record(session, acc, goal, object_type="Goal")
    _read(session, by, "Goal", goal, acc)
    return goal, acc, visible_contents(session, acc, plan)


def list_plan_records(
    session: Session,
    *,
    by: User,
    scope: list[PatientAccess] | None,
    statuses: list[str] | None = None,
    after: uuid.UUID | None = None,
    limit: int = 100,
    only_count: bool = False,
) -> Page[PlanRecord]:
    """The plans (of the patients in `scope`; None: every patient `by` may read), in id order,
    with a `statuses` filter; each returned is in the trail."""
    query = select(CarePlan)
    if statuses is not None:
        query = query.where(CarePlan.status.in_(statuses))
    page = page_in_scope(
        session,
        by,
        query,
        patient_col=CarePlan.patient_id,
        id_col=CarePlan.id,
        scope=scope,
        object_type="CarePlan",
        after=after,
        limit=limit,
        only_count=only_count,
    )
    return Page([_plan_record(session, p, acc) for p, acc in page.rows], page.more, page.total)


@dataclass(frozen=True)
class _GoalLabel:
    """What the Part 2 label rules read of a goal (its id and its author), without loading
    the goal: a search decides on every goal it may return before paging."""

    id: uuid.UUID
    author_id: uuid.UUID | None
    __tablename__ = "goal"
    data_category = Goal.data_category


def _withheld_goals(
    session: Session, by: User, query: Any, scope: list[PatientAccess] | None
) -> set[uuid.UUID]:
    """The goals `query` would return (within `scope`) that the disclosure decision withholds
    from `by` (a goal written by a Part 2 program's staff, without a permitting consent; a
    patient's consent refusing the care plan): decided before paging, so Bundle.total and the
    next link count only what is shown. One query of three columns and one load of labels and
    consents for all the patients (disclosure.withheld_among, the filter_records decision)."""
    keys = session.execute(
        query.where(in_scope(by, scope, CarePlan.patient_id)).with_only_columns(
            Goal.id, Goal.author_id, CarePlan.patient_id
        )
    ).all()
    return disclosure.withheld_among(
        session, by, [(_GoalLabel(gid, author), pid) for gid, author, pid in keys]
    )


def _search_disclosed(
    session: Session, object_type: str, rows: list[tuple[Any, PatientAccess]]
) -> None:
    """Tell the disclosure decision what a search page disclosed, patient by patient, so a
    Part 2 record leaving its program is in the disclosure log as on every other path (ADR
    0022). The page was filtered before paging by the same decision (nothing is withheld
    here)."""
    by_patient: dict[uuid.UUID, tuple[PatientAccess, list[Any]]] = {}
    for row, acc in rows:
        by_patient.setdefault(acc.patient.id, (acc, []))[1].append(row)
    for acc, group in by_patient.values():
        disclosure.filter_records(session, acc, group, object_type=object_type)


def list_goals(
    session: Session,
    *,
    by: User,
    scope: list[PatientAccess] | None,
    statuses: list[str] | None = None,
    categories: list[str] | None = None,
    after: uuid.UUID | None = None,
    limit: int = 100,
    only_count: bool = False,
) -> Page[tuple[Goal, PatientAccess, PlanContents]]:
    """The goals not removed (of the patients in `scope`; None: every patient `by` may read)
    that the disclosure decision lets `by` see, in id order, each with the contents of its
    plan that `by` may see (loaded once a plan); each is in the trail. Withheld goals are
    left out before paging (their count in one denied event)."""
    query = (
        select(Goal).join(CarePlan, CarePlan.id == Goal.plan_id).where(Goal.removed_at.is_(None))
    )
    if statuses is not None:
        query = query.where(Goal.status.in_(statuses))
    if categories is not None:
        query = query.where(Goal.category.in_(categories))
    withheld = _withheld_goals(session, by, query, scope)
    if withheld:
        query = query.where(Goal.id.not_in(sorted(withheld)))
        disclosure.audit_withheld_search(session, by, len(withheld), object_type="Goal")
    page = page_in_scope(
        session,
        by,
        query,
        patient_col=CarePlan.patient_id,
        id_col=Goal.id,
        scope=scope,
        object_type="Goal",
        after=after,
        limit=limit,
        only_count=only_count,
    )
    _search_disclosed(session, "Goal", page.rows)
    contents: dict[uuid.UUID, PlanContents] = {}
    rows = []
    for goal, acc in page.rows:
        if goal.plan_id not in contents:
            plan = session.get(CarePlan, goal.plan_id)
            assert plan is not None
            contents[goal.plan_id] = visible_contents(session, acc, plan)
        rows.append((goal, acc, contents[goal.plan_id]))
    return Page(rows, page.more, page.total)


def goal_writers(
    session: Session, goal_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, tuple[Goal, Patient, User | None]]:
    """Each goal, its patient and who last wrote it (its last editor): what its Provenance
    says (concord.fhir.provenance). No access decision here: it is asked only about goals the
    caller has just been given through one (a read or search of them)."""
    ids = list(goal_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Goal, Patient)
        .join(CarePlan, CarePlan.id == Goal.plan_id)
        .join(Patient, Patient.id == CarePlan.patient_id)
        .where(Goal.id.in_(ids))
    ).all()
    return {
        goal.id: (goal, patient, session.get(User, goal.updated_by_id)) for goal, patient in rows
    }

"""The care plan as JSON at /api/v1, for programs (API token) and browser scripts.

Bodies are parsed by the same schemas as the forms, so a bad field gets the same 422 naming it.
A create may send an Idempotency-Key header; a repeat returns the first result, not a copy.
"""

# No `from __future__ import annotations` here: the route factory below relies on annotations
# being real classes when each route function is defined.

import uuid
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from concord import access
from concord.access import PatientAccess
from concord.actions import careplan as plan_actions
from concord.careplans import service as plans
from concord.careplans.history import SECTION_FIELDS
from concord.careplans.models import CarePlan
from concord.careplans.schemas import (
    ITEM_CREATE,
    ITEM_UPDATE,
    AgreeIn,
    CommentIn,
    GoalProposal,
    PlanActivate,
    PlanEndIn,
    PlanStart,
    PreferencesIn,
    RemoveIn,
    ReviewIn,
    StepStatusIn,
)
from concord.errors import InvalidInput, NotFound
from concord.i18n import Msg
from concord.social import service as social_needs
from concord.web.deps import ApiActor, ApiWriter, DbSession
from concord.web.idempotency import Idempotent, create_once

router = APIRouter(prefix="/api/v1", tags=["care plans"])


def _access(session: Session, actor: Any, patient_id: str, action: str = "read") -> PatientAccess:
    return access.patient_for(
        session, actor.user, patient_id, action=action, object_type="CarePlan"
    )


def _date(value: Any) -> Any:
    return value.isoformat() if value is not None else None


def item_json(section: str, item: Any) -> dict[str, Any]:
    fields, _ = SECTION_FIELDS[section]
    data: dict[str, Any] = {
        "id": str(item.id),
        "version": item.version,
        "updated_at": item.updated_at.isoformat(),
    }
    for name in fields:
        if name == "proposed_by":
            data["proposed_by"] = {
                "patient": item.proposed_by_patient,
                "user_id": str(item.proposed_by_id),
            }
        elif name == "goal":
            data["goal_id"] = str(item.goal_id) if item.goal_id else None
        elif name == "responsible":
            data["responsible_id"] = str(item.responsible_id) if item.responsible_id else None
        elif name == "owner":
            data["owner"] = "patient" if item.owner_is_patient else str(item.owner_id)
        else:
            value = getattr(item, name)
            data[name] = _date(value) if hasattr(value, "isoformat") else value
    if section == "action_steps":
        data["done_on"] = _date(item.done_on)
    if section == "goals":
        data["social_concern_id"] = str(item.social_concern_id) if item.social_concern_id else None
    return data


def _serving(data: dict[str, Any], goals: set[str]) -> dict[str, Any]:
    """An item's goal, where the reader sees that goal (a goal withheld from them, a Part 2
    program's, is not named by its id either)."""
    if data.get("goal_id") not in goals:
        data["goal_id"] = None
    return data


def plan_json(
    view: plans.PlanView, needs_shown: set[Any] | frozenset[Any] = frozenset()
) -> dict[str, Any]:
    """`needs_shown`: the social needs the reader may see; a goal's `social_concern_id` names
    only one of them (concord.social.service.concerns_shown), else it is null."""
    plan, contents, agreement = view.plan, view.contents, view.agreement

    def party(a: Any) -> Any:
        return (
            None
            if a is None
            else {
                "user_id": str(a.user_id),
                "revision": a.revision_number,
                "agreed_at": a.agreed_at.isoformat(),
            }
        )

    shown = {str(g.id) for g in contents.goals}
    goals = []
    for goal in contents.goals:
        entry = item_json("goals", goal)
        if goal.social_concern_id not in needs_shown:
            entry["social_concern_id"] = None
        entry["milestones"] = [item_json("milestones", m) for m in contents.milestones_for(goal.id)]
        goals.append(entry)
    return {
        "id": str(plan.id),
        "patient_id": str(plan.patient_id),
        "title": plan.title,
        "status": plan.status,
        "version": plan.version,
        "revision": plan.revision_number,
        "agreement_revision": plan.substantive_revision_number,
        "activated_on": _date(plan.activated_on),
        "next_review_on": _date(plan.next_review_on),
        "last_reviewed_on": _date(plan.last_reviewed_on),
        "review_state": view.review,
        "agreement": {
            "agreed": agreement.agreed,
            "awaiting": agreement.awaiting,
            "patient": party(agreement.patient),
            "lead_clinician": party(agreement.lead),
        },
        "preferences": {
            name: getattr(plan, name)
            for name in (
                "what_matters_most",
                "treatment_preferences",
                "monitoring_intensity",
                "appointment_frequency",
                "preferred_language",
                "interpreter_needed",
                "cultural_considerations",
                "others_involved",
            )
        },
        "concerns": [item_json("concerns", c) for c in contents.concerns],
        "goals": goals,
        "interventions": [
            _serving(item_json("interventions", i), shown) for i in contents.interventions
        ],
        "action_steps": [
            _serving(item_json("action_steps", s), shown) for s in contents.action_steps
        ],
        "strengths": [item_json("strengths", s) for s in contents.strengths],
        "barriers": [item_json("barriers", b) for b in contents.barriers],
        "contingencies": [item_json("contingencies", c) for c in contents.contingencies],
    }


def _view(session: Session, acc: PatientAccess) -> dict[str, Any]:
    view = plans.plan_view(session, access=acc)
    if view is None:
        raise NotFound(Msg("This patient has no current care plan."))
    needs = social_needs.concerns_shown(
        session, access=acc, ids=[g.social_concern_id for g in view.contents.goals]
    )
    return plan_json(view, needs)


@router.get("/patients/{patient_id}/careplan")
def get_careplan(patient_id: str, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    """The patient's current care plan, whole."""
    return _view(session, _access(session, actor, patient_id))


@router.post("/patients/{patient_id}/careplan", status_code=201)
def start_careplan(
    patient_id: str, body: PlanStart, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    acc = _access(session, actor, patient_id, "create")
    plans.start_plan(session, access=acc, data=body)
    return _view(session, acc)


@router.post("/patients/{patient_id}/careplan/activate")
def activate_careplan(
    patient_id: str, body: PlanActivate, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    acc = _access(session, actor, patient_id, "update")
    plan_actions.activate_plan(session, access=acc, version=body.version)
    return _view(session, acc)


@router.post("/patients/{patient_id}/careplan/review")
def review_careplan(
    patient_id: str, body: ReviewIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    acc = _access(session, actor, patient_id, "update")
    plan_actions.record_review(session, access=acc, data=body)
    return _view(session, acc)


@router.post("/patients/{patient_id}/careplan/end")
def end_careplan(
    patient_id: str, body: PlanEndIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    acc = _access(session, actor, patient_id, "update")
    plan = plan_actions.end_plan(session, access=acc, status=body.status, reason=body.reason)
    return {"id": str(plan.id), "status": plan.status, "ended_on": _date(plan.ended_on)}


@router.put("/patients/{patient_id}/careplan/preferences")
def put_preferences(
    patient_id: str, body: PreferencesIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    acc = _access(session, actor, patient_id, "update")
    plans.update_preferences(session, access=acc, data=body)
    return _view(session, acc)


@router.post("/patients/{patient_id}/careplan/agree")
def agree_careplan(
    patient_id: str, body: AgreeIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """Sign off the plan as it stood at `revision`: as the patient, or as the team's lead."""
    acc = _access(session, actor, patient_id, "agree")
    agreement = plan_actions.agree(session, access=acc, revision=body.revision)
    return {
        "party": agreement.party,
        "revision": agreement.revision_number,
        "agreed_at": agreement.agreed_at.isoformat(),
    }


def message_json(sent: Any) -> dict[str, Any] | None:
    """The patient's message to the team that this posted (None for the team's own doing):
    its thread, and whether the words were words of crisis (the app shows the resources)."""
    if sent is None:
        return None
    return {"thread_id": str(sent.thread.id), "crisis": sent.crisis}


@router.post("/patients/{patient_id}/careplan/comments", status_code=201)
def comment_careplan(
    patient_id: str,
    body: CommentIn,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        comment, sent = plan_actions.comment_on_plan(session, access=acc, body=body.body)
        answer = {
            "id": str(comment.id),
            "body": comment.body,
            "created_at": comment.created_at.isoformat(),
            "message": message_json(sent),
        }
        return str(comment.id), answer

    return create_once(session, actor, idem, create=create, replay=lambda result: {"id": result})


@router.post("/patients/{patient_id}/careplan/goals/propose", status_code=201)
def propose_goal(
    patient_id: str,
    body: GoalProposal,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    """A goal in the patient's own words (the patient, or the team on their behalf)."""
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        goal, sent = plan_actions.suggest_goal(session, access=acc, data=body)
        return f"goals/{goal.id}", {**item_json("goals", goal), "message": message_json(sent)}

    return create_once(
        session, actor, idem, create=create, replay=lambda result: _replay(session, acc, result)
    )


@router.post("/patients/{patient_id}/careplan/action_steps/{step_id}/status")
def step_status(
    patient_id: str, step_id: str, body: StepStatusIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    acc = _access(session, actor, patient_id, "update")
    step = plans.set_step_status(
        session, access=acc, step_id=step_id, status=body.status, version=body.version
    )
    return item_json("action_steps", step)


@router.get("/patients/{patient_id}/careplan/revisions")
def list_revisions(patient_id: str, session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    acc = _access(session, actor, patient_id)
    plan = _current(session, acc)
    return [
        {
            "number": r.number,
            "author_id": str(r.author_id),
            "created_at": r.created_at.isoformat(),
            "reason": r.reason,
            "substantive": r.substantive,
            "changes": r.summary.get("changes", []),
        }
        for r in plans.list_revisions(session, access=acc, plan=plan)
    ]


@router.get("/patients/{patient_id}/careplan/compare")
def compare(
    patient_id: str, session: DbSession, actor: ApiActor, request: Request
) -> dict[str, Any]:
    """What changed between two revisions: ?from=N&to=M."""
    acc = _access(session, actor, patient_id)
    plan = _current(session, acc)
    try:
        older = int(request.query_params.get("from", ""))
        newer = int(request.query_params.get("to", ""))
    except ValueError:
        raise InvalidInput(
            "from and to must be revision numbers",
            errors={
                "from": Msg("must be a revision number"),
                "to": Msg("must be a revision number"),
            },
        ) from None
    first, second, changes = plans.compare_revisions(
        session, access=acc, plan=plan, older=older, newer=newer
    )
    return {"from": first.number, "to": second.number, "changes": [c.to_dict() for c in changes]}


@router.get("/me/action-steps")
def my_action_steps(session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """The action steps the caller owns and has not done."""
    return [
        dict(
            item_json("action_steps", row.step),
            patient_id=str(row.patient.id),
            patient_name=row.patient.display_name,
        )
        for row in plans.my_action_steps(session, by=actor.user)
    ]


def _current(session: Session, acc: PatientAccess) -> CarePlan:
    plan = plans.get_plan(session, access=acc)
    if plan is None:
        raise NotFound(Msg("This patient has no current care plan."))
    return plan


def _replay(session: Session, acc: PatientAccess, result: str | None) -> Any:
    plan = plans.current_plan(session, acc.patient.id)
    if plan is None or not result or "/" not in result:
        raise NotFound(Msg("The earlier submission with this key is not available."))
    sec, item_id = result.split("/", 1)
    item = plans.get_item(session, plan=plan, section=sec, item_id=item_id, access=acc)
    return item_json(sec, item)


# --- items: one set of routes per section, each with its own typed body ------------------------


def _register_item_routes(section: str) -> None:
    # The same models the page's forms are read with (concord.careplans.schemas).
    create_body = ITEM_CREATE[section]
    update_body = ITEM_UPDATE[section]

    def add(
        patient_id: str,
        body: create_body,
        session: DbSession,  # type: ignore[valid-type]
        actor: ApiWriter,
        idem: Idempotent,
    ) -> Any:
        acc = _access(session, actor, patient_id, "create")

        def create() -> tuple[str, Any]:
            item = plan_actions.add_item(
                session, access=acc, section=section, data=body, reason=body.reason
            )
            return f"{section}/{item.id}", item_json(section, item)

        return create_once(
            session,
            actor,
            idem,
            create=create,
            replay=lambda result: _replay(session, acc, result),
        )

    def update(
        patient_id: str,
        item_id: uuid.UUID,
        body: update_body,  # type: ignore[valid-type]
        session: DbSession,
        actor: ApiWriter,
    ) -> Any:
        acc = _access(session, actor, patient_id, "update")
        item = plan_actions.update_item(
            session,
            access=acc,
            section=section,
            item_id=item_id,
            data=body,
            version=body.version,
            reason=body.reason,
        )
        return item_json(section, item)

    def remove(
        patient_id: str, item_id: uuid.UUID, body: RemoveIn, session: DbSession, actor: ApiWriter
    ) -> Any:
        acc = _access(session, actor, patient_id, "delete")
        plan_actions.remove_item(
            session,
            access=acc,
            section=section,
            item_id=item_id,
            version=body.version,
            reason=body.reason,
        )
        return {"id": str(item_id), "removed": True}

    path = f"/patients/{{patient_id}}/careplan/{section}"
    router.add_api_route(
        path,
        add,
        methods=["POST"],
        status_code=201,
        name=f"add_{section}",
        summary=f"Add to {section.replace('_', ' ')}",
    )
    router.add_api_route(
        path + "/{item_id}",
        update,
        methods=["PUT"],
        name=f"update_{section}",
        summary=f"Change one of {section.replace('_', ' ')} (quote its version)",
    )
    router.add_api_route(
        path + "/{item_id}/remove",
        remove,
        methods=["POST"],
        name=f"remove_{section}",
        summary=f"Remove one of {section.replace('_', ' ')} (quote its version and a reason)",
    )


for _section in ITEM_CREATE:
    _register_item_routes(_section)

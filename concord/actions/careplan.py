"""Changes to a care plan, then the tasks that follow the registry's flags.

Two flags read the plan: "awaiting agreement" (a substantive change waits for the patient's and
the lead's agreement) and "review overdue" (its review date passed). Each action here makes one
careplans change and brings the patient's tasks up to date in the same transaction, so an
agreement given in the portal or through the JSON API closes the care manager's task at once,
not at the worker's next run.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.actions import messaging
from concord.careplans import service as plans
from concord.careplans.models import CarePlan, Goal, PlanAgreement, PlanComment, PlanStatus
from concord.careplans.schemas import GoalProposal, Input, ReviewIn
from concord.errors import InvalidInput, NotFound
from concord.i18n import Msg
from concord.registry.jobs import sync_patient_tasks
from concord.social import service as social
from concord.social.models import ConcernStatus


def activate_plan(session: Session, *, access: PatientAccess, version: int) -> CarePlan:
    plan = plans.activate_plan(session, access=access, version=version)
    sync_patient_tasks(session, access.patient.id)
    return plan


def record_review(session: Session, *, access: PatientAccess, data: ReviewIn) -> CarePlan:
    plan = plans.record_review(session, access=access, data=data)
    sync_patient_tasks(session, access.patient.id)
    return plan


def end_plan(
    session: Session, *, access: PatientAccess, status: PlanStatus, reason: str
) -> CarePlan:
    plan = plans.end_plan(session, access=access, status=status, reason=reason)
    sync_patient_tasks(session, access.patient.id)
    return plan


def agree(session: Session, *, access: PatientAccess, revision: int) -> PlanAgreement:
    agreement = plans.agree(session, access=access, revision=revision)
    sync_patient_tasks(session, access.patient.id)
    return agreement


def _check_social_need(
    session: Session, access: PatientAccess, section: str, data: Input, *, adding: bool
) -> None:
    """A goal that names a social need names one of this patient's: open (proposed or
    confirmed) for a new link; one the patient declined never. The need is read through the
    social-needs domain (its access and disclosure decision), not by the plan."""
    concern_id = getattr(data, "social_concern_id", None) if section == "goals" else None
    if concern_id is None:
        return
    try:
        concern = social.get_concern(session, access=access, concern_id=concern_id, audit=False)
    except NotFound:
        concern = None
    allowed = (
        (ConcernStatus.proposed, ConcernStatus.confirmed)
        if adding
        else (ConcernStatus.proposed, ConcernStatus.confirmed, ConcernStatus.resolved)
    )
    if concern is None or concern.status not in allowed:
        raise InvalidInput.field(
            "social_concern_id", Msg("must be one of the patient's open social needs")
        )


def add_item(
    session: Session, *, access: PatientAccess, section: str, data: Input, reason: str | None = None
) -> Any:
    _check_social_need(session, access, section, data, adding=True)
    item = plans.add_item(session, access=access, section=section, data=data, reason=reason)
    sync_patient_tasks(session, access.patient.id)
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
    _check_social_need(session, access, section, data, adding=False)
    item = plans.update_item(
        session,
        access=access,
        section=section,
        item_id=item_id,
        data=data,
        version=version,
        reason=reason,
    )
    sync_patient_tasks(session, access.patient.id)
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
    plans.remove_item(
        session, access=access, section=section, item_id=item_id, version=version, reason=reason
    )
    sync_patient_tasks(session, access.patient.id)


def suggest_goal(
    session: Session, *, access: PatientAccess, data: GoalProposal
) -> tuple[Goal, messaging.Sent | None]:
    """A goal proposed; when the patient proposed it, the team gets it as the patient's
    message in the "My care plan" thread (with the reply task). The message sent, if any, says
    whether the patient's words were words of crisis (the door then shows the resources)."""
    goal = plans.propose_goal(session, access=access, data=data)
    return goal, messaging.plan_goal_posted(session, access=access, statement=goal.statement)


def propose_goal(session: Session, *, access: PatientAccess, data: GoalProposal) -> Goal:
    return suggest_goal(session, access=access, data=data)[0]


def comment_on_plan(
    session: Session, *, access: PatientAccess, body: str
) -> tuple[PlanComment, messaging.Sent | None]:
    """A comment on the plan; the patient's reaches the team as their message, as above."""
    comment = plans.add_comment(session, access=access, body=body)
    return comment, messaging.plan_comment_posted(session, access=access, comment=comment.body)


def add_comment(session: Session, *, access: PatientAccess, body: str) -> PlanComment:
    return comment_on_plan(session, access=access, body=body)[0]

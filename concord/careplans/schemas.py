"""What a care-plan form or API call may send. Used by the web pages and /api alike."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from concord.careplans.models import (
    BarrierKind,
    BarrierStatus,
    CodeSystem,
    ConcernStatus,
    GoalCategory,
    GoalStatus,
    InterventionKind,
    InterventionStatus,
    MonitoringIntensity,
    PlanStatus,
    Priority,
    StepStatus,
)
from concord.i18n import N_
from concord.substance.models import Substance, UseAim
from concord.validation import (
    Checkbox,
    OptDate,
    OptText200,
    OptText1000,
    OptText2000,
    Text200,
    Text1000,
    Text2000,
    blank_to_none,
)

# ICD-10-CM: a letter, two characters, then optionally a dot and up to four more (F32.1, F10.20).
ICD10_RE = re.compile(r"^[A-TV-Z][0-9][0-9AB](\.[0-9A-TV-Z]{1,4})?$")
# SNOMED CT concept ids are 6 to 18 digits.
SNOMED_RE = re.compile(r"^[1-9][0-9]{5,17}$")

OptUUID = Annotated[uuid.UUID | None, BeforeValidator(blank_to_none)]
OptEnum = BeforeValidator(blank_to_none)


class Input(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Edit(Input):
    """Every change to an existing item quotes the version it was based on."""

    version: int
    reason: OptText1000 = None


class PlanStart(Input):
    title: Text200 = "Care plan"
    reason: OptText1000 = None


class PlanEnd(Input):
    reason: Text1000


def _ending(value: Any) -> Any:
    if value not in (PlanStatus.completed, PlanStatus.revoked):
        raise ValueError(N_("choose completed or withdrawn"))
    return value


class PlanEndIn(PlanEnd):
    """Ending the plan: completed, or withdrawn (revoked), with the reason."""

    status: Annotated[PlanStatus, BeforeValidator(_ending)]


class AgreeIn(Input):
    """Agreeing to the plan as it stands: the revision you read."""

    revision: int


class PlanActivate(Input):
    version: int


class ReviewIn(Input):
    version: int
    next_review_on: OptDate = None
    note: OptText1000 = None


class PreferencesIn(Edit):
    what_matters_most: OptText2000 = None
    treatment_preferences: OptText2000 = None
    monitoring_intensity: Annotated[MonitoringIntensity | None, OptEnum] = None
    appointment_frequency: OptText200 = None
    preferred_language: OptText200 = None
    interpreter_needed: Checkbox = False
    cultural_considerations: OptText2000 = None
    others_involved: OptText2000 = None


class ConcernIn(Input):
    description: Text1000
    code_system: Annotated[CodeSystem | None, OptEnum] = None
    code: OptText200 = None
    status: ConcernStatus = ConcernStatus.active


class GoalIn(Input):
    statement: Text1000
    category: GoalCategory
    measure: OptText1000 = None
    target: OptText1000 = None
    due_on: OptDate = None
    priority: Priority = Priority.medium
    status: GoalStatus = GoalStatus.accepted
    # Optional link to a questionnaire's score, e.g. PHQ-9 below 10.
    measure_instrument: OptText200 = None
    measure_op: Annotated[Literal["below", "at_most", "at_least"] | None, OptEnum] = None
    measure_value: Annotated[float | None, BeforeValidator(blank_to_none)] = None
    # The patient's social need (a social-needs health concern) the goal addresses, if any.
    social_concern_id: OptUUID = None
    # A substance-use goal: the substance, and abstinence or reduction. Its target is the
    # measure link, naming a calendar figure (days-of-use-30, drinks-per-drinking-day).
    substance: Annotated[Substance | None, OptEnum] = None
    use_aim: Annotated[UseAim | None, OptEnum] = None


class GoalProposal(Input):
    """A goal the patient proposes, in their own words."""

    statement: Text1000
    category: Annotated[GoalCategory | None, OptEnum] = None
    priority: Priority = Priority.medium
    why: OptText1000 = None


class MilestoneIn(Input):
    goal_id: uuid.UUID
    description: Text1000
    target_on: OptDate = None
    reached_on: OptDate = None


class InterventionIn(Input):
    kind: InterventionKind
    description: Text1000
    responsible_id: OptUUID = None
    frequency: OptText200 = None
    status: InterventionStatus = InterventionStatus.not_started
    goal_id: OptUUID = None


class ActionStepIn(Input):
    description: Text1000
    # "patient", or the id of a team member.
    owner: Text200 = "patient"
    due_on: OptDate = None
    status: StepStatus = StepStatus.to_do
    goal_id: OptUUID = None


class StepStatusIn(Input):
    version: int
    status: StepStatus


class StrengthIn(Input):
    description: Text1000


class BarrierIn(Input):
    kind: BarrierKind
    description: Text1000
    way_around: OptText1000 = None
    status: BarrierStatus = BarrierStatus.open


class ContingencyIn(Input):
    if_this: Text1000
    then_we: Text1000


class CommentIn(Input):
    body: Text2000


class RemoveIn(Input):
    version: int
    reason: Text1000


ITEM_SCHEMAS: dict[str, type[Input]] = {
    "concerns": ConcernIn,
    "goals": GoalIn,
    "milestones": MilestoneIn,
    "interventions": InterventionIn,
    "action_steps": ActionStepIn,
    "strengths": StrengthIn,
    "barriers": BarrierIn,
    "contingencies": ContingencyIn,
}


def _changing(value: Any) -> Any:
    if value is None:
        raise ValueError(N_("say briefly why this is changing"))
    return value


# What adding an item and changing one send, per section: the item's fields, with the reason
# for a change (optional when adding) and the version a change was based on.
ITEM_CREATE: dict[str, type[Input]] = {
    section: create_model(f"{schema.__name__}Create", __base__=schema, reason=(OptText1000, None))
    for section, schema in ITEM_SCHEMAS.items()
}
ITEM_UPDATE: dict[str, type[Input]] = {
    section: create_model(
        f"{schema.__name__}Update",
        __base__=schema,
        version=(int, ...),
        reason=(
            Annotated[OptText1000, AfterValidator(_changing)],
            Field(None, validate_default=True),
        ),
    )
    for section, schema in ITEM_SCHEMAS.items()
}

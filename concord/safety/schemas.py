"""What the safety pages and the JSON API may send, shared by a page and its /api/v1 twin."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from concord.validation import Checkbox, OptDateTime, blank_to_none


class ShareIn(BaseModel):
    """Share the safety plan with one of the patient's people, or stop sharing it."""

    model_config = ConfigDict(extra="ignore")

    share: Checkbox = False


# --- the models the JSON API has always been strict with: an unknown field is a 422 there; a
# page's form is read with the same model, its other controls left aside (concord.web.forms).


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class FlagIn(Body):
    tier: str = Field(description="A tier of the organization's risk rules")
    reason: str = Field(description="What worries you")


class CloseIn(Body):
    """Closing an alert. On the page, a follow-up time without a time zone is in the
    organization's; the API needs the zone."""

    outcome: str | list[str] = Field(
        [],
        description="What was done: one or several of assessed, safety_plan, emergency, "
        "unreachable (unreachable with neither assessed nor safety_plan)",
    )
    note: str
    risk_after: Annotated[str | None, BeforeValidator(blank_to_none)] = Field(
        None, description="A tier, or none (needed after assessed)"
    )
    follow_up_due_at: OptDateTime = Field(
        None, description="When to contact the patient again (with a time zone)"
    )
    no_follow_up: Checkbox = False


class FollowUpIn(Body):
    """The follow-up contact after an alert (the page's field is `follow_up_note`)."""

    note: str


class SafetyPlanIn(Body):
    base_version: int = Field(description="The version you started from (0 for a new plan)")
    content: dict[str, list[Any]]
    reason: str | None = None

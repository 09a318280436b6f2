"""What the registry's forms and the JSON API may send: one model per input, shared by the page
and its /api/v1 twin. The services check the rules that need the record (a title that says
something, an owner on the team, a known section)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from concord.validation import OptDate, blank_to_none

OptInt = Annotated[int | None, BeforeValidator(blank_to_none)]
# An identifier chosen from a list; a form's empty choice is none.
OptId = Annotated[str | None, BeforeValidator(blank_to_none)]
Words = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]


def _none_to_blank(value: Any) -> Any:
    return "" if value is None else value


Reason = Annotated[Words, BeforeValidator(_none_to_blank)]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class TaskIn(_In):
    """A task given to someone on the care team (`owner_id`; blank: yourself)."""

    title: Reason = ""
    owner_id: Annotated[str | None, BeforeValidator(blank_to_none)] = None
    due_on: OptDate = None
    priority: Annotated[str, BeforeValidator(lambda v: v or "routine")] = "routine"
    detail: Reason = ""


class TaskDoneIn(_In):
    note: Reason = ""


class VoidContactIn(_In):
    """Why a contact logged by mistake comes out of the minutes."""

    reason: Reason = ""


class RelapsePlanIn(_In):
    """A new version of the relapse-prevention plan, from the version you started from."""

    base_version: OptInt = None
    content: dict[str, list[Any]]
    reason: Reason = ""


class PatientViewIn(_In):
    """The patient's view of a proposed change: agree or not, and why."""

    agree: bool
    reason: Reason = ""


# --- the models the JSON API has always been strict with: an unknown field is a 422 there; a
# page's form is read with the same model, its other controls left aside (concord.web.forms).


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EnrolIn(Body):
    program: str = Field(description="depression, anxiety, ptsd, substance_use, co_occurring")
    started_on: OptDate = None
    care_manager_id: OptId = None
    consultant_id: OptId = None


class StatusIn(Body):
    status: str
    reason: str | None = None
    version: OptInt = None


class DiagnosisIn(Body):
    # The imported diagnosis (its id, as the patient's page and GET .../ehr-diagnoses give it).
    diagnosis: str
    version: OptInt = None


class ContactBody(Body):
    kind: str
    mode: str
    minutes: int
    occurred_on: OptDate = None
    note: str | None = None
    user_id: OptId = None


class ReviewRequestIn(Body):
    question: str
    consultant_id: OptId = None


class RecommendationBody(Body):
    kind: str
    text: str


class ReviewBody(Body):
    """A case review recorded; the page's rows of recommendations are `recommendations.kind`
    and `recommendations.text`."""

    minutes: int
    summary: str
    recommendations: list[RecommendationBody] = []
    reviewed_on: OptDate = None
    review_id: OptId = None


class DecisionIn(Body):
    """Accept a recommendation (into the care plan) or decline it, with the reason."""

    accept: bool
    reason: str | None = None
    version: OptInt = None

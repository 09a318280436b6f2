"""What the decision pages and the JSON API may send: one model per step, shared by the page
(which builds it from its form's fields) and its /api/v1 twin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from concord.decisions.service import Outcome, parse_sure
from concord.validation import Date, blank_to_none

OptInt = Annotated[int | None, BeforeValidator(blank_to_none)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class StartIn(Body):
    aid: str


class ValuesIn(Body):
    values: list[str]
    note: str | None = None
    leaning: str | None = None
    version: OptInt = None


class QuestionIn(Body):
    text: str


class SureIn(Body):
    sure: bool
    understand: bool
    risk_benefit: bool
    encouragement: bool


class OutcomeIn(Body):
    choice: str | None = None
    reasons: str | None = None
    considered: list[str]
    decided_on: Date
    clinician_ids: list[str] = []
    others: str | None = None
    version: OptInt = None

    def to_outcome(self) -> Outcome:
        return Outcome(
            choice=self.choice,
            reasons=self.reasons,
            considered=self.considered,
            decided_on=self.decided_on,
            clinician_ids=self.clinician_ids,
            others=self.others,
        )


class AnsweredIn(Body):
    """The team marks a question answered, by its place in the list (from 0). The API takes
    the place in its path (…/questions/{index}/answered), so it has no body. The service
    reads the place: one that is not a number is no such question, as one out of range."""

    index: str = ""


# --- the pages' forms, as the models above take them: the pages show all the steps on one page,
# so their fields have names of their own (values_note, question, sure_<item>).


def _listed(value: Any) -> list[str]:
    items = value if isinstance(value, list) else ([value] if value else [])
    return [str(v) for v in items]


def values_form(form: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "values": _listed(form.get("values")),
        "note": form.get("values_note") or "",
        "leaning": form.get("leaning") or "",
        "version": form.get("version"),
    }


def question_form(form: Mapping[str, Any]) -> dict[str, Any]:
    return {"text": form.get("question") or ""}


def sure_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """Each item a yes or no (sure_<item>); one left unanswered is named as the page names it."""
    return dict(parse_sure(dict(form)))


def outcome_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The outcome form: "not decided" is no choice; the options considered and the clinicians
    present are checkboxes (none ticked: none)."""
    choice = form.get("choice") or ""
    return {
        **form,
        "choice": None if choice == "not_decided" else choice,
        "considered": _listed(form.get("considered")),
        "clinician_ids": _listed(form.get("clinician_ids")),
    }

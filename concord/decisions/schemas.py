"""What the decision pages and the JSON API may send: one model per step, shared by the page
(which builds it from its form's fields) and its /api/v1 twin."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from concord.decisions.service import Outcome
from concord.validation import Date


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class StartIn(Body):
    aid: str


class ValuesIn(Body):
    values: list[str]
    note: str | None = None
    leaning: str | None = None
    version: int | None = None


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
    version: int | None = None

    def to_outcome(self) -> Outcome:
        return Outcome(
            choice=self.choice,
            reasons=self.reasons,
            considered=self.considered,
            decided_on=self.decided_on,
            clinician_ids=self.clinician_ids,
            others=self.others,
        )

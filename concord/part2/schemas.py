"""What the Part 2 pages and their JSON twins take: one model per input, shared."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from concord.validation import blank_to_none


class Part2ProgramIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    part2_program: bool


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=500)


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    record_type: str = Field(max_length=40)
    record_id: str = Field(max_length=64)
    part2: bool
    reason: str = Field(max_length=500)


class PrivacyOfficerIn(BaseModel):
    """A clinic's privacy officer: a member of staff's id, or none to clear it."""

    model_config = ConfigDict(extra="forbid")
    user_id: Annotated[uuid.UUID | None, BeforeValidator(blank_to_none)] = None

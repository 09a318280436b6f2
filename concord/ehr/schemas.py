"""What a person sends to decide a held match (the page's form and its JSON twin)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MatchDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: Literal["same", "different"] = Field(
        description="same: the imported patient is this patient; different: register them "
        "as a new patient"
    )


class UndoImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(
        min_length=1,
        max_length=500,
        description="why the import is undone (kept with it, and shown to administrators)",
    )

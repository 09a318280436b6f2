"""What the safety pages and the JSON API may send, shared by a page and its /api/v1 twin."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from concord.validation import Checkbox


class ShareIn(BaseModel):
    """Share the safety plan with one of the patient's people, or stop sharing it."""

    model_config = ConfigDict(extra="ignore")

    share: Checkbox = False

"""What the SMART pages and their JSON twins read."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


def _lines(value: Any) -> Any:
    if isinstance(value, str):
        return [v.strip() for v in value.replace(",", "\n").splitlines() if v.strip()]
    return value


class ClientIn(BaseModel):
    """An app to register: in the page, lists are one per line."""

    model_config = ConfigDict(extra="ignore")

    name: str = ""
    redirect_uris: list[str] = []
    launch_url: str = ""
    scopes: str = ""
    confidential: bool = False
    jwks: dict[str, Any] | str | None = None
    jwks_url: str = ""
    origins: list[str] = []
    # A backend service: the email of the clinician whose access its Bulk exports borrow.
    acts_for: str = ""

    _split = field_validator("redirect_uris", "origins", mode="before")(_lines)

    @field_validator("confidential", mode="before")
    @classmethod
    def _checkbox(cls, value: Any) -> Any:
        return value in (True, "on", "true", "1", "yes")


class ActsForIn(BaseModel):
    """Whom a backend service acts for: a clinician by email, or a care team's current lead
    by the team's id; neither, no one (it then reads nothing)."""

    model_config = ConfigDict(extra="ignore")

    acts_for: str = ""
    care_team: str = ""


class LaunchIn(BaseModel):
    """The EHR's patient, by identifier: its system (Concord's MRN system) and value."""

    model_config = ConfigDict(extra="ignore")

    system: str = ""
    value: str = ""

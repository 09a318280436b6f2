"""What the notification pages and their JSON twins may send."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from concord.validation import blank_to_none


def _list(value: object) -> object:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    return value


Hour = Annotated[Annotated[int, Field(ge=0, le=23)] | None, BeforeValidator(blank_to_none)]


class PreferencesIn(BaseModel):
    """Channels in the order to try them (email, sms), the phone for text messages, and quiet
    hours (from, until; hours 0-23 in the clinic's time zone)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    channels: Annotated[list[str], BeforeValidator(_list)] = []
    phone: Annotated[
        Annotated[str, Field(max_length=40)] | None, BeforeValidator(blank_to_none)
    ] = None
    quiet_from: Hour = None
    quiet_until: Hour = None


class ReadIn(BaseModel):
    """Mark one notice read (`notice_id`), or all of them (none given)."""

    model_config = ConfigDict(extra="ignore")

    notice_id: Annotated[str | None, BeforeValidator(blank_to_none)] = None
    # Where the page goes next (the notice's link); a path on this site only. Unused by the API.
    next: Annotated[
        Annotated[str, Field(max_length=300, pattern=r"^/([^/].*)?$")] | None,
        BeforeValidator(blank_to_none),
    ] = None

"""What the days-of-use calendar's pages and their JSON twins may send: one model, shared by
every door (the page's rows arrive as `days.on`, `days.used`, `days.drinks`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from concord.substance.models import MAX_DRINKS, Substance
from concord.validation import blank_to_none

MAX_DAYS = 92  # one post holds at most about three months of days (the calendar pages show 30)


class DayIn(BaseModel):
    """One day of the calendar: a day of use or not (left blank on a page: not recorded), and
    for alcohol on a day of use, the number of standard drinks."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    on: date
    used: Annotated[bool | None, BeforeValidator(blank_to_none)] = None
    drinks: Annotated[
        Annotated[int, Field(ge=0, le=MAX_DRINKS)] | None, BeforeValidator(blank_to_none)
    ] = None


class DaysIn(BaseModel):
    """Days of one substance, in the Timeline Followback style."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    substance: Substance
    days: Annotated[list[DayIn], Field(min_length=1, max_length=MAX_DAYS)]

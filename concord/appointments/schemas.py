"""What the visit pages, their JSON twins and FHIR may send: one model per input."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from concord.appointments.models import VisitKind
from concord.validation import OptText200, OptText500, Text500, blank_to_none


def _ids(value: object) -> object:
    """A form sends one id or several (a multi-select); the API a list."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    return value


Clinicians = Annotated[list[uuid.UUID], BeforeValidator(_ids)]
Minutes = Annotated[int, Field(ge=5, le=480)]


class VisitIn(BaseModel):
    """A visit the care team books (or suggests, `propose`: the patient then accepts).
    `start` without a zone is the organization's local time."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    kind: VisitKind
    start: datetime
    minutes: Minutes = 30
    clinician_ids: Clinicians = []
    place: OptText200 = None
    reason: OptText500 = None
    propose: Annotated[bool, BeforeValidator(lambda v: v in (True, "on", "true", "1"))] = False


class VisitRequestIn(BaseModel):
    """A visit the patient asks for: the kind and a time that suits them, and why."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    kind: VisitKind
    start: datetime
    minutes: Minutes = 30
    reason: OptText500 = None


class BookIn(BaseModel):
    """Book a visit the patient asked for (at the time asked, or another), or move a booked
    one. `version` is the one you read."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    version: int
    start: Annotated[datetime | None, BeforeValidator(blank_to_none)] = None
    minutes: Annotated[Minutes | None, BeforeValidator(blank_to_none)] = None
    clinician_ids: Clinicians = []
    place: OptText200 = None


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: int


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    version: int
    reason: Text500


class AttendanceIn(BaseModel):
    """What became of a visit: arrived, fulfilled or noshow. From a fulfilled visit the
    registry's contact and minutes can be recorded in the same step (`contact_minutes`)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    version: int
    status: Annotated[str, Field(pattern="^(arrived|fulfilled|noshow)$")]
    contact_minutes: Annotated[
        Annotated[int, Field(ge=0, le=600)] | None, BeforeValidator(blank_to_none)
    ] = None
    contact_kind: Annotated[str | None, BeforeValidator(blank_to_none)] = None

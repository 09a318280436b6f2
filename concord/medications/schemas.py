"""What the medication pages, their JSON twins and the FHIR create may send: one model per
input, shared by every door."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from concord.medications.models import MedicationStatus, MoudKind, ReportKind
from concord.validation import Checkbox, OptDate, OptText200, OptText500, Text1000, blank_to_none

RxCui = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{1,12}$")] | None,
    BeforeValidator(blank_to_none),
]
OptId = Annotated[uuid.UUID | None, BeforeValidator(lambda v: None if v in ("", None) else v)]


class MedicationIn(BaseModel):
    """A medication as the care team records it (prescribed here or imported from an EHR).
    `rxcui` is the RxNorm ingredient; without it, `name` is required and the medication is
    listed as not coded (no rule can check it, and the page says so)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    rxcui: RxCui = None
    drug_rxcui: RxCui = None
    name: OptText200 = None
    dose: Annotated[str | None, Field(default=None, max_length=100)] = None
    route: Annotated[str | None, Field(default=None, max_length=40)] = None
    frequency: Annotated[str | None, Field(default=None, max_length=100)] = None
    started_on: OptDate = None
    stopped_on: OptDate = None
    indication_concern_id: OptId = None
    prescriber_id: OptId = None


class MedicationChangeIn(MedicationIn):
    version: int


class StatusIn(BaseModel):
    """Put a medication on hold, stop it (a reason is required) or make it active again."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    status: MedicationStatus
    reason: OptText500 = None
    version: int


class ReportedIn(BaseModel):
    """A medication the patient says they take that is not on their list ("I take this"),
    over-the-counter medicines included."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    rxcui: RxCui = None
    name: OptText200 = None
    dose: Annotated[str | None, Field(default=None, max_length=100)] = None
    over_the_counter: Checkbox = False
    note: OptText500 = None


class ReportIn(BaseModel):
    """What the patient says about a medication on their list."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    kind: ReportKind
    note: OptText500 = None


class OverrideIn(BaseModel):
    """Go ahead despite a finding: the reason is required and kept."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    reason: Text1000


class ResolveIn(BaseModel):
    """The team has looked at a difference the patient reported (what they did about it)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    note: OptText500 = None


def _ids(value: object) -> object:
    """A form's repeated select, a JSON list, or one id."""
    if value in (None, ""):
        return []
    return value if isinstance(value, list) else [value]


class ProtocolIn(BaseModel):
    """A line of the joint prescribing protocol: for a medication on the list (or a class
    named in `about`), who prescribes, what is monitored by whom and every how many days
    (the team's entry: Concord ships no default), and who must be told of a change."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    medication_id: OptId = None
    about: OptText200 = None
    prescriber_id: OptId = None
    monitoring: OptText200 = None
    monitor_owner_id: OptId = None
    every_days: Annotated[
        Annotated[int, Field(ge=1, le=3660)] | None, BeforeValidator(blank_to_none)
    ] = None
    first_due_on: OptDate = None
    tell: Annotated[list[uuid.UUID], BeforeValidator(_ids)] = []


class MonitoringDoneIn(BaseModel):
    """The monitoring was done (today unless a day is given): the next one falls due."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    done_on: OptDate = None


class MoudIn(BaseModel):
    """A dated fact of opioid use disorder treatment (concord.medications.models.MoudKind):
    `on` the day it happened; `result` as recorded (a PDMP check's or a urine drug test's,
    required for both); `performed_by_id` who checked the PDMP (someone on the team; blank:
    the person recording it); `dose` for an induction; `count` of missed doses or visits;
    `detail` for a release: prison or residential."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    kind: MoudKind
    on: OptDate = None
    medication_id: OptId = None
    performed_by_id: OptId = None
    detail: Annotated[
        Annotated[str, StringConstraints(max_length=40)] | None, BeforeValidator(blank_to_none)
    ] = None
    dose: Annotated[
        Annotated[str, StringConstraints(max_length=100)] | None, BeforeValidator(blank_to_none)
    ] = None
    result: OptText500 = None
    count: Annotated[Annotated[int, Field(ge=1, le=365)] | None, BeforeValidator(blank_to_none)] = (
        None
    )
    note: OptText500 = None


class CheckinIn(BaseModel):
    """What the patient says at a check-in about one medication: doses missed in the last 7
    days and why, the side effects that bother them, a question for the prescriber. At least
    one is needed."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    missed_doses: Annotated[
        Annotated[int, Field(ge=0, le=100)] | None, BeforeValidator(blank_to_none)
    ] = None
    missed_why: OptText500 = None
    effects: OptText500 = None
    question: OptText500 = None

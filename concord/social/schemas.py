"""What the social-needs pages and the JSON API may send: one model per action, read by the
page from its form and taken by its /api/v1 twin as the body."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

from concord.validation import (
    Checkbox,
    OptText200,
    OptText500,
    OptText1000,
    Text1000,
    blank_to_none,
)

OptId = Annotated[uuid.UUID | None, BeforeValidator(blank_to_none)]
OptInt = Annotated[int | None, BeforeValidator(blank_to_none)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReferralIn(Body):
    """A referral to a service. The patient's consent to share: `consent_id` of a consent in
    effect, or the signed form recorded now (`signed_name`, and `signed_on` for paper)."""

    service_id: uuid.UUID
    concern_id: OptId = None
    shared_summary: Text1000
    contact: OptText200 = None
    consent_id: OptId = None
    signed_name: OptText200 = None
    signed_on: Annotated[str | None, BeforeValidator(blank_to_none)] = None
    share_safety_need: Checkbox = False
    respond_days: OptInt = None
    replaces_id: OptId = None


class TeamStatusIn(Body):
    status: str
    reason: OptText500 = None


class PartnerStatusIn(Body):
    status: str
    reason: OptText500 = None
    outcome: OptText1000 = None


class ConcernDecisionIn(Body):
    decision: str
    words: OptText500 = None
    reason: OptText500 = None


class ReportIn(Body):
    report: str


class ServiceIn(Body):
    provider_name: str
    name: str
    description: Annotated[str | None, BeforeValidator(blank_to_none)] = None
    categories: Annotated[
        list[str], BeforeValidator(lambda v: v if isinstance(v, list) else [v] if v else [])
    ] = []
    eligibility: OptText500 = None
    languages: Annotated[
        list[str],
        BeforeValidator(
            lambda v: (
                v if isinstance(v, list) else [x for x in str(v or "").split(",") if x.strip()]
            )
        ),
    ] = []
    hours: OptText200 = None
    address: OptText200 = None
    postcode: Annotated[str | None, BeforeValidator(blank_to_none)] = None
    phone: Annotated[str | None, BeforeValidator(blank_to_none)] = None
    email: OptText200 = None
    website: OptText200 = None
    electronic_referrals: Checkbox = False


class ImportIn(Body):
    kind: str
    content: str


class ConcernToPlanIn(Body):
    """A social need onto the plan: a goal in the patient's words, and/or a barrier with its
    way around."""

    goal: OptText1000 = None
    barrier: OptText1000 = None
    way_around: OptText1000 = None

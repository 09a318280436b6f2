"""What the consent forms and API may send."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

from concord.consents.models import GranteeKind, Method, Provision, Purpose
from concord.validation import OptDate, OptText200, OptText500, blank_to_none


def _listed(value: object) -> object:
    """A form's repeated checkbox, a JSON list, or one comma-separated string."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


Listed = Annotated[list[str], BeforeValidator(_listed)]


class ConsentIn(BaseModel):
    """A consent as the care team records it (paper or verbal) or the patient signs it in the
    portal. `grantee_id` names the related person, user or clinic for those kinds."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    grantee_kind: GranteeKind
    grantee_id: Annotated[uuid.UUID | None, BeforeValidator(blank_to_none)] = None
    grantee_name: OptText200 = None
    discloser: OptText200 = None
    scope: Annotated[str, BeforeValidator(lambda v: v or "categories")] = "categories"
    categories: Listed = []
    purposes: Listed = []
    purpose_other: OptText200 = None
    provision: Provision = Provision.permit
    period_start: OptDate = None
    period_end: OptDate = None
    method: Method
    signed_name: OptText200 = None
    signed_on: OptDate = None
    document_reference: OptText200 = None
    note: OptText500 = None


class SignedConsentIn(BaseModel):
    """A consent the patient gives in the portal from one of the templates
    (concord.consents.portal): the choices it leaves open and the signature, the typed full
    name and today's date."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    template: Annotated[str, BeforeValidator(lambda v: v or "")] = ""
    grantee_id: Annotated[uuid.UUID | None, BeforeValidator(blank_to_none)] = None
    period_end: OptDate = None
    signed_name: OptText200 = None
    signed_on: OptDate = None


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    reason: OptText500 = None


# Re-exported for the doors' use.
__all__ = ["ConsentIn", "RevokeIn", "SignedConsentIn", "Purpose"]

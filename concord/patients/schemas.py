"""What the patient forms and API may send."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints

from concord.accounts.models import Role
from concord.accounts.passwords import EMAIL_RE
from concord.i18n import N_
from concord.patients.models import AdministrativeGender
from concord.patients.service import NewPatient
from concord.validation import (
    Checkbox,
    OptText200,
    OptText500,
    Text200,
    blank_to_none,
    in_range,
)


def _email(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not EMAIL_RE.match(value):
        raise ValueError("must be an email address such as name@example.org")
    return value


def _past(value: date) -> date:
    if value.year < 1900:
        raise ValueError("must be after 1900")
    return value


OptEmail = Annotated[
    Annotated[str, StringConstraints(max_length=254)] | None,
    BeforeValidator(blank_to_none),
    AfterValidator(_email),
]


class PatientIn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    given_name: Text200
    family_name: Text200
    preferred_name: OptText200 = None
    pronouns: OptText200 = None
    birth_date: Annotated[date, AfterValidator(_past), AfterValidator(in_range)]
    gender: AdministrativeGender = AdministrativeGender.unknown
    language: Literal["en", "es"] = "en"
    mrn: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    clinic_id: uuid.UUID
    phone: OptText200 = None
    email: OptEmail = None
    portal_email: OptEmail = None

    def to_new_patient(self) -> NewPatient:
        return NewPatient(
            given_name=self.given_name,
            family_name=self.family_name,
            birth_date=self.birth_date,
            mrn=self.mrn,
            clinic_id=self.clinic_id,
            preferred_name=self.preferred_name,
            pronouns=self.pronouns,
            gender=str(self.gender),
            language=self.language,
            phone=self.phone,
            email=self.email,
        )


class PatientUpdateIn(BaseModel):
    """A change of demographics (PUT /api/v1/patients/{id}): every field as it should be
    stored, and the version it was seen at (409 if the patient changed since)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    given_name: Text200
    family_name: Text200
    preferred_name: OptText200 = None
    pronouns: OptText200 = None
    birth_date: Annotated[date, AfterValidator(_past), AfterValidator(in_range)]
    gender: AdministrativeGender = AdministrativeGender.unknown
    language: Literal["en", "es"] = "en"
    phone: OptText200 = None
    email: OptEmail = None
    version: int

    def to_new_patient(self, *, mrn: str, clinic_id: uuid.UUID) -> NewPatient:
        return NewPatient(
            given_name=self.given_name,
            family_name=self.family_name,
            birth_date=self.birth_date,
            mrn=mrn,
            clinic_id=clinic_id,
            preferred_name=self.preferred_name,
            pronouns=self.pronouns,
            gender=str(self.gender),
            language=self.language,
            phone=self.phone,
            email=self.email,
        )


class RelatedPersonIn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    name: Text200
    email: Annotated[str, StringConstraints(max_length=254), AfterValidator(_email)]
    relationship: Text200
    patient_consented: Checkbox = False
    consent_note: OptText500 = None


def _clinical_role(value: Role | None) -> Role | None:
    if value is not None and not value.is_clinical:
        raise ValueError(N_("must be a clinical role, or left blank for the person's own"))
    return value


class TeamMemberIn(BaseModel):
    """A clinician joining the care team (the page's form and POST .../care-team/members)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    user_id: uuid.UUID
    role: Annotated[Role | None, BeforeValidator(blank_to_none), AfterValidator(_clinical_role)] = (
        None
    )
    make_lead: Checkbox = False


class ConsentIn(BaseModel):
    """The patient's consent to share with a family member or carer, recorded or withdrawn."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    consented: Checkbox = False
    note: OptText500 = None

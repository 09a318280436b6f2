"""Enrolling a patient and changing their demographics: the one path for the page, the JSON
API and FHIR (an EHR enrolling the patients it refers)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.accounts.models import Organization, User
from concord.patients import service as patients
from concord.patients.models import Patient


def enrol(
    session: Session,
    *,
    by: User,
    organization: Organization,
    data: patients.NewPatient,
    portal_email: str | None = None,
) -> Patient:
    """Register the patient (clinicians and administrators; the registering clinician leads
    the new care team); audited by the service."""
    patient, _ = patients.register_patient(
        session, by=by, organization=organization, data=data, portal_email=portal_email
    )
    return patient


def update(
    session: Session, *, access: PatientAccess, data: patients.NewPatient, version: int | None
) -> Patient:
    """Change the demographics (a clinician on the care team), `version` the one seen."""
    patient, _ = patients.update_patient(session, access=access, data=data, version=version)
    return patient

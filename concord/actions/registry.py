"""Changes to a patient's episode of care, then the tasks that follow its flags.

The registry's flags (concord.registry.rules) read the episode, its contacts, the reviews, the
scores and the plan; the tasks they ask for are opened and closed by `sync_patient_tasks`. Each
action here makes one registry change and brings that patient's tasks up to date in the same
transaction, so the page, the JSON API and any later door leave the same tasks (before, the
routes called the sync themselves, and a door that forgot left the tasks to the nightly run).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.ehr import service as ehr
from concord.registry import reviews as rv
from concord.registry import service as reg
from concord.registry.jobs import sync_patient_tasks
from concord.registry.models import CaseReview, Contact, Episode


def enroll(session: Session, *, access: PatientAccess, data: reg.Enrolment) -> Episode:
    episode = reg.enroll(session, access=access, data=data)
    sync_patient_tasks(session, access.patient.id)
    return episode


def change_status(
    session: Session,
    *,
    access: PatientAccess,
    episode_id: Any,
    status: str,
    reason: str | None,
    version: int | None,
) -> Episode:
    episode = reg.change_status(
        session,
        access=access,
        episode_id=episode_id,
        status=status,
        reason=reason,
        version=version,
    )
    sync_patient_tasks(session, access.patient.id)
    return episode


def log_contact(
    session: Session, *, access: PatientAccess, data: reg.ContactIn, review_id: Any = None
) -> Contact:
    contact = reg.log_contact(session, access=access, data=data, review_id=review_id)
    sync_patient_tasks(session, access.patient.id)
    return contact


def void_contact(
    session: Session, *, access: PatientAccess, contact_id: Any, reason: str
) -> Contact:
    """A contact voided no longer counts: voiding the initial assessment reopens its task."""
    contact = reg.void_contact(session, access=access, contact_id=contact_id, reason=reason)
    sync_patient_tasks(session, access.patient.id)
    return contact


def record_review(
    session: Session, *, access: PatientAccess, data: rv.ReviewIn, review_id: Any = None
) -> CaseReview:
    review = rv.record_review(session, access=access, data=data, review_id=review_id)
    sync_patient_tasks(session, access.patient.id)
    return review


def set_qualifying_diagnosis(
    session: Session,
    *,
    access: PatientAccess,
    episode_id: Any,
    diagnosis_ref: Any,
    version: int | None,
) -> Episode:
    """An imported EHR diagnosis becomes the episode's qualifying diagnosis: read through the
    EHR domain as this clinician may (consent and Part 2 decide, audited), then set on the
    episode by the registry (issue 20)."""
    found = ehr.imported_diagnosis(session, access=access, ref=diagnosis_ref)
    episode = reg.set_qualifying_diagnosis(
        session,
        access=access,
        episode_id=episode_id,
        diagnosis=reg.QualifyingDiagnosis(
            code=found.code,
            system=found.system,
            display=found.display,
            category=found.category,
            resource_id=uuid.UUID(found.ref),
        ),
        version=version,
    )
    sync_patient_tasks(session, access.patient.id)
    return episode

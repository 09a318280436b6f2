"""Quality measures (CMS159, CMS2) over the EHR's data: `$evaluate-measure` for every door.

The measures are pure functions (concord.quality); the patients' resources come from the EHR
import store's reads (concord.ehr.service), which decide who may read whom: an integration
client with the quality scope reads the organization's patients (for operations), a clinician
the patients of their care teams, with consent and 42 CFR Part 2 applied per record. Every
patient read is audited by those reads; the evaluation itself is audited here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy.orm import Session

from concord.accounts.models import User
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.ehr import service as ehr
from concord.errors import NotFound
from concord.i18n import Msg
from concord.quality import catalog


def _may_evaluate(by: User) -> bool:
    # An integration client (its scope is checked by the store's read) or a clinician; a
    # patient or a family member asks nothing of the population's measures.
    return by.active and (by.is_client or by.is_clinician)


def _subject_patient(session: Session, by: User, subject: str) -> uuid.UUID | str:
    """Patient/<id>: Concord's patient id, or the id the EHR sent its Patient under."""
    ident = subject.removeprefix("Patient/")
    # The EHR's own id first: an EHR's ids may be UUIDs too.
    found = ehr.patient_id_for_sender(session, organization_id=by.organization_id, sender_id=ident)
    if found is not None:
        return found
    try:
        return uuid.UUID(ident)
    except ValueError:
        return ident


def patients_for(
    session: Session,
    *,
    by: User,
    scopes: frozenset[str],
    patient_ids: Iterable[uuid.UUID] | None = None,
) -> Iterator[tuple[uuid.UUID, list[dict[str, Any]]]]:
    """Each patient `by` may read with their imported data for the measures (access decided
    and each read audited by concord.ehr); with `patient_ids`, only those."""
    wanted = set(patient_ids) if patient_ids is not None else None
    for pid, resources in ehr.organization_patients(
        session, access=by, types=catalog.RESOURCE_TYPES, scopes=scopes
    ):
        if wanted is None or pid in wanted:
            yield pid, resources


def evaluate_measure(
    session: Session,
    *,
    by: User,
    scopes: frozenset[str],
    measure_id: str,
    pairs: Iterable[tuple[str, str]],
) -> dict[str, Any]:
    """FHIR `$evaluate-measure`: a MeasureReport for one patient (subject) or for every
    patient the caller may read (population, subject-list)."""
    request = catalog.parse_parameters(measure_id, list(pairs))
    if not _may_evaluate(by):
        record(
            session,
            by=by,
            action="evaluate",
            object_type="Measure",
            object_id=measure_id,
            outcome=Outcome.denied,
        )
        raise NotFound(
            Msg("This server does not evaluate the measure %(measure)s.", measure=measure_id[:40])
        )
    if request.subject is not None:
        pid = _subject_patient(session, by, request.subject)
        resources = ehr.patient_resources(
            session, access=by, patient_id=pid, types=catalog.RESOURCE_TYPES, scopes=scopes
        )
        # The report names the patient as this server serves them.
        request = catalog.Request(
            request.measure_id,
            request.period_start,
            request.period_end,
            request.report_type,
            f"Patient/{pid}",
        )
        patients: list[tuple[object, list[dict]]] = [(pid, resources)]
    else:
        patients = list(patients_for(session, by=by, scopes=scopes))
    report = catalog.evaluate_measure(request, lambda: patients)
    record(
        session,
        by=by,
        action="evaluate",
        object_type="Measure",
        object_id=measure_id,
        detail={"report": request.report_type, "patients": len(patients)},
    )
    return report

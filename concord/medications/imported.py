"""Medication orders the clinic's EHR sent in a Bundle (issue 20): an imported
MedicationRequest (concord.ehr keeps it as sent) onto the patient's medication list, marked
"Imported from the EHR" (source `ehr`), so the interaction rules check it like any other.

Written by the integration client that sent it, for the organization (it is not on the care
team: the EHR domain has checked its import scope and linked the patient by MRN); the action
concord.actions.ehr_import calls this, then the whole-list check. An order that cannot name a
drug (no RxNorm coding and no text, or a medicationReference) stays in the EHR store only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.accounts.models import User
from concord.audit.service import record as audit
from concord.clock import now
from concord.errors import Conflict, PermissionDenied
from concord.i18n import Msg
from concord.medications.models import Medication, MedicationSource, MedicationStatus
from concord.medications.vocabulary import default_vocabulary
from concord.patients.models import Patient

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# FHIR R4 MedicationRequest.status -> the list's status; other statuses (draft, unknown) put
# nothing on the list, and an order the EHR cancels or marks entered-in-error is stopped.
STATUSES = {
    "active": MedicationStatus.active,
    "on-hold": MedicationStatus.on_hold,
    "stopped": MedicationStatus.stopped,
    "completed": MedicationStatus.stopped,
    "cancelled": MedicationStatus.stopped,
    "entered-in-error": MedicationStatus.stopped,
}
# Only orders (not a plan or a proposal) are medications the patient was prescribed.
INTENTS = ("order", "original-order", "reflex-order", "filler-order", "instance-order")


def external_id(sender_id: str) -> str:
    return f"ehr-import|MedicationRequest/{sender_id}"[:200]


@dataclass(frozen=True)
class ImportedOrder:
    rxcui: str | None
    drug_rxcui: str | None
    name: str
    dose: str | None
    started_on: date | None
    stopped_on: date | None
    status: MedicationStatus
    status_text: str


def _day(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def parse_order(resource: dict[str, Any]) -> ImportedOrder | None:
    """What the list keeps of a MedicationRequest, or None when it is not an order the list
    takes (not an order, a status the list has no word for, no drug named)."""
    status_text = str(resource.get("status") or "")
    status = STATUSES.get(status_text)
    if status is None or resource.get("intent") not in INTENTS:
        return None
    concept = resource.get("medicationCodeableConcept")
    if not isinstance(concept, dict):
        return None
    vocabulary = default_vocabulary()
    ingredient = drug = None
    name = concept.get("text")
    for coding in concept.get("coding") or []:
        if not isinstance(coding, dict) or coding.get("system") != RXNORM or not coding.get("code"):
            continue
        code = str(coding["code"])[:20]
        entry = vocabulary.entry(code)
        if ingredient is None and entry is not None:
            ingredient = code
            name = name or coding.get("display") or entry.label("en")
        elif drug is None:
            drug = code
            name = name or coding.get("display")
    if not name:
        return None
    dosage = (resource.get("dosageInstruction") or [{}])[0]
    period = (resource.get("dispenseRequest") or {}).get("validityPeriod") or {}
    stopped = _day(period.get("end")) if status == MedicationStatus.stopped else None
    return ImportedOrder(
        rxcui=ingredient,
        drug_rxcui=drug,
        name=str(name)[:200],
        dose=str(dosage["text"])[:100] if isinstance(dosage, dict) and dosage.get("text") else None,
        started_on=_day(period.get("start") or resource.get("authoredOn")),
        stopped_on=stopped,
        status=status,
        status_text=status_text,
    )


def sync_imported_order(
    session: Session,
    *,
    by: User,
    patient: Patient,
    sender_id: str,
    order: ImportedOrder,
) -> Medication | None:
    """Put an imported order on the patient's list, or bring the one put there before up to
    date (the EHR's newer version); None when nothing changed. Audited under the client."""
    if not by.is_client or by.organization_id != patient.organization_id:
        raise PermissionDenied(Msg("Only the organization's integration client imports orders."))
    ident = external_id(sender_id)
    med = session.scalar(
        select(Medication).where(
            Medication.patient_id == patient.id, Medication.external_id == ident
        )
    )
    at = now()
    reason = None
    if order.status == MedicationStatus.stopped:
        reason = f"{order.status_text} in the EHR"
    if med is None:
        med = Medication(
            id=uuid.uuid4(),
            organization_id=patient.organization_id,
            patient_id=patient.id,
            rxcui=order.rxcui,
            drug_rxcui=order.drug_rxcui,
            name=order.name,
            dose=order.dose,
            started_on=order.started_on,
            stopped_on=order.stopped_on,
            status=order.status,
            status_reason=reason,
            source=MedicationSource.ehr,
            external_id=ident,
            version=1,
            created_at=at,
            created_by_id=by.id,
            updated_at=at,
            updated_by_id=by.id,
        )
        session.add(med)
        action = "create"
    else:
        before = (med.rxcui, med.drug_rxcui, med.name, med.dose, med.started_on, med.status)
        after = (
            order.rxcui,
            order.drug_rxcui,
            order.name,
            order.dose,
            order.started_on,
            order.status,
        )
        if before == after and med.stopped_on == order.stopped_on:
            return None
        med.rxcui, med.drug_rxcui, med.name, med.dose, med.started_on, med.status = after
        med.stopped_on = order.stopped_on
        med.status_reason = reason
        med.version += 1
        med.updated_at = at
        med.updated_by_id = by.id
        action = "update"
    session.flush()
    audit(
        session,
        by=by,
        action=action,
        object_type="Medication",
        object_id=med.id,
        patient_id=patient.id,
        detail={"source": MedicationSource.ehr.value, "rxcui": med.rxcui or "none"},
    )
    return med


def undo_imported_order(
    session: Session,
    *,
    by: User,
    patient: Patient,
    sender_id: str,
    previous: ImportedOrder | None,
) -> Medication | None:
    """An undone import's order (concord.ehr.undo_import) off the list: the entry it put there
    is stopped ("the import that brought it was undone"; the list keeps its history), or the
    entry it changed goes back to the order before. Written, as the import was, under the
    integration client `by` that sent it; refused if a person changed the entry since."""
    if not by.is_client or by.organization_id != patient.organization_id:
        raise PermissionDenied(Msg("Only the organization's integration client imports orders."))
    med = session.scalar(
        select(Medication).where(
            Medication.patient_id == patient.id, Medication.external_id == external_id(sender_id)
        )
    )
    if med is None:
        return None
    if med.updated_by_id != by.id:
        raise Conflict(
            Msg(
                "This import cannot be undone: %(what)s was used since (%(why)s). Undo or change "
                "that first.",
                what=f"MedicationRequest/{sender_id}",
                why=Msg("a person changed its entry on the medication list"),
            )
        )
    if previous is not None:
        return sync_imported_order(
            session, by=by, patient=patient, sender_id=sender_id, order=previous
        )
    if med.status == MedicationStatus.stopped:
        return None
    med.status = MedicationStatus.stopped
    med.status_reason = "the import that brought it was undone"
    med.version += 1
    med.updated_at = now()
    med.updated_by_id = by.id
    session.flush()
    audit(
        session,
        by=by,
        action="update",
        object_type="Medication",
        object_id=med.id,
        patient_id=patient.id,
        detail={"source": MedicationSource.ehr.value, "undone": True},
    )
    return med

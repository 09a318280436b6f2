"""The patient's current medication list, as the checks see it (issue 19).

A seam: the CDS Hooks service asks `current_medications` for what a patient takes now when the
caller did not send it. It reads the stored list (concord.medications.models.Medication:
prescribed here, reported by the patient, or sent by an EHR), through the consent decision.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import PatientAccess
from concord.medications.models import MedicationStatus
from concord.medications.service import checked_medications


@dataclass(frozen=True)
class CurrentMedication:
    """One medication the patient takes now, as the checker needs it.

    rxcui: the RxNorm ingredient RxCUI (what the rules are keyed by); a multi-ingredient
        product is one entry per ingredient, each with the same `record`.
    kind: "MedicationRequest" (prescribed) or "MedicationStatement" (reported by the patient
        or imported).
    record: the stored record's id, so a finding can point at it; never shown in a log.
    status: "active" or "on-hold" (stopped medications are not current and never listed).
    """

    rxcui: str
    kind: str
    record: str
    status: str = "active"


def current_medications(
    session: Session, *, access: PatientAccess, patient_id: uuid.UUID | str
) -> list[CurrentMedication]:
    """What the patient takes now: active and on-hold medications, prescribed or reported,
    each ingredient once per record, in a stable order (by rxcui as text, then record).

    `access` is the caller's access to this patient, already decided and audited by the
    caller (concord.access.team_access: the care team); `patient_id` must be that access's
    patient. Records the access may not see (42 CFR Part 2 without a consent: ADR 0021) are
    left out here, not by the caller; as on every read, a withheld record is written to the
    audit trail as withheld (counts only). Never raises for an empty list. A medication with
    no RxNorm code (the patient's own words) cannot be checked and is not listed."""
    if str(access.patient.id) != str(patient_id):
        raise ValueError("current_medications: patient_id is not the access's patient")
    rows = [m for m in checked_medications(session, access.patient.id) if m.rxcui]
    shown = disclosure.filter_records(
        session, access, rows, object_type="MedicationList", action="medication_check"
    )
    kind = {"patient_reported": "MedicationStatement", "ehr_statement": "MedicationStatement"}
    listed = {
        CurrentMedication(
            rxcui=str(m.rxcui),
            kind=kind.get(str(m.source), "MedicationRequest"),
            record=str(m.id),
            status="on-hold" if m.status == MedicationStatus.on_hold else "active",
        )
        for m in shown
    }
    return sorted(listed, key=lambda m: (m.rxcui, m.record))

"""The patient's current medication list, as the checks see it (issue 19).

A seam: the CDS Hooks service (and later the list's own pages) ask `current_medications` for
what a patient takes now when the caller did not send it. Until the medication list is stored
(MedicationRequest / MedicationStatement, the medication-list work of issue 19) it returns an
empty list; that work replaces the body, keeping the signature and the promises below.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from concord.access import PatientAccess


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
    patient. The function decides nothing more about who may see the list, writes nothing to
    the audit trail and never raises for an empty list. Part 2 records the access may not see
    (ADR 0021) must be left out here, not by the caller.

    Returns [] until the medication list is stored (see the module's docstring)."""
    if str(access.patient.id) != str(patient_id):
        raise ValueError("current_medications: patient_id is not the access's patient")
    return []

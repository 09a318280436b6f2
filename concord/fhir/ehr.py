"""The FHIR door to the EHR import (concord.ehr): the Bundle a client posts to /fhir, and the
searches and reads of the imported types. Parsing and shaping only: the domain decides."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from concord.accounts.models import User
from concord.accounts.tokens import token_scopes
from concord.actions import ehr_import
from concord.ehr import service as ehr
from concord.errors import NotFound, NotSupported
from concord.i18n import Msg

# Types only an EHR sends (Patient, Observation and Practitioner are Concord's own types on
# this server: imported Observations are served by /fhir/Observation after Concord's own
# scores, tagged imported; imported Patients and Practitioners are read through
# concord.ehr.patient_resources).
# MedicationRequest is imported too, and an order about a linked patient is written onto the
# medication list (concord.actions.ehr_import), which /fhir/MedicationRequest serves.
IMPORTED_TYPES = frozenset({"Condition", "Encounter", "Procedure", "ServiceRequest", "Coverage"})


def search_imported(
    session: Session, *, by: User, token: Any, kind: str, pairs: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """GET /fhir/{kind}?patient=[id]: the patient's imported resources of that type (an empty
    list for a patient outside the caller's reach, as every search answers)."""
    names = {name for name, _ in pairs}
    unknown = sorted(names - {"patient", "subject", "_format"})
    if unknown:
        raise NotSupported.field(unknown[0][:80], Msg("is not supported here (supported: patient)"))
    wanted = [value for name, value in pairs if name in ("patient", "subject")]
    if not wanted:
        # Every patient the caller may read (their care teams' patients; a patient their own).
        found = ehr.organization_patients(
            session, access=by, types=[kind], scopes=token_scopes(token), local_refs=True
        )
        return [r for _, rows in found for r in rows]
    if len(wanted) != 1 or "," in wanted[0]:
        raise NotSupported.field("patient", Msg("one patient at a time"))
    patient = wanted[0].removeprefix("Patient/")
    try:
        return ehr.patient_resources(
            session,
            access=by,
            patient_id=patient,
            types=[kind],
            scopes=token_scopes(token),
            local_refs=True,
        )
    except NotFound:
        return []


def import_bundle(
    session: Session, *, by: User, token: Any, body: Any, mrn_system: str, seed: str | None
) -> dict[str, Any]:
    return ehr_import.import_bundle(
        session, by=by, scopes=token_scopes(token), bundle=body, mrn_system=mrn_system, seed=seed
    )


def read_imported(
    session: Session, *, by: User, token: Any, kind: str, ident: str
) -> dict[str, Any]:
    return ehr.read_imported(session, by=by, kind=kind, ident=ident, scopes=token_scopes(token))

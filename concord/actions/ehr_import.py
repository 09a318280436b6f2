"""An EHR's Bundle arrives (issue 20): the EHR domain imports it (matching, storing, audit),
then each imported MedicationRequest about a linked patient goes onto the medication list
as "Imported from the EHR", and the patient's whole list is checked by the interaction rules
(the findings and their tasks as for any other change to the list). One transaction: a
refused transaction Bundle writes nothing anywhere."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from concord.accounts.models import User
from concord.actions import medications as med_actions
from concord.dates import org_today
from concord.ehr import service as ehr
from concord.ehr.models import EhrResource
from concord.medications import imported
from concord.medications import service as meds
from concord.patients.models import Patient


def import_bundle(
    session: Session,
    *,
    by: User,
    scopes: frozenset[str],
    bundle: Any,
    mrn_system: str,
    seed: str | None = None,
) -> dict[str, Any]:
    stored: list[EhrResource] = []
    response = ehr.import_bundle(
        session,
        by=by,
        scopes=scopes,
        bundle=bundle,
        mrn_system=mrn_system,
        seed=seed,
        stored=stored,
    )
    medications_of_patients(session, by=by, rows=stored)
    return response


def medications_of_patients(session: Session, *, by: User, rows: list[EhrResource]) -> int:
    """The imported orders onto their patients' lists, then each changed list checked; how
    many list entries were written."""
    changed: dict[Any, Patient] = {}
    written = 0
    for row in rows:
        if row.resource_type != "MedicationRequest" or row.patient_id is None:
            continue
        order = imported.parse_order(row.resource)
        if order is None:
            continue
        patient = session.get(Patient, row.patient_id)
        if patient is None:
            continue
        med = imported.sync_imported_order(
            session, by=by, patient=patient, sender_id=row.sender_id, order=order
        )
        if med is not None:
            written += 1
            changed[patient.id] = patient
    for patient in changed.values():
        result = meds.recheck(session, patient=patient, by=by, today=org_today(by.organization))
        med_actions.after_check(session, patient=patient, by=by, result=result)
    return written


def decide_match(session: Session, *, by: User, match_id: Any, same: bool) -> ehr.MatchView:
    """A person decides a held match (concord.ehr); the orders that came with the imported
    patient then go onto the linked patient's list as if they had just arrived, written under
    the integration client that sent them."""
    view = ehr.decide_match(session, by=by, match_id=match_id, same=same)
    rows = ehr.orders_linked_by(session, match=view)
    by_source: dict[Any, list[EhrResource]] = {}
    for row in rows:
        by_source.setdefault(row.source_id, []).append(row)
    for source_id, sent in by_source.items():
        client = session.get(User, source_id)
        if client is not None and client.is_client:
            medications_of_patients(session, by=client, rows=sent)
    return view


def undo_import(
    session: Session,
    *,
    by: User,
    import_id: Any,
    reason: str,
    scopes: frozenset[str] = frozenset(),
) -> ehr.ImportView:
    """Undo one import (concord.ehr.undo_import: what it created and changed, refused if
    anything was done since with it), then keep the medication lists in step: an order it put
    on a list is stopped, an order it changed goes back, written under the integration client
    that sent it (refused, and nothing undone, if a person changed the entry since); each
    changed list is checked again."""
    undone = ehr.undo_import(session, by=by, import_id=import_id, reason=reason, scopes=scopes)
    if not undone.orders:
        return undone.view
    client = session.get(User, undone.source_id)
    changed: dict[Any, Patient] = {}
    for order in undone.orders:
        patient = session.get(Patient, order.patient_id)
        if patient is None or client is None:
            continue
        previous = imported.parse_order(order.previous) if order.previous else None
        med = imported.undo_imported_order(
            session, by=client, patient=patient, sender_id=order.sender_id, previous=previous
        )
        if med is not None:
            changed[patient.id] = patient
    for patient in changed.values():
        result = meds.recheck(
            session, patient=patient, by=client, today=org_today(patient.clinic.organization)
        )
        med_actions.after_check(session, patient=patient, by=client, result=result)
    return undone.view

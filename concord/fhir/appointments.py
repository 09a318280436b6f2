"""Visits as FHIR R4 `Appointment` (read; search by patient, actor, date with prefixes, and
status), behind the record's access: the care team and the patient; anyone else not found
(audited). Every resource read is audited.

Mapping: status as Concord keeps it (R4 AppointmentStatus codes); serviceType the kind of
visit (Concord's code system); start, end and minutesDuration; description the reason;
cancelationReason the reason given, as text; participants the patient and the clinicians
(Practitioner), whose status says who must answer a proposed visit (needs-action), and the
place as a Location by name. The video room link is not in the resource: it is for the
people in the visit, shown on its page. A visit of a 42 CFR Part 2 program carries the Part 2
security labels in meta.security, like the program's other records (ADR 0021); who may read it
at all is the disclosure decision's (concord/appointments/service.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from concord import access, disclosure
from concord.accounts.models import User
from concord.appointments import service as visits
from concord.appointments.models import Appointment, Awaiting, VisitStatus
from concord.audit.service import record
from concord.dates import zone
from concord.errors import InvalidInput, NotFound
from concord.fhir.mapping import SYSTEM, _drop_empty, _instant, _ref, label_part2
from concord.fhir.search import Query, allowed_codes, page_of
from concord.i18n import Msg
from concord.patients.models import Patient

STATUS_SYSTEM = "http://hl7.org/fhir/appointmentstatus"
KIND_SYSTEM = f"{SYSTEM}/CodeSystem/visit-kind"
KIND_NAMES = {
    "in_person": "In person",
    "video": "Video",
    "phone": "Phone",
    "home_visit": "Home visit",
    "group": "Group",
}


def appointment_resource(visit: Appointment, patient: Patient) -> dict[str, Any]:
    proposed = visit.status == VisitStatus.proposed
    patient_status = (
        "needs-action" if proposed and visit.awaiting == Awaiting.patient else "accepted"
    )
    clinic_status = "needs-action" if proposed and visit.awaiting == Awaiting.clinic else "accepted"
    participants: list[dict[str, Any]] = [
        {
            "actor": _ref("Patient", patient.id, patient.display_name),
            "required": "required",
            "status": patient_status,
        }
    ]
    for c in visit.clinicians:
        participants.append(
            {
                "actor": _ref("Practitioner", c.user_id, c.user.name),
                "required": "required",
                "status": clinic_status,
            }
        )
    if visit.place:
        participants.append({"actor": {"display": visit.place}, "status": "accepted"})
    updated = visit.status_at or visit.created_at
    resource = _drop_empty(
        {
            "resourceType": "Appointment",
            "id": str(visit.id),
            "meta": {"lastUpdated": _instant(updated)},
            "status": visit.status,
            "cancelationReason": {"text": visit.cancel_reason} if visit.cancel_reason else None,
            "serviceType": [
                {
                    "coding": [
                        {
                            "system": KIND_SYSTEM,
                            "code": visit.kind,
                            "display": KIND_NAMES.get(visit.kind, visit.kind),
                        }
                    ]
                }
            ],
            "description": visit.reason,
            "start": _instant(visit.start),
            "end": _instant(visit.start + timedelta(minutes=visit.minutes)),
            "minutesDuration": visit.minutes,
            "created": _instant(visit.created_at),
            "participant": participants,
        }
    )
    # The labels were loaded by the read that found the visit (no query per visit).
    return label_part2(resource) if disclosure.is_part2(visit, patient) else resource


def read_appointment(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    try:
        visit, acc = visits.find_visit(session, by=by, visit_id=ident)
    except NotFound:
        raise NotFound(Msg("No such resource.")) from None
    return appointment_resource(visit, acc.patient)


def _statuses(q: Query) -> set[str] | None:
    return allowed_codes(q.groups("status"), STATUS_SYSTEM, [s.value for s in VisitStatus])


def search_appointments(
    session: Session, *, by: User, q: Query
) -> tuple[list[dict[str, Any]], str | None, int]:
    """A patient's visits (patient is required; actor narrows to a clinician's), oldest
    first; date compares the start, a date without a zone in the organization's."""
    ids = q.patient_ids()
    if ids is None:
        raise InvalidInput.field("patient", Msg("is required: Appointment?patient=<id>"))
    actors = q.ids("actor", target="Practitioner")
    wanted = _statuses(q)
    tz = zone(by.organization)
    found: list[tuple[Appointment, Patient]] = []
    for ident in sorted(ids):
        try:
            acc = access.record_access(session, by, ident, object_type=visits.OBJECT)
        except NotFound:
            continue
        rows = visits.visits_for(session, acc, statuses=sorted(wanted) if wanted else None)
        if wanted is not None and not wanted:
            rows = []
        for visit in rows:
            if actors is not None and not {str(i) for i in visit.clinician_ids} & actors:
                continue
            if not all(
                any(d.matches_instant(visit.start, tz) for d in group) for group in q.groups("date")
            ):
                continue
            found.append((visit, acc.patient))
    resources = [appointment_resource(v, p) for v, p in found]
    page, next_cursor = page_of(resources, q)
    patients = {str(v.id): v.patient_id for v, _ in found}
    for resource in page:
        record(
            session,
            by=by,
            action="search",
            object_type=visits.OBJECT,
            object_id=uuid.UUID(resource["id"]),
            patient_id=patients[resource["id"]],
        )
    return page, next_cursor, len(resources)

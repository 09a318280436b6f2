"""A patient's visits and encounters in one timeline (issue 20: "encounters in the timeline").

Concord's own visits are the appointments domain's, the care team's contacts the registry's,
and the encounters the clinic's EHR sent are the EHR domain's: this read joins the three for
every door that shows the timeline (the patient's Timeline tab and its JSON twin). Each domain
reads through its own access and disclosure decision (consent, 42 CFR Part 2) and audits the
read, so the timeline shows no more than the three pages it gathers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.appointments import service as visits
from concord.audit.service import record
from concord.dates import local_date
from concord.ehr import service as ehr
from concord.registry import service as registry

# Where an entry comes from: a visit booked in Concord, a contact the care team logged in
# Concord, or an Encounter imported from the clinic's EHR.
VISIT, CONTACT, EHR = "visit", "contact", "ehr"


@dataclass(frozen=True)
class TimelineEntry:
    source: str
    on: date | None  # the local date; None when the EHR sent none that can be read
    at: datetime | None  # the instant, when known
    kind: str  # the visit's or contact's kind; the EHR's class code as sent
    description: str  # the EHR's words for the encounter's type; the contact's mode
    status: str  # the visit's status; the EHR's status as sent; "" for a contact
    who: str  # the clinicians of a visit; the person who made a contact
    minutes: int | None
    ref: str  # the visit's or contact's id; the EHR's id for its Encounter
    # Concord's own record (for its Part 2 label on the page); None for an imported one.
    record: Any = None


def _ehr_when(start: str, where: Any) -> tuple[date | None, datetime | None]:
    if len(start) > 10:
        try:
            moment = datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return local_date(moment, where), moment
    try:
        return date.fromisoformat(start[:10]), None
    except ValueError:
        return None, None


def timeline_for(session: Session, *, access: PatientAccess) -> list[TimelineEntry]:
    """The patient's visits (Concord's), contacts (Concord's; voided ones left out, and a
    contact logged for a visit shown with the visit) and the EHR's encounters, newest first,
    each marked by its source; each part read as this reader may see it, and audited."""
    where = access.patient.clinic.organization
    entries: list[TimelineEntry] = []
    found = visits.visits_for(session, access)
    logged = {v.contact_id for v in found if v.contact_id is not None}
    for v in found:
        entries.append(
            TimelineEntry(
                source=VISIT,
                on=local_date(v.start, where),
                at=v.start,
                kind=v.kind,
                description="",
                status=v.status,
                who=", ".join(c.user.name for c in v.clinicians),
                minutes=v.minutes,
                ref=str(v.id),
                record=v,
            )
        )
    for c in registry.contacts_for(session, access):
        if c.voided_at is not None or c.id in logged:
            continue
        entries.append(
            TimelineEntry(
                source=CONTACT,
                on=c.occurred_on,
                at=None,
                kind=c.kind,
                description=c.mode,
                status="",
                who=c.user.name,
                minutes=c.minutes,
                ref=str(c.id),
                record=c,
            )
        )
    for enc in ehr.imported_encounters(session, access=access):
        on, at = _ehr_when(enc.start, where)
        entries.append(
            TimelineEntry(
                source=EHR,
                on=on,
                at=at,
                kind=enc.klass,
                description=enc.description,
                status=enc.status,
                who="",
                minutes=None,
                ref=enc.sender_id,
            )
        )

    def newest(entry: TimelineEntry) -> tuple[bool, date, float]:
        # By day; within a day, by the instant where one is known. Undated EHR ones last.
        moment = entry.at.timestamp() if entry.at is not None else 0.0
        return (entry.on is not None, entry.on or date.min, moment)

    entries.sort(key=newest, reverse=True)
    # The timeline itself, with what it showed of each source (the registry's contact read
    # audits no success of its own).
    counts = {s: sum(1 for e in entries if e.source == s) for s in (VISIT, CONTACT, EHR)}
    record(
        session,
        by=access.by,
        action="read",
        object_type="Timeline",
        patient_id=access.patient.id,
        detail=counts,
    )
    return entries

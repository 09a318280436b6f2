"""MOUD records in FHIR R4 (issue 19; ADR 0025): a PDMP check as a `Procedure`.

A PDMP check is served as the HL7 Data Exchange Profiles for the 2022 CDC Clinical Practice
Guideline for Prescribing Opioids (`PDMPReviewProcedure`) and the CDC opioid CDS IG's value set
`pdmp-review-procedure` shape it: status `completed`, code SNOMED CT 461621000124108 "Review of
prescription drug monitoring program record (procedure)", `performedDateTime` the day it was
done (a date: Concord keeps the day), `performer` the clinician who checked, `outcome.text` the
result as recorded (Concord interprets none), `note` the note. The MOUD medication itself is a
`MedicationRequest` or `MedicationStatement` (concord.fhir.medications); the other MOUD records
(urine drug tests, naloxone, missed doses or visits...) are not served in FHIR yet (ADR 0025).

`/fhir/Procedure` also serves what the clinic's EHR sent (concord.fhir.ehr), so a PDMP check's
id carries a prefix the EHR import refuses for Procedure
(concord.ehr.service.RESERVED_ID_PREFIXES), as the social-needs resources do (ADR 0030). A read
goes through the medication service (the record's access, the disclosure decision, 42 CFR
Part 2, the audit trail); a search through its list of the patient's MOUD records; nothing is
queried here. A Part 2 program's record carries meta.security 42CFRPart2.

A Procedure search takes, besides patient or subject, `date` (a date, on performed), `status`
and `code` (tokens), applied to the imported Procedures as sent and to Concord's own alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from concord import access
from concord.accounts.models import User
from concord.ehr.service import RESERVED_ID_PREFIXES
from concord.errors import InvalidInput, NotFound
from concord.fhir.mapping import IMPORTED_PARAMS, _drop_empty, _instant, _ref
from concord.fhir.search import (
    Token,
    When,
    _split,
    _token,
    _when,
    codings_match,
    patients_named,
)
from concord.fhir.service import _labelled
from concord.i18n import Msg
from concord.medications import service as meds
from concord.medications.models import MoudKind, MoudRecord
from concord.patients.models import Patient

PREFIX = RESERVED_ID_PREFIXES["Procedure"]
SNOMED = "http://snomed.info/sct"
# The CDC opioid CDS IG's value set pdmp-review-procedure (SNOMED CT US edition), the code
# the HL7 CDC opioid guideline IG's PDMPReviewProcedure profile requires.
PDMP_REVIEW = "461621000124108"
PDMP_REVIEW_DISPLAY = "Review of prescription drug monitoring program record (procedure)"
EVENT_STATUS = "http://hl7.org/fhir/event-status"
# What a Procedure search takes here besides patient and subject (the CapabilityStatement's).
FILTERS = IMPORTED_PARAMS["Procedure"]


def procedure_resource(row: MoudRecord, patient: Patient) -> dict[str, Any]:
    performer = row.performed_by
    return _drop_empty(
        {
            "resourceType": "Procedure",
            "id": f"{PREFIX}{row.id}",
            "meta": {"lastUpdated": _instant(row.created_at)},
            "status": "completed",
            "code": {
                "coding": [{"system": SNOMED, "code": PDMP_REVIEW, "display": PDMP_REVIEW_DISPLAY}],
                "text": "PDMP check",
            },
            "subject": _ref("Patient", patient.id, patient.display_name),
            "performedDateTime": row.on.isoformat(),
            "performer": [{"actor": _ref("Practitioner", performer.id, performer.name)}]
            if performer is not None
            else None,
            "outcome": {"text": row.result} if row.result else None,
            "note": [{"text": row.note}] if row.note else None,
        }
    )


def _resource(session: Session, row: MoudRecord, patient: Patient) -> dict[str, Any]:
    return _labelled(session, row, patient, procedure_resource(row, patient))


# --- reads ------------------------------------------------------------------------------------


def is_moud(kind: str, ident: str) -> bool:
    """Whether a read of `kind/ident` is one of Concord's PDMP checks (by its prefix)."""
    return kind == "Procedure" and ident.startswith(PREFIX)


def read(session: Session, *, by: User, ident: str) -> dict[str, Any]:
    try:
        row, acc = meds.find_moud_record(session, by=by, ident=ident.removeprefix(PREFIX))
    except NotFound:
        raise NotFound(Msg("No such resource.")) from None
    if row.kind != MoudKind.pdmp_check:
        raise NotFound(Msg("No such resource."))
    return _resource(session, row, acc.patient)


# --- searches ---------------------------------------------------------------------------------


@dataclass
class Filters:
    """A Procedure search's date, status and code (each: AND groups of OR values)."""

    dates: list[list[When]] = field(default_factory=list)
    statuses: list[list[Token]] = field(default_factory=list)
    codes: list[list[Token]] = field(default_factory=list)


def filters_of(
    pairs: Sequence[tuple[str, str]],
) -> tuple[list[tuple[str, str]], Filters]:
    """A Procedure search's date, status and code taken out of the pairs the imported search
    reads (which takes patient alone)."""
    rest = [(name, value) for name, value in pairs if name not in FILTERS]
    found = Filters()
    for name, value in pairs:
        if name not in FILTERS:
            continue
        parts = _split(value, ",")
        if not value or not all(parts):
            raise InvalidInput.field(name, Msg("needs a value"))
        if name == "date":
            found.dates.append([_when(name, part, day_only=True) for part in parts])
        else:
            group = [_token(name, part) for part in parts]
            (found.statuses if name == "status" else found.codes).append(group)
    return rest, found


def _performed(resource: dict[str, Any]) -> date | None:
    value = resource.get("performedDateTime")
    if not isinstance(value, str):
        period = resource.get("performedPeriod")
        value = period.get("start") if isinstance(period, dict) else None
    if not isinstance(value, str) or len(value) < 10:
        return None  # a year or a month alone is not a day this search can place
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _day_matches(when: When, day: date) -> bool:
    """R4's prefixes for a day against the range [lo, hi) the value covers (sa is gt, eb lt)."""
    lo, hi = when.start.date(), when.end.date()
    if when.prefix == "eq":
        return lo <= day < hi
    if when.prefix == "ne":
        return day < lo or day >= hi
    if when.prefix in ("lt", "eb"):
        return day < lo
    if when.prefix in ("gt", "sa"):
        return day >= hi
    if when.prefix == "le":
        return day < hi
    return day >= lo  # ge


def matches(resource: dict[str, Any], filters: Filters) -> bool:
    """Whether a Procedure (imported as sent, or Concord's own) satisfies the filters."""
    if filters.dates:
        day = _performed(resource)
        if day is None or not all(any(_day_matches(w, day) for w in g) for g in filters.dates):
            return False
    if filters.statuses:
        status = [{"system": EVENT_STATUS, "code": resource.get("status")}]
        if not codings_match(filters.statuses, status):
            return False
    if filters.codes:
        concept = resource.get("code")
        codings = concept.get("coding") if isinstance(concept, dict) else None
        valid = [c for c in codings or [] if isinstance(c, dict)]
        if not codings_match(filters.codes, valid):
            return False
    return True


def search_by_patient(
    session: Session, *, by: User, pairs: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The PDMP checks of the patients named (patient or subject), each patient through the
    record's access (one outside it is left out, as a missing one, audited) and the service's
    list (the disclosure decision, audited). Without a patient, those of every patient the
    caller may read."""
    wanted = patients_named(pairs)
    if wanted is None:
        scope = meds.patients_with_moud_records(session, by=by)
    else:
        scope = access.records_among(session, by, wanted, object_type=meds.MOUD) or []
    found: list[dict[str, Any]] = []
    for acc in scope:
        for row in meds.list_moud_records(session, access=acc):
            if row.kind == MoudKind.pdmp_check:
                found.append(_resource(session, row, acc.patient))
    return found

"""Patient/[id]/$everything: the patient's record as one Bundle, for an EHR that wants it
all (https://hl7.org/fhir/R4/patient-operation-everything.html). Each part is read by the
same search as its own type (the same access rules, consent and Part 2, disclosure log and
audit trail); what the caller may not see of it is left out as that search leaves it out.

Offered: `_type` (the types wanted, comma-separated) and `_count` (at most MAX_COUNT of each
type; a type with more says so in an OperationOutcome entry and names the search that pages
through them). `start`, `end` and `_since` are refused (400 not-supported), never ignored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from concord.accounts.models import User
from concord.errors import InvalidInput, NotSupported
from concord.fhir import medications as fhir_meds
from concord.fhir import service as fhir
from concord.fhir.consents import search_consents
from concord.fhir.search import MAX_COUNT, Query, Ref
from concord.i18n import Msg

TYPES = (
    "Patient",
    "CareTeam",
    "CarePlan",
    "Goal",
    "Observation",
    "QuestionnaireResponse",
    "Consent",
    "MedicationRequest",
    "MedicationStatement",
    "Flag",
    "Task",
)


def _parse(pairs: Sequence[tuple[str, str]]) -> tuple[list[str], int]:
    types = list(TYPES)
    count = MAX_COUNT
    for name, value in pairs:
        if name == "_type":
            wanted = [t.strip() for t in value.split(",") if t.strip()]
            unknown = [t for t in wanted if t not in TYPES]
            if unknown or not wanted:
                raise NotSupported.field(
                    "_type",
                    Msg(
                        "%(names)s: not offered (offered: %(offered)s)",
                        names=", ".join(unknown)[:200] or "''",
                        offered=", ".join(TYPES),
                    ),
                )
            types = [t for t in types if t in wanted]
        elif name == "_count":
            if not value.isdigit() or not 1 <= int(value) <= MAX_COUNT:
                raise InvalidInput.field(
                    "_count", Msg("must be a whole number from 1 to %(max)s", max=MAX_COUNT)
                )
            count = int(value)
        elif name not in ("_format", "_pretty"):
            raise NotSupported.field(
                name[:80],
                Msg("is not supported by $everything here (supported: _type, _count)"),
            )
    return types, count


def everything(
    session: Session, *, by: User, ident: str, mrn: str, pairs: Sequence[tuple[str, str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the resources, OperationOutcome issues for the types cut at _count)."""
    types, count = _parse(pairs)
    patient = fhir.read_patient(session, by=by, ident=ident, mrn=mrn)  # 404 when not theirs
    found: list[dict[str, Any]] = [patient] if "Patient" in types else []
    issues: list[dict[str, Any]] = []
    for kind in types:
        if kind == "Patient":
            continue
        q = Query(kind, {"patient": [[Ref("Patient", patient["id"])]]}, count=count)
        if kind == "Observation":
            page = fhir.search_observations(session, by=by, q=q)
        elif kind == "QuestionnaireResponse":
            page = fhir.search_questionnaire_responses(session, by=by, q=q, base="")
        elif kind in ("Task", "Flag"):
            page = fhir.search_safety(session, by=by, q=q)
        elif kind == "Consent":
            page = fhir.SearchPage(*search_consents(session, by=by, q=q))
        elif kind in fhir_meds.KINDS:
            page = fhir.SearchPage(*fhir_meds.search_medications(session, by=by, kind=kind, q=q))
        else:
            page = fhir.search(session, by=by, q=q, mrn=mrn)
        found += page.resources
        if page.total > len(page.resources):
            issues.append(
                {
                    "severity": "warning",
                    "code": "too-costly",
                    "diagnostics": (
                        f"{kind}: the first {len(page.resources)} of {page.total}; "
                        f"{kind}?patient={patient['id']} pages through them all."
                    ),
                }
            )
    return found, issues

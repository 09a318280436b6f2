"""Importing an EHR's FHIR Bundles, and reading what was imported.

An integration client (a user of role `client` with a token scoped `import`) posts a
`transaction` or `batch` Bundle. Each entry is checked against the R4 models (fhir.resources
R4B), its references to other entries (urn:uuid fullUrls) resolved, its patient matched by
medical record number (never by name alone), and the resource kept as sent under the sender's
id. A transaction is all or nothing: any invalid entry refuses the whole Bundle, naming the
entry and field, and nothing is written. A batch answers each entry on its own.

Reads go through the same access (concord.access) and disclosure (concord.disclosure)
decisions as Concord's own records, and each is audited.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import ValidationError
from sqlalchemy import (
    String,
    Text,
    bindparam,
    cast,
    delete,
    func,
    select,
    type_coerce,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from concord.access import (
    PatientAccess,
    parse_id,
    patient_for,
    readable_patients,
    record_access,
    sees_whole_record,
    team_access,
)
from concord.accounts.models import ClientScope, Clinic, Organization, User
from concord.audit.models import Outcome
from concord.audit.service import record, refused
from concord.categories import DataCategory
from concord.clock import now
from concord.db import Base
from concord.disclosure import filter_records, load_for, role_relation
from concord.ehr.models import EhrImport, EhrImportItem, EhrMatch, EhrResource, MatchStatus
from concord.errors import ConcordError, Conflict, InvalidInput, NotFound, PermissionDenied
from concord.i18n import Msg
from concord.patients.models import AdministrativeGender, CareTeam, Patient
from concord.patients.service import NewPatient, register_patient

# The resource types an EHR may send, each with the R4 model that checks it.
ACCEPTED = {
    "Patient": "patient",
    "Encounter": "encounter",
    "Condition": "condition",
    "Observation": "observation",
    "Procedure": "procedure",
    "ServiceRequest": "servicerequest",
    "MedicationRequest": "medicationrequest",
    "Coverage": "coverage",
    "Organization": "organization",
    "Practitioner": "practitioner",
}
# Ids Concord keeps for its own resources of an imported type (the social-needs health concerns
# and referrals, concord.fhir.social; the PDMP checks, concord.fhir.moud): an EHR may not send
# one, so the two never collide.
RESERVED_ID_PREFIXES = {
    "Condition": "concord-sdoh-",
    "ServiceRequest": "concord-referral-",
    "Procedure": "concord-pdmp-",
}
# Types about no patient (kept for the organization).
UNLINKED = frozenset({"Organization", "Practitioner"})
# Where each type names the patient it is about.
SUBJECT = {
    "Encounter": "subject",
    "Condition": "subject",
    "Observation": "subject",
    "Procedure": "subject",
    "ServiceRequest": "subject",
    "MedicationRequest": "subject",
    "Coverage": "beneficiary",
}
MAX_ENTRIES = 1000
ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
# The identifier system of an import (Bundle.identifier of the response): its id to undo it.
IMPORT_SYSTEM = "https://concord-care.org/fhir/sid/ehr-import"
RULES_FILE = Path(__file__).with_name("categories.yaml")


class BundleInvalid(InvalidInput):
    """A Bundle refused as a whole (FHIR: 400 with an OperationOutcome)."""

    status_code = 400


@functools.cache
def _model(kind: str) -> Any:
    module = importlib.import_module(f"fhir.resources.R4B.{ACCEPTED[kind]}")
    return getattr(module, kind)


# --- data categories, from concord/ehr/categories.yaml --------------------------------------


@dataclass(frozen=True)
class CategoryRule:
    resource: str
    system: str
    category: DataCategory
    prefixes: tuple[str, ...] = ()
    codes: frozenset[str] = frozenset()


@functools.cache
def category_rules() -> tuple[tuple[CategoryRule, ...], DataCategory]:
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    rules = tuple(
        CategoryRule(
            resource=r["resource"],
            system=r["system"],
            category=DataCategory(r["category"]),
            prefixes=tuple(r.get("prefixes") or ()),
            codes=frozenset(r.get("codes") or ()),
        )
        for r in data["rules"]
    )
    return rules, DataCategory(data.get("default", "general"))


def _codings(resource: dict[str, Any]) -> Iterator[tuple[str, str]]:
    code = resource.get("code")
    if isinstance(code, dict):
        for coding in code.get("coding") or []:
            if isinstance(coding, dict) and coding.get("code"):
                yield str(coding.get("system") or ""), str(coding["code"])


def category_of_resource(resource: dict[str, Any]) -> DataCategory:
    """The data category of an imported resource by the rules (the most protective code of
    the resource wins: a Condition coded both F32 and F10 is substance use)."""
    rules, default = category_rules()
    kind = resource.get("resourceType")
    codings = list(_codings(resource))
    for rule in rules:
        if rule.resource != kind:
            continue
        for system, code in codings:
            if system != rule.system:
                continue
            bare = code.replace(".", "").upper()
            if rule.codes and code in rule.codes:
                return rule.category
            if rule.prefixes and any(bare.startswith(p) for p in rule.prefixes):
                return rule.category
    return default


# --- the import ------------------------------------------------------------------------------


@dataclass
class Entry:
    index: int
    method: str
    kind: str
    sender_id: str
    full_url: str | None
    resource: dict[str, Any]
    status: str = ""
    location: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: dict[str, str] = field(default_factory=dict)
    patient_ref: str | None = None


class EntryError(Exception):
    def __init__(self, fields: dict[str, str], status: str = "400 Bad Request") -> None:
        super().__init__(fields)
        self.fields = fields
        self.status = status


def _where(index: int, path: str = "") -> str:
    return f"Bundle.entry[{index}]" + (f".{path}" if path else "")


def _loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def mrn_system_for(template: str, organization: Organization) -> str:
    return template.replace("{organization}", organization.slug)


def require_client(session: Session, by: User, scopes: frozenset[str], scope: str) -> None:
    """Only an integration client whose token carries `scope`; refused (audited) otherwise."""
    if by.is_client and by.active and scope in scopes:
        return
    record(
        session,
        by=by,
        action="import" if scope == ClientScope.import_ else "read",
        object_type="Bundle" if scope == ClientScope.import_ else "EhrResource",
        outcome=Outcome.denied,
        detail={"scope": scope},
    )
    raise PermissionDenied(Msg("Only an integration client's token with this scope may do this."))


def import_bundle(
    session: Session,
    *,
    by: User,
    scopes: frozenset[str],
    bundle: Any,
    mrn_system: str,
    seed: str | None = None,
    stored: list[EhrResource] | None = None,
) -> dict[str, Any]:
    """Import a transaction or batch Bundle; the transaction-response or batch-response.
    `stored`, when given, receives the rows written or confirmed (for the action that puts
    imported MedicationRequests on the medication list).
    With `seed` (the client's Idempotency-Key), the ids given to POST entries follow from it
    and the entry's position, so the same request sent again updates what the first created
    instead of creating it twice."""
    require_client(session, by, scopes, ClientScope.import_)
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BundleInvalid.field("resourceType", "must be Bundle")
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise BundleInvalid.field("Bundle.type", "must be transaction or batch")
    raw = bundle.get("entry") or []
    if not isinstance(raw, list):
        raise BundleInvalid.field("Bundle.entry", "must be a list")
    if len(raw) > MAX_ENTRIES:
        raise BundleInvalid.field("Bundle.entry", f"at most {MAX_ENTRIES} entries a Bundle")
    organization = by.organization
    system = mrn_system_for(mrn_system, organization)
    entries: list[Entry] = []
    problems: dict[str, str] = {}
    for index, item in enumerate(raw):
        try:
            entries.append(_parse_entry(index, item, seed))
        except EntryError as exc:
            problems.update(exc.fields)
            entries.append(_failed(index, item, exc))
    # fullUrl -> Type/id, for references between entries.
    urls = {e.full_url: f"{e.kind}/{e.sender_id}" for e in entries if e.full_url and not e.error}
    transaction = kind == "transaction"
    if transaction and problems:
        raise BundleInvalid(
            Msg("The Bundle was not imported: fix the entries named."), errors=problems
        )
    # Who the Bundle is about first, then the rest, each in the Bundle's order.
    order = sorted(
        (e for e in entries if not e.error),
        key=lambda e: (0 if e.kind in UNLINKED else 1 if e.kind == "Patient" else 2, e.index),
    )
    for entry in order:
        _resolve(entry.resource, urls)
    # Every row the Bundle names (its entries and their patients), in one query: a 1000-entry
    # Bundle is not 2000 lookups.
    cache = _preload(session, organization.id, order)
    # The import itself: what it creates and changes is kept, so it can be undone.
    batch = EhrImport(
        id=uuid.uuid4(),
        organization_id=organization.id,
        source_id=by.id,
        kind=kind,
        entries=len(entries),
        created_at=now(),
    )
    session.add(batch)
    store = functools.partial(
        _store,
        session,
        by=by,
        organization=organization,
        system=system,
        cache=cache,
        batch=batch,
    )
    with session.no_autoflush:
        for entry in order:
            if transaction:
                try:
                    store(entry=entry)
                except EntryError as exc:
                    problems.update(exc.fields)
                continue
            savepoint = session.begin_nested()
            pending = len(session.info.get("audit_pending", []))
            try:
                store(entry=entry)
                session.flush()
                savepoint.commit()
            except EntryError as exc:
                savepoint.rollback()
                del session.info.get("audit_pending", [])[pending:]
                entry.error = exc.fields
                entry.status = exc.status
                # Rows made in the rolled-back entry are gone.
                for key in [k for k, r in cache.items() if not sa_inspect(r).persistent]:
                    del cache[key]
    session.flush()
    if transaction and problems:
        raise BundleInvalid(
            Msg("The Bundle was not imported: fix the entries named."), errors=problems
        )
    if stored is not None:
        stored.extend(
            row
            for e in order
            if not e.error and (row := cache.get((e.kind, e.sender_id))) is not None
        )
    record(
        session,
        by=by,
        action="import",
        object_type="Bundle",
        object_id=batch.id,
        detail={
            "type": kind,
            "entries": len(entries),
            "failed": sum(1 for e in entries if e.error),
        },
    )
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        # The import's id: the one to name to undo it (POST /api/v1/ehr/imports/[id]/undo).
        "identifier": {"system": IMPORT_SYSTEM, "value": str(batch.id)},
        "type": f"{kind}-response",
        "entry": [_response_entry(e) for e in entries],
    }


def _failed(index: int, item: Any, exc: EntryError) -> Entry:
    entry = Entry(index, "", "", "", None, {}, status=exc.status, error=exc.fields)
    return entry


def _parse_entry(index: int, item: Any, seed: str | None = None) -> Entry:
    if not isinstance(item, dict):
        raise EntryError({_where(index): "must be an object"})
    request = item.get("request")
    resource = item.get("resource")
    if not isinstance(request, dict):
        raise EntryError({_where(index, "request"): "is required (method POST or PUT, url)"})
    method = str(request.get("method") or "").upper()
    url = str(request.get("url") or "")
    if method not in ("POST", "PUT"):
        raise EntryError(
            {_where(index, "request.method"): "must be POST or PUT (only imports are offered)"}
        )
    if request.get("ifNoneExist") or request.get("ifMatch") or "?" in url:
        raise EntryError(
            {_where(index, "request"): "conditional requests are not offered: PUT Type/id"}
        )
    if not isinstance(resource, dict):
        raise EntryError({_where(index, "resource"): "is required"})
    kind = resource.get("resourceType")
    if kind not in ACCEPTED:
        raise EntryError(
            {
                _where(index, "resource.resourceType"): "must be one of: "
                + ", ".join(sorted(ACCEPTED))
            }
        )
    if method == "PUT":
        parts = url.strip("/").split("/")
        if len(parts) != 2 or parts[0] != kind or not ID_RE.match(parts[1]):
            raise EntryError(
                {_where(index, "request.url"): f"must be {kind}/[id] (id: 1-64 of A-Z a-z 0-9 - .)"}
            )
        sender_id = parts[1]
        reserved = RESERVED_ID_PREFIXES.get(kind)
        if reserved and sender_id.lower().startswith(reserved):
            raise EntryError(
                {_where(index, "request.url"): f"an id starting {reserved} is Concord's own"}
            )
        if resource.get("id") not in (None, sender_id):
            raise EntryError({_where(index, "resource.id"): "must be the id in request.url"})
    else:
        if url.strip("/") != kind:
            raise EntryError({_where(index, "request.url"): f"must be {kind}"})
        sender_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}#{index}") if seed else uuid.uuid4())
    resource = copy.deepcopy(resource)
    resource["id"] = sender_id
    try:
        _model(kind).model_validate(resource)
    except ValidationError as exc:
        fields = {}
        for error in exc.errors()[:10]:
            path = _loc(error["loc"])
            fields[_where(index, "resource" + (f".{path}" if path else ""))] = str(error["msg"])[
                :200
            ]
        raise EntryError(fields) from None
    full_url = item.get("fullUrl")
    return Entry(index, method, kind, sender_id, str(full_url) if full_url else None, resource)


def _resolve(value: Any, urls: dict[str, str]) -> None:
    """Point references to other entries (by fullUrl) at their Type/id."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and item in urls:
                value[key] = urls[item]
            else:
                _resolve(item, urls)
    elif isinstance(value, list):
        for item in value:
            _resolve(item, urls)


def _preload(
    session: Session, organization_id: uuid.UUID, entries: list[Entry]
) -> dict[tuple[str, str], EhrResource]:
    wanted = {(e.kind, e.sender_id) for e in entries}
    for entry in entries:
        if entry.kind in SUBJECT:
            try:
                wanted.add(("Patient", _subject(entry)))
            except EntryError:
                continue  # answered when the entry is stored
    ids = sorted({sid for _, sid in wanted})
    found: dict[tuple[str, str], EhrResource] = {}
    for start in range(0, len(ids), 500):
        for row in session.scalars(
            select(EhrResource).where(
                EhrResource.organization_id == organization_id,
                EhrResource.sender_id.in_(ids[start : start + 500]),
            )
        ):
            key = (row.resource_type, row.sender_id)
            if key in wanted:
                found[key] = row
    return found


def _row(
    session: Session, organization_id: uuid.UUID, kind: str, sender_id: str
) -> EhrResource | None:
    return session.scalar(
        select(EhrResource).where(
            EhrResource.organization_id == organization_id,
            EhrResource.resource_type == kind,
            EhrResource.sender_id == sender_id,
        )
    )


def _subject(entry: Entry) -> str:
    """The sender's id of the Patient an entry is about."""
    element = SUBJECT[entry.kind]
    where = _where(entry.index, f"resource.{element}")
    ref = entry.resource.get(element)
    reference = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(reference, str) or not reference:
        raise EntryError({where: "must name the patient (Patient/[id] or an entry's fullUrl)"})
    parts = reference.strip("/").split("/")
    if len(parts) < 2 or parts[-2] != "Patient":
        raise EntryError({where: "must reference a Patient"})
    return parts[-1]


def _store(
    session: Session,
    *,
    by: User,
    organization: Organization,
    entry: Entry,
    system: str,
    cache: dict[tuple[str, str], EhrResource],
    batch: EhrImport | None = None,
) -> None:
    patient_id: uuid.UUID | None = None
    patient_ref: str | None = None
    held = False
    if entry.kind == "Patient":
        patient_ref = entry.sender_id
    elif entry.kind not in UNLINKED:
        patient_ref = _subject(entry)
        patient_row = cache.get(("Patient", patient_ref))
        if patient_row is None:
            raise EntryError(
                {
                    _where(entry.index, f"resource.{SUBJECT[entry.kind]}"): f"Patient/"
                    f"{patient_ref[:64]} is not known: send the Patient first or in this Bundle"
                }
            )
        patient_id = patient_row.patient_id
        held = patient_id is None
    row = cache.get((entry.kind, entry.sender_id))
    if row is not None and row.source_id != by.id:
        raise EntryError(
            {_where(entry.index, "request.url"): "was sent by another client of this organization"},
            status="409 Conflict",
        )
    category = str(category_of_resource(entry.resource))
    stamp = now()
    item: EhrImportItem | None = None
    if row is None:
        row = EhrResource(
            id=uuid.uuid4(),
            organization_id=organization.id,
            source_id=by.id,
            resource_type=entry.kind,
            sender_id=entry.sender_id,
            patient_id=patient_id,
            patient_ref=patient_ref,
            category=category,
            resource=entry.resource,
            version=1,
            last_updated=stamp,
            created_at=stamp,
        )
        session.add(row)
        cache[(entry.kind, entry.sender_id)] = row
        entry.status = "201 Created"
        registered = None
        if entry.kind == "Patient":
            registered = _match(
                session, by=by, organization=organization, row=row, entry=entry, system=system
            )
        item = EhrImportItem(created=True, registered_patient_id=registered)
    else:
        before = (row.resource, row.category, row.patient_id, row.patient_ref)
        if row.resource != entry.resource or row.category != category:
            row.resource = entry.resource
            row.category = category
            row.version += 1
            row.last_updated = stamp
        if entry.kind != "Patient":
            # A resource moved to another patient follows the new subject.
            row.patient_ref = patient_ref
            row.patient_id = patient_id
        if before != (row.resource, row.category, row.patient_id, row.patient_ref):
            item = EhrImportItem(
                created=False,
                previous=before[0],
                previous_category=before[1],
                previous_patient_id=before[2],
                previous_patient_ref=before[3],
            )
        entry.status = "200 OK"
    if item is not None and batch is not None:
        item.import_id = batch.id
        item.position = entry.index
        item.resource_type = entry.kind
        item.sender_id = entry.sender_id
        item.version = row.version
        session.add(item)
    entry.location = f"{entry.kind}/{entry.sender_id}/_history/{row.version}"
    entry.etag = f'W/"{row.version}"'
    entry.last_modified = row.last_updated.isoformat().replace("+00:00", "Z")
    record(
        session,
        by=by,
        action="import",
        object_type=entry.kind,
        object_id=row.id,
        patient_id=row.patient_id,
        detail={"status": entry.status[:3], "version": row.version, "held": held},
    )


def _names(resource: dict[str, Any]) -> tuple[str, str]:
    names = [n for n in resource.get("name") or [] if isinstance(n, dict)]
    official = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    given = " ".join(str(g) for g in official.get("given") or [])
    return given.strip(), str(official.get("family") or "").strip()


def _mrn_of(resource: dict[str, Any], system: str) -> str | None:
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == system and ident.get("value"):
            return str(ident["value"])[:40]
    return None


def _match(
    session: Session,
    *,
    by: User,
    organization: Organization,
    row: EhrResource,
    entry: Entry,
    system: str,
) -> uuid.UUID | None:
    """Link a new imported Patient to Concord's patient: by MRN; a same name and birth date
    without the MRN to prove it is held for a person; otherwise a new patient (its id
    returned: the import registered it)."""
    resource = entry.resource
    mrn = _mrn_of(resource, system)
    if mrn is not None:
        found = session.scalar(
            select(Patient).where(Patient.organization_id == organization.id, Patient.mrn == mrn)
        )
        if found is not None:
            row.patient_id = found.id
            return None
    given, family = _names(resource)
    born = resource.get("birthDate")
    birth_date = None
    if isinstance(born, str) and len(born) == 10:
        try:
            birth_date = date.fromisoformat(born)
        except ValueError:
            birth_date = None
    if birth_date is not None and family:
        first = given.split(" ")[0] if given else ""
        candidate = session.scalar(
            select(Patient)
            .where(
                Patient.organization_id == organization.id,
                Patient.birth_date == birth_date,
                func.lower(Patient.family_name) == family.lower(),
                func.lower(Patient.given_name) == first.lower(),
            )
            .limit(1)
        )
        if candidate is not None:
            session.flush()  # the imported Patient's row first: the match names it
            session.add(
                EhrMatch(
                    organization_id=organization.id,
                    resource_id=row.id,
                    patient_id=candidate.id,
                    reason="mrn_missing" if mrn is None else "mrn_differs",
                    status=MatchStatus.pending,
                )
            )
            session.flush()
            record(
                session,
                by=by,
                action="match_held",
                object_type="EhrMatch",
                object_id=row.id,
                patient_id=candidate.id,
            )
            return None
    problems = {}
    if birth_date is None:
        problems[_where(entry.index, "resource.birthDate")] = (
            "is required (YYYY-MM-DD) to register a patient the EHR sends for the first time"
        )
    if not family:
        problems[_where(entry.index, "resource.name")] = (
            "a family name is required to register a new patient"
        )
    if problems:
        raise EntryError(problems)
    assert birth_date is not None
    row.patient_id = _register(
        session,
        organization=organization,
        clinic_id=_clinic_for(session, by, organization),
        resource=resource,
        given=given,
        family=family,
        birth_date=birth_date,
        mrn=mrn or f"EHR-{entry.sender_id}"[:40],
        where=_where(entry.index, "resource"),
    ).id
    return row.patient_id


def _clinic_for(session: Session, by: User, organization: Organization) -> uuid.UUID:
    if by.clinic_id is not None:
        return by.clinic_id
    clinic = session.scalar(
        select(Clinic.id)
        .where(Clinic.organization_id == organization.id)
        .order_by(Clinic.created_at, Clinic.name)
        .limit(1)
    )
    if clinic is None:
        raise EntryError({"Bundle": "the organization has no clinic to register patients in"})
    return clinic


def _register(
    session: Session,
    *,
    organization: Organization,
    clinic_id: uuid.UUID,
    resource: dict[str, Any],
    given: str,
    family: str,
    birth_date: date,
    mrn: str,
    where: str,
) -> Patient:
    gender = resource.get("gender")
    if gender not in {g.value for g in AdministrativeGender}:
        gender = AdministrativeGender.unknown
    try:
        patient, _ = register_patient(
            session,
            by=None,
            organization=organization,
            data=NewPatient(
                given_name=(given or "-")[:100],
                family_name=family[:100],
                birth_date=birth_date,
                mrn=mrn,
                clinic_id=clinic_id,
                gender=gender,
            ),
        )
    except InvalidInput as exc:
        raise EntryError({f"{where}.{k}": str(v) for k, v in exc.errors.items()}) from None
    except ConcordError as exc:
        raise EntryError({where: str(exc.message)}) from None
    return patient


def _response_entry(entry: Entry) -> dict[str, Any]:
    response: dict[str, Any] = {"status": entry.status}
    if entry.error:
        response["outcome"] = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "conflict" if entry.status.startswith("409") else "invalid",
                    "diagnostics": f"{k}: {v}",
                    "expression": [k],
                }
                for k, v in entry.error.items()
            ],
        }
    else:
        response["location"] = entry.location
        response["etag"] = entry.etag
        response["lastModified"] = entry.last_modified
    return {"response": response}


# --- matches held for a person ---------------------------------------------------------------


@dataclass(frozen=True)
class MatchView:
    id: uuid.UUID
    patient_id: uuid.UUID
    patient_name: str
    patient_mrn: str
    patient_birth_date: date
    imported_name: str
    imported_birth_date: str
    imported_identifiers: list[str]
    reason: str
    status: str
    created_at: Any


def _view(match: EhrMatch, patient: Patient, row: EhrResource) -> MatchView:
    given, family = _names(row.resource)
    idents = [
        f"{i.get('system', '')}|{i.get('value', '')}"[:200]
        for i in row.resource.get("identifier") or []
        if isinstance(i, dict)
    ]
    return MatchView(
        id=match.id,
        patient_id=patient.id,
        patient_name=patient.full_name,
        patient_mrn=patient.mrn,
        patient_birth_date=patient.birth_date,
        imported_name=f"{given} {family}".strip(),
        imported_birth_date=str(row.resource.get("birthDate") or ""),
        imported_identifiers=idents,
        reason=match.reason,
        status=match.status,
        created_at=match.created_at,
    )


def list_matches(session: Session, *, by: User) -> list[MatchView]:
    """The doubtful matches waiting, for patients on `by`'s care teams (each read audited)."""
    mine = readable_patients(by).with_only_columns(Patient.id) if by.is_clinician else None
    if mine is None:
        return []
    rows = session.execute(
        select(EhrMatch, Patient, EhrResource)
        .join(Patient, Patient.id == EhrMatch.patient_id)
        .join(EhrResource, EhrResource.id == EhrMatch.resource_id)
        .where(
            EhrMatch.organization_id == by.organization_id,
            EhrMatch.status == MatchStatus.pending,
            EhrMatch.patient_id.in_(mine),
        )
        .order_by(EhrMatch.created_at, EhrMatch.id)
    ).all()
    out = []
    for match, patient, row in rows:
        record(
            session,
            by=by,
            action="read",
            object_type="EhrMatch",
            object_id=match.id,
            patient_id=patient.id,
        )
        out.append(_view(match, patient, row))
    return out


def decide_match(session: Session, *, by: User, match_id: str | uuid.UUID, same: bool) -> MatchView:
    """A person's decision on a held match: the same patient (the imported record and all
    that came with it join the existing record) or a different one (registered as new)."""
    try:
        mid = uuid.UUID(str(match_id))
    except ValueError:
        mid = None
    match = session.get(EhrMatch, mid) if mid is not None else None
    if match is None or match.organization_id != by.organization_id:
        raise refused(
            session,
            by=by,
            action="match_decide",
            object_type="EhrMatch",
            asked_for=match_id,
            message=Msg("No such match."),
        )
    acc = team_access(session, by, match.patient_id, action="match_decide", object_type="EhrMatch")
    if not by.is_clinician:
        raise NotFound(Msg("No such match."))
    from_conflict = match.status != MatchStatus.pending
    row = session.get(EhrResource, match.resource_id)
    assert row is not None
    if from_conflict:
        raise Conflict(Msg("This match was already decided."))
    if same:
        target = acc.patient
    else:
        given, family = _names(row.resource)
        born = date.fromisoformat(str(row.resource["birthDate"]))
        organization = by.organization
        system_mrn = f"EHR-{row.sender_id}"[:40]
        target = _register(
            session,
            organization=organization,
            clinic_id=acc.patient.clinic_id,
            resource=row.resource,
            given=given,
            family=family,
            birth_date=born,
            mrn=system_mrn,
            where="resource",
        )
    session.execute(
        update(EhrResource)
        .where(
            EhrResource.organization_id == row.organization_id,
            EhrResource.patient_ref == row.sender_id,
        )
        .values(patient_id=target.id)
    )
    match.status = MatchStatus.same if same else MatchStatus.different
    match.decided_at = now()
    match.decided_by_id = by.id
    match.linked_patient_id = target.id
    session.flush()
    record(
        session,
        by=by,
        action="match_decide",
        object_type="EhrMatch",
        object_id=match.id,
        patient_id=match.patient_id,
        detail={"decision": str(match.status), "linked": str(target.id)},
    )
    return _view(match, acc.patient, row)


# --- reading what was imported ---------------------------------------------------------------


def served(row: EhrResource, *, local_refs: bool = False) -> dict[str, Any]:
    """The resource as sent, with its version, time and an `imported` tag; with `local_refs`,
    its references to its patient point at the Concord patient (as this server serves it)."""
    resource = copy.deepcopy(row.resource)
    if local_refs and row.patient_id is not None and row.patient_ref:
        _resolve(resource, {f"Patient/{row.patient_ref}": f"Patient/{row.patient_id}"})
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(row.version)
    meta["lastUpdated"] = row.last_updated.isoformat().replace("+00:00", "Z")
    # Where it came from: the integration client that sent it (the sender's own meta.source,
    # when it gave one, is kept as sent).
    meta.setdefault("source", f"urn:uuid:{row.source_id}")
    tags = [t for t in meta.get("tag") or [] if isinstance(t, dict)]
    tags.append({"system": IMPORTED_TAG_SYSTEM, "code": "imported", "display": "Imported"})
    meta["tag"] = tags
    resource["meta"] = meta
    return resource


IMPORTED_TAG_SYSTEM = "https://concord-care.org/fhir/CodeSystem/provenance"


def _ensure_types(types: Iterable[str] | None) -> list[str] | None:
    if types is None:
        return None
    wanted = sorted(set(types))
    unknown = [t for t in wanted if t not in ACCEPTED]
    if unknown:
        raise InvalidInput.field("types", "must be among: " + ", ".join(sorted(ACCEPTED)))
    return wanted


def _client_categories() -> frozenset[DataCategory]:
    # An integration client reads for the organization's operations (quality measures): the
    # registration and mental-health data the measures need. Substance-use records (42 CFR
    # Part 2) are never disclosed to it: no consent names a program as their recipient.
    return frozenset({DataCategory.general, DataCategory.mental_health})


def patient_rows(
    session: Session,
    *,
    access: User,
    patient_id: str | uuid.UUID,
    types: Iterable[str] | None = None,
    scopes: frozenset[str] = frozenset(),
    object_type: str = "EhrResource",
) -> tuple[list[EhrResource], Patient]:
    """The imported rows about one patient `access` may read (decided and audited)."""
    if access.is_client:
        wanted = _ensure_types(types)
        require_client(session, access, scopes, ClientScope.quality)
        patient = _client_patient(session, access, patient_id, object_type)
        query = select(EhrResource).where(EhrResource.patient_id == patient.id)
        if wanted is not None:
            query = query.where(EhrResource.resource_type.in_(wanted))
        allowed = _client_categories()
        rows = [
            r
            for r in session.scalars(
                query.order_by(EhrResource.resource_type, EhrResource.sender_id)
            )
            if r.data_category in allowed
        ]
        _audit_read(session, access, patient.id, len(rows), object_type)
        return rows, patient
    acc = record_access(session, access, patient_id, object_type=object_type)
    return rows_for(session, acc=acc, types=types, object_type=object_type), acc.patient


def rows_for(
    session: Session,
    *,
    acc: PatientAccess,
    types: Iterable[str] | None = None,
    object_type: str = "EhrResource",
) -> list[EhrResource]:
    """The imported rows about the patient `acc` reaches, as the disclosure decision allows
    (audited)."""
    wanted = _ensure_types(types)
    query = select(EhrResource).where(EhrResource.patient_id == acc.patient.id)
    if wanted is not None:
        query = query.where(EhrResource.resource_type.in_(wanted))
    rows = list(session.scalars(query.order_by(EhrResource.resource_type, EhrResource.sender_id)))
    return _disclosed_rows(session, acc, rows, object_type)


def _disclosed_rows(
    session: Session, acc: PatientAccess, rows: list[EhrResource], object_type: str
) -> list[EhrResource]:
    rows = filter_records(session, acc, rows, object_type=object_type, action="read")
    _audit_read(session, acc.by, acc.patient.id, len(rows), object_type)
    return rows


_RECORD_TYPES = ("Condition", "Encounter", "Observation")


@functools.cache
def _record_and_pending() -> Any:
    """The patient's imported diagnoses, scores and encounters, each row with the count of the
    patient's pending matches beside it, in one statement: from the patient's row (bound
    `patient`), so a patient with no imported record still gives one row (with no resource)
    and the count. Built once."""
    pending = (
        select(func.count())
        .select_from(EhrMatch)
        .where(EhrMatch.patient_id == Patient.id, EhrMatch.status == MatchStatus.pending)
        .correlate(Patient)
        .scalar_subquery()
    )
    return (
        select(EhrResource, pending.label("pending"))
        .select_from(Patient)
        .outerjoin(
            EhrResource,
            (EhrResource.patient_id == Patient.id) & EhrResource.resource_type.in_(_RECORD_TYPES),
        )
        .where(Patient.id == bindparam("patient"))
        .order_by(EhrResource.resource_type, EhrResource.sender_id)
    )


def _audit_read(
    session: Session, by: User, patient_id: uuid.UUID, count: int, object_type: str
) -> None:
    if not count:
        return  # nothing of the patient's was read (a withholding is audited on its own)
    record(
        session,
        by=by,
        action="read",
        object_type=object_type,
        patient_id=patient_id,
        detail={"count": count},
    )


def _client_patient(
    session: Session, client: User, patient_id: str | uuid.UUID, object_type: str
) -> Patient:
    try:
        pid = uuid.UUID(str(patient_id))
    except ValueError:
        pid = None
    patient = session.get(Patient, pid) if pid is not None else None
    if patient is None or patient.organization_id != client.organization_id:
        record(
            session,
            by=client,
            action="read",
            object_type=object_type,
            object_id=str(patient_id)[:64],
            outcome=Outcome.denied,
        )
        raise NotFound(Msg("No such patient."))
    return patient


def patient_resources(
    session: Session,
    *,
    access: User,
    patient_id: str | uuid.UUID,
    types: Iterable[str] | None = None,
    scopes: frozenset[str] = frozenset(),
    local_refs: bool = False,
) -> list[dict[str, Any]]:
    """The imported FHIR resources about one patient that `access` may read (a clinician on
    the care team or the patient: the disclosure decision per category; an integration client
    with the quality scope: the organization's patients, for operations), as sent, each with
    its version and the `imported` tag. Audited."""
    rows, _ = patient_rows(
        session, access=access, patient_id=patient_id, types=types, scopes=scopes
    )
    return [served(r, local_refs=local_refs) for r in rows]


def organization_patients(
    session: Session,
    *,
    access: User,
    types: Iterable[str] | None = None,
    scopes: frozenset[str] = frozenset(),
    batch: int = 500,
    local_refs: bool = False,
) -> Iterator[tuple[uuid.UUID, list[dict[str, Any]]]]:
    """Every patient with imported data that `access` may read, with those resources: an
    integration client (quality scope) reads the organization's, a clinician their care
    teams' patients, a patient their own. One read a patient in the trail; rows are read
    in batches of patients."""
    wanted = _ensure_types(types)
    if access.is_client:
        require_client(session, access, scopes, ClientScope.quality)
        scope = select(Patient.id).where(Patient.organization_id == access.organization_id)
    elif sees_whole_record(access):
        # A clinician: their care teams' patients; a patient: themself.
        scope = readable_patients(access).with_only_columns(Patient.id)
    else:
        return
    ids = list(
        session.scalars(
            select(EhrResource.patient_id)
            .where(
                EhrResource.organization_id == access.organization_id,
                EhrResource.patient_id.in_(scope),
            )
            .distinct()
            .order_by(EhrResource.patient_id)
        )
    )
    allowed = _client_categories()
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        query = select(EhrResource).where(EhrResource.patient_id.in_(chunk))
        if wanted is not None:
            query = query.where(EhrResource.resource_type.in_(wanted))
        grouped: dict[uuid.UUID, list[EhrResource]] = {pid: [] for pid in chunk}
        for row in session.scalars(query.order_by(EhrResource.patient_id, EhrResource.sender_id)):
            grouped[row.patient_id].append(row)  # type: ignore[index]
        for pid in chunk:
            rows = grouped[pid]
            if access.is_client:
                rows = [r for r in rows if r.data_category in allowed]
            else:
                acc = patient_for(session, access, pid, object_type="EhrResource")
                rows = filter_records(session, acc, rows, object_type="EhrResource", action="read")
            record(
                session,
                by=access,
                action="read",
                object_type="EhrResource",
                patient_id=pid,
                detail={
                    "count": len(rows),
                    "purpose": "operations" if access.is_client else "treatment",
                },
            )
            yield pid, [served(r, local_refs=local_refs) for r in rows]


@dataclass(frozen=True, slots=True)
class PopulationRow:
    """An imported row as the population read carries it: the stored JSON and what the
    disclosure decision reads of it (no ORM object, no copy)."""

    id: uuid.UUID
    patient_id: uuid.UUID
    source_id: uuid.UUID
    category: str
    resource: dict[str, Any]
    __tablename__ = "ehr_resource"  # what the Part 2 labels and their corrections are keyed by

    @property
    def data_category(self) -> DataCategory | None:
        try:
            return DataCategory(self.category)
        except ValueError:
            return None


def population_resources(
    session: Session,
    *,
    access: User,
    types: Iterable[str] | None = None,
    scopes: frozenset[str] = frozenset(),
    having: Iterable[str] = (),
    batch: int = 2000,
    audit: dict[str, Any] | None = None,
) -> Iterator[tuple[uuid.UUID, list[dict[str, Any]]]]:
    """The population read: every patient with imported data that `access` may read, with
    those resources as stored (the JSON text straight from the column, decoded once a patient;
    no ORM object, no copy, no `imported` tag: read only), ordered by patient and streamed in
    batches of rows (a server-side cursor on PostgreSQL). With `having`, only the patients with
    at least one row of one of those types (a measure's own condition for its initial
    population, decided in the query). The same access as `organization_patients`: an
    integration client (quality scope) reads the organization's general and mental-health
    records (the category decided in the query); a clinician their care teams' patients, each
    patient's rows through the consent and Part 2 decision (labels and consents loaded once a
    batch of patients; withholdings audited and disclosures logged, as `filter_records` does); a
    patient their own. ONE read event in the trail for the whole population, written when the
    iteration ends, with the number of patients and records (and `audit`'s entries); a
    clinician's read also keeps one read event a patient read (their care teams' patients)."""
    wanted = _ensure_types(types)
    needed = _ensure_types(having)
    relation = role_relation(access)
    if access.is_client:
        require_client(session, access, scopes, ClientScope.quality)
        scope = select(Patient.id).where(Patient.organization_id == access.organization_id)
        relation = None
    elif sees_whole_record(access) and relation is not None:
        scope = readable_patients(access).with_only_columns(Patient.id)
    else:
        return
    allowed = sorted(map(str, _client_categories()))
    # The patient's id as the driver gives it (hex text on SQLite), made a UUID once a patient.
    columns = [type_coerce(EhrResource.patient_id, String()), cast(EhrResource.resource, Text())]
    if relation is not None:
        columns += [EhrResource.id, EhrResource.source_id, EhrResource.category]
    query = select(*columns).where(
        EhrResource.organization_id == access.organization_id,
        EhrResource.patient_id.in_(scope),
    )
    if wanted is not None:
        query = query.where(EhrResource.resource_type.in_(wanted))
    if relation is None:
        query = query.where(EhrResource.category.in_(allowed))
    if needed:
        query = query.where(
            EhrResource.patient_id.in_(
                select(EhrResource.patient_id).where(
                    EhrResource.organization_id == access.organization_id,
                    EhrResource.resource_type.in_(needed),
                )
            )
        )
    query = query.order_by(EhrResource.patient_id, EhrResource.sender_id)
    patients = records = 0

    def decoded(texts: list[str]) -> list[dict[str, Any]]:
        return json.loads("[" + ",".join(texts) + "]")  # one decode a patient, not one a row

    def decided(
        pending: list[tuple[uuid.UUID, list[tuple[Any, ...]]]],
    ) -> Iterator[tuple[uuid.UUID, list[dict[str, Any]]]]:
        # A batch of patients through the consent and Part 2 decision: their labels and
        # consents in a fixed number of queries, then each patient's rows from memory.
        ids = [pid for pid, _ in pending]
        found = {p.id: p for p in session.scalars(select(Patient).where(Patient.id.in_(ids)))}
        load_for(session, access.organization_id, ids)
        for pid, raw in pending:
            resources = decoded([r[1] for r in raw])
            rows = [
                PopulationRow(r[2], pid, r[3], r[4], resource)
                for r, resource in zip(raw, resources, strict=True)
            ]
            acc = PatientAccess(access, found[pid], relation)  # type: ignore[arg-type]
            kept = filter_records(session, acc, rows, object_type="EhrResource", action="read")
            # A care team's patients are few: each keeps their own line in the trail (who
            # read my record), as the per-patient read writes.
            _audit_read(session, access, pid, len(kept), "EhrResource")
            yield pid, [r.resource for r in kept]

    def as_uuid(value: Any) -> uuid.UUID:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))

    current: Any = None
    raw: list[Any] = []
    pending: list[tuple[uuid.UUID, list[tuple[Any, ...]]]] = []
    result = session.execute(query.execution_options(yield_per=batch))
    for row in result:
        if row[0] != current:
            if current is not None:
                if relation is None:
                    patients += 1
                    records += len(raw)
                    yield as_uuid(current), decoded(raw)
                else:
                    pending.append((as_uuid(current), raw))
                    if len(pending) >= batch // 4:
                        for item in decided(pending):
                            patients += 1
                            records += len(item[1])
                            yield item
                        pending = []
            current, raw = row[0], []
        raw.append(row[1] if relation is None else row)
    if current is not None:
        if relation is None:
            patients += 1
            records += len(raw)
            yield as_uuid(current), decoded(raw)
        else:
            pending.append((as_uuid(current), raw))
    if pending:
        for item in decided(pending):
            patients += 1
            records += len(item[1])
            yield item
    record(
        session,
        by=access,
        action="read",
        object_type="EhrResource",
        detail={
            **(audit or {}),
            "population": True,
            "patients": patients,
            "count": records,
            "purpose": "operations" if relation is None else "treatment",
        },
    )


def imported_observations(
    session: Session, *, by: User, scope: list[PatientAccess] | None
) -> list[dict[str, Any]]:
    """The imported Observations (e.g. the EHR's PHQ-9 totals) of the patients a search may
    return (`scope`; None: every patient `by` may read), as served, newest first; each read
    decided by the disclosure rules and audited, as `patient_resources` does."""
    found: list[dict[str, Any]] = []
    if scope is None:
        for _, rows in organization_patients(
            session, access=by, types=["Observation"], local_refs=True
        ):
            found += rows
    else:
        for acc in scope:
            rows = rows_for(session, acc=acc, types=["Observation"], object_type="Observation")
            found += [served(r, local_refs=True) for r in rows]

    def when(resource: dict[str, Any]) -> str:
        return str(resource.get("effectiveDateTime") or resource.get("issued") or "")

    found.sort(key=lambda r: (when(r), str(r.get("id"))), reverse=True)
    return found


def read_imported(
    session: Session, *, by: User, kind: str, ident: str, scopes: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """One imported resource by its type and the sender's id, if `by` may read it."""
    row = _row(session, by.organization_id, kind, ident[:64]) if kind in ACCEPTED else None
    if row is None or row.patient_id is None:
        record(
            session,
            by=by,
            action="read",
            object_type=kind[:40],
            object_id=ident[:64],
            outcome=Outcome.denied,
        )
        raise NotFound(Msg("No such resource."))
    rows, patient = patient_rows(
        session, access=by, patient_id=row.patient_id, types=[kind], scopes=scopes, object_type=kind
    )
    for found in rows:
        if found.id == row.id:
            return served(found, local_refs=True)
    raise NotFound(Msg("No such resource."))


def patient_record(session: Session, *, access: PatientAccess) -> list[dict[str, Any]]:
    """Everything the EHR sent about the patient `access` reaches, as this reader may see it
    (consent and Part 2 per record, audited), as served: for measures over one patient."""
    return [served(r) for r in rows_for(session, acc=access)]


def imported_scores(session: Session, *, access: PatientAccess) -> dict[str, list[Any]]:
    """The EHR's PHQ-9 totals about a patient by Concord's instrument code (for its chart)."""
    shown = imported_record(session, access=access)
    out: dict[str, list[Any]] = {}
    for score in shown.scores:
        out.setdefault(score.instrument, []).append(score)
    return out


# --- for the patient's pages -----------------------------------------------------------------


@dataclass(frozen=True)
class Diagnosis:
    code: str
    system: str
    display: str
    clinical_status: str
    onset: str
    category: str
    # The imported row (ehr_resource.id) and the sender's id, to choose it as an episode's
    # qualifying diagnosis (concord.actions.registry.set_qualifying_diagnosis).
    ref: str = ""
    sender_id: str = ""


@dataclass(frozen=True)
class ImportedScore:
    instrument: str
    score: float | None
    when: str
    out_of_range: bool
    note: str

    @property
    def on(self) -> date | None:
        try:
            return date.fromisoformat(self.when)
        except ValueError:
            return None


@dataclass(frozen=True)
class ImportedEncounter:
    when: str
    description: str  # the EHR's own words for the encounter's type
    status: str
    # The start as sent (a date or a date and time), the sender's id, and the encounter's
    # class code as sent (AMB, VR...): for the patient's timeline.
    start: str = ""
    sender_id: str = ""
    klass: str = ""


@dataclass(frozen=True)
class ImportedRecord:
    diagnoses: list[Diagnosis]
    scores: list[ImportedScore]
    encounters: list[ImportedEncounter]
    # Imported patients that may be this one, waiting for the team to decide (/ehr/matches).
    pending_matches: int = 0

    @property
    def empty(self) -> bool:
        return not (self.diagnoses or self.scores or self.encounters)


PHQ9_CODES = {"44261-6": "PHQ-9", "89204-2": "PHQ-9M"}
PHQ9_RANGE = (0, 27)


def _concept(resource: dict[str, Any], key: str = "code") -> tuple[str, str, str]:
    concept = resource.get(key) if isinstance(resource.get(key), dict) else {}
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    first = codings[0] if codings else {}
    display = concept.get("text") or first.get("display") or first.get("code") or ""
    return str(first.get("code") or ""), str(first.get("system") or ""), str(display)[:200]


def imported_record(session: Session, *, access: PatientAccess) -> ImportedRecord:
    """What the EHR sent about a patient, as the patient's page shows it: diagnoses, PHQ-9
    totals (kept as sent: never re-scored; a value outside 0-27 is flagged), encounters."""
    # The rows and the pending matches' count in one statement (as rows_for reads the rows).
    found = session.execute(_record_and_pending(), {"patient": access.patient.id}).all()
    rows = _disclosed_rows(
        session, access, [row for row, _ in found if row is not None], "EhrResource"
    )
    pending = int(found[0][1] or 0) if found and access.on_team else 0
    diagnoses, scores, encounters = [], [], []
    for row in rows:
        res = row.resource
        if row.resource_type == "Condition":
            code, system, display = _concept(res)
            status, _, _ = _concept(res, "clinicalStatus")
            diagnoses.append(
                Diagnosis(
                    code=code,
                    system=system,
                    display=display,
                    clinical_status=status,
                    onset=str(res.get("onsetDateTime") or res.get("recordedDate") or "")[:10],
                    category=row.category,
                    ref=str(row.id),
                    sender_id=row.sender_id,
                )
            )
        elif row.resource_type == "Observation":
            found = [c for s, c in _codings(res) if s == "http://loinc.org" and c in PHQ9_CODES]
            if not found:
                continue
            value = res.get("valueInteger")
            if value is None and isinstance(res.get("valueQuantity"), dict):
                value = res["valueQuantity"].get("value")
            score = float(value) if isinstance(value, (int, float)) else None
            out = score is None or not (PHQ9_RANGE[0] <= score <= PHQ9_RANGE[1])
            scores.append(
                ImportedScore(
                    instrument=PHQ9_CODES[found[0]],
                    score=score,
                    when=str(res.get("effectiveDateTime") or res.get("issued") or "")[:10],
                    out_of_range=out,
                    note="outside 0-27 as sent" if out else "",
                )
            )
        elif row.resource_type == "Encounter":
            encounters.append(_encounter(row))
    scores.sort(key=lambda s: s.when)
    encounters.sort(key=lambda e: e.when, reverse=True)
    return ImportedRecord(diagnoses, scores, encounters, pending)


def _encounter(row: EhrResource) -> ImportedEncounter:
    res = row.resource
    types = res.get("type") or []
    kind = _concept({"code": types[0]})[2] if types and isinstance(types[0], dict) else ""
    period = res.get("period") if isinstance(res.get("period"), dict) else {}
    klass = res.get("class") if isinstance(res.get("class"), dict) else {}
    start = str(period.get("start") or "")[:40]
    return ImportedEncounter(
        when=start[:10],
        description=kind,
        status=str(res.get("status") or "")[:40],
        start=start,
        sender_id=row.sender_id,
        klass=str(klass.get("code") or "")[:20],
    )


def imported_encounters(session: Session, *, access: PatientAccess) -> list[ImportedEncounter]:
    """The Encounters the EHR sent about the patient `access` reaches, as this reader may see
    them (consent and Part 2 per record, audited), newest first: for the patient's timeline."""
    rows = rows_for(session, acc=access, types=["Encounter"], object_type="Encounter")
    return sorted((_encounter(r) for r in rows), key=lambda e: e.start, reverse=True)


def imported_diagnosis(session: Session, *, access: PatientAccess, ref: Any) -> Diagnosis:
    """One imported diagnosis (a Condition) about the patient `access` reaches, by its row id
    or by the sender's id (the id of `GET /fhir/Condition/[id]`), as this reader may see it
    (consent and Part 2 decide, audited); an unknown or withheld one is refused naming the
    field."""
    wanted = str(ref or "").strip()[:64]
    rid = parse_id(wanted) if wanted else None
    if wanted:
        for d in imported_record(session, access=access).diagnoses:
            if d.code and (d.sender_id == wanted or (rid is not None and d.ref == str(rid))):
                return d
    raise InvalidInput.field(
        "diagnosis", Msg("must be one of the diagnoses the EHR sent about this patient")
    )


def orders_linked_by(session: Session, *, match: MatchView) -> list[EhrResource]:
    """The imported MedicationRequests a decided match linked to a patient (for the action
    that puts them on the medication list); the decision itself was made by `decide_match`."""
    if match.status == MatchStatus.pending:
        return []
    row = session.get(EhrMatch, match.id)
    if row is None or row.linked_patient_id is None:
        return []
    return list(
        session.scalars(
            select(EhrResource).where(
                EhrResource.patient_id == row.linked_patient_id,
                EhrResource.resource_type == "MedicationRequest",
            )
        )
    )


def patient_id_for_sender(
    session: Session, *, organization_id: uuid.UUID, sender_id: str
) -> uuid.UUID | None:
    """The Concord patient an imported Patient (by the sender's id) is linked to, if any; no
    access decision here: the caller reads through patient_resources, which decides."""
    row = _row(session, organization_id, "Patient", sender_id[:64])
    return row.patient_id if row is not None else None


# --- undoing an import -----------------------------------------------------------------------

# What a record made since an import is, in words, by the table that refers to the imported row
# or to the patient it registered (any other table is named as it is).
USED_BY = {
    "ehr_resource_version": Msg("a later import changed it"),
    "episode": Msg("it is the qualifying diagnosis of an episode of care"),
    "care_team_member": Msg("someone was added to the patient's care team"),
    "ehr_match": Msg("a person decided a patient match about it"),
    "ehr_resource": Msg("a later import sent records about this patient"),
    "medication": Msg("the patient's medication list holds entries"),
    "medication_finding": Msg("the patient's medication list was checked"),
}


@dataclass(frozen=True)
class ImportView:
    id: uuid.UUID
    source: str  # the integration client's name
    kind: str
    entries: int
    created: int  # rows the import created
    changed: int  # rows it changed
    patients: int  # patients it registered
    created_at: Any
    undone_at: Any
    undone_by: str
    undo_reason: str


@dataclass(frozen=True)
class ImportedOrderUndone:
    """A MedicationRequest the undo removed (created) or brought back (changed), for the
    action that keeps the medication list in step."""

    patient_id: uuid.UUID
    sender_id: str
    previous: dict[str, Any] | None  # None: the import created it


@dataclass(frozen=True)
class Undone:
    view: ImportView
    orders: list[ImportedOrderUndone]
    source_id: uuid.UUID  # the integration client that sent the import


def _import_view(session: Session, batch: EhrImport) -> ImportView:
    items = list(
        session.execute(
            select(EhrImportItem.created, EhrImportItem.registered_patient_id).where(
                EhrImportItem.import_id == batch.id
            )
        )
    )
    source = session.get(User, batch.source_id)
    undoer = session.get(User, batch.undone_by_id) if batch.undone_by_id else None
    return ImportView(
        id=batch.id,
        source=source.name if source is not None else "",
        kind=batch.kind,
        entries=batch.entries,
        created=sum(1 for created, _ in items if created),
        changed=sum(1 for created, _ in items if not created),
        patients=sum(1 for _, registered in items if registered is not None),
        created_at=batch.created_at,
        undone_at=batch.undone_at,
        undone_by=undoer.name if undoer is not None else "",
        undo_reason=batch.undo_reason or "",
    )


def _may_see_imports(by: User, scopes: frozenset[str]) -> bool:
    return by.active and (by.can_administer or (by.is_client and ClientScope.import_ in scopes))


def list_imports(
    session: Session, *, by: User, scopes: frozenset[str] = frozenset(), limit: int = 100
) -> list[ImportView]:
    """The organization's imports, newest first: every one for an administrator, its own for
    an integration client with the import scope; refused (audited) for anyone else. Counts
    only: no patient data."""
    if not _may_see_imports(by, scopes):
        record(session, by=by, action="list", object_type="EhrImport", outcome=Outcome.denied)
        raise PermissionDenied(
            Msg("Only an administrator or the integration client that sent them sees imports.")
        )
    query = select(EhrImport).where(EhrImport.organization_id == by.organization_id)
    if not by.can_administer:
        query = query.where(EhrImport.source_id == by.id)
    batches = list(
        session.scalars(query.order_by(EhrImport.created_at.desc(), EhrImport.id).limit(limit))
    )
    record(session, by=by, action="list", object_type="EhrImport", detail={"count": len(batches)})
    return [_import_view(session, b) for b in batches]


def _references(
    session: Session, target: str, ids: list[uuid.UUID], skip: frozenset[str]
) -> list[str]:
    """The tables (other than `skip`) with rows referring to `target`.id in `ids`: the uses
    made of an imported row or a registered patient since, found from the schema itself, so
    a table added later is checked too."""
    if not ids:
        return []
    found = []
    for table in Base.metadata.sorted_tables:
        if table.name in skip:
            continue
        for fk in table.foreign_keys:
            if fk.column.table.name != target:
                continue
            column = fk.parent
            hit = session.scalar(select(func.count()).select_from(table).where(column.in_(ids)))
            if hit:
                found.append(table.name)
                break
    return found


def _refuse(session: Session, by: User, batch: EhrImport, why: str, what: str) -> NoReturn:
    record(
        session,
        by=by,
        action="undo",
        object_type="EhrImport",
        object_id=batch.id,
        outcome=Outcome.denied,
        detail={"why": why[:60]},
    )
    words = USED_BY.get(why)
    raise Conflict(
        Msg(
            "This import cannot be undone: %(what)s was used since (%(why)s). Undo or change "
            "that first.",
            what=what,
            why=str(words) if words is not None else why,
        )
    )


def _changed_later(
    session: Session, batch: EhrImport, items: list[EhrImportItem]
) -> set[tuple[str, str]]:
    """The rows of `items` a later import (not itself undone) changed: a row's versions only
    grow, so a later change is another import's item with a higher version of the same row.
    Imports are undone in the reverse order only, so each puts back exactly what it found."""
    mine = {(i.resource_type, i.sender_id): i.version for i in items}
    ids = sorted({sid for _, sid in mine})
    found: set[tuple[str, str]] = set()
    for start in range(0, len(ids), 500):
        for kind, sid, version in session.execute(
            select(EhrImportItem.resource_type, EhrImportItem.sender_id, EhrImportItem.version)
            .join(EhrImport, EhrImport.id == EhrImportItem.import_id)
            .where(
                EhrImport.organization_id == batch.organization_id,
                EhrImport.id != batch.id,
                EhrImport.undone_at.is_(None),
                EhrImportItem.sender_id.in_(ids[start : start + 500]),
            )
        ):
            if version > mine.get((kind, sid), version):
                found.add((kind, sid))
    return found


def undo_import(
    session: Session,
    *,
    by: User,
    import_id: str | uuid.UUID,
    reason: str,
    scopes: frozenset[str] = frozenset(),
) -> Undone:
    """Undo one import: the rows it created are deleted, the rows it changed go back to what
    they were, a held match it made is withdrawn, and a patient it registered is removed.
    Only what the import did: if anything was done since with what it brought (a later
    import changed a row, a diagnosis became an episode's qualifying diagnosis, a person
    decided a match, the registered patient got a care team or records), nothing is undone
    and the answer says what. By an administrator, or by the integration client that sent it;
    audited, and the import is marked undone (never undone twice)."""
    words = " ".join((reason or "").split())
    if not words:
        raise InvalidInput.field("reason", Msg("say why the import is undone"))
    try:
        iid = uuid.UUID(str(import_id))
    except ValueError:
        iid = None
    batch = session.get(EhrImport, iid) if iid is not None else None
    allowed = _may_see_imports(by, scopes) and (
        batch is not None
        and batch.organization_id == by.organization_id
        and (by.can_administer or batch.source_id == by.id)
    )
    if batch is None or not allowed:
        raise refused(
            session,
            by=by,
            action="undo",
            object_type="EhrImport",
            asked_for=import_id,
            message=Msg("No such import."),
        )
    if batch.undone_at is not None:
        raise Conflict(Msg("This import was already undone."))
    items = list(
        session.scalars(
            select(EhrImportItem)
            .where(EhrImportItem.import_id == batch.id)
            .order_by(EhrImportItem.position.desc())
        )
    )
    later = _changed_later(session, batch, items)
    rows: dict[uuid.UUID, EhrResource] = {}
    for item in items:
        row = _row(session, batch.organization_id, item.resource_type, item.sender_id)
        what = f"{item.resource_type}/{item.sender_id}"
        if row is None:
            continue
        if (item.resource_type, item.sender_id) in later:
            _refuse(session, by, batch, "ehr_resource_version", what)
        rows[item.id] = row
    created = [rows[i.id] for i in items if i.created and i.id in rows]
    created_ids = [r.id for r in created]
    created_keys = {(r.resource_type, r.sender_id) for r in created}
    # Anything referring to a created row (an episode's qualifying diagnosis...).
    for table in _references(
        session, "ehr_resource", created_ids, frozenset({"ehr_match", "ehr_import_item"})
    ):
        used = next(
            (
                r
                for r in created
                if _references(
                    session, "ehr_resource", [r.id], frozenset({"ehr_match", "ehr_import_item"})
                )
            ),
            created[0],
        )
        _refuse(session, by, batch, table, f"{used.resource_type}/{used.sender_id}")
    matches = list(session.scalars(select(EhrMatch).where(EhrMatch.resource_id.in_(created_ids))))
    for match in matches:
        if match.status != MatchStatus.pending:
            row = next(r for r in created if r.id == match.resource_id)
            _refuse(session, by, batch, "ehr_match", f"Patient/{row.sender_id}")
    # An imported Patient created here that other imports' records are about.
    for row in created:
        if row.resource_type != "Patient":
            continue
        others = session.scalars(
            select(EhrResource).where(
                EhrResource.organization_id == row.organization_id,
                EhrResource.patient_ref == row.sender_id,
                EhrResource.resource_type != "Patient",
            )
        ).all()
        if any((o.resource_type, o.sender_id) not in created_keys for o in others):
            _refuse(session, by, batch, "ehr_resource", f"Patient/{row.sender_id}")
    # A patient the import registered: removed only when nothing but this import refers to it.
    registered = [i.registered_patient_id for i in items if i.registered_patient_id is not None]
    teams = {
        pid: session.scalar(select(CareTeam.id).where(CareTeam.patient_id == pid))
        for pid in registered
    }
    for pid in registered:
        skip = frozenset({"care_team", "ehr_resource", "ehr_import_item"})
        used = _references(session, "patient", [pid], skip)
        team = teams.get(pid)
        if team is not None and _references(session, "care_team", [team], frozenset()):
            used.append("care_team_member")
        left = session.scalar(
            select(func.count())
            .select_from(EhrResource)
            .where(EhrResource.patient_id == pid, EhrResource.id.not_in(created_ids))
        )
        if left:
            used.append("ehr_resource")
        if used:
            patient = session.get(Patient, pid)
            name = f"Patient/{patient.mrn}" if patient is not None else str(pid)
            _refuse(session, by, batch, used[0], name)
    # Nothing was used since: undo, last entry first.
    orders: list[ImportedOrderUndone] = []
    for match in matches:
        session.delete(match)
    session.flush()
    for item in items:
        row = rows.get(item.id)
        if row is None:
            continue
        if item.resource_type == "MedicationRequest" and row.patient_id is not None:
            orders.append(
                ImportedOrderUndone(
                    row.patient_id, row.sender_id, None if item.created else item.previous
                )
            )
        if item.created:
            record(
                session,
                by=by,
                action="undo",
                object_type=row.resource_type,
                object_id=row.id,
                patient_id=row.patient_id,
                detail={"import": str(batch.id), "deleted": True},
            )
            session.delete(row)
        else:
            row.resource = item.previous or {}
            row.category = item.previous_category or row.category
            row.patient_id = item.previous_patient_id
            row.patient_ref = item.previous_patient_ref
            row.version += 1
            row.last_updated = now()
            record(
                session,
                by=by,
                action="undo",
                object_type=row.resource_type,
                object_id=row.id,
                patient_id=row.patient_id,
                detail={"import": str(batch.id), "version": row.version},
            )
    session.flush()
    for pid in registered:
        team = teams.get(pid)
        if team is not None:
            session.execute(delete(CareTeam).where(CareTeam.id == team))
        session.execute(delete(Patient).where(Patient.id == pid))
        record(
            session,
            by=by,
            action="undo",
            object_type="Patient",
            object_id=pid,
            patient_id=pid,
            detail={"import": str(batch.id), "registered": True},
        )
    batch.undone_at = now()
    batch.undone_by_id = by.id
    batch.undo_reason = words[:500]
    session.flush()
    record(
        session,
        by=by,
        action="undo",
        object_type="EhrImport",
        object_id=batch.id,
        detail={"items": len(items), "patients": len(registered)},
    )
    return Undone(_import_view(session, batch), orders, batch.source_id)

"""FHIR Bulk Data export ($export, Bulk Data Access IG 2.0): the kick-off, the status, the
files, and the job the worker runs.

The kick-off only records what was asked (a `bulk_export` row, in the request's transaction:
the outbox pattern); the worker claims queued exports and writes one NDJSON file per resource
type under CONCORD_BULK_EXPORT_DIR. The job reads *as the requesting token's user*, through the
very search functions /fhir answers with (concord.fhir.service and friends), so access,
consent and the 42 CFR Part 2 labels are applied exactly as on a search, and every resource
read is in the audit trail as searched. Files are served only to the token that asked, and
expire (the worker deletes them). No patient data is ever in a URL: files are named by random
ids. See docs/bulk-export.md.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from concord.access import records_among
from concord.accounts.models import ApiToken, User
from concord.audit.models import Outcome
from concord.audit.service import record, refused, set_context
from concord.bulk import service as store
from concord.bulk.models import BulkExport, BulkExportFile, ExportStatus
from concord.clock import now
from concord.db import unit_of_work
from concord.errors import InvalidInput, NotFound, NotSupported, PermissionDenied
from concord.fhir import consents as fhir_consents
from concord.fhir import medications as fhir_meds
from concord.fhir import search
from concord.fhir import service as fhir
from concord.i18n import Msg
from concord.patients import service as patients
from concord.registry import service as registry
from concord.registry.models import Program
from concord.settings import Settings
from concord.smart import enforce as smart_scope
from concord.smart.service import SmartAccess, acting_person, is_backend, still_authorized

log = logging.getLogger("concord.fhir.bulk")

NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = {"application/fhir+ndjson", "application/ndjson", "ndjson"}
# What an export holds, in the order files are written. Every type is read through the search
# /fhir answers with; those about patients a hundred patients at a time (search.MAX_VALUES).
EXPORT_TYPES = (
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
    # The instruments the other resources answer (no patient data; the licence decides their
    # item text, as on /fhir/Questionnaire).
    "Questionnaire",
)
KICK_OFF_PARAMS = {
    "_outputFormat",
    "_type",
    "_since",
    "_typeFilter",
    "_elements",
    "patient",
    "includeAssociatedData",
}
# includeAssociatedData (Bulk Data Access IG 2.0, CodeSystem include-associated-data): the
# latest Provenance of each resource exported (concord.fhir.service.provenances). Not
# RelevantProvenanceResources (every Provenance), nor any other value. An export asking for
# it lists PROVENANCE among its types (the file it adds), never exported otherwise.
ASSOCIATED = ("LatestProvenanceResources",)
PROVENANCE = "Provenance"
ELEMENT_RE = re.compile(r"^(?:([A-Z][A-Za-z]+)\.)?([a-z][A-Za-z0-9]*)$")
PROGRAM_GROUP = "program-"
PATIENT_REF_RE = re.compile(r"(?:^|/)Patient/([A-Za-z0-9\-.]{1,64})$")
MAX_PATIENTS = 1000
# An export's page is larger than a client's (search.MAX_COUNT): each page is a transaction
# with its own access decisions, so fewer, larger pages cost less per resource.
PAGE = 1000


@dataclass(frozen=True)
class BulkSchedule:
    """Where the worker writes export files, how long they are kept, and the MRN system."""

    directory: Path
    expires: timedelta
    mrn: str
    base_url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> BulkSchedule:
        return cls(
            settings.bulk_export_dir or settings.instance_dir / "bulk",
            timedelta(minutes=settings.bulk_export_expires_minutes),
            settings.fhir_mrn_system,
            settings.base_url,
        )


# --- kick-off ------------------------------------------------------------------------------


def _may_export(user: User) -> bool:
    # The reads return whole records to a clinician (their care teams' patients) or a patient
    # (their own); nobody else would get anything, so they are told so at once.
    return user.active and (user.is_clinician or user.is_patient)


def parse_types(values: list[str]) -> list[str]:
    if not values:
        return list(EXPORT_TYPES)
    wanted: list[str] = []
    for value in values:
        for kind in value.split(","):
            kind = kind.strip()
            if kind not in EXPORT_TYPES:
                raise InvalidInput.field(
                    "_type",
                    Msg(
                        "%(kind)s cannot be exported here (exported: %(types)s)",
                        kind=kind[:40] or "''",
                        types=", ".join(EXPORT_TYPES),
                    ),
                )
            if kind not in wanted:
                wanted.append(kind)
    return wanted


def parse_since(values: list[str]) -> datetime | None:
    if not values:
        return None
    if len(values) > 1:
        raise InvalidInput.field("_since", Msg("may be given once"))
    raw = values[0].strip()
    try:
        since = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        since = None
    if since is None or since.tzinfo is None:
        raise InvalidInput.field(
            "_since", Msg("must be a FHIR instant with a time zone, e.g. 2026-01-31T12:00:00Z")
        )
    if since > now():
        raise InvalidInput.field("_since", Msg("must not be in the future"))
    return since


def parse_elements(values: list[str]) -> list[str]:
    """`_elements`: `element` (every type) or `Type.element`, comma-separated or repeated."""
    found: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            match = ELEMENT_RE.match(item)
            if match is None or (match.group(1) and match.group(1) not in EXPORT_TYPES):
                raise InvalidInput.field(
                    "_elements",
                    Msg("each must be element or Type.element, e.g. Observation.code"),
                )
            found.append(item)
    return found


def subset(resource: dict[str, Any], elements: list[str]) -> dict[str, Any]:
    """The resource with only the elements asked for (those for its type, or for every type)
    and the mandatory id and meta, tagged SUBSETTED as FHIR asks; whole when none applies."""
    kind = resource.get("resourceType")
    wanted = {e.split(".")[-1] for e in elements if "." not in e or e.split(".")[0] == kind}
    if not wanted:
        return resource
    kept = {k: v for k, v in resource.items() if k in wanted | {"resourceType", "id"}}
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), search.SUBSETTED]
    kept["meta"] = meta
    return kept


def parse_associated(values: list[str], *, lenient: bool) -> bool:
    """`includeAssociatedData`: whether the latest Provenance is asked for. Another value is
    refused (400 not-supported, naming it), or with `Prefer: handling=lenient` left out."""
    wanted = False
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if item in ASSOCIATED:
                wanted = True
            elif not lenient:
                raise NotSupported.field(
                    "includeAssociatedData",
                    Msg(
                        "%(value)s is not supported (supported: %(values)s)",
                        value=item[:60] or "''",
                        values=", ".join(ASSOCIATED),
                    ),
                )
    return wanted


def check_output_format(values: list[str]) -> None:
    for value in values:
        if value.strip() not in OUTPUT_FORMATS:
            raise NotSupported.field(
                "_outputFormat",
                Msg(
                    "only NDJSON is offered: %(formats)s",
                    formats=", ".join(sorted(OUTPUT_FORMATS)),
                ),
            )


def kick_off(
    session: Session,
    *,
    user: User,
    token: ApiToken,
    level: str,
    group_id: str | None,
    pairs: list[tuple[str, str]],
    request_url: str,
    smart: SmartAccess | None = None,
    lenient: bool = False,
) -> BulkExport:
    """Record an export for the worker; refuses (writing nothing) what it cannot honour.

    A backend service's token (SMART client_credentials) reads as the clinician its
    registration names (ADR 0028); its scopes narrow the types. Any other token reads as
    its own person."""
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    for name in values:
        if name not in KICK_OFF_PARAMS:
            raise NotSupported.field(
                name[:80],
                Msg(
                    "is not an export parameter here (supported: %(params)s)",
                    params=", ".join(sorted(KICK_OFF_PARAMS - {"_typeFilter"})),
                ),
            )
    if "_typeFilter" in values:
        raise NotSupported.field("_typeFilter", Msg("is not supported by this server"))
    if "patient" in values and level == "system":
        raise InvalidInput.field(
            "patient", Msg("applies to Patient- and Group-level exports only (the IG)")
        )
    check_output_format(values.get("_outputFormat", []))
    types = parse_types(values.get("_type", []))
    since = parse_since(values.get("_since", []))
    elements = parse_elements(values.get("_elements", []))
    associated = parse_associated(values.get("includeAssociatedData", []), lenient=lenient)
    reader = _reader(session, user, smart)
    if smart is not None:
        types = _scoped_types(session, smart, types, named="_type" in values)
        if associated:
            smart_scope.check(session, smart, PROVENANCE, "r")
    if associated:
        types = [*types, PROVENANCE]
    if level == "group":
        assert group_id is not None
        group_members(session, by=reader, group_id=group_id)  # NotFound (audited) if not theirs
    if not _may_export(reader):
        record(
            session,
            by=user,
            action="export_request",
            object_type="BulkExport",
            outcome=Outcome.denied,
        )
        raise PermissionDenied(
            Msg("Only a clinician's or a patient's token may export (an export reads records).")
        )
    chosen = _chosen_patients(
        session, reader, level, group_id, values.get("patient", []), lenient=lenient
    )
    app = smart.client if is_backend(smart) else None
    export = BulkExport(
        organization_id=reader.organization_id,
        user_id=reader.id,
        token_id=token.id,
        smart_client_id=app.id if app is not None else None,
        level=level,
        group_id=group_id,
        types=" ".join(types),
        since=since,
        elements=",".join(elements)[:1000] or None,
        patients=",".join(chosen) if chosen is not None else None,
        request_url=request_url[:2000],
        status=ExportStatus.queued,
        created_at=now(),
    )
    session.add(export)
    session.flush()
    detail: dict[str, Any] = {"level": level, "types": len(types)}
    if associated:
        detail["associated"] = ASSOCIATED[0]
    if chosen is not None:
        detail["patients"] = len(chosen)
    if app is not None:
        detail["smart_client"] = str(app.id)
    record(
        session,
        by=reader,
        action="export_request",
        object_type="BulkExport",
        object_id=export.id,
        detail=detail,
    )
    return export


def _reader(session: Session, user: User, smart: SmartAccess | None) -> User:
    """Whom the export reads as: a backend service's registered clinician, else the token's
    own person. A backend service naming none is refused (403, audited)."""
    if not is_backend(smart):
        return user
    assert smart is not None
    person = acting_person(session, smart)
    if person is None:
        record(
            session,
            by=user,
            action="export_request",
            object_type="BulkExport",
            outcome=Outcome.denied,
            detail={"smart_client": str(smart.client.id), "reason": "acts_for"},
        )
        raise PermissionDenied(
            Msg(
                "This backend service acts for no clinician, so it may export nothing. An "
                "administrator names, when registering it, the clinician whose access it "
                "borrows (docs/smart.md)."
            )
        )
    return person


def _scoped_types(
    session: Session, smart: SmartAccess, types: list[str], *, named: bool
) -> list[str]:
    """The types the token's scopes let it read. A type named in `_type` that they do not
    cover is refused (403, audited); without `_type`, the export holds the covered ones."""
    if named:
        for kind in types:
            smart_scope.check(session, smart, kind, "r")
        return types
    covered = [k for k in types if smart.scopes.allows(k, "r")]
    if not covered:
        smart_scope.check(session, smart, "Patient", "r")  # refuses, audited
    return covered


def _reference_id(value: str) -> str | None:
    """The id in a Patient reference (`Patient/<id>`, or an absolute URL ending so)."""
    match = PATIENT_REF_RE.search(value.strip())
    return match.group(1) if match else None


def _chosen_patients(
    session: Session,
    reader: User,
    level: str,
    group_id: str | None,
    references: list[str],
    *,
    lenient: bool,
) -> list[str] | None:
    """The `patient` parameter's patients (None when not given). Each must be one `reader`
    may read (and, at Group level, in the Group): otherwise 403, or with `Prefer:
    handling=lenient` it is left out. A missing patient is answered as an unreadable one."""
    if not references:
        return None
    if len(references) > MAX_PATIENTS:
        raise InvalidInput.field("patient", Msg("at most %(n)s patients", n=MAX_PATIENTS))
    wanted: list[str] = []
    for ref in references:
        ident = _reference_id(ref)
        if ident is None:
            raise InvalidInput.field(
                "patient", Msg("each must be a Patient reference, e.g. Patient/<id>")
            )
        if ident not in wanted:
            wanted.append(ident)
    found = records_among(session, reader, set(wanted), action="export_request") or []
    readable = {str(acc.patient.id) for acc in found}
    if level == "group":
        assert group_id is not None
        _, members = group_members(session, by=reader, group_id=group_id)
        readable &= {str(pid) for pid in members}
    kept = [ident for ident in wanted if ident in readable]
    if len(kept) < len(wanted) and not lenient:
        record(
            session,
            by=reader,
            action="export_request",
            object_type="BulkExport",
            outcome=Outcome.denied,
            detail={"reason": "patient", "refused": len(wanted) - len(kept)},
        )
        refused = len(wanted) - len(kept)
        if level == "group":
            raise PermissionDenied(
                Msg(
                    "%(n)s of the patients named (patient) are not ones this export may read "
                    "in this group.",
                    n=refused,
                )
            )
        raise PermissionDenied(
            Msg(
                "%(n)s of the patients named (patient) are not ones this export may read.",
                n=refused,
            )
        )
    return kept


# --- groups --------------------------------------------------------------------------------


def _program_of(group_id: str) -> str | None:
    if group_id.startswith(PROGRAM_GROUP):
        name = group_id.removeprefix(PROGRAM_GROUP)
        if name in {p.value for p in Program}:
            return name
    return None


def group_members(session: Session, *, by: User, group_id: str) -> tuple[str, list[uuid.UUID]]:
    """A Group's name and the patients in it `by` may read: a collaborative-care program
    (`program-<name>`: the patients with an open episode in it) or a care team (its id: the
    patient it cares for). NotFound (audited) otherwise."""
    program = _program_of(group_id)
    if program is not None:
        if not _may_export(by) or not by.is_clinician:
            raise NotFound(Msg("No such group."))
        ids = registry.list_program_patient_ids(session, by=by, program=program)
        return program, ids
    with _group_missing():
        team, acc, _ = patients.get_care_team_by_id(session, by=by, ident=group_id)
    return team.name, [acc.patient.id]


class _group_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if isinstance(exc, NotFound):
            raise NotFound(Msg("No such group.")) from None
        return False


def group_resource(group_id: str, name: str, members: list[uuid.UUID]) -> dict[str, Any]:
    return {
        "resourceType": "Group",
        "id": group_id,
        "type": "person",
        "actual": True,
        "name": name,
        "quantity": len(members),
        "member": [{"entity": {"reference": f"Patient/{pid}"}} for pid in members],
    }


def read_group(session: Session, *, by: User, group_id: str) -> dict[str, Any]:
    name, members = group_members(session, by=by, group_id=group_id)
    return group_resource(group_id, name, members)


def search_groups(session: Session, *, by: User) -> list[dict[str, Any]]:
    """The program Groups (for a clinician) and the care-team Groups of the patients `by` may
    read (the first MAX_COUNT care teams)."""
    found = []
    if by.is_clinician and by.active:
        for program in Program:
            gid = PROGRAM_GROUP + program.value
            found.append(group_resource(gid, *group_members(session, by=by, group_id=gid)))
    if _may_export(by):
        teams = patients.list_care_teams(session, by=by, scope=None, limit=search.MAX_COUNT)
        for team, acc, _ in teams.rows:
            found.append(group_resource(str(team.id), team.name, [acc.patient.id]))
    return found


# --- status, cancel, files -------------------------------------------------------------------


def _app_id(smart: SmartAccess | None) -> uuid.UUID | None:
    return smart.client.id if smart is not None and is_backend(smart) else None


def _own(
    session: Session,
    user: User,
    token: ApiToken,
    export_id: str,
    action: str,
    smart: SmartAccess | None = None,
) -> BulkExport:
    """The token's own export (a backend service's: its app's), not cancelled; NotFound
    otherwise (the attempt audited)."""
    try:
        export = store.own_export(session, token=token, export_id=export_id, app_id=_app_id(smart))
        if export.status == ExportStatus.cancelled:
            raise NotFound(Msg("No such export (it may have expired)."))
    except NotFound:
        record(
            session,
            by=user,
            action=action,
            object_type="BulkExport",
            object_id=str(export_id)[:64],
            outcome=Outcome.denied,
        )
        raise
    return export


def export_status(
    session: Session,
    *,
    user: User,
    token: ApiToken,
    export_id: str,
    smart: SmartAccess | None = None,
) -> tuple[BulkExport, list[BulkExportFile]]:
    export = _own(session, user, token, export_id, "export_status", smart)
    files: list[BulkExportFile] = []
    if export.status == ExportStatus.done:
        files = store.files_of(session, export)
    return export, files


def cancel_export(
    session: Session,
    *,
    user: User,
    token: ApiToken,
    export_id: str,
    schedule: BulkSchedule,
    smart: SmartAccess | None = None,
) -> None:
    """Cancel a running export or delete a finished one's files (both: 202)."""
    export = _own(session, user, token, export_id, "export_cancel", smart)
    export.status = ExportStatus.cancelled
    export.finished_at = now()
    _delete_files(session, export, schedule)
    record(session, by=user, action="export_cancel", object_type="BulkExport", object_id=export.id)


def export_file(
    session: Session,
    *,
    user: User,
    token: ApiToken,
    file_id: str,
    schedule: BulkSchedule,
    smart: SmartAccess | None = None,
) -> Path:
    """The path of a file of the token's own finished, unexpired export (NotFound
    otherwise); the download is in the trail."""
    found, export = store.file_and_export(session, file_id)
    path = _file_path(schedule, export.id, found.id) if found and export else None
    if (
        found is None
        or export is None
        or path is None
        or not store.owns(export, token, _app_id(smart))
        or export.status != ExportStatus.done
        or (export.expires_at is not None and export.expires_at <= now())
        or not path.exists()
    ):
        raise refused(
            session,
            by=user,
            action="export_download",
            object_type="BulkExport",
            asked_for=file_id,
            message=Msg("No such file (it may have expired)."),
        )
    # The downloading token's scopes must still cover the file's type (a backend service
    # may ask for a narrower token after the export): 403, audited, otherwise.
    smart_scope.check(session, smart, found.resource_type, "r")
    record(
        session,
        by=user,
        action="export_download",
        object_type="BulkExport",
        object_id=export.id,
        detail={"type": found.resource_type, "count": found.count},
    )
    return path


def _file_path(schedule: BulkSchedule, export_id: uuid.UUID, file_id: uuid.UUID) -> Path:
    return schedule.directory / export_id.hex / f"{file_id.hex}.ndjson"


def _delete_files(session: Session, export: BulkExport, schedule: BulkSchedule) -> None:
    store.delete_file_rows(session, export)
    shutil.rmtree(schedule.directory / export.id.hex, ignore_errors=True)


# --- the job ---------------------------------------------------------------------------------


def _claim(factory: sessionmaker[Session]) -> uuid.UUID | None:
    """The oldest queued export, marked running (another worker skips it)."""
    with unit_of_work(factory) as session:
        return store.claim_queued(session)


# What a failed export's `error` says when the access it read with was withdrawn meanwhile.
WITHDRAWN = "access withdrawn"


def _withdrawn(session: Session, export: BulkExport) -> bool:
    """Whether the access the export reads with was withdrawn since its kick-off: the app
    disabled or now acting for someone else, the token or grant revoked, the person gone."""
    return not still_authorized(
        session, token_id=export.token_id, client_id=export.smart_client_id, user_id=export.user_id
    )


def _check_wanted(factory: sessionmaker[Session], export_id: uuid.UUID) -> None:
    """Asked before each batch and between files, when the job holds no transaction: stops
    the job (_Cancelled) if the export was cancelled, or (_Withdrawn) if the access it reads
    with was withdrawn: a disabled app or a revoked token reads nothing more."""
    with factory() as session:
        export = store.get_export(session, export_id)
        if export is None or export.status != ExportStatus.running:
            raise _Cancelled
        if _withdrawn(session, export):
            raise _Withdrawn


def _changed_since(resource: dict[str, Any], since: datetime | None) -> bool:
    """Whether a resource changed after `since`: its meta.lastUpdated, else when it was issued
    or took effect; one with none of them is kept (the IG lets a server send more)."""
    if since is None:
        return True
    stamp = (
        (resource.get("meta") or {}).get("lastUpdated")
        or resource.get("issued")
        or resource.get("effectiveDateTime")
        or resource.get("authored")
        or resource.get("dateTime")
    )
    if not stamp or "T" not in str(stamp):
        return True
    try:
        at = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return True
    return at.tzinfo is None or at > since


def _page(
    session: Session, by: User, kind: str, pairs: list[tuple[str, str]], schedule: BulkSchedule
) -> fhir.SearchPage:
    """One page of a search exactly as /fhir answers it, as `by` (access, consent, labels,
    and each resource read in the trail)."""
    base = schedule.base_url.rstrip("/") + "/fhir"
    q = search.parse(kind, pairs, base=base)
    q.count = PAGE
    if kind in ("Patient", "CareTeam", "CarePlan", "Goal"):
        return fhir.search(session, by=by, q=q, mrn=schedule.mrn)
    if kind == "Observation":
        return fhir.search_observations(session, by=by, q=q)
    if kind == "Questionnaire":
        return fhir.search_questionnaires(q)
    if kind == "QuestionnaireResponse":
        return fhir.search_questionnaire_responses(session, by=by, q=q, base=base)
    if kind in ("Task", "Flag"):
        return fhir.search_safety(session, by=by, q=q)
    if kind == "Consent":
        return fhir.SearchPage(*fhir_consents.search_consents(session, by=by, q=q))
    return fhir.SearchPage(*fhir_meds.search_medications(session, by=by, kind=kind, q=q))


def _pages(
    factory: sessionmaker[Session],
    export_id: uuid.UUID,
    kind: str,
    extra: list[tuple[str, str]],
    schedule: BulkSchedule,
    associated: Any = None,
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Every page of a search, each read (and its audit events written) in a transaction of
    its own: a long export never holds the database (on SQLite, its one writer) for long, and
    a cancel between two pages stops it. With `associated` (session, reader, resources ->
    Provenance), each page's latest Provenance, made in the same transaction."""
    cursor: str | None = None
    while True:
        _check_wanted(factory, export_id)
        pairs = list(extra)
        if cursor:
            pairs.append(("_cursor", cursor))
        with unit_of_work(factory) as session:
            export, by = store.export_and_user(session, export_id)
            _set_context(session, export)
            page = _page(session, by, kind, pairs, schedule)
            made = associated(session, by, page.resources) if associated else []
        yield page.resources, made
        cursor = page.next_cursor
        if not cursor:
            return


def _set_context(session: Session, export: BulkExport) -> None:
    """The job's reads are the requester's; a backend service's are in the trail as that
    app acting for the person it borrows access from (ADR 0028)."""
    via = str(export.smart_client_id) if export.smart_client_id else None
    set_context(session, channel="fhir", via=via)


def _patient_ids(
    factory: sessionmaker[Session], export_id: uuid.UUID, schedule: BulkSchedule
) -> list[str]:
    ids: list[str] = []
    for resources, _ in _pages(factory, export_id, "Patient", [], schedule):
        ids += [r["id"] for r in resources]
    return ids


def _chunks(ids: list[str], size: int = search.MAX_VALUES) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _run(factory: sessionmaker[Session], export_id: uuid.UUID, schedule: BulkSchedule) -> None:
    with unit_of_work(factory) as session:
        export, by = store.export_and_user(session, export_id)
        _set_context(session, export)
        members: list[str] | None = None
        if export.level == "group":
            assert export.group_id is not None
            _, found = group_members(session, by=by, group_id=export.group_id)
            members = [str(pid) for pid in found]
        if export.patients is not None:
            # The kick-off's `patient` parameter (checked then; access is decided again by
            # every read below, so one no longer readable is simply not found).
            chosen = [p for p in export.patients.split(",") if p]
            members = chosen if members is None else [p for p in chosen if p in set(members)]
        kinds, since = export.types.split(), export.since
        elements = export.elements.split(",") if export.elements else []
    folder = schedule.directory / export_id.hex
    folder.mkdir(parents=True, exist_ok=True)
    patient_ids: list[str] | None = members
    files: list[BulkExportFile] = []
    associated: Any = None
    provenance_file = _Ndjson(schedule, export_id, PROVENANCE)
    if PROVENANCE in kinds:
        kinds = [k for k in kinds if k != PROVENANCE]
        associated = partial(_latest_provenance, since=since)
    try:
        _write_kinds(
            factory,
            export_id,
            schedule,
            kinds,
            members,
            patient_ids,
            since,
            elements,
            files,
            associated,
            provenance_file,
        )
    finally:
        provenance_file.close()
    if provenance_file.file is not None:
        files.append(provenance_file.file)
    _finish_export(factory, export_id, schedule, files)


def _latest_provenance(
    session: Session, by: User, resources: list[dict[str, Any]], *, since: datetime | None
) -> list[dict[str, Any]]:
    """includeAssociatedData=LatestProvenanceResources: the latest Provenance of each
    resource of the page the export keeps, read as the reader (the care plan's as its history
    is: the care team's)."""
    kept = [r for r in resources if _changed_since(r, since)]
    return fhir.provenances(session, by=by, resources=kept, latest_only=True)


class _Ndjson:
    """One NDJSON file of an export, opened at its first resource."""

    def __init__(self, schedule: BulkSchedule, export_id: uuid.UUID, kind: str) -> None:
        self.schedule, self.export_id, self.kind = schedule, export_id, kind
        self.file: BulkExportFile | None = None
        self.out: Any = None
        self.seen: set[str] = set()

    def write(self, resource: dict[str, Any]) -> None:
        if self.file is None:
            self.file = BulkExportFile(
                id=uuid.uuid4(), export_id=self.export_id, resource_type=self.kind, count=0
            )
            self.out = _file_path(self.schedule, self.export_id, self.file.id).open("w")
        self.out.write(json.dumps(resource, ensure_ascii=False, separators=(",", ":")))
        self.out.write("\n")
        self.file.count += 1

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None


def _write_kinds(
    factory: sessionmaker[Session],
    export_id: uuid.UUID,
    schedule: BulkSchedule,
    kinds: list[str],
    members: list[str] | None,
    patient_ids: list[str] | None,
    since: datetime | None,
    elements: list[str],
    files: list[BulkExportFile],
    associated: Any,
    provenance_file: _Ndjson,
) -> None:
    for kind in kinds:
        _check_wanted(factory, export_id)  # between files
        if kind == "Questionnaire":
            selections = [[]]  # not about a patient: the same for every level
        elif kind == "Patient":
            selections = (
                [[("_id", ",".join(c))] for c in _chunks(members)] if members is not None else [[]]
            )
        else:
            # A hundred patients at a time (search.MAX_VALUES), named: each page then decides
            # access for those patients once, instead of once per patient its rows touch
            # (measured: several times faster than paging the whole population newest first).
            if patient_ids is None:
                patient_ids = _patient_ids(factory, export_id, schedule)
            selections = [[("patient", ",".join(c))] for c in _chunks(patient_ids)]
        ndjson = _Ndjson(schedule, export_id, kind)
        try:
            for extra in selections:
                pages = _pages(factory, export_id, kind, extra, schedule, associated)
                for resources, made in pages:
                    for resource in resources:
                        if not _changed_since(resource, since):
                            continue
                        ndjson.write(subset(resource, elements) if elements else resource)
                    for provenance in made:
                        if provenance["id"] not in provenance_file.seen:
                            provenance_file.seen.add(provenance["id"])
                            provenance_file.write(
                                subset(provenance, elements) if elements else provenance
                            )
        finally:
            ndjson.close()
        if ndjson.file is not None:
            files.append(ndjson.file)


def _finish_export(
    factory: sessionmaker[Session],
    export_id: uuid.UUID,
    schedule: BulkSchedule,
    files: list[BulkExportFile],
) -> None:
    with unit_of_work(factory) as session:
        export, by = store.export_and_user(session, export_id)
        _set_context(session, export)
        if export.status != ExportStatus.running:
            raise _Cancelled
        if _withdrawn(session, export):
            raise _Withdrawn
        session.add_all(files)
        record(
            session,
            by=by,
            action="export",
            object_type="BulkExport",
            object_id=export.id,
            detail={"count": sum(f.count for f in files), "level": export.level},
        )
        export.status = ExportStatus.done
        export.finished_at = now()
        export.expires_at = export.finished_at + schedule.expires


class _Cancelled(Exception):
    pass


class _Withdrawn(Exception):
    """The access the export reads with was withdrawn while it ran."""


def _stop_withdrawn(
    session: Session, export: BulkExport, schedule: BulkSchedule, *, running: bool
) -> None:
    """An export whose access was withdrawn: its files deleted at once, and it is failed, so
    its status answers with an error (403) until it expires. In the trail as its reader's."""
    _delete_files(session, export, schedule)
    export.status = ExportStatus.failed
    export.error = WITHDRAWN
    export.finished_at = export.finished_at or now()
    export.expires_at = now() + schedule.expires
    _, user = store.export_and_user(session, export.id)
    _set_context(session, export)
    record(
        session,
        by=user,
        action="export_stop",
        object_type="BulkExport",
        object_id=export.id,
        outcome=Outcome.denied,
        detail={"reason": "access_withdrawn", "running": running},
    )


def run_exports(factory: sessionmaker[Session], schedule: BulkSchedule) -> int:
    """Run every queued export (each in its own transaction); returns how many finished. An
    export that fails is marked failed (its status answers 500 with the reason's kind); one
    cancelled meanwhile leaves no file."""
    finished = 0
    while (export_id := _claim(factory)) is not None:
        try:
            _run(factory, export_id, schedule)
            finished += 1
        except _Cancelled:
            shutil.rmtree(schedule.directory / export_id.hex, ignore_errors=True)
        except _Withdrawn:
            with unit_of_work(factory) as session:
                export = store.get_export(session, export_id)
                if export is not None and export.status == ExportStatus.running:
                    _stop_withdrawn(session, export, schedule, running=True)
            shutil.rmtree(schedule.directory / export_id.hex, ignore_errors=True)
        except Exception as exc:  # recorded on the export; the next one still runs
            log.error("bulk export %s failed: %s", export_id, type(exc).__name__, exc_info=exc)
            shutil.rmtree(schedule.directory / export_id.hex, ignore_errors=True)
            with unit_of_work(factory) as session:
                export = store.get_export(session, export_id)
                if export is not None and export.status == ExportStatus.running:
                    export.status = ExportStatus.failed
                    export.finished_at = now()
                    export.expires_at = now() + schedule.expires
                    export.error = type(exc).__name__
    return finished


def expire_exports(factory: sessionmaker[Session], schedule: BulkSchedule) -> int:
    """Delete the exports (and their files) past their expiry; returns how many."""
    with unit_of_work(factory) as session:
        expired = store.expired(session)
        for export in expired:
            _delete_files(session, export, schedule)
            session.delete(export)
        # A finished export whose app was disabled (or token revoked) since: its files go
        # now, not at expiry.
        for export in store.finished(session):
            if export not in expired and _withdrawn(session, export):
                _stop_withdrawn(session, export, schedule, running=False)
        # Cancelled exports are kept only to answer 404; their files are already gone.
        return len(expired)

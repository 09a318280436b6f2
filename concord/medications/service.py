"""A patient's medication list: read, add, change, stop; what the patient reports; the safety
check of the whole list and its findings; overrides with a reason.

Who may do what (deny by default; every read and change audited):
- The care team and the patient read the list, its findings and the patient's reports
  (`record_access`: family and strangers get the stranger's 404). Each row passes the
  disclosure decision by its own category and Part 2 label (`disclosure.filter_records`).
- Only the care team adds, changes, holds, stops or resumes a medication, overrides a finding
  or resolves a difference the patient reported.
- Only the patient reports: "I take this" (a medication not on the list, over-the-counter
  included: it goes on the list as patient-reported and is checked like any other) and
  "I take this" / "I stopped this" about one on the list. A report never changes the list:
  the difference is flagged to the team until someone on it resolves it (flag, never guess).

The check (`recheck`) runs `concord.medications.rules.check` on the whole active list and
keeps its findings: new ones are stored, ones that no longer fire are marked resolved (never
deleted), ones that fire again are reopened. Callers (concord.actions.medications) run it after
every change, on every door, and the worker runs it nightly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import (
    PatientAccess,
    deny,
    in_scope,
    owned_by_id,
    parse_id,
    records_among,
)
from concord.accounts.models import User
from concord.audit.models import Outcome
from concord.audit.service import record as audit
from concord.categories import DataCategory
from concord.clock import now
from concord.dates import org_today
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import Msg
from concord.medications.models import (
    CHECKIN_KINDS,
    RELEASE_FROM,
    FindingOverride,
    Medication,
    MedicationFinding,
    MedicationReport,
    MedicationSource,
    MedicationStatus,
    MoudKind,
    MoudRecord,
    OverdoseRiskHit,
    ProtocolEntry,
    ReportKind,
    category_of_rxcuis,
)
from concord.medications.overdose import RecordFact
from concord.medications.rules import Finding, check, default_rules
from concord.medications.schemas import (
    CheckinIn,
    MedicationIn,
    MoudIn,
    ProtocolIn,
    ReportedIn,
    ReportIn,
)
from concord.medications.vocabulary import default_vocabulary
from concord.patients.models import CareTeam, CareTeamMember, Patient

OBJECT = "Medication"
REPORT = "MedicationReport"
FINDING = "MedicationFinding"
# What is checked: a medication on hold may be started again at any time, so it stays in.
CHECKED = (MedicationStatus.active, MedicationStatus.on_hold)


# --- reads ---------------------------------------------------------------------------------


def _audit_list(session: Session, access: PatientAccess, object_type: str, count: int) -> None:
    audit(
        session,
        by=access.by,
        action="list",
        object_type=object_type,
        patient_id=access.patient.id,
        detail={"count": count},
    )


def list_medications(
    session: Session, *, access: PatientAccess, include_stopped: bool = True
) -> list[Medication]:
    """The patient's medications the asker may see: active first, then on hold, then stopped;
    newest first within each (audited)."""
    query = select(Medication).where(Medication.patient_id == access.patient.id)
    if not include_stopped:
        query = query.where(Medication.status != MedicationStatus.stopped)
    rows = list(session.scalars(query))
    order = {s: n for n, s in enumerate(MedicationStatus)}
    rows.sort(key=lambda m: (order.get(m.status, 9), -m.created_at.timestamp(), str(m.id)))
    shown = disclosure.filter_records(session, access, rows, object_type=OBJECT, action="list")
    _audit_list(session, access, OBJECT, len(shown))
    return shown


def get_medication(
    session: Session, *, access: PatientAccess, medication_id: str | uuid.UUID
) -> Medication:
    mid = parse_id(medication_id)
    row = session.get(Medication, mid) if mid is not None else None
    if row is None or row.patient_id != access.patient.id:
        audit(
            session,
            by=access.by,
            action="read",
            object_type=OBJECT,
            object_id=str(medication_id)[:64],
            patient_id=access.patient.id,
            outcome=Outcome.denied,
        )
        raise NotFound(Msg("No such medication."))
    disclosure.check_record(
        session, access, row, object_type=OBJECT, message=Msg("No such medication.")
    )
    audit(
        session,
        by=access.by,
        action="read",
        object_type=OBJECT,
        object_id=row.id,
        patient_id=access.patient.id,
    )
    return row


def find_medication(session: Session, *, by: User, ident: str) -> tuple[Medication, PatientAccess]:
    """A medication by its id alone (FHIR read), with the access that reaches it: the care
    team and the patient; NotFound (audited) for a missing row and for anyone else alike."""
    row, acc = owned_by_id(session, by, Medication, ident, object_type=OBJECT)
    return get_medication(session, access=acc, medication_id=row.id), acc


def find_by_external_id(
    session: Session, *, access: PatientAccess, external_id: str
) -> Medication | None:
    """The medication an EHR sent before under this identifier (a replay), if any."""
    row = session.scalar(
        select(Medication).where(
            Medication.patient_id == access.patient.id, Medication.external_id == external_id
        )
    )
    if row is None:
        return None
    return get_medication(session, access=access, medication_id=row.id)


def list_findings(
    session: Session, *, access: PatientAccess, include_resolved: bool = False
) -> list[MedicationFinding]:
    """The safety findings on the patient's list, open ones most serious first (audited)."""
    query = select(MedicationFinding).where(MedicationFinding.patient_id == access.patient.id)
    if not include_resolved:
        query = query.where(MedicationFinding.resolved_at.is_(None))
    rows = list(session.scalars(query))
    rank = {s: n for n, s in enumerate(("contraindicated", "high", "moderate", "monitor"))}
    rows.sort(
        key=lambda f: (f.resolved_at is not None, rank.get(f.severity, 9), f.rule_id, f.rxcuis)
    )
    shown = disclosure.filter_records(session, access, rows, object_type=FINDING, action="list")
    _audit_list(session, access, FINDING, len(shown))
    return shown


def get_finding(
    session: Session, *, access: PatientAccess, finding_id: str | uuid.UUID
) -> MedicationFinding:
    fid = parse_id(finding_id)
    row = session.get(MedicationFinding, fid) if fid is not None else None
    if row is None or row.patient_id != access.patient.id:
        raise NotFound(Msg("No such finding."))
    disclosure.check_record(
        session, access, row, object_type=FINDING, message=Msg("No such finding.")
    )
    return row


def list_overrides(
    session: Session, *, access: PatientAccess, finding_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[FindingOverride]]:
    ids = list(finding_ids)
    if not ids:
        return {}
    rows = session.scalars(
        select(FindingOverride)
        .where(FindingOverride.patient_id == access.patient.id, FindingOverride.finding_id.in_(ids))
        .order_by(FindingOverride.created_at, FindingOverride.id)
    )
    shown = disclosure.filter_records(
        session, access, list(rows), object_type="MedicationOverride", action="list"
    )
    out: dict[uuid.UUID, list[FindingOverride]] = {}
    for row in shown:
        out.setdefault(row.finding_id, []).append(row)
    return out


def list_reports(
    session: Session, *, access: PatientAccess, open_only: bool = True
) -> list[MedicationReport]:
    query = select(MedicationReport).where(MedicationReport.patient_id == access.patient.id)
    if open_only:
        query = query.where(MedicationReport.resolved_at.is_(None))
    rows = list(
        session.scalars(query.order_by(MedicationReport.created_at.desc(), MedicationReport.id))
    )
    shown = disclosure.filter_records(session, access, rows, object_type=REPORT, action="list")
    _audit_list(session, access, REPORT, len(shown))
    return shown


@dataclass(frozen=True)
class Difference:
    """One difference between the list and what the patient says (reconciliation). `kind`:
    reported_not_listed (the patient takes something not prescribed here), reported_stopped
    (the patient says they stopped a listed medication), taking_not_active (the patient says
    they take one that is on hold or stopped)."""

    kind: str
    medication: Medication
    report: MedicationReport | None = None


def differences(
    medications: Iterable[Medication], reports: Iterable[MedicationReport]
) -> list[Difference]:
    """The differences the team has not yet resolved, from rows already read (no query). No
    match is guessed: a report is about the one medication it names."""
    meds = {m.id: m for m in medications}
    out: list[Difference] = []
    for med in meds.values():
        if med.source == MedicationSource.patient_reported and med.reviewed_at is None:
            out.append(Difference("reported_not_listed", med))
    for report in reports:
        med = meds.get(report.medication_id)
        if med is None or report.resolved_at is not None:
            continue
        if report.kind == ReportKind.stopped and med.status != MedicationStatus.stopped:
            out.append(Difference("reported_stopped", med, report))
        elif report.kind == ReportKind.taking and med.status != MedicationStatus.active:
            out.append(Difference("taking_not_active", med, report))
    return out


def unchecked(medications: Iterable[Medication]) -> list[Medication]:
    """Medications no rule can check (not coded, or coded outside the usable vocabulary)."""
    vocabulary = default_vocabulary()
    return [
        m
        for m in medications
        if m.status in CHECKED and (not m.rxcui or vocabulary.get(m.rxcui) is None)
    ]


# --- writes --------------------------------------------------------------------------------


def _require_team(
    session: Session, access: PatientAccess, action: str, object_id: Any = None
) -> None:
    if not access.on_team:
        raise deny(
            session,
            access,
            action=action,
            object_type=OBJECT,
            object_id=object_id,
            message="Only the care team changes the medication list.",
        )


def _require_self(session: Session, access: PatientAccess, action: str) -> None:
    if not access.is_self:
        raise deny(
            session,
            access,
            action=action,
            object_type=REPORT,
            message="Only the patient reports what they take.",
        )


def team_member_ids(session: Session, patient_id: uuid.UUID) -> set[uuid.UUID]:
    return set(
        session.scalars(
            select(CareTeamMember.user_id)
            .join(CareTeam, CareTeam.id == CareTeamMember.care_team_id)
            .where(CareTeam.patient_id == patient_id, CareTeamMember.ended_at.is_(None))
        )
    )


def team_member_by_role(session: Session, patient_id: uuid.UUID, role: str) -> uuid.UUID | None:
    return session.scalar(
        select(CareTeamMember.user_id)
        .join(CareTeam, CareTeam.id == CareTeamMember.care_team_id)
        .where(
            CareTeam.patient_id == patient_id,
            CareTeamMember.ended_at.is_(None),
            CareTeamMember.role == role,
        )
        .order_by(CareTeamMember.is_lead.desc(), CareTeamMember.added_at)
        .limit(1)
    )


def _name_for(rxcui: str | None, name: str | None, field_name: str = "name") -> str:
    if rxcui:
        entry = default_vocabulary().entry(rxcui)
        if entry is not None:
            return name or entry.label("en")
    if not name:
        raise InvalidInput.field(
            field_name, Msg("required when the medication is not chosen from the list (rxcui)")
        )
    return name


def _check_dates(started: date | None, stopped: date | None) -> None:
    if started and stopped and stopped < started:
        raise InvalidInput.field("stopped_on", Msg("must be on or after started_on"))


def _prescriber(
    session: Session, access: PatientAccess, prescriber_id: uuid.UUID | None, source: str
) -> uuid.UUID | None:
    if prescriber_id is None:
        # Prescribed here: the clinician recording it, unless they name someone else.
        return access.by.id if source == MedicationSource.prescribed else None
    if prescriber_id not in team_member_ids(session, access.patient.id):
        raise InvalidInput.field("prescriber_id", Msg("must be someone on the patient's care team"))
    return prescriber_id


def add_medication(
    session: Session,
    *,
    access: PatientAccess,
    data: MedicationIn,
    source: str = MedicationSource.prescribed,
    external_id: str | None = None,
) -> Medication:
    """A medication the care team prescribes here or imports from an EHR."""
    _require_team(session, access, "create")
    if source not in (
        MedicationSource.prescribed,
        MedicationSource.ehr,
        MedicationSource.ehr_statement,
    ):
        raise InvalidInput.field("source", Msg("must be prescribed, ehr or ehr_statement"))
    _check_dates(data.started_on, data.stopped_on)
    at = now()
    med = Medication(
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        rxcui=data.rxcui,
        drug_rxcui=data.drug_rxcui,
        name=_name_for(data.rxcui, data.name),
        dose=data.dose,
        route=data.route,
        frequency=data.frequency,
        started_on=data.started_on,
        stopped_on=data.stopped_on,
        indication_concern_id=data.indication_concern_id,
        status=MedicationStatus.stopped if data.stopped_on else MedicationStatus.active,
        prescriber_id=_prescriber(session, access, data.prescriber_id, source),
        source=source,
        external_id=external_id,
        version=1,
        created_at=at,
        created_by_id=access.by.id,
        updated_at=at,
        updated_by_id=access.by.id,
    )
    session.add(med)
    session.flush()
    audit(
        session,
        by=access.by,
        action="create",
        object_type=OBJECT,
        object_id=med.id,
        patient_id=access.patient.id,
        detail={"source": source, "rxcui": med.rxcui or "none"},
    )
    return med


def _stale(med: Medication, version: int) -> None:
    if med.version != version:
        raise Conflict(
            Msg("Someone changed this medication since you opened it. Reload and try again.")
        )


def change_medication(
    session: Session, *, access: PatientAccess, medication_id: Any, data: MedicationIn, version: int
) -> Medication:
    _require_team(session, access, "update", medication_id)
    med = get_medication(session, access=access, medication_id=medication_id)
    _stale(med, version)
    _check_dates(data.started_on, data.stopped_on)
    changed = []
    values = {
        "rxcui": data.rxcui,
        "drug_rxcui": data.drug_rxcui,
        "name": _name_for(data.rxcui, data.name),
        "dose": data.dose,
        "route": data.route,
        "frequency": data.frequency,
        "started_on": data.started_on,
        "stopped_on": data.stopped_on,
        "indication_concern_id": data.indication_concern_id,
        "prescriber_id": _prescriber(session, access, data.prescriber_id, med.source)
        if data.prescriber_id is not None
        else med.prescriber_id,
    }
    for key, value in values.items():
        if getattr(med, key) != value:
            setattr(med, key, value)
            changed.append(key)
    if changed:
        med.version += 1
        med.updated_at = now()
        med.updated_by_id = access.by.id
        # A patient-reported medication the team has coded or changed has been reviewed.
        if med.source == MedicationSource.patient_reported and med.reviewed_at is None:
            med.reviewed_at, med.reviewed_by_id = now(), access.by.id
    session.flush()
    audit(
        session,
        by=access.by,
        action="update",
        object_type=OBJECT,
        object_id=med.id,
        patient_id=access.patient.id,
        detail={"fields": sorted(changed)},
    )
    return med


def set_status(
    session: Session,
    *,
    access: PatientAccess,
    medication_id: Any,
    status: str,
    reason: str | None,
    version: int,
) -> Medication:
    """Hold, stop (a reason is required for both) or resume a medication."""
    _require_team(session, access, "update", medication_id)
    med = get_medication(session, access=access, medication_id=medication_id)
    _stale(med, version)
    if status not in tuple(MedicationStatus):
        raise InvalidInput.field("status", Msg("must be active, on_hold or stopped"))
    if status != MedicationStatus.active and not reason:
        raise InvalidInput.field("reason", Msg("required to put a medication on hold or stop it"))
    if med.status == status:
        raise Conflict(Msg("The medication already has this status."))
    med.status = status
    med.status_reason = reason
    today = org_today(access.by.organization)
    if status == MedicationStatus.stopped:
        med.stopped_on = med.stopped_on if med.stopped_on and med.stopped_on <= today else today
    elif status == MedicationStatus.active:
        med.stopped_on = None
    med.version += 1
    med.updated_at = now()
    med.updated_by_id = access.by.id
    if med.source == MedicationSource.patient_reported and med.reviewed_at is None:
        med.reviewed_at, med.reviewed_by_id = now(), access.by.id
    # The patient's reports about it are answered by the change.
    for report in _open_reports(session, med):
        if (report.kind == ReportKind.stopped) == (status == MedicationStatus.stopped):
            report.resolved_at, report.resolved_by_id = now(), access.by.id
            report.resolution = f"status:{status}"
    session.flush()
    audit(
        session,
        by=access.by,
        action="update",
        object_type=OBJECT,
        object_id=med.id,
        patient_id=access.patient.id,
        detail={"status": status},
    )
    return med


def _open_reports(session: Session, med: Medication) -> list[MedicationReport]:
    return list(
        session.scalars(
            select(MedicationReport).where(
                MedicationReport.medication_id == med.id, MedicationReport.resolved_at.is_(None)
            )
        )
    )


def report_taking_new(session: Session, *, access: PatientAccess, data: ReportedIn) -> Medication:
    """The patient takes something not on their list: it goes on the list, marked as reported
    by the patient, and is checked like any other; the team is shown it until reviewed."""
    _require_self(session, access, "create")
    at = now()
    med = Medication(
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        rxcui=data.rxcui,
        name=_name_for(data.rxcui, data.name),
        dose=data.dose,
        status=MedicationStatus.active,
        status_reason=data.note,
        source=MedicationSource.patient_reported,
        over_the_counter=data.over_the_counter,
        version=1,
        created_at=at,
        created_by_id=access.by.id,
        updated_at=at,
        updated_by_id=access.by.id,
    )
    session.add(med)
    session.flush()
    audit(
        session,
        by=access.by,
        action="create",
        object_type=OBJECT,
        object_id=med.id,
        patient_id=access.patient.id,
        detail={"source": MedicationSource.patient_reported, "rxcui": med.rxcui or "none"},
    )
    return med


def report_on(
    session: Session, *, access: PatientAccess, medication_id: Any, data: ReportIn
) -> MedicationReport:
    """The patient says they take, or stopped, a medication on their list. The list does not
    change; a difference is flagged to the team."""
    _require_self(session, access, "create")
    med = get_medication(session, access=access, medication_id=medication_id)
    report = MedicationReport(
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        medication_id=med.id,
        rxcui=med.rxcui,
        kind=data.kind,
        note=data.note,
        created_at=now(),
        created_by_id=access.by.id,
    )
    # Agreement with the list needs nothing from the team.
    agrees = (data.kind == ReportKind.taking) == (med.status == MedicationStatus.active)
    if agrees:
        report.resolved_at = now()
        report.resolution = "agrees"
    session.add(report)
    session.flush()
    audit(
        session,
        by=access.by,
        action="create",
        object_type=REPORT,
        object_id=report.id,
        patient_id=access.patient.id,
        detail={"kind": data.kind, "difference": not agrees},
    )
    return report


def resolve_report(
    session: Session, *, access: PatientAccess, report_id: Any, note: str | None
) -> MedicationReport:
    _require_team(session, access, "update", report_id)
    rid = parse_id(report_id)
    report = session.get(MedicationReport, rid) if rid is not None else None
    if report is None or report.patient_id != access.patient.id:
        raise NotFound(Msg("No such report."))
    disclosure.check_record(session, access, report, object_type=REPORT, action="update")
    if report.resolved_at is not None:
        raise Conflict(Msg("This difference has already been resolved."))
    report.resolved_at, report.resolved_by_id, report.resolution = now(), access.by.id, note
    session.flush()
    audit(
        session,
        by=access.by,
        action="update",
        object_type=REPORT,
        object_id=report.id,
        patient_id=access.patient.id,
    )
    return report


def review_reported(
    session: Session, *, access: PatientAccess, medication_id: Any, note: str | None
) -> Medication:
    """The team has looked at a medication the patient reported (it stays on the list)."""
    _require_team(session, access, "update", medication_id)
    med = get_medication(session, access=access, medication_id=medication_id)
    if med.source != MedicationSource.patient_reported or med.reviewed_at is not None:
        raise Conflict(Msg("This medication has nothing waiting for review."))
    med.reviewed_at, med.reviewed_by_id = now(), access.by.id
    med.version += 1
    session.flush()
    audit(
        session,
        by=access.by,
        action="update",
        object_type=OBJECT,
        object_id=med.id,
        patient_id=access.patient.id,
        detail={"reviewed": True},
    )
    return med


# --- the check -----------------------------------------------------------------------------


def age_on(birth: date | None, on: date) -> int | None:
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def finding_key(finding: Finding) -> str:
    return f"{finding.rule_id}:{'+'.join(finding.rxcuis)}"[:200]


@dataclass
class CheckResult:
    """What a check of the whole list found: the keys of every open finding, and which findings
    are new (raised by this check, or raised again after being resolved) and which it
    resolved. Not filtered for the reader: a door shows findings through `list_findings`."""

    open_keys: set[str] = field(default_factory=set)
    new: list[MedicationFinding] = field(default_factory=list)
    resolved: list[MedicationFinding] = field(default_factory=list)


def checked_medications(session: Session, patient_id: uuid.UUID) -> list[Medication]:
    """The list the check reads (active and on hold); a system read for the check itself, whose
    result is shown only through the audited reads above."""
    return list(
        session.scalars(
            select(Medication).where(
                Medication.patient_id == patient_id, Medication.status.in_(CHECKED)
            )
        )
    )


def recheck(session: Session, *, patient: Patient, by: User | None, today: date) -> CheckResult:
    """Check the patient's whole list and keep the findings (new stored, gone resolved, back
    reopened). Nothing is ever deleted. Reads only the codes and the findings' keys, and
    writes only what changed (a list of 30 medications is checked in well under 50 ms:
    bench/medication_list.py)."""
    rxcuis = list(
        session.scalars(
            select(Medication.rxcui).where(
                Medication.patient_id == patient.id, Medication.status.in_(CHECKED)
            )
        )
    )
    rules = default_rules()
    found = {finding_key(f): f for f in check(rxcuis, age=age_on(patient.birth_date, today))}
    existing = {
        key: (fid, resolved_at)
        for fid, key, resolved_at in session.execute(
            select(
                MedicationFinding.id, MedicationFinding.key, MedicationFinding.resolved_at
            ).where(MedicationFinding.patient_id == patient.id)
        )
    }
    at = now()
    result = CheckResult(open_keys=set(found))
    for key, finding in found.items():
        known = existing.get(key)
        if known is None:
            row = MedicationFinding(
                organization_id=patient.organization_id,
                patient_id=patient.id,
                key=key,
                rule_id=finding.rule_id,
                rules_version=str(rules.version)[:40],
                severity=finding.severity,
                rxcuis=" ".join(finding.rxcuis)[:200],
                title=finding.title["en"][:300],
                title_es=(finding.title.get("es") or None),
                reason=finding.reason,
                action=finding.action,
                source_citation=finding.source.citation,
                source_url=finding.source.url[:500],
                never_block=finding.never_block,
                first_found_at=at,
                last_checked_at=at,
            )
            session.add(row)
            result.new.append(row)
        elif known[1] is not None:
            row = session.get(MedicationFinding, known[0])
            assert row is not None
            row.resolved_at = None
            row.overridden_at = None  # an override answered the finding as it stood then
            row.last_checked_at = at
            result.new.append(row)
    for key, (fid, resolved_at) in existing.items():
        if key not in found and resolved_at is None:
            row = session.get(MedicationFinding, fid)
            assert row is not None
            row.resolved_at = at
            row.last_checked_at = at
            result.resolved.append(row)
    session.flush()
    if result.new or result.resolved:
        audit(
            session,
            by=by,
            action="check",
            object_type=FINDING,
            patient_id=patient.id,
            organization_id=patient.organization_id,
            detail={
                "new": len(result.new),
                "resolved": len(result.resolved),
                "open": len(result.open_keys),
                "rules": [f.rule_id for f in result.new],
            },
        )
    return result


def override_finding(
    session: Session, *, access: PatientAccess, finding_id: Any, reason: str
) -> FindingOverride:
    """Go ahead despite a finding, with the reason (audited). The finding stays, marked."""
    _require_team(session, access, "override", finding_id)
    finding = get_finding(session, access=access, finding_id=finding_id)
    if finding.resolved_at is not None:
        raise Conflict(Msg("This finding no longer applies to the list."))
    if not reason or not reason.strip():
        raise InvalidInput.field("reason", Msg("required to override a finding"))
    row = FindingOverride(
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        finding_id=finding.id,
        finding_key=finding.key,
        rxcuis=finding.rxcuis,
        reason=reason.strip()[:1000],
        created_at=now(),
        created_by_id=access.by.id,
    )
    session.add(row)
    finding.overridden_at = row.created_at
    session.flush()
    audit(
        session,
        by=access.by,
        action="override",
        object_type=FINDING,
        object_id=finding.id,
        patient_id=access.patient.id,
        detail={"rule": finding.rule_id, "severity": finding.severity},
    )
    return row


def prescribers(medications: Iterable[Medication]) -> set[uuid.UUID]:
    return {
        m.prescriber_id for m in medications if m.prescriber_id is not None and m.status in CHECKED
    }


def patients_with_lists(
    session: Session, organization_id: uuid.UUID | None = None
) -> list[Patient]:
    """Every patient with a medication to check (for the nightly job)."""
    query = (
        select(Patient)
        .where(
            Patient.id.in_(
                select(Medication.patient_id).where(Medication.status.in_(CHECKED)).distinct()
            )
        )
        .order_by(Patient.id)
    )
    if organization_id is not None:
        query = query.where(Patient.organization_id == organization_id)
    return list(session.scalars(query))


# --- the joint prescribing protocol ------------------------------------------------------


PROTOCOL = "PrescribingProtocol"


def list_protocol(session: Session, *, access: PatientAccess) -> list[ProtocolEntry]:
    """The patient's current protocol, next monitoring due first (audited)."""
    rows = list(
        session.scalars(
            select(ProtocolEntry).where(
                ProtocolEntry.patient_id == access.patient.id, ProtocolEntry.ended_at.is_(None)
            )
        )
    )
    rows.sort(key=lambda e: (e.next_due_on is None, e.next_due_on or date.max, e.about, str(e.id)))
    shown = disclosure.filter_records(session, access, rows, object_type=PROTOCOL, action="list")
    _audit_list(session, access, PROTOCOL, len(shown))
    return shown


def add_protocol_entry(
    session: Session, *, access: PatientAccess, data: ProtocolIn, today: date
) -> ProtocolEntry:
    _require_team(session, access, "create")
    team = team_member_ids(session, access.patient.id)
    med = (
        get_medication(session, access=access, medication_id=data.medication_id)
        if data.medication_id is not None
        else None
    )
    about = data.about or (med.name if med is not None else None)
    if not about:
        raise InvalidInput.field("about", Msg("name the medication or class (or choose one)"))
    for name in ("prescriber_id", "monitor_owner_id"):
        value = getattr(data, name)
        if value is not None and value not in team:
            raise InvalidInput.field(name, Msg("must be someone on the patient's care team"))
    if any(t not in team for t in data.tell):
        raise InvalidInput.field("tell", Msg("must be someone on the patient's care team"))
    if (data.every_days is not None or data.monitor_owner_id is not None) and not data.monitoring:
        raise InvalidInput.field("monitoring", Msg("say what is monitored"))
    due = None
    if data.monitoring and data.every_days is not None:
        due = data.first_due_on or today
    row = ProtocolEntry(
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        medication_id=med.id if med is not None else None,
        rxcui=med.rxcui if med is not None else None,
        about=about,
        prescriber_id=data.prescriber_id or (med.prescriber_id if med is not None else None),
        monitoring=data.monitoring,
        monitor_owner_id=data.monitor_owner_id,
        every_days=data.every_days,
        next_due_on=due,
        tell=[str(t) for t in data.tell],
        created_at=now(),
        created_by_id=access.by.id,
    )
    session.add(row)
    session.flush()
    audit(
        session,
        by=access.by,
        action="create",
        object_type=PROTOCOL,
        object_id=row.id,
        patient_id=access.patient.id,
    )
    return row


def monitoring_done(
    session: Session, *, access: PatientAccess, entry_id: Any, done_on: date
) -> ProtocolEntry:
    """The monitoring was done on `done_on`: the next falls due `every_days` later."""
    _require_team(session, access, "update", entry_id)
    eid = parse_id(entry_id)
    row = session.get(ProtocolEntry, eid) if eid is not None else None
    if row is None or row.patient_id != access.patient.id or row.ended_at is not None:
        raise NotFound(Msg("No such protocol entry."))
    disclosure.check_record(session, access, row, object_type=PROTOCOL, action="update")
    if not row.monitoring or row.every_days is None:
        raise Conflict(Msg("This protocol entry has no monitoring to record."))
    row.last_done_on = done_on
    row.next_due_on = done_on + timedelta(days=row.every_days)
    session.flush()
    audit(
        session,
        by=access.by,
        action="update",
        object_type=PROTOCOL,
        object_id=row.id,
        patient_id=access.patient.id,
        detail={"monitoring": "done"},
    )
    return row


def to_tell(session: Session, patient_id: uuid.UUID, med: Medication) -> set[uuid.UUID]:
    """Who the protocol says must be told of a change to `med` (its line, or a line naming
    no medication), and the prescribers it names."""
    out: set[uuid.UUID] = set()
    for row in session.scalars(
        select(ProtocolEntry).where(
            ProtocolEntry.patient_id == patient_id, ProtocolEntry.ended_at.is_(None)
        )
    ):
        if row.medication_id not in (None, med.id):
            continue
        out |= {uuid.UUID(t) for t in row.tell or []}
        if row.prescriber_id is not None:
            out.add(row.prescriber_id)
    return out


def monitoring_due(session: Session, *, until: date) -> list[ProtocolEntry]:
    """Every current protocol line whose monitoring falls due by `until` (the nightly job)."""
    return list(
        session.scalars(
            select(ProtocolEntry)
            .where(
                ProtocolEntry.ended_at.is_(None),
                ProtocolEntry.next_due_on.is_not(None),
                ProtocolEntry.next_due_on <= until,
            )
            .order_by(ProtocolEntry.next_due_on, ProtocolEntry.id)
        )
    )


# --- MOUD: the dated facts of opioid use disorder treatment ---------------------------------

MOUD = "MoudRecord"
NEEDS_RESULT = (MoudKind.pdmp_check, MoudKind.urine_drug_test)
NALOXONE = (MoudKind.naloxone_prescribed, MoudKind.naloxone_dispensed)
MISSED = (MoudKind.missed_dose, MoudKind.missed_visit)


def is_moud(med: Medication) -> bool:
    return category_of_rxcuis(med.rxcui) == DataCategory.substance_use


def is_naloxone(med: Medication) -> bool:
    entry = default_vocabulary().entry(med.rxcui) if med.rxcui else None
    return entry is not None and "naloxone" in entry.classes


def list_moud_records(session: Session, *, access: PatientAccess) -> list[MoudRecord]:
    """The patient's MOUD records the asker may see, newest first (audited)."""
    rows = list(
        session.scalars(
            select(MoudRecord)
            .where(MoudRecord.patient_id == access.patient.id)
            .order_by(MoudRecord.on.desc(), MoudRecord.created_at.desc(), MoudRecord.id)
        )
    )
    shown = disclosure.filter_records(session, access, rows, object_type=MOUD, action="list")
    _audit_list(session, access, MOUD, len(shown))
    return shown


def get_moud_record(
    session: Session, *, access: PatientAccess, record_id: str | uuid.UUID
) -> MoudRecord:
    """One of the patient's MOUD records (the disclosure decision, audited)."""
    rid = parse_id(record_id)
    row = session.get(MoudRecord, rid) if rid is not None else None
    if row is None or row.patient_id != access.patient.id:
        audit(
            session,
            by=access.by,
            action="read",
            object_type=MOUD,
            object_id=str(record_id)[:64],
            patient_id=access.patient.id,
            outcome=Outcome.denied,
        )
        raise NotFound(Msg("No such record."))
    disclosure.check_record(session, access, row, object_type=MOUD, message=Msg("No such record."))
    audit(
        session,
        by=access.by,
        action="read",
        object_type=MOUD,
        object_id=row.id,
        patient_id=access.patient.id,
    )
    return row


def find_moud_record(session: Session, *, by: User, ident: str) -> tuple[MoudRecord, PatientAccess]:
    """A MOUD record by its id alone (FHIR read), with the access that reaches it: the care
    team and the patient; NotFound (audited) for a missing row and for anyone else alike."""
    row, acc = owned_by_id(session, by, MoudRecord, ident, object_type=MOUD)
    return get_moud_record(session, access=acc, record_id=row.id), acc


def patients_with_moud_records(session: Session, *, by: User) -> list[PatientAccess]:
    """For a search that names no patient (the FHIR door): the patients whose record `by` may
    read that hold a MOUD record, each through the record's access as a search by patient."""
    ids = session.scalars(
        select(MoudRecord.patient_id).where(in_scope(by, None, MoudRecord.patient_id)).distinct()
    )
    return records_among(session, by, {str(i) for i in ids}, object_type=MOUD) or []


def add_moud_record(
    session: Session, *, access: PatientAccess, data: MoudIn, today: date
) -> MoudRecord:
    """Record a dated fact of MOUD care (the care team). Results are kept as written."""
    _require_team(session, access, "create")
    errors: dict[str, Msg] = {}
    if data.on is None:
        errors["on"] = Msg("required: the day it happened")
    elif data.on > today:
        errors["on"] = Msg("must not be in the future")
    if data.kind in NEEDS_RESULT and not data.result:
        errors["result"] = Msg("required: the result as recorded")
    if data.kind == MoudKind.induction and data.medication_id is None:
        errors["medication_id"] = Msg("required: the medication for opioid use disorder started")
    if data.kind == MoudKind.release and data.detail not in RELEASE_FROM:
        errors["detail"] = Msg("must be prison or residential")
    if data.kind != MoudKind.release and data.detail is not None:
        errors["detail"] = Msg("only for a release (prison or residential)")
    if data.count is not None and data.kind not in MISSED:
        errors["count"] = Msg("only for missed doses or visits")
    team = team_member_ids(session, access.patient.id)
    if data.performed_by_id is not None and data.performed_by_id not in team:
        errors["performed_by_id"] = Msg("must be someone on the patient's care team")
    med = None
    if data.medication_id is not None and "medication_id" not in errors:
        try:
            med = get_medication(session, access=access, medication_id=data.medication_id)
        except NotFound:
            med = None
        if med is None or not is_moud(med):
            errors["medication_id"] = Msg(
                "must be a medication for opioid use disorder on the patient's list"
            )
    if errors:
        raise InvalidInput(Msg("The record was not saved."), errors=errors)
    assert data.on is not None
    performed = data.performed_by_id
    if performed is None and data.kind == MoudKind.pdmp_check:
        performed = access.by.id
    row = MoudRecord(
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        medication_id=med.id if med is not None else None,
        kind=data.kind,
        on=data.on,
        performed_by_id=performed,
        detail=data.detail,
        dose=data.dose,
        result=data.result,
        count=data.count,
        note=data.note,
        created_at=now(),
        created_by_id=access.by.id,
    )
    session.add(row)
    session.flush()
    audit(
        session,
        by=access.by,
        action="create",
        object_type=MOUD,
        object_id=row.id,
        patient_id=access.patient.id,
        detail={"kind": data.kind},
    )
    return row


@dataclass(frozen=True)
class MoudState:
    """What the MOUD section and the caseload's flags say of one patient, from rows already
    read: the active MOUD medications, the last PDMP check and when the next is due (None
    when the clinic has set no interval), naloxone on file, and the latest missed dose or
    visit reported."""

    on_moud: bool
    last_pdmp: date | None
    pdmp_due_on: date | None
    pdmp_overdue: bool
    naloxone_on_file: bool
    last_missed: date | None


def moud_state(
    *,
    moud_started: Iterable[date | None],
    naloxone_listed: bool,
    last_by_kind: dict[str, date],
    interval_days: int | None,
    today: date,
) -> MoudState:
    """The rules of the MOUD flags (pure): a PDMP check is due `interval_days` after the last
    one (or after the earliest MOUD start when there is none; today when no start is
    recorded); naloxone is on file when prescribed or dispensed, or on the list."""
    starts = list(moud_started)
    on_moud = bool(starts)
    last_pdmp = last_by_kind.get(MoudKind.pdmp_check)
    due = None
    if on_moud and interval_days is not None:
        known = [s for s in starts if s is not None]
        base = last_pdmp or (min(known) if known else None)
        due = base + timedelta(days=interval_days) if base is not None else today
    naloxone = naloxone_listed or any(k in last_by_kind for k in NALOXONE)
    missed = [last_by_kind[k] for k in MISSED if k in last_by_kind]
    return MoudState(
        on_moud=on_moud,
        last_pdmp=last_pdmp,
        pdmp_due_on=due,
        pdmp_overdue=due is not None and (today > due or (last_pdmp is None and today >= due)),
        naloxone_on_file=naloxone,
        last_missed=max(missed) if missed else None,
    )


def moud_state_of(
    medications: Iterable[Medication],
    records: Iterable[MoudRecord],
    *,
    interval_days: int | None,
    today: date,
) -> MoudState:
    active = [m for m in medications if m.status == MedicationStatus.active]
    last: dict[str, date] = {}
    for r in records:
        if r.kind not in last or r.on > last[r.kind]:
            last[r.kind] = r.on
    return moud_state(
        moud_started=[m.started_on for m in active if is_moud(m)],
        naloxone_listed=any(is_naloxone(m) for m in active),
        last_by_kind=last,
        interval_days=interval_days,
        today=today,
    )


# --- overdose risk: what the rules read, and which causes already raised an alert -----------


def overdose_facts(session: Session, patient_id: uuid.UUID) -> tuple[list[str | None], list[Any]]:
    """The checked list's ingredients and the MOUD records the overdose-risk rules read (a
    system read for the check itself; what it finds is shown through the safety alert)."""
    rxcuis = list(
        session.scalars(
            select(Medication.rxcui).where(
                Medication.patient_id == patient_id, Medication.status.in_(CHECKED)
            )
        )
    )
    records = [
        RecordFact(str(rid), kind, on, detail)
        for rid, kind, on, detail in session.execute(
            select(MoudRecord.id, MoudRecord.kind, MoudRecord.on, MoudRecord.detail).where(
                MoudRecord.patient_id == patient_id,
                MoudRecord.kind.in_((MoudKind.return_to_use, MoudKind.release, MoudKind.overdose)),
            )
        )
    ]
    return rxcuis, records


def overdose_hits(session: Session, patient_id: uuid.UUID) -> dict[str, OverdoseRiskHit]:
    return {
        h.key: h
        for h in session.scalars(
            select(OverdoseRiskHit).where(OverdoseRiskHit.patient_id == patient_id)
        )
    }


def keep_overdose_hits(
    session: Session,
    *,
    patient: Patient,
    found: dict[str, str],
    standing: set[str],
    alert_id: uuid.UUID | None,
) -> None:
    """Store the causes that raised `alert_id` (`found`: key -> rule id, new or reopened) and
    mark resolved the combinations in force before that no longer are (`standing`: the keys
    that still fire). A dated record's cause is never resolved: it raised its one alert."""
    known = overdose_hits(session, patient.id)
    at = now()
    for key, rule_id in found.items():
        hit = known.get(key)
        if hit is None:
            session.add(
                OverdoseRiskHit(
                    organization_id=patient.organization_id,
                    patient_id=patient.id,
                    key=key,
                    rule_id=rule_id,
                    alert_id=alert_id,
                    raised_at=at,
                )
            )
        else:
            hit.resolved_at, hit.alert_id, hit.raised_at = None, alert_id, at
    for key, hit in known.items():
        if key not in standing and key not in found and hit.resolved_at is None:
            hit.resolved_at = at
    session.flush()


# --- what the patient says at a check-in about a medication -----------------------------


def report_checkin(
    session: Session, *, access: PatientAccess, medication_id: Any, data: CheckinIn
) -> list[MedicationReport]:
    """The patient, about one medication on their list: doses missed in the last 7 days and
    why, the side effects that bother them, a question for the prescriber. One report per
    thing said; the list does not change. Missed doses and side effects are shown beside the
    medication (nothing to resolve); a question stays open until the team answers it."""
    _require_self(session, access, "create")
    if data.missed_doses is None and not (data.missed_why or data.effects or data.question):
        raise InvalidInput(
            Msg("Nothing was sent."),
            errors={"missed_doses": Msg("say how many doses you missed, what bothers you, or ask")},
        )
    if data.missed_why and data.missed_doses is None:
        raise InvalidInput.field("missed_doses", Msg("say how many doses you missed"))
    med = get_medication(session, access=access, medication_id=medication_id)
    at = now()
    rows = []
    said: list[tuple[str, dict[str, Any]]] = []
    if data.missed_doses is not None:
        said.append(
            (ReportKind.adherence, {"missed_doses": data.missed_doses, "note": data.missed_why})
        )
    if data.effects:
        said.append((ReportKind.side_effects, {"effects": data.effects}))
    if data.question:
        said.append((ReportKind.question, {"note": data.question}))
    for kind, values in said:
        row = MedicationReport(
            organization_id=access.patient.organization_id,
            patient_id=access.patient.id,
            medication_id=med.id,
            rxcui=med.rxcui,
            kind=kind,
            created_at=at,
            created_by_id=access.by.id,
            **values,
        )
        if kind != ReportKind.question:
            row.resolved_at, row.resolution = at, "checkin"
        session.add(row)
        rows.append(row)
    session.flush()
    for row in rows:
        audit(
            session,
            by=access.by,
            action="create",
            object_type=REPORT,
            object_id=row.id,
            patient_id=access.patient.id,
            detail={"kind": row.kind},
        )
    return rows


def latest_checkins(
    session: Session, *, access: PatientAccess
) -> dict[uuid.UUID, dict[str, MedicationReport]]:
    """Per medication, the latest check-in report of each kind (adherence, side effects) and
    every open question, as the asker may see them (audited)."""
    rows = list(
        session.scalars(
            select(MedicationReport)
            .where(
                MedicationReport.patient_id == access.patient.id,
                MedicationReport.kind.in_(CHECKIN_KINDS),
            )
            .order_by(MedicationReport.created_at.desc(), MedicationReport.id)
        )
    )
    shown = disclosure.filter_records(session, access, rows, object_type=REPORT, action="list")
    _audit_list(session, access, REPORT, len(shown))
    out: dict[uuid.UUID, dict[str, MedicationReport]] = {}
    for row in shown:
        mine = out.setdefault(row.medication_id, {})
        if row.kind == ReportKind.question:
            if row.resolved_at is None and "question" not in mine:
                mine["question"] = row
        elif row.kind not in mine:
            mine[row.kind] = row
    return out


def medication_writers(
    session: Session, medication_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, tuple[Medication, Patient, User | None]]:
    """Each medication, its patient and who last wrote it (else who recorded it): what its
    Provenance says (concord.fhir.provenance). No access decision here: asked only about
    medications the caller has just been given through one."""
    ids = list(medication_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Medication, Patient)
        .join(Patient, Patient.id == Medication.patient_id)
        .where(Medication.id.in_(ids))
    ).all()
    out: dict[uuid.UUID, tuple[Medication, Patient, User | None]] = {}
    for med, patient in rows:
        writer = med.updated_by_id or med.created_by_id
        out[med.id] = (med, patient, session.get(User, writer) if writer else None)
    return out

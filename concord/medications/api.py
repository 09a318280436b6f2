"""The medication list as JSON at /api/v1 (issue 19): the list with its findings and the
differences the patient reported, and every change the pages make (the same actions, so the
same whole-list check runs; creates and changes may carry an Idempotency-Key)."""

# No `from __future__ import annotations`: FastAPI reads the body models from the annotations.

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from concord import access
from concord.access import PatientAccess
from concord.actions import medications as act
from concord.dates import org_today
from concord.medications import service as meds
from concord.medications.models import (
    FindingOverride,
    Medication,
    MedicationFinding,
    MedicationReport,
    MoudRecord,
    ProtocolEntry,
)
from concord.medications.schemas import (
    CheckinIn,
    MedicationChangeIn,
    MedicationIn,
    MonitoringDoneIn,
    MoudIn,
    OverrideIn,
    ProtocolIn,
    ReportedIn,
    ReportIn,
    ResolveIn,
    StatusIn,
)
from concord.web.deps import ApiActor, ApiWriter, DbSession
from concord.web.idempotency import Idempotent, create_once, earlier_record

router = APIRouter(prefix="/api/v1", tags=["medications"])
OBJECT = meds.OBJECT


def _access(session: Session, actor: Any, patient_id: str, action: str = "read") -> PatientAccess:
    return access.record_access(session, actor.user, patient_id, action=action, object_type=OBJECT)


def _day(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _id(value: Any) -> str | None:
    return str(value) if value is not None else None


def fhir_type(m: Medication) -> str:
    """Reported by the patient: a MedicationStatement; prescribed (here or in an EHR): a
    MedicationRequest."""
    return "MedicationStatement" if m.reported else "MedicationRequest"


def medication_json(m: Medication) -> dict[str, Any]:
    return {
        "id": str(m.id),
        "patient_id": str(m.patient_id),
        "rxcui": m.rxcui,
        "drug_rxcui": m.drug_rxcui,
        "name": m.name,
        "dose": m.dose,
        "route": m.route,
        "frequency": m.frequency,
        "started_on": _day(m.started_on),
        "stopped_on": _day(m.stopped_on),
        "indication_concern_id": _id(m.indication_concern_id),
        "status": m.status,
        "status_reason": m.status_reason,
        "prescriber_id": _id(m.prescriber_id),
        "prescriber": m.prescriber.name if m.prescriber is not None else None,
        "source": m.source,
        "over_the_counter": m.over_the_counter,
        "reviewed_at": m.reviewed_at.isoformat() if m.reviewed_at else None,
        "category": str(m.data_category),
        "version": m.version,
        "fhir": f"{fhir_type(m)}/{m.id}",
    }


def override_json(o: FindingOverride) -> dict[str, Any]:
    return {
        "id": str(o.id),
        "finding_id": str(o.finding_id),
        "reason": o.reason,
        "by_id": str(o.created_by_id),
        "by": o.created_by.name if o.created_by is not None else None,
        "at": o.created_at.isoformat(),
    }


def finding_json(f: MedicationFinding, overrides: list[FindingOverride] = ()) -> dict[str, Any]:
    return {
        "id": str(f.id),
        "key": f.key,
        "rule_id": f.rule_id,
        "severity": f.severity,
        "rxcuis": f.rxcuis.split(),
        "title": f.title,
        "reason": f.reason,
        "action": f.action,
        "source": {"citation": f.source_citation, "url": f.source_url},
        "never_block": f.never_block,
        "first_found_at": f.first_found_at.isoformat(),
        "resolved_at": f.resolved_at.isoformat() if f.resolved_at else None,
        "overridden_at": f.overridden_at.isoformat() if f.overridden_at else None,
        "overrides": [override_json(o) for o in overrides],
    }


def report_json(r: MedicationReport) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "medication_id": str(r.medication_id),
        "kind": r.kind,
        "note": r.note,
        "created_at": r.created_at.isoformat(),
        "resolved_at": r.resolved_at.isoformat() if r.resolved_at else None,
        "resolution": r.resolution,
    }


def protocol_json(e: ProtocolEntry) -> dict[str, Any]:
    return {
        "id": str(e.id),
        "medication_id": _id(e.medication_id),
        "about": e.about,
        "prescriber_id": _id(e.prescriber_id),
        "monitoring": e.monitoring,
        "monitor_owner_id": _id(e.monitor_owner_id),
        "every_days": e.every_days,
        "last_done_on": _day(e.last_done_on),
        "next_due_on": _day(e.next_due_on),
        "tell": list(e.tell or []),
    }


def moud_json(r: MoudRecord) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "kind": r.kind,
        "on": _day(r.on),
        "medication_id": _id(r.medication_id),
        "performed_by_id": _id(r.performed_by_id),
        "performed_by": r.performed_by.name if r.performed_by is not None else None,
        "detail": r.detail,
        "dose": r.dose,
        "result": r.result,
        "count": r.count,
        "note": r.note,
        "category": str(r.data_category),
        "created_at": r.created_at.isoformat(),
    }


def moud_state_json(state: meds.MoudState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "on_moud": state.on_moud,
        "last_pdmp_check": _day(state.last_pdmp),
        "pdmp_check_due_on": _day(state.pdmp_due_on),
        "pdmp_check_overdue": state.pdmp_overdue,
        "naloxone_on_file": state.naloxone_on_file,
        "last_missed_reported": _day(state.last_missed),
    }


def checkin_json(r: MedicationReport) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "medication_id": str(r.medication_id),
        "kind": r.kind,
        "missed_doses": r.missed_doses,
        "effects": r.effects,
        "note": r.note,
        "created_at": r.created_at.isoformat(),
        "answered_at": r.resolved_at.isoformat()
        if r.resolved_at and r.kind == "question"
        else None,
    }


def _changed(session: Session, acc: PatientAccess, done: act.Changed) -> dict[str, Any]:
    """The medication and the open findings the asker may see (the disclosure decision, as
    on the list), with which of them this change raised."""
    findings = meds.list_findings(session, access=acc)
    shown = {f.id for f in findings}
    return {
        "medication": medication_json(done.medication),
        "findings": [finding_json(f) for f in findings],
        "new_findings": [str(f.id) for f in done.check.new if f.id in shown],
        "resolved_findings": [str(f.id) for f in done.check.resolved],
    }


def list_view(session: Session, acc: PatientAccess) -> dict[str, Any]:
    """What the list's page shows, as data (the page and the API share it)."""
    medications = meds.list_medications(session, access=acc)
    findings = meds.list_findings(session, access=acc)
    overrides = meds.list_overrides(session, access=acc, finding_ids=[f.id for f in findings])
    reports = meds.list_reports(session, access=acc)
    records = meds.list_moud_records(session, access=acc)
    # The MOUD section shows only what the asker may see: with the MOUD medications or their
    # records withheld (Part 2), no state is drawn from them.
    today = org_today(acc.by.organization)
    state = meds.moud_state_of(
        medications,
        records,
        interval_days=acc.by.organization.pdmp_check_interval_days,
        today=today,
    )
    return {
        "medications": medications,
        "findings": findings,
        "overrides": overrides,
        "reports": reports,
        "differences": meds.differences(medications, reports),
        "unchecked": meds.unchecked(medications),
        "protocol": meds.list_protocol(session, access=acc),
        "moud_records": records,
        "moud": state if (state.on_moud or records) else None,
        "pdmp_interval": acc.by.organization.pdmp_check_interval_days,
        "checkins": meds.latest_checkins(session, access=acc),
    }


@router.get("/patients/{patient_id}/medications")
def medications(patient_id: str, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    """The patient's medications, the open safety findings (most serious first) and the
    differences the patient reported that the team has not resolved."""
    acc = _access(session, actor, patient_id)
    view = list_view(session, acc)
    return {
        "medications": [medication_json(m) for m in view["medications"]],
        "findings": [finding_json(f, view["overrides"].get(f.id, [])) for f in view["findings"]],
        "differences": [
            {
                "kind": d.kind,
                "medication_id": str(d.medication.id),
                "report_id": str(d.report.id) if d.report is not None else None,
            }
            for d in view["differences"]
        ],
        "unchecked": [str(m.id) for m in view["unchecked"]],
        "protocol": [protocol_json(e) for e in view["protocol"]],
        "moud": moud_state_json(view["moud"]),
        "pdmp_check_interval_days": view["pdmp_interval"],
        "moud_records": [moud_json(r) for r in view["moud_records"]],
        "checkins": [
            checkin_json(r) for by_kind in view["checkins"].values() for r in by_kind.values()
        ],
    }


def _replay_med(session: Session, acc: PatientAccess, result: str) -> dict[str, Any]:
    med = earlier_record(session, Medication, result, patient_id=acc.patient.id)
    return {"medication": medication_json(med)}


@router.post("/patients/{patient_id}/medications", status_code=201)
def add(
    patient_id: str, body: MedicationIn, session: DbSession, actor: ApiWriter, idem: Idempotent
) -> Any:
    """Add a medication prescribed here (the care team); the whole list is checked."""
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        done = act.add(session, access=acc, data=body)
        return str(done.medication.id), _changed(session, acc, done)

    return create_once(
        session, actor, idem, create=create, replay=lambda r: _replay_med(session, acc, r)
    )


@router.put("/patients/{patient_id}/medications/{medication_id}")
def change(
    patient_id: str,
    medication_id: str,
    body: MedicationChangeIn,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    """Change a medication (dose, frequency, dates...); `version` is the one you read."""
    acc = _access(session, actor, patient_id, "update")

    def create() -> tuple[str, Any]:
        done = act.change(
            session, access=acc, medication_id=medication_id, data=body, version=body.version
        )
        return str(done.medication.id), _changed(session, acc, done)

    return create_once(
        session, actor, idem, create=create, replay=lambda r: _replay_med(session, acc, r)
    )


@router.post("/patients/{patient_id}/medications/{medication_id}/status")
def status(
    patient_id: str,
    medication_id: str,
    body: StatusIn,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    """Put on hold, stop (with a reason) or resume a medication; the list is checked again."""
    acc = _access(session, actor, patient_id, "update")

    def create() -> tuple[str, Any]:
        done = act.set_status(
            session,
            access=acc,
            medication_id=medication_id,
            status=body.status,
            reason=body.reason,
            version=body.version,
        )
        return str(done.medication.id), _changed(session, acc, done)

    return create_once(
        session, actor, idem, create=create, replay=lambda r: _replay_med(session, acc, r)
    )


@router.post("/patients/{patient_id}/medications/{medication_id}/review")
def review(
    patient_id: str,
    medication_id: str,
    body: ResolveIn,
    session: DbSession,
    actor: ApiWriter,
) -> Any:
    """The team has reviewed a medication the patient reported (it stays on the list)."""
    acc = _access(session, actor, patient_id, "update")
    med = act.review_reported(session, access=acc, medication_id=medication_id, note=body.note)
    return {"medication": medication_json(med)}


@router.post("/patients/{patient_id}/medications/reported", status_code=201)
def reported(
    patient_id: str, body: ReportedIn, session: DbSession, actor: ApiWriter, idem: Idempotent
) -> Any:
    """The patient: "I take this", a medication not on the list (over the counter included)."""
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        done = act.report_new(session, access=acc, data=body)
        return str(done.medication.id), _changed(session, acc, done)

    return create_once(
        session, actor, idem, create=create, replay=lambda r: _replay_med(session, acc, r)
    )


@router.post("/patients/{patient_id}/medications/{medication_id}/reports", status_code=201)
def report(
    patient_id: str,
    medication_id: str,
    body: ReportIn,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    """The patient: "I take this" or "I stopped this" about a medication on the list. The list
    does not change; a difference is shown to the team."""
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        row = act.report(session, access=acc, medication_id=medication_id, data=body)
        return str(row.id), report_json(row)

    return create_once(
        session,
        actor,
        idem,
        create=create,
        replay=lambda r: report_json(
            earlier_record(session, MedicationReport, r, patient_id=acc.patient.id)
        ),
    )


@router.post("/patients/{patient_id}/medication-reports/{report_id}/resolve")
def resolve(
    patient_id: str, report_id: str, body: ResolveIn, session: DbSession, actor: ApiWriter
) -> Any:
    """The team has reconciled a difference the patient reported."""
    acc = _access(session, actor, patient_id, "update")
    return report_json(act.resolve_report(session, access=acc, report_id=report_id, note=body.note))


@router.post("/patients/{patient_id}/medication-findings/{finding_id}/override", status_code=201)
def override(
    patient_id: str,
    finding_id: str,
    body: OverrideIn,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    """Go ahead despite a finding, with the reason (the team; audited; the finding stays)."""
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        row = act.override(session, access=acc, finding_id=finding_id, reason=body.reason)
        return str(row.id), override_json(row)

    return create_once(
        session,
        actor,
        idem,
        create=create,
        replay=lambda r: override_json(
            earlier_record(session, FindingOverride, r, patient_id=acc.patient.id)
        ),
    )


@router.post("/patients/{patient_id}/medication-protocol", status_code=201)
def add_protocol(
    patient_id: str, body: ProtocolIn, session: DbSession, actor: ApiWriter, idem: Idempotent
) -> Any:
    """A line of the joint prescribing protocol (the care team): who prescribes, who monitors
    what and how often, who is told of a change."""
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        entry = act.add_protocol(session, access=acc, data=body)
        return str(entry.id), protocol_json(entry)

    return create_once(
        session,
        actor,
        idem,
        create=create,
        replay=lambda r: protocol_json(
            earlier_record(session, ProtocolEntry, r, patient_id=acc.patient.id)
        ),
    )


@router.post("/patients/{patient_id}/medication-protocol/{entry_id}/done")
def monitoring_done(
    patient_id: str,
    entry_id: str,
    body: MonitoringDoneIn,
    session: DbSession,
    actor: ApiWriter,
) -> Any:
    """The monitoring was done (today unless `done_on`): the next falls due."""
    acc = _access(session, actor, patient_id, "update")
    entry = act.monitoring_done(session, access=acc, entry_id=entry_id, done_on=body.done_on)
    return protocol_json(entry)


@router.post("/patients/{patient_id}/moud-records", status_code=201)
def add_moud_record(
    patient_id: str, body: MoudIn, session: DbSession, actor: ApiWriter, idem: Idempotent
) -> Any:
    """A dated fact of opioid use disorder treatment (the care team): an induction, a PDMP
    check (who, the result as recorded), a urine drug test (the result as recorded), naloxone
    prescribed or dispensed, missed doses or visits, a return to use, a release, an overdose.
    The overdose-risk rules run after it."""
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        row = act.record_moud(session, access=acc, data=body)
        return str(row.id), moud_json(row)

    return create_once(
        session,
        actor,
        idem,
        create=create,
        replay=lambda r: moud_json(
            earlier_record(session, MoudRecord, r, patient_id=acc.patient.id)
        ),
    )


@router.post("/patients/{patient_id}/medications/{medication_id}/checkin", status_code=201)
def checkin(
    patient_id: str,
    medication_id: str,
    body: CheckinIn,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    """The patient, about one medication: doses missed in the last 7 days and why, the side
    effects that bother them, a question for the prescriber (who gets a task)."""
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        rows = act.checkin(session, access=acc, medication_id=medication_id, data=body)
        # At most three ids (adherence, side effects, question): 110 characters.
        return " ".join(str(r.id) for r in rows), {"reports": [checkin_json(r) for r in rows]}

    def replay(result: str) -> Any:
        rows = [
            earlier_record(session, MedicationReport, rid, patient_id=acc.patient.id)
            for rid in result.split()
        ]
        return {"reports": [checkin_json(r) for r in rows]}

    return create_once(session, actor, idem, create=create, replay=replay)

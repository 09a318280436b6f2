"""A change to a patient's medication list, then the check of the whole list, the findings
kept, the other prescribers told and the tasks opened (issue 19).

Every door (the team's page, the JSON API, the FHIR create, the patient's portal) calls these,
so the same check runs and the same tasks follow whichever door the change came through:
- add / change / hold / stop / resume (the care team), "I take this" (the patient): the whole
  list is checked (concord.medications.service.recheck); each new finding opens a task for the
  prescriber responsible for a medication it names (the care manager when none is named), and
  a finding that no longer fires closes its task;
- every other prescriber of the patient's current list is given a task to look at the change
  (the joint-prescribing rule "who must be told of a change", until the protocol names them);
- a difference the patient reports ("I stopped this") opens a task for the prescriber of that
  medication: the team reconciles; nothing is changed for them;
- an override closes the finding's task and keeps the reason.
`recheck_all` is the worker's nightly run over every active list.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.accounts.models import Organization, User
from concord.careplans import service as plans
from concord.dates import org_today
from concord.db import isolated
from concord.errors import InvalidInput
from concord.i18n import N_, Msg
from concord.medications import overdose
from concord.medications import service as meds
from concord.medications.models import (
    FindingOverride,
    Medication,
    MedicationFinding,
    MedicationReport,
    MedicationSource,
    MoudRecord,
    ProtocolEntry,
    ReportKind,
)
from concord.medications.schemas import (
    CheckinIn,
    MedicationIn,
    MoudIn,
    ProtocolIn,
    ReportedIn,
    ReportIn,
)
from concord.patients.models import Patient
from concord.registry import tasks
from concord.safety import alerts
from concord.safety.models import SafetyAlert

URGENT = ("contraindicated", "high")
TITLE_FINDING = N_("Review a medication safety finding")
TITLE_CHANGE = N_("A medication you prescribe alongside was changed: review the list")
TITLE_DIFFERENCE = N_("The patient reported a difference from the medication list: reconcile")
TITLE_REPORTED = N_("The patient reported a medication not on the list: review it")
TITLE_MONITORING = N_("Medication monitoring is due (joint prescribing protocol)")
TITLE_QUESTION = N_("The patient asked a question about a medication: answer it")
MONITORING_AHEAD = timedelta(days=7)  # a task opens this long before the monitoring is due


@dataclass
class Changed:
    """What a change did: the medication, and the check of the whole list after it."""

    medication: Medication
    check: meds.CheckResult = field(default_factory=meds.CheckResult)


def _check_indication(session: Session, access: PatientAccess, data: MedicationIn) -> None:
    """The indication names a concern of the patient's current plan, or nothing."""
    if data.indication_concern_id is None:
        return
    plan = plans.current_plan(session, access.patient.id)
    concerns = plans.load_contents(session, plan).concerns if plan is not None else []
    if data.indication_concern_id not in {c.id for c in concerns}:
        raise InvalidInput.field(
            "indication_concern_id", Msg("must be a concern on the patient's current care plan")
        )


def _care_manager(session: Session, patient_id: uuid.UUID) -> uuid.UUID | None:
    return meds.team_member_by_role(session, patient_id, "care_manager")


def _today(session: Session, patient: Patient) -> date:
    return org_today(session.get(Organization, patient.organization_id))


def _finding_owner(
    session: Session, patient: Patient, finding: MedicationFinding, current: list[Medication]
) -> uuid.UUID | None:
    involved = set(finding.rxcuis.split())
    for med in current:
        if med.rxcui in involved and med.prescriber_id is not None:
            return med.prescriber_id
    return _care_manager(session, patient.id)


def finding_source(finding: MedicationFinding) -> str:
    return f"medication-finding:{finding.id}"


def after_check(
    session: Session, *, patient: Patient, by: User | None, result: meds.CheckResult
) -> None:
    """The tasks a check asks for: one per new finding, closed when it resolves."""
    if not result.new and not result.resolved:
        return
    current = meds.checked_medications(session, patient.id)
    today = _today(session, patient)
    for finding in result.new:
        tasks.open_task(
            session,
            organization_id=patient.organization_id,
            patient_id=patient.id,
            owner_id=_finding_owner(session, patient, finding, current),
            title=TITLE_FINDING,
            source=finding_source(finding),
            due_on=today if finding.severity in URGENT else today + timedelta(days=7),
            priority="urgent" if finding.severity in URGENT else "routine",
            by=by,
        )
    for finding in result.resolved:
        tasks.close_tasks(
            session,
            patient_id=patient.id,
            source=finding_source(finding),
            note="The finding no longer applies to the list.",
            by=by,
        )


def _recheck(session: Session, access: PatientAccess) -> meds.CheckResult:
    result = meds.recheck(
        session,
        patient=access.patient,
        by=access.by,
        today=org_today(access.by.organization),
    )
    after_check(session, patient=access.patient, by=access.by, result=result)
    check_overdose(
        session, patient=access.patient, by=access.by, today=org_today(access.by.organization)
    )
    return result


def _tell_other_prescribers(session: Session, access: PatientAccess, med: Medication) -> None:
    current = meds.checked_medications(session, access.patient.id)
    others = meds.prescribers(current) | ({med.prescriber_id} if med.prescriber_id else set())
    others |= meds.to_tell(session, access.patient.id, med)
    others.discard(access.by.id)
    team = meds.team_member_ids(session, access.patient.id)
    today = org_today(access.by.organization)
    for user_id in sorted(others & team):
        tasks.open_task(
            session,
            organization_id=access.patient.organization_id,
            patient_id=access.patient.id,
            owner_id=user_id,
            title=TITLE_CHANGE,
            source=f"medication-change:{med.id}:{user_id}",
            due_on=today + timedelta(days=2),
            by=access.by,
        )


def add(
    session: Session,
    *,
    access: PatientAccess,
    data: MedicationIn,
    source: str = MedicationSource.prescribed,
    external_id: str | None = None,
) -> Changed:
    _check_indication(session, access, data)
    med = meds.add_medication(
        session, access=access, data=data, source=source, external_id=external_id
    )
    result = _recheck(session, access)
    _tell_other_prescribers(session, access, med)
    return Changed(med, result)


def change(
    session: Session, *, access: PatientAccess, medication_id: Any, data: MedicationIn, version: int
) -> Changed:
    _check_indication(session, access, data)
    med = meds.change_medication(
        session, access=access, medication_id=medication_id, data=data, version=version
    )
    result = _recheck(session, access)
    _tell_other_prescribers(session, access, med)
    return Changed(med, result)


def set_status(
    session: Session,
    *,
    access: PatientAccess,
    medication_id: Any,
    status: str,
    reason: str | None,
    version: int,
) -> Changed:
    med = meds.set_status(
        session,
        access=access,
        medication_id=medication_id,
        status=status,
        reason=reason,
        version=version,
    )
    result = _recheck(session, access)
    _tell_other_prescribers(session, access, med)
    tasks.close_tasks(
        session,
        patient_id=access.patient.id,
        source=f"medication-difference:{med.id}",
        note="The medication's status was changed.",
        by=access.by,
    )
    return Changed(med, result)


def report_new(session: Session, *, access: PatientAccess, data: ReportedIn) -> Changed:
    """The patient takes something not on the list: on the list, checked, shown to the team."""
    med = meds.report_taking_new(session, access=access, data=data)
    result = _recheck(session, access)
    current = meds.checked_medications(session, access.patient.id)
    owners = meds.prescribers(current) or {_care_manager(session, access.patient.id)}
    today = org_today(access.by.organization)
    for owner in sorted(o for o in owners if o is not None):
        tasks.open_task(
            session,
            organization_id=access.patient.organization_id,
            patient_id=access.patient.id,
            owner_id=owner,
            title=TITLE_REPORTED,
            source=f"medication-reported:{med.id}:{owner}",
            due_on=today + timedelta(days=2),
            by=access.by,
        )
    return Changed(med, result)


def report(
    session: Session, *, access: PatientAccess, medication_id: Any, data: ReportIn
) -> MedicationReport:
    """The patient says they take, or stopped, a medication on the list: a difference opens a
    task for its prescriber (the care manager when none); the list is not changed."""
    row = meds.report_on(session, access=access, medication_id=medication_id, data=data)
    if row.resolved_at is None:
        med = meds.get_medication(session, access=access, medication_id=row.medication_id)
        owner = med.prescriber_id or _care_manager(session, access.patient.id)
        tasks.open_task(
            session,
            organization_id=access.patient.organization_id,
            patient_id=access.patient.id,
            owner_id=owner,
            title=TITLE_DIFFERENCE,
            source=f"medication-difference:{med.id}",
            due_on=org_today(access.by.organization) + timedelta(days=2),
            priority="urgent" if data.kind == ReportKind.stopped else "routine",
            by=access.by,
        )
    return row


def resolve_report(
    session: Session, *, access: PatientAccess, report_id: Any, note: str | None
) -> MedicationReport:
    row = meds.resolve_report(session, access=access, report_id=report_id, note=note)
    if row.kind == ReportKind.question:
        tasks.close_tasks(
            session,
            patient_id=access.patient.id,
            source=question_source(row),
            note="The team answered the question.",
            by=access.by,
        )
        return row
    tasks.close_tasks(
        session,
        patient_id=access.patient.id,
        source=f"medication-difference:{row.medication_id}",
        note="The team reconciled the difference.",
        by=access.by,
    )
    return row


def review_reported(
    session: Session, *, access: PatientAccess, medication_id: Any, note: str | None
) -> Medication:
    med = meds.review_reported(session, access=access, medication_id=medication_id, note=note)
    for owner in meds.team_member_ids(session, access.patient.id):
        tasks.close_tasks(
            session,
            patient_id=access.patient.id,
            source=f"medication-reported:{med.id}:{owner}",
            note="The team reviewed the reported medication.",
            by=access.by,
        )
    return med


def override(
    session: Session, *, access: PatientAccess, finding_id: Any, reason: str
) -> FindingOverride:
    row = meds.override_finding(session, access=access, finding_id=finding_id, reason=reason)
    tasks.close_tasks(
        session,
        patient_id=access.patient.id,
        source=f"medication-finding:{row.finding_id}",
        note="Overridden with a reason.",
        by=access.by,
    )
    return row


def _monitoring_task(session: Session, entry: ProtocolEntry, today: date, by: User | None) -> None:
    """The task for a line's monitoring, from a week before it falls due; urgent once overdue
    (closed when the monitoring is recorded as done)."""
    if entry.next_due_on is None or entry.next_due_on > today + MONITORING_AHEAD:
        return
    owner = (
        entry.monitor_owner_id or entry.prescriber_id or _care_manager(session, entry.patient_id)
    )
    task = tasks.open_task(
        session,
        organization_id=entry.organization_id,
        patient_id=entry.patient_id,
        owner_id=owner,
        title=TITLE_MONITORING,
        source=f"medication-monitoring:{entry.id}",
        due_on=entry.next_due_on,
        priority="urgent" if entry.next_due_on < today else "routine",
        by=by,
    )
    if entry.next_due_on < today and task.priority == "routine":
        task.priority = "urgent"


def add_protocol(session: Session, *, access: PatientAccess, data: ProtocolIn) -> ProtocolEntry:
    """A line of the joint prescribing protocol; its monitoring task opens when it is near."""
    today = org_today(access.by.organization)
    entry = meds.add_protocol_entry(session, access=access, data=data, today=today)
    _monitoring_task(session, entry, today, access.by)
    return entry


def monitoring_done(
    session: Session, *, access: PatientAccess, entry_id: Any, done_on: date | None
) -> ProtocolEntry:
    today = org_today(access.by.organization)
    entry = meds.monitoring_done(
        session, access=access, entry_id=entry_id, done_on=done_on or today
    )
    tasks.close_tasks(
        session,
        patient_id=access.patient.id,
        source=f"medication-monitoring:{entry.id}",
        note="The monitoring was done.",
        by=access.by,
    )
    _monitoring_task(session, entry, today, access.by)
    return entry


def monitoring_all(session: Session) -> int:
    """Nightly: open (or make urgent) the task of every protocol line whose monitoring is due
    within a week or overdue."""
    done = 0
    days: dict[uuid.UUID, date] = {}
    for entry in meds.monitoring_due(session, until=org_today(None) + MONITORING_AHEAD * 2):
        if entry.organization_id not in days:
            days[entry.organization_id] = org_today(
                session.get(Organization, entry.organization_id)
            )
        today = days[entry.organization_id]

        def one(entry: ProtocolEntry = entry, today: date = today) -> int:
            _monitoring_task(session, entry, today, None)
            return 1

        done += (
            isolated(
                session,
                one,
                job="medication_monitoring",
                object_type="PrescribingProtocol",
                object_id=entry.id,
            )
            or 0
        )
    return done


def recheck_all(session: Session) -> int:
    """Nightly: check every active list again (a rule set updated, a patient turned 25), each
    patient in a savepoint. Returns how many findings were raised or resolved."""
    changed = 0
    for patient in meds.patients_with_lists(session):

        def one(patient: Patient = patient) -> int:
            today = _today(session, patient)
            result = meds.recheck(session, patient=patient, by=None, today=today)
            after_check(session, patient=patient, by=None, result=result)
            check_overdose(session, patient=patient, by=None, today=today)
            return len(result.new) + len(result.resolved)

        changed += (
            isolated(
                session, one, job="medication_checks", object_type="Patient", object_id=patient.id
            )
            or 0
        )
    return changed


# --- MOUD records and overdose risk --------------------------------------------------------


def check_overdose(
    session: Session, *, patient: Patient, by: User | None, today: date
) -> SafetyAlert | None:
    """Run the overdose-risk rules on the patient's list and MOUD records; the causes that
    fire for the first time (or again, for a combination that had gone) raise one safety alert
    through the escalation chain, naming each rule, what to do and its source."""
    rxcuis, records = meds.overdose_facts(session, patient.id)
    hits = overdose.evaluate(rxcuis, records, today=today)
    known = meds.overdose_hits(session, patient.id)
    new = [h for h in hits if h.key not in known or known[h.key].resolved_at is not None]
    alert = None
    if new:
        triggers = [
            {
                "rule": h.rule.id,
                "name": dict(h.rule.name),
                "action": h.rule.action,
                "source": {"citation": h.rule.citation, "url": h.rule.url},
            }
            for h in {h.rule.id: h for h in new}.values()
        ]
        alert = alerts.raise_overdose_risk(session, patient=patient, triggers=triggers, by=by)
    meds.keep_overdose_hits(
        session,
        patient=patient,
        found={h.key: h.rule.id for h in new},
        standing={h.key for h in hits},
        alert_id=alert.id if alert is not None else None,
    )
    return alert


def record_moud(session: Session, *, access: PatientAccess, data: MoudIn) -> MoudRecord:
    """A dated fact of MOUD care (the care team), then the overdose-risk rules."""
    today = org_today(access.by.organization)
    row = meds.add_moud_record(session, access=access, data=data, today=today)
    check_overdose(session, patient=access.patient, by=access.by, today=today)
    return row


def checkin(
    session: Session, *, access: PatientAccess, medication_id: Any, data: CheckinIn
) -> list[MedicationReport]:
    """The patient at a check-in, about one medication: missed doses and why, side effects,
    a question. A question reaches the medication's prescriber (the care manager when none)
    as a task; the task names no content, the question is read on the Medications tab."""
    rows = meds.report_checkin(session, access=access, medication_id=medication_id, data=data)
    for row in rows:
        if row.kind != ReportKind.question:
            continue
        med = meds.get_medication(session, access=access, medication_id=row.medication_id)
        tasks.open_task(
            session,
            organization_id=access.patient.organization_id,
            patient_id=access.patient.id,
            owner_id=med.prescriber_id or _care_manager(session, access.patient.id),
            title=TITLE_QUESTION,
            source=question_source(row),
            due_on=org_today(access.by.organization) + timedelta(days=2),
            by=access.by,
        )
    return rows


def question_source(row: MedicationReport) -> str:
    return f"medication-question:{row.id}"

"""The medication list (issue 19): service and actions on both engines. Adding, changing and
stopping run the whole-list check; findings are kept (resolved, never deleted); overrides need
a reason; the patient reports, the team reconciles; who may do what; the Part 2 labels."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from concord import disclosure
from concord.accounts.models import Role
from concord.actions import medications as act
from concord.actions import part2 as part2_actions
from concord.audit.models import AuditEvent
from concord.categories import DataCategory
from concord.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from concord.medications import service as meds
from concord.medications.models import (
    Medication,
    MedicationFinding,
    MedicationSource,
    MedicationStatus,
)
from concord.medications.schemas import (
    MedicationIn,
    OverrideIn,
    ProtocolIn,
    ReportedIn,
    ReportIn,
)
from concord.patients.models import CareTeam, CareTeamMember
from concord.registry.models import TaskStatus, WorkTask
from concord.registry.service import Enrolment, enroll
from concord.worker import medication_checks_job
from tests.conftest import commit
from tests.factories import acc_for, create_staff

BUPRENORPHINE, SERTRALINE, CLONAZEPAM, TRAMADOL = "1819", "36437", "2598", "10689"
MOUD_BENZO = "moud-benzodiazepine-or-cns-depressant"


def _add(session, acc, rxcui, **kw):
    return act.add(session, access=acc, data=MedicationIn(rxcui=rxcui, **kw))


def _open_tasks(session, patient_id, prefix):
    return list(
        session.scalars(
            select(WorkTask).where(
                WorkTask.patient_id == patient_id,
                WorkTask.status == TaskStatus.open,
                WorkTask.source.startswith(prefix),
            )
        )
    )


@pytest.fixture
def team(session, people):
    return acc_for(session, people.care_manager, people.patient)


@pytest.fixture
def me(session, people):
    return acc_for(session, people.patient_user, people.patient)


def test_rxcuis_the_tests_use_are_in_the_vocabulary():
    from concord.medications.vocabulary import default_vocabulary

    vocabulary = default_vocabulary()
    for rxcui in (BUPRENORPHINE, SERTRALINE, CLONAZEPAM):
        assert vocabulary.get(rxcui) is not None, rxcui


def test_adding_runs_the_check_and_a_patient_report_raises_moud_benzo(session, people, team, me):
    done = _add(session, team, BUPRENORPHINE, dose="8 mg", route="sublingual", frequency="daily")
    assert done.medication.name == "buprenorphine"
    assert done.medication.prescriber_id == people.care_manager.id
    assert done.check.new == []
    consultant = acc_for(session, people.consultant, people.patient)
    _add(session, consultant, SERTRALINE, dose="50 mg")
    reported = act.report_new(session, access=me, data=ReportedIn(rxcui=CLONAZEPAM))
    assert reported.medication.source == MedicationSource.patient_reported
    rules = {f.rule_id for f in reported.check.new}
    assert MOUD_BENZO in rules
    finding = next(f for f in reported.check.new if f.rule_id == MOUD_BENZO)
    assert finding.reason and finding.action and finding.source_url.startswith("https://")
    assert finding.never_block
    # The finding's task goes to the prescriber of the buprenorphine; the team sees the report.
    found = _open_tasks(session, people.patient.id, f"medication-finding:{finding.id}")
    assert [t.owner_id for t in found] == [people.care_manager.id]
    assert _open_tasks(session, people.patient.id, f"medication-reported:{reported.medication.id}")
    listed = meds.list_findings(session, access=team)
    assert MOUD_BENZO in {f.rule_id for f in listed}
    # The patient's own list shows it too.
    assert {m.rxcui for m in meds.list_medications(session, access=me)} == {
        BUPRENORPHINE,
        SERTRALINE,
        CLONAZEPAM,
    }


def test_other_prescribers_are_told_of_a_change(session, people, team):
    consultant = acc_for(session, people.consultant, people.patient)
    _add(session, team, BUPRENORPHINE)
    added = _add(session, consultant, SERTRALINE)
    told = _open_tasks(session, people.patient.id, f"medication-change:{added.medication.id}")
    assert [t.owner_id for t in told] == [people.care_manager.id]
    assert "sertraline" not in told[0].title.lower()  # no clinical detail in a task title


def test_stopping_resolves_the_finding_and_keeps_it(session, people, team, me):
    _add(session, team, BUPRENORPHINE)
    benzo = _add(session, team, CLONAZEPAM)
    finding = next(f for f in benzo.check.new if f.rule_id == MOUD_BENZO)
    stopped = act.set_status(
        session,
        access=team,
        medication_id=benzo.medication.id,
        status="stopped",
        reason="Tapered off",
        version=benzo.medication.version,
    )
    assert finding in stopped.check.resolved
    assert stopped.medication.status == MedicationStatus.stopped
    assert stopped.medication.stopped_on is not None
    row = session.get(MedicationFinding, finding.id)
    assert row is not None and row.resolved_at is not None  # kept, marked
    assert not _open_tasks(session, people.patient.id, f"medication-finding:{finding.id}")
    assert MOUD_BENZO not in {f.rule_id for f in meds.list_findings(session, access=team)}
    assert MOUD_BENZO in {
        f.rule_id for f in meds.list_findings(session, access=team, include_resolved=True)
    }
    # Started again: the same finding reopens.
    again = act.set_status(
        session,
        access=team,
        medication_id=benzo.medication.id,
        status="active",
        reason=None,
        version=stopped.medication.version,
    )
    assert [f.id for f in again.check.new if f.rule_id == MOUD_BENZO] == [finding.id]


def test_stopping_needs_a_reason_and_the_current_version(session, team):
    added = _add(session, team, SERTRALINE)
    with pytest.raises(InvalidInput) as bad:
        act.set_status(
            session,
            access=team,
            medication_id=added.medication.id,
            status="stopped",
            reason=None,
            version=1,
        )
    assert "reason" in bad.value.errors
    with pytest.raises(Conflict):
        act.set_status(
            session,
            access=team,
            medication_id=added.medication.id,
            status="stopped",
            reason="x",
            version=9,
        )


def test_an_override_needs_a_reason_is_audited_and_keeps_the_finding(session, people, team):
    _add(session, team, BUPRENORPHINE)
    benzo = _add(session, team, CLONAZEPAM)
    finding = next(f for f in benzo.check.new if f.rule_id == MOUD_BENZO)
    with pytest.raises(ValidationError):
        OverrideIn(reason="  ")
    with pytest.raises(InvalidInput):
        act.override(session, access=team, finding_id=finding.id, reason=" ")
    row = act.override(
        session, access=team, finding_id=finding.id, reason="Taper agreed with the prescriber"
    )
    assert row.created_by_id == people.care_manager.id
    listed = meds.list_findings(session, access=team)
    assert finding.id in {f.id for f in listed}  # still shown, marked overridden
    assert session.get(MedicationFinding, finding.id).overridden_at is not None
    commit(session)
    events = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "override", AuditEvent.object_type == "MedicationFinding"
        )
    ).all()
    assert len(events) == 1
    assert not _open_tasks(session, people.patient.id, f"medication-finding:{finding.id}")


def test_a_stopped_report_is_flagged_never_applied(session, people, team, me):
    added = _add(session, team, SERTRALINE)
    report = act.report(
        session, access=me, medication_id=added.medication.id, data=ReportIn(kind="stopped")
    )
    assert report.resolved_at is None
    assert session.get(Medication, added.medication.id).status == MedicationStatus.active
    diffs = meds.differences(
        meds.list_medications(session, access=team), meds.list_reports(session, access=team)
    )
    assert [(d.kind, d.medication.id) for d in diffs] == [("reported_stopped", added.medication.id)]
    assert _open_tasks(session, people.patient.id, f"medication-difference:{added.medication.id}")
    # Agreeing with the list is no difference.
    same = act.report(
        session, access=me, medication_id=added.medication.id, data=ReportIn(kind="taking")
    )
    assert same.resolved_at is not None
    act.resolve_report(session, access=team, report_id=report.id, note="Restarted; talked it over")
    assert meds.list_reports(session, access=team) == []
    assert not _open_tasks(
        session, people.patient.id, f"medication-difference:{added.medication.id}"
    )


def test_an_uncoded_report_is_listed_unchecked_not_guessed(session, me, team):
    done = act.report_new(
        session, access=me, data=ReportedIn(name="Herbal sleep tea", over_the_counter=True)
    )
    assert done.medication.rxcui is None and done.check.new == []
    assert [m.id for m in meds.unchecked(meds.list_medications(session, access=team))] == [
        done.medication.id
    ]
    with pytest.raises(InvalidInput) as bad:
        act.report_new(session, access=me, data=ReportedIn())
    assert "name" in bad.value.errors


def test_who_may_do_what(session, people, team, me):
    added = _add(session, team, SERTRALINE)
    with pytest.raises(PermissionDenied):
        act.add(session, access=me, data=MedicationIn(rxcui=CLONAZEPAM))
    with pytest.raises(PermissionDenied):
        act.report_new(session, access=team, data=ReportedIn(rxcui=CLONAZEPAM))
    for user in (people.family, people.outsider, people.other_patient_user):
        with pytest.raises(NotFound):
            from concord import access

            access.record_access(session, user, people.patient.id)
    with pytest.raises(NotFound):
        meds.get_medication(session, access=team, medication_id="not-an-id")
    other = acc_for(session, people.outsider, people.other_patient)
    with pytest.raises(NotFound):
        meds.get_medication(session, access=other, medication_id=added.medication.id)


def test_the_prescriber_must_be_on_the_team_and_the_indication_on_the_plan(session, people, team):
    with pytest.raises(InvalidInput) as bad:
        _add(session, team, SERTRALINE, prescriber_id=people.outsider.id)
    assert "prescriber_id" in bad.value.errors
    import uuid

    with pytest.raises(InvalidInput) as bad:
        _add(session, team, SERTRALINE, indication_concern_id=uuid.uuid4())
    assert "indication_concern_id" in bad.value.errors
    with pytest.raises(InvalidInput) as bad:
        _add(session, team, None)
    assert "name" in bad.value.errors


def test_moud_is_substance_use_and_labelled_part2_for_a_program_patient(session, people, team):
    bup = _add(session, team, BUPRENORPHINE).medication
    ssri = _add(session, team, SERTRALINE).medication
    assert bup.data_category == DataCategory.substance_use
    assert ssri.data_category == DataCategory.mental_health
    assert not disclosure.label_of(session, team, bup).part2
    part2_actions.set_part2_program(session, people.admin, people.north.id, True)
    enroll(session, access=team, data=Enrolment(program="co_occurring"))
    session.flush()
    assert disclosure.label_of(session, team, bup).part2
    # Written by the program's staff (the care manager works at North): labelled too.
    assert disclosure.label_of(session, team, ssri).part2
    # A PCP outside the program on the team, without consent, does not see the MOUD.
    pcp = create_staff(
        session, people.org, people.south, Role.primary_care_provider, "Pat Lee", "pcp@x.test"
    )
    care_team = session.scalar(select(CareTeam).where(CareTeam.patient_id == people.patient.id))
    session.add(
        CareTeamMember(care_team_id=care_team.id, user_id=pcp.id, role="primary_care_provider")
    )
    commit(session)
    seen = meds.list_medications(session, access=acc_for(session, pcp, people.patient))
    assert bup.id not in {m.id for m in seen}


def test_the_nightly_run_checks_every_list(session, people, team):
    _add(session, team, BUPRENORPHINE)
    _add(session, team, CLONAZEPAM)
    # A finding lost (deleted by hand) comes back at the nightly run.
    for row in session.scalars(select(MedicationFinding)).all():
        session.delete(row)
    session.flush()
    assert act.recheck_all(session) >= 1
    assert MOUD_BENZO in {f.rule_id for f in session.scalars(select(MedicationFinding))}
    assert act.recheck_all(session) == 0  # nothing new the second time


def test_the_worker_runs_the_nightly_check_once_a_day(factory, session, people, team, clock):
    _add(session, team, BUPRENORPHINE)
    _add(session, team, CLONAZEPAM)
    for row in session.scalars(select(MedicationFinding)).all():
        session.delete(row)
    commit(session)
    assert medication_checks_job(factory) >= 1
    _add(session, team, SERTRALINE)
    commit(session)
    assert medication_checks_job(factory) == 0  # claimed for the day already
    clock.advance(hours=25)
    assert medication_checks_job(factory) == 0  # nothing changed since


def test_the_protocol_tells_who_it_names_and_monitoring_falls_due(session, people, team, clock):
    bup = _add(session, team, BUPRENORPHINE).medication
    entry = act.add_protocol(
        session,
        access=team,
        data=ProtocolIn(
            medication_id=bup.id,
            monitoring="Urine drug test",
            monitor_owner_id=people.therapist.id,
            every_days=28,
            tell=[people.consultant.id],
        ),
    )
    assert entry.about == "buprenorphine" and entry.prescriber_id == people.care_manager.id
    assert entry.data_category == DataCategory.substance_use
    due = _open_tasks(session, people.patient.id, f"medication-monitoring:{entry.id}")
    assert [t.owner_id for t in due] == [people.therapist.id]  # due today
    # A change to the buprenorphine tells the consultant the protocol names.
    changed = act.change(
        session,
        access=acc_for(session, people.therapist, people.patient),
        medication_id=bup.id,
        data=MedicationIn(rxcui=BUPRENORPHINE, dose="12 mg"),
        version=1,
    )
    told = _open_tasks(session, people.patient.id, f"medication-change:{changed.medication.id}")
    assert {t.owner_id for t in told} == {people.care_manager.id, people.consultant.id}
    done = act.monitoring_done(session, access=team, entry_id=entry.id, done_on=None)
    assert done.next_due_on == done.last_done_on + timedelta(days=28)
    assert not _open_tasks(session, people.patient.id, f"medication-monitoring:{entry.id}")
    # Three weeks and more on, the nightly run opens the task; overdue, it is urgent.
    clock.advance(days=23)
    act.monitoring_all(session)
    (task,) = _open_tasks(session, people.patient.id, f"medication-monitoring:{entry.id}")
    assert task.priority == "routine"
    clock.advance(days=7)
    act.monitoring_all(session)
    assert task.priority == "urgent"
    with pytest.raises(InvalidInput) as bad:
        act.add_protocol(session, access=team, data=ProtocolIn(about="Lithium", every_days=90))
    assert "monitoring" in bad.value.errors
    with pytest.raises(InvalidInput) as bad:
        act.add_protocol(
            session, access=team, data=ProtocolIn(about="Lithium", tell=[people.outsider.id])
        )
    assert "tell" in bad.value.errors
    assert [e.id for e in meds.list_protocol(session, access=team)] == [entry.id]

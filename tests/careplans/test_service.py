"""The rules of the shared care plan, tested through the service functions."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from concord.careplans import service as plans
from concord.careplans.history import Change
from concord.careplans.models import (
    CarePlan,
    Goal,
    PlanRevision,
    PlanStatus,
    StepStatus,
)
from concord.careplans.schemas import (
    ActionStepIn,
    BarrierIn,
    ConcernIn,
    ContingencyIn,
    GoalIn,
    GoalProposal,
    InterventionIn,
    MilestoneIn,
    PlanStart,
    PreferencesIn,
    ReviewIn,
    StrengthIn,
)
from concord.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from tests.conftest import commit
from tests.factories import acc_for, create_plan


def revisions(session, plan):
    return session.scalars(
        select(PlanRevision).where(PlanRevision.plan_id == plan.id).order_by(PlanRevision.number)
    ).all()


class TestLifecycle:
    def test_a_patient_has_at_most_one_current_plan(self, session, people):
        create_plan(session, people)
        with pytest.raises(Conflict):
            plans.start_plan(
                session,
                access=acc_for(session, people.care_manager, people.patient),
                data=PlanStart(),
            )

    def test_the_database_also_refuses_a_second_current_plan(self, session, people):
        from sqlalchemy.exc import IntegrityError

        plan = create_plan(session, people)
        session.add(
            CarePlan(
                patient_id=people.patient.id,
                title="Another",
                status="active",
                created_by_id=people.care_manager.id,
            )
        )
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()
        assert plan

    def test_activation_sets_the_review_four_weeks_on(self, session, people):
        plan = create_plan(session, people, activate=True)
        assert plan.status == PlanStatus.active
        # The clock is fixed at 2026-11-22 15:00 UTC: 09:00 in the organization's Chicago.
        assert plan.activated_on == date(2026, 11, 22)
        assert plan.next_review_on == date(2026, 12, 20)

    def test_an_organization_can_set_its_own_review_interval(self, session, people):
        people.org.review_interval_days = 14
        plan = create_plan(session, people, activate=True)
        assert plan.next_review_on == date(2026, 12, 6)

    def test_an_ended_plan_is_kept_and_a_new_one_can_start(self, session, people):
        plan = create_plan(session, people, activate=True)
        a = acc_for(session, people.care_manager, people.patient)
        plans.end_plan(session, access=a, status=PlanStatus.completed, reason="Goals met")
        assert plan.status == PlanStatus.completed and plan.ended_on == date(2026, 11, 22)
        newer = plans.start_plan(session, access=a, data=PlanStart(title="Relapse prevention"))
        assert plans.current_plan(session, people.patient.id).id == newer.id
        assert {p.id for p in plans.list_plans(session, access=a)} == {plan.id, newer.id}

    def test_an_ended_plan_cannot_be_changed(self, session, people):
        create_plan(session, people, activate=True)
        a = acc_for(session, people.care_manager, people.patient)
        plans.end_plan(session, access=a, status=PlanStatus.revoked, reason="Moved away")
        with pytest.raises(NotFound):
            plans.add_item(
                session, access=a, section="strengths", data=StrengthIn(description="Kind")
            )


class TestReviewSchedule:
    @pytest.mark.parametrize(
        ("days_until", "state"),
        [
            (8, "scheduled"),
            (7, "due"),
            (0, "due"),
            (-1, "overdue"),
        ],
    )
    def test_review_state_boundaries(self, session, people, days_until, state):
        plan = create_plan(session, people, activate=True)
        today = date(2026, 11, 22)
        plan.next_review_on = today + timedelta(days=days_until)
        assert plans.review_state(plan, today) == state

    def test_a_draft_has_no_review(self, session, people):
        plan = create_plan(session, people)
        assert plans.review_state(plan, date(2026, 11, 22)) == "not_scheduled"

    def test_recording_a_review_moves_the_next_one(self, session, people, clock):
        plan = create_plan(session, people, activate=True)
        clock.advance(days=30)
        a = acc_for(session, people.care_manager, people.patient)
        plans.record_review(
            session, access=a, data=ReviewIn(version=plan.version, note="Talked it through")
        )
        assert plan.last_reviewed_on == date(2026, 12, 22)
        assert plan.next_review_on == date(2027, 1, 19)

    def test_a_chosen_next_review_must_be_after_today(self, session, people):
        plan = create_plan(session, people, activate=True)
        a = acc_for(session, people.care_manager, people.patient)
        with pytest.raises(InvalidInput) as exc:
            plans.record_review(
                session,
                access=a,
                data=ReviewIn(version=plan.version, next_review_on=date(2026, 11, 22)),
            )
        assert "next_review_on" in exc.value.errors


class TestItems:
    def test_every_part_of_the_plan_can_be_added(self, session, people):
        plan = create_plan(session, people)
        a = acc_for(session, people.care_manager, people.patient)
        goal = plans.load_contents(session, plan).goals[0]
        plans.add_item(
            session,
            access=a,
            section="concerns",
            data=ConcernIn(description="Low mood", code_system="icd10", code="f32.1"),
        )
        plans.add_item(
            session,
            access=a,
            section="milestones",
            data=MilestoneIn(
                goal_id=goal.id, description="First walk", target_on=date(2026, 12, 1)
            ),
        )
        plans.add_item(
            session,
            access=a,
            section="interventions",
            data=InterventionIn(
                kind="psychotherapy",
                description="CBT",
                responsible_id=people.therapist.id,
                frequency="weekly",
                goal_id=goal.id,
            ),
        )
        plans.add_item(
            session,
            access=a,
            section="action_steps",
            data=ActionStepIn(description="Call the therapist", owner=str(people.therapist.id)),
        )
        plans.add_item(
            session,
            access=a,
            section="strengths",
            data=StrengthIn(description="Close to my sister"),
        )
        plans.add_item(
            session,
            access=a,
            section="barriers",
            data=BarrierIn(kind="transport", description="No car", way_around="Bus pass"),
        )
        plans.add_item(
            session,
            access=a,
            section="contingencies",
            data=ContingencyIn(
                if_this="I miss an appointment", then_we="The care manager calls within 2 days"
            ),
        )
        plans.update_preferences(
            session,
            access=a,
            data=PreferencesIn(
                version=plan.version,
                what_matters_most="My kids",
                interpreter_needed=True,
                monitoring_intensity="close",
            ),
        )
        contents = plans.load_contents(session, plan)
        assert contents.concerns[0].code == "F32.1"  # ICD-10 codes are upper-cased
        assert contents.milestones_for(goal.id)[0].description == "First walk"
        assert contents.interventions[0].responsible_id == people.therapist.id
        assert [s.owner_is_patient for s in contents.action_steps] == [True, False]
        assert plan.what_matters_most == "My kids" and plan.interpreter_needed
        assert len(contents.strengths) == len(contents.barriers) == 1

    @pytest.mark.parametrize(
        ("system", "code", "field"),
        [
            ("icd10", "depression", "code"),
            ("snomed", "12ab", "code"),
            (None, "F32.1", "code_system"),
        ],
    )
    def test_concern_codes_are_checked(self, session, people, system, code, field):
        create_plan(session, people)
        a = acc_for(session, people.care_manager, people.patient)
        with pytest.raises(InvalidInput) as exc:
            plans.add_item(
                session,
                access=a,
                section="concerns",
                data=ConcernIn(description="Low mood", code_system=system, code=code),
            )
        assert field in exc.value.errors

    def test_a_snomed_code_is_accepted(self, session, people):
        create_plan(session, people)
        a = acc_for(session, people.care_manager, people.patient)
        concern = plans.add_item(
            session,
            access=a,
            section="concerns",
            data=ConcernIn(
                description="Depressive disorder", code_system="snomed", code="35489007"
            ),
        )
        assert concern.code == "35489007"

    def test_owners_and_responsible_people_must_be_on_the_team(self, session, people):
        create_plan(session, people)
        a = acc_for(session, people.care_manager, people.patient)
        with pytest.raises(InvalidInput) as exc:
            plans.add_item(
                session,
                access=a,
                section="action_steps",
                data=ActionStepIn(description="Call", owner=str(people.outsider.id)),
            )
        assert "owner" in exc.value.errors
        with pytest.raises(InvalidInput) as exc:
            plans.add_item(
                session,
                access=a,
                section="interventions",
                data=InterventionIn(
                    kind="referral", description="Housing", responsible_id=people.outsider.id
                ),
            )
        assert "responsible_id" in exc.value.errors

    def test_a_milestone_must_belong_to_a_goal_of_this_plan(self, session, people):
        create_plan(session, people)
        other_plan = create_plan(session, people, patient=people.other_patient, by=people.outsider)
        other_goal = plans.load_contents(session, other_plan).goals[0]
        a = acc_for(session, people.care_manager, people.patient)
        with pytest.raises(InvalidInput) as exc:
            plans.add_item(
                session,
                access=a,
                section="milestones",
                data=MilestoneIn(goal_id=other_goal.id, description="Sneaky"),
            )
        assert "goal_id" in exc.value.errors

    def test_a_milestone_cannot_be_reached_in_the_future(self, session, people):
        plan = create_plan(session, people)
        a = acc_for(session, people.care_manager, people.patient)
        goal = plans.load_contents(session, plan).goals[0]
        with pytest.raises(InvalidInput) as exc:
            plans.add_item(
                session,
                access=a,
                section="milestones",
                data=MilestoneIn(
                    goal_id=goal.id, description="Done", reached_on=date(2026, 12, 25)
                ),
            )
        assert "reached_on" in exc.value.errors

    def test_removing_keeps_the_item_for_history(self, session, people):
        plan = create_plan(session, people)
        a = acc_for(session, people.care_manager, people.patient)
        strength = plans.add_item(
            session, access=a, section="strengths", data=StrengthIn(description="Humour")
        )
        plans.remove_item(
            session,
            access=a,
            section="strengths",
            item_id=strength.id,
            version=strength.version,
            reason="Entered by mistake",
        )
        assert strength.removed_at is not None
        assert plans.load_contents(session, plan).strengths == []
        last = revisions(session, plan)[-1]
        assert [c["change"] for c in last.summary["changes"]] == ["removed"]
        assert last.reason == "Entered by mistake"

    def test_goals_are_stopped_not_removed(self, session, people):
        plan = create_plan(session, people)
        goal = plans.load_contents(session, plan).goals[0]
        with pytest.raises(Conflict):
            plans.remove_item(
                session,
                access=acc_for(session, people.care_manager, people.patient),
                section="goals",
                item_id=goal.id,
                version=goal.version,
                reason="x",
            )

    def test_an_item_of_another_plan_is_not_found(self, session, people):
        create_plan(session, people)
        other_plan = create_plan(session, people, patient=people.other_patient, by=people.outsider)
        other_goal = plans.load_contents(session, other_plan).goals[0]
        a = acc_for(session, people.care_manager, people.patient)
        with pytest.raises(NotFound):
            plans.update_item(
                session,
                access=a,
                section="goals",
                item_id=other_goal.id,
                data=GoalIn(statement="x", category="wellbeing"),
                version=other_goal.version,
                reason="x",
            )

    def test_marking_a_step_done_records_the_date(self, session, people):
        plan = create_plan(session, people)
        step = plans.load_contents(session, plan).action_steps[0]
        plans.set_step_status(
            session,
            access=acc_for(session, people.patient_user, people.patient),
            step_id=step.id,
            status=StepStatus.done,
            version=step.version,
        )
        assert step.status == "done" and step.done_on == date(2026, 11, 22)


class TestConcurrentEdits:
    def test_a_stale_edit_is_refused_and_names_who_changed_it(self, session, people):
        plan = create_plan(session, people)
        goal = plans.load_contents(session, plan).goals[0]
        seen = goal.version
        a_cm = acc_for(session, people.care_manager, people.patient)
        a_th = acc_for(session, people.therapist, people.patient)
        plans.update_item(
            session,
            access=a_th,
            section="goals",
            item_id=goal.id,
            data=GoalIn(statement="Sleep better", category="symptoms"),
            version=seen,
            reason="Patient's words",
        )
        with pytest.raises(Conflict) as exc:
            plans.update_item(
                session,
                access=a_cm,
                section="goals",
                item_id=goal.id,
                data=GoalIn(statement="Feel calmer", category="wellbeing"),
                version=seen,
                reason="Mine",
            )
        assert exc.value.data["current_version"] == seen + 1
        assert exc.value.data["updated_by"] == people.therapist.name
        assert goal.statement == "Sleep better"  # the first save stands, nothing overwritten

    def test_different_items_can_be_edited_side_by_side(self, session, people):
        plan = create_plan(session, people, goals=2)
        first, second = plans.load_contents(session, plan).goals
        a = acc_for(session, people.care_manager, people.patient)
        plans.update_item(
            session,
            access=a,
            section="goals",
            item_id=first.id,
            data=GoalIn(statement="One", category="wellbeing"),
            version=first.version,
            reason="r",
        )
        plans.update_item(
            session,
            access=a,
            section="goals",
            item_id=second.id,
            data=GoalIn(statement="Two", category="wellbeing"),
            version=second.version,
            reason="r",
        )
        assert (first.statement, second.statement) == ("One", "Two")

    def test_stale_preferences_are_refused(self, session, people):
        plan = create_plan(session, people)
        a = acc_for(session, people.care_manager, people.patient)
        seen = plan.version
        plans.update_preferences(
            session, access=a, data=PreferencesIn(version=seen, what_matters_most="Family")
        )
        with pytest.raises(Conflict):
            plans.update_preferences(
                session, access=a, data=PreferencesIn(version=seen, what_matters_most="Work")
            )
        assert plan.what_matters_most == "Family"


class TestRevisions:
    def test_every_change_is_a_revision_with_author_time_and_reason(self, session, people, clock):
        plan = create_plan(session, people)
        a = acc_for(session, people.therapist, people.patient)
        clock.advance(hours=2)
        goal = plans.load_contents(session, plan).goals[0]
        plans.update_item(
            session,
            access=a,
            section="goals",
            item_id=goal.id,
            data=GoalIn(
                statement=goal.statement,
                category="wellbeing",
                measure="PHQ-9 score",
                target="under 5",
                due_on=date(2027, 3, 1),
            ),
            version=goal.version,
            reason="Aim for remission",
        )
        history = revisions(session, plan)
        assert [r.number for r in history] == list(range(1, len(history) + 1))
        last = history[-1]
        assert last.author_id == people.therapist.id
        assert last.reason == "Aim for remission"
        assert last.created_at > history[0].created_at
        [change] = [Change.from_dict(c) for c in last.summary["changes"]]
        assert (change.section, change.change, change.label) == (
            "goals",
            "changed",
            "I want to feel better, part 1",
        )
        assert [(f.field, f.old, f.new) for f in change.fields] == [
            ("target", "under 10", "under 5")
        ]

    def test_saving_without_a_change_makes_no_revision(self, session, people):
        plan = create_plan(session, people)
        goal = plans.load_contents(session, plan).goals[0]
        before = plan.revision_number
        plans.update_item(
            session,
            access=acc_for(session, people.care_manager, people.patient),
            section="goals",
            item_id=goal.id,
            data=GoalIn(
                statement=goal.statement,
                category=goal.category,
                measure=goal.measure,
                target=goal.target,
                due_on=goal.due_on,
                priority=goal.priority,
                status=goal.status,
            ),
            version=goal.version,
            reason="No change",
        )
        assert plan.revision_number == before

    def test_any_two_revisions_compare(self, session, people):
        plan = create_plan(session, people)
        a = acc_for(session, people.care_manager, people.patient)
        plans.add_item(
            session, access=a, section="strengths", data=StrengthIn(description="Humour")
        )
        first, last, changes = plans.compare_revisions(
            session, access=a, plan=plan, older=plan.revision_number, newer=1
        )
        assert (first.number, last.number) == (1, plan.revision_number)
        described = {(c.section, c.change, c.label) for c in changes}
        assert ("goals", "added", "I want to feel better, part 1") in described
        assert ("strengths", "added", "Humour") in described
        assert ("action_steps", "added", "Walk ten minutes") in described

    def test_comparing_a_missing_revision_is_not_found(self, session, people):
        plan = create_plan(session, people)
        with pytest.raises(NotFound):
            plans.compare_revisions(
                session,
                access=acc_for(session, people.care_manager, people.patient),
                plan=plan,
                older=1,
                newer=99,
            )

    def test_old_revisions_are_never_rewritten(self, session, people):
        plan = create_plan(session, people)
        snapshot_before = [dict(r.snapshot) for r in revisions(session, plan)]
        a = acc_for(session, people.care_manager, people.patient)
        goal = plans.load_contents(session, plan).goals[0]
        plans.update_item(
            session,
            access=a,
            section="goals",
            item_id=goal.id,
            data=GoalIn(statement="New words", category="wellbeing"),
            version=goal.version,
            reason="r",
        )
        after = revisions(session, plan)
        assert [dict(r.snapshot) for r in after[: len(snapshot_before)]] == snapshot_before


class TestAgreement:
    def test_patient_and_lead_both_sign_off(self, session, people):
        plan = create_plan(session, people, activate=True)
        state = plans.agreement_state(session, plan)
        assert state.awaiting == ["patient", "lead_clinician"]
        plans.agree(
            session,
            access=acc_for(session, people.patient_user, people.patient),
            revision=plan.revision_number,
        )
        plans.agree(
            session,
            access=acc_for(session, people.care_manager, people.patient),
            revision=plan.revision_number,
        )
        state = plans.agreement_state(session, plan)
        assert state.agreed
        assert state.patient.user_id == people.patient_user.id
        assert state.lead.user_id == people.care_manager.id

    def test_a_substantive_change_after_sign_off_awaits_agreement_again(self, session, people):
        plan = create_plan(session, people, activate=True)
        for user in (people.patient_user, people.care_manager):
            plans.agree(
                session,
                access=acc_for(session, user, people.patient),
                revision=plan.revision_number,
            )
        a = acc_for(session, people.therapist, people.patient)
        plans.add_item(
            session,
            access=a,
            section="contingencies",
            data=ContingencyIn(if_this="side effects", then_we="call the nurse line"),
        )
        state = plans.agreement_state(session, plan)
        assert not state.agreed and state.changed_since_agreed
        assert state.awaiting == ["patient", "lead_clinician"]

    def test_progress_does_not_need_new_agreement(self, session, people):
        plan = create_plan(session, people, activate=True)
        for user in (people.patient_user, people.care_manager):
            plans.agree(
                session,
                access=acc_for(session, user, people.patient),
                revision=plan.revision_number,
            )
        step = plans.load_contents(session, plan).action_steps[0]
        plans.set_step_status(
            session,
            access=acc_for(session, people.patient_user, people.patient),
            step_id=step.id,
            status=StepStatus.done,
            version=step.version,
        )
        a = acc_for(session, people.care_manager, people.patient)
        plans.record_review(session, access=a, data=ReviewIn(version=plan.version))
        assert revisions(session, plan)[-1].substantive is False
        assert plans.agreement_state(session, plan).agreed

    def test_agreeing_to_a_version_that_has_since_changed_is_refused(self, session, people):
        plan = create_plan(session, people)
        seen = plan.revision_number
        plans.add_item(
            session,
            access=acc_for(session, people.care_manager, people.patient),
            section="strengths",
            data=StrengthIn(description="Brave"),
        )
        with pytest.raises(Conflict):
            plans.agree(
                session, access=acc_for(session, people.patient_user, people.patient), revision=seen
            )
        assert plans.agreement_state(session, plan).patient is None

    def test_only_the_lead_signs_for_the_team(self, session, people):
        plan = create_plan(session, people)
        with pytest.raises(PermissionDenied):
            plans.agree(
                session,
                access=acc_for(session, people.therapist, people.patient),
                revision=plan.revision_number,
            )

    def test_agreeing_twice_records_once(self, session, people):
        plan = create_plan(session, people)
        a = acc_for(session, people.patient_user, people.patient)
        first = plans.agree(session, access=a, revision=plan.revision_number)
        second = plans.agree(session, access=a, revision=plan.revision_number)
        assert first.id == second.id


class TestPatientContributions:
    def test_a_patient_proposes_a_goal_in_their_words(self, session, people):
        plan = create_plan(session, people)
        goal = plans.propose_goal(
            session,
            access=acc_for(session, people.patient_user, people.patient),
            data=GoalProposal(statement="Swim again", why="It calms me"),
        )
        assert goal.status == "proposed" and goal.proposed_by_patient
        assert goal.plan_id == plan.id
        assert revisions(session, plan)[-1].reason == "It calms me"

    def test_a_proposal_starts_a_draft_when_there_is_no_plan(self, session, people):
        goal = plans.propose_goal(
            session,
            access=acc_for(session, people.patient_user, people.patient),
            data=GoalProposal(statement="Sleep"),
        )
        plan = session.get(CarePlan, goal.plan_id)
        assert plan.status == "draft" and plan.patient_id == people.patient.id

    def test_a_patient_cannot_edit_the_plan(self, session, people):
        create_plan(session, people)
        with pytest.raises(PermissionDenied):
            plans.add_item(
                session,
                access=acc_for(session, people.patient_user, people.patient),
                section="strengths",
                data=StrengthIn(description="x"),
            )

    def test_a_patient_marks_only_their_own_steps(self, session, people):
        plan = create_plan(session, people)
        a = acc_for(session, people.care_manager, people.patient)
        team_step = plans.add_item(
            session,
            access=a,
            section="action_steps",
            data=ActionStepIn(description="Phone the patient", owner=str(people.care_manager.id)),
        )
        with pytest.raises(PermissionDenied):
            plans.set_step_status(
                session,
                access=acc_for(session, people.patient_user, people.patient),
                step_id=team_step.id,
                status=StepStatus.done,
                version=team_step.version,
            )
        assert plan

    def test_family_members_read_but_never_write(self, session, people):
        create_plan(session, people)
        a = acc_for(session, people.family, people.patient)
        with pytest.raises(PermissionDenied):
            plans.add_comment(session, access=a, body="hello")
        with pytest.raises(PermissionDenied):
            plans.propose_goal(session, access=a, data=GoalProposal(statement="x"))


class TestMyActionSteps:
    def test_each_person_sees_the_steps_they_own(self, session, people):
        plan = create_plan(session, people)
        a = acc_for(session, people.care_manager, people.patient)
        plans.add_item(
            session,
            access=a,
            section="action_steps",
            data=ActionStepIn(description="Phone the patient", owner=str(people.therapist.id)),
        )
        therapist_steps = plans.my_action_steps(session, by=people.therapist)
        patient_steps = plans.my_action_steps(session, by=people.patient_user)
        assert [r.step.description for r in therapist_steps] == ["Phone the patient"]
        assert [r.step.description for r in patient_steps] == ["Walk ten minutes"]
        assert plans.my_action_steps(session, by=people.care_manager) == []
        assert plan

    def test_a_clinician_who_left_the_team_no_longer_sees_their_steps(self, session, people):
        from concord.patients.service import current_members, get_care_team, remove_team_member

        create_plan(session, people)
        a = acc_for(session, people.care_manager, people.patient)
        plans.add_item(
            session,
            access=a,
            section="action_steps",
            data=ActionStepIn(description="Phone", owner=str(people.therapist.id)),
        )
        team = get_care_team(session, access=a)
        member = next(
            m for m in current_members(session, team_id=team.id) if m.user_id == people.therapist.id
        )
        remove_team_member(session, by=people.admin, patient=people.patient, member_id=member.id)
        assert plans.my_action_steps(session, by=people.therapist) == []


def test_audit_records_each_change(session, people):
    from concord.audit.models import AuditEvent

    create_plan(session, people)
    commit(session)
    actions = session.execute(
        select(AuditEvent.object_type, AuditEvent.action, func.count())
        .where(AuditEvent.patient_id == people.patient.id)
        .group_by(AuditEvent.object_type, AuditEvent.action)
    ).all()
    counted = {(t, a): n for t, a, n in actions}
    assert counted[("CarePlan", "create")] == 1
    assert counted[("Goal", "create")] == 1
    assert counted[("ActionStep", "create")] == 1
    assert session.scalar(select(func.count()).select_from(Goal)) == 1

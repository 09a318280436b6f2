"""The care-plan pages as people use them: the team's editor and the patient's portal."""

from __future__ import annotations

import html
import re
import uuid

import pytest
from sqlalchemy import func, select

from concord.careplans import service as plans
from concord.careplans.models import CarePlan, Goal, PlanAgreement, PlanComment
from tests.conftest import commit
from tests.factories import acc_for, create_plan

CM = "cara@test.example.org"
PATIENT = "pat@patients.example.org"
HX = {"HX-Request": "true"}


def count(session, model):
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def plan(session, people):
    plan = create_plan(session, people, activate=True)
    commit(session)
    return plan


def goal_form(token, **overrides):
    data = {
        "csrf_token": token,
        "idem": uuid.uuid4().hex,
        "statement": "I want to sleep",
        "category": "symptoms",
        "measure": "hours a night",
        "target": "7",
        "due_on": "2027-02-01",
        "priority": "high",
        "status": "accepted",
    }
    data.update(overrides)
    return data


class TestTheTeamsEditor:
    def test_a_clinician_starts_a_plan(self, client, people, sign_in, session):
        token = sign_in(CM)
        page = client.get(f"/patients/{people.patient.id}/plan")
        assert page.context["view"] is None
        assert "Start a care plan" in page.text
        response = client.post(
            f"/patients/{people.patient.id}/plan/start",
            data={"csrf_token": token, "idem": uuid.uuid4().hex, "title": "Recovery plan"},
        )
        assert response.status_code == 303
        page = client.get(f"/patients/{people.patient.id}/plan")
        assert page.context["view"].plan.title == "Recovery plan"
        assert page.context["view"].plan.status == "draft"

    def test_adding_a_goal_without_javascript_redirects_back(
        self, client, people, plan, sign_in, session
    ):
        token = sign_in(CM)
        response = client.post(f"/patients/{people.patient.id}/plan/goals", data=goal_form(token))
        assert response.status_code == 303
        assert response.headers["location"] == (
            f"/patients/{people.patient.id}/plan?done=added#section-goals"
        )
        page = client.get(response.headers["location"])
        statements = [g.statement for g in page.context["view"].contents.goals]
        assert "I want to sleep" in statements

    def test_adding_a_goal_with_htmx_returns_the_section(self, client, people, plan, sign_in):
        token = sign_in(CM)
        response = client.post(
            f"/patients/{people.patient.id}/plan/goals", data=goal_form(token), headers=HX
        )
        assert response.status_code == 200
        assert response.text.lstrip().startswith('<section class="card" id="section-goals"')
        assert "I want to sleep" in response.text
        # The plan's status (its version, its agreement) is refreshed out of band.
        assert 'id="section-status" aria-labelledby="h-status" hx-swap-oob="true"' in response.text
        assert "Waiting for agreement" in response.text

    def test_bad_input_is_shown_beside_the_field_and_nothing_is_saved(
        self, client, people, plan, sign_in, session
    ):
        token = sign_in(CM)
        goals_before = count(session, Goal)
        revision_before = plan.revision_number
        response = client.post(
            f"/patients/{people.patient.id}/plan/goals",
            data=goal_form(
                token,
                statement="",
                category="astrology",
                due_on="next tuesday",
                target="keep this text",
            ),
            headers=HX,
        )
        assert response.status_code == 422
        errors = re.findall(r'id="goals-add-(\w+)-error">([^<]+)<', html.unescape(response.text))
        assert dict(errors) == {
            "statement": "is required",
            "category": "must be one of: 'symptoms', 'daily_functioning', 'relationships', "
            "'work_or_school', 'substance_use', 'physical_health', "
            "'housing_and_social_needs' or 'wellbeing'",
            "due_on": "must be a date written as YYYY-MM-DD",
        }
        assert 'value="keep this text"' in response.text  # what was typed is kept
        assert '<details class="edit" open>' in response.text
        assert count(session, Goal) == goals_before
        session.refresh(plan)
        assert plan.revision_number == revision_before

    def test_bad_input_without_javascript_comes_back_on_the_whole_page(
        self, client, people, plan, sign_in
    ):
        token = sign_in(CM)
        response = client.post(
            f"/patients/{people.patient.id}/plan/goals", data=goal_form(token, statement="")
        )
        assert response.status_code == 422
        assert response.context["state"].errors == {"statement": "is required"}
        assert "<html" in response.text

    def test_submitting_the_same_form_twice_records_it_once(
        self, client, people, plan, sign_in, session
    ):
        token = sign_in(CM)
        data = goal_form(token)
        first = client.post(f"/patients/{people.patient.id}/plan/goals", data=data)
        second = client.post(f"/patients/{people.patient.id}/plan/goals", data=data)
        assert first.status_code == second.status_code == 303
        assert count(session, Goal) == 2  # the plan's first goal and this one

    def test_a_stale_edit_gets_409_and_keeps_what_was_typed(
        self, client, people, plan, sign_in, session
    ):
        goal = plans.load_contents(session, plan).goals[0]
        seen = goal.version
        # Someone else saves first.
        plans.update_item(
            session,
            access=acc_for(session, people.therapist, people.patient),
            section="goals",
            item_id=goal.id,
            data=_goal_in("Their words"),
            version=seen,
            reason="theirs",
        )
        commit(session)
        token = sign_in(CM)
        response = client.post(
            f"/patients/{people.patient.id}/plan/goals/{goal.id}",
            data=goal_form(
                token, statement="My careful rewording", version=str(seen), reason="clearer"
            ),
            headers=HX,
        )
        assert response.status_code == 409
        assert "Someone else changed this goal after you opened it" in response.text
        assert "Last changed by Theo Therapist" in response.text
        assert "My careful rewording" in response.text  # nothing the user typed is lost
        # The form now quotes the current version, so saving again (after reading) works.
        assert f'name="version" value="{seen + 1}"' in response.text
        session.refresh(goal)
        assert goal.statement == "Their words"
        again = client.post(
            f"/patients/{people.patient.id}/plan/goals/{goal.id}",
            data=goal_form(
                token, statement="My careful rewording", version=str(seen + 1), reason="clearer"
            ),
            headers=HX,
        )
        assert again.status_code == 200
        session.refresh(goal)
        assert goal.statement == "My careful rewording"

    def test_an_edit_needs_a_reason(self, client, people, plan, sign_in, session):
        goal = plans.load_contents(session, plan).goals[0]
        token = sign_in(CM)
        response = client.post(
            f"/patients/{people.patient.id}/plan/goals/{goal.id}",
            data=goal_form(token, version=str(goal.version), reason=""),
            headers=HX,
        )
        assert response.status_code == 422
        assert "say briefly why this is changing" in response.text

    def test_removing_needs_a_reason_and_then_works(self, client, people, plan, sign_in, session):
        strength = plans.add_item(
            session,
            access=acc_for(session, people.care_manager, people.patient),
            section="strengths",
            data=_strength("Humour"),
        )
        commit(session)
        token = sign_in(CM)
        url = f"/patients/{people.patient.id}/plan/strengths/{strength.id}/remove"
        missing = client.post(
            url, data={"csrf_token": token, "version": strength.version}, headers=HX
        )
        assert missing.status_code == 422
        done = client.post(
            url,
            data={
                "csrf_token": token,
                "version": strength.version,
                "reason": "duplicate",
                "idem": uuid.uuid4().hex,
            },
            headers=HX,
        )
        assert done.status_code == 200 and "Humour" not in done.text

    def test_the_lead_agrees_and_the_patient_is_still_awaited(
        self, client, people, plan, sign_in, session
    ):
        token = sign_in(CM)
        response = client.post(
            f"/patients/{people.patient.id}/plan/agree",
            data={"csrf_token": token, "revision": plan.revision_number},
            headers=HX,
        )
        assert response.status_code == 200
        assert "The lead clinician agreed on" in response.text
        assert "The patient has not agreed to this version." in response.text

    def test_history_shows_each_version_and_compares_two(self, client, people, plan, sign_in):
        sign_in(CM)
        page = client.get(
            f"/patients/{people.patient.id}/plan/history?from=1&to={plan.revision_number}"
        )
        assert page.status_code == 200
        assert "Added goal:" in page.text and "“I want to feel better, part 1”" in page.text
        assert len(page.context["revisions"]) == plan.revision_number

    def test_the_list_of_patients_shows_review_and_agreement(
        self, client, people, plan, sign_in, session, clock
    ):
        clock.advance(days=40)
        sign_in(CM)
        page = client.get("/patients?show=review_overdue")
        assert page.status_code == 200
        assert [r["patient"].id for r in page.context["rows"]] == [people.patient.id]
        assert page.context["counts"]["awaiting_agreement"] == 1
        assert "overdue since" in page.text

    def test_clinicians_see_the_action_steps_they_own(self, client, people, plan, sign_in, session):
        plans.add_item(
            session,
            access=acc_for(session, people.care_manager, people.patient),
            section="action_steps",
            data=_step("Phone Pat", people.care_manager.id),
        )
        commit(session)
        sign_in(CM)
        page = client.get("/steps")
        assert [r.step.description for r in page.context["rows"]] == ["Phone Pat"]


class TestThePatientsPortal:
    def test_a_patient_sees_their_plan_in_plain_words(self, client, people, plan, sign_in):
        sign_in(PATIENT)
        home = client.get("/my")
        assert home.status_code == 200
        assert "Please read your plan and tell us if you agree with it." in home.text
        page = client.get("/my/plan")
        assert "Your goals" in page.text and "I want to feel better, part 1" in page.text
        assert "Your next steps" in page.text and "Walk ten minutes" in page.text

    def test_a_patient_proposes_a_goal(self, client, people, plan, sign_in, session):
        token = sign_in(PATIENT)
        response = client.post(
            "/my/plan/propose",
            data={
                "csrf_token": token,
                "idem": uuid.uuid4().hex,
                "statement": "I want to see my friends again",
                "category": "relationships",
                "priority": "high",
                "why": "I miss them",
            },
        )
        assert response.status_code == 303
        goal = session.scalar(
            select(Goal).where(Goal.statement == "I want to see my friends again")
        )
        assert goal.proposed_by_patient and goal.status == "proposed"

    def test_an_empty_proposal_is_refused_and_nothing_saved(
        self, client, people, plan, sign_in, session
    ):
        token = sign_in(PATIENT)
        before = count(session, Goal)
        response = client.post(
            "/my/plan/propose", data={"csrf_token": token, "statement": "  ", "why": "keep me"}
        )
        assert response.status_code == 422
        assert "is required" in response.text and "keep me" in response.text
        assert count(session, Goal) == before

    def test_a_patient_agrees_to_the_version_they_read(
        self, client, people, plan, sign_in, session
    ):
        token = sign_in(PATIENT)
        response = client.post(
            "/my/plan/agree", data={"csrf_token": token, "revision": plan.revision_number}
        )
        assert response.status_code == 303
        assert count(session, PlanAgreement) == 1
        page = client.get("/my/plan")
        assert "You agreed on" in page.text

    def test_a_patient_cannot_agree_to_a_version_that_changed_meanwhile(
        self, client, people, plan, sign_in, session
    ):
        read = plan.revision_number
        plans.add_item(
            session,
            access=acc_for(session, people.care_manager, people.patient),
            section="strengths",
            data=_strength("Patient"),
        )
        commit(session)
        token = sign_in(PATIENT)
        response = client.post("/my/plan/agree", data={"csrf_token": token, "revision": read})
        assert response.status_code == 409
        assert "The plan changed after you opened it" in response.text
        assert count(session, PlanAgreement) == 0

    def test_after_a_change_the_patient_sees_what_changed_since_they_agreed(
        self, client, people, plan, sign_in, session
    ):
        plans.agree(
            session,
            access=acc_for(session, people.patient_user, people.patient),
            revision=plan.revision_number,
        )
        plans.add_item(
            session,
            access=acc_for(session, people.therapist, people.patient),
            section="strengths",
            data=_strength("Loyal friend"),
        )
        commit(session)
        sign_in(PATIENT)
        page = client.get("/my/plan")
        assert "Your plan changed since you last agreed" in page.text
        assert "Added strength:" in page.text and "Loyal friend" in page.text

    def test_a_patient_comments_once_even_if_the_form_is_sent_twice(
        self, client, people, plan, sign_in, session
    ):
        token = sign_in(PATIENT)
        data = {"csrf_token": token, "idem": uuid.uuid4().hex, "body": "Can we meet later?"}
        client.post("/my/plan/comments", data=data)
        client.post("/my/plan/comments", data=data)
        assert count(session, PlanComment) == 1
        sign_in(CM)
        assert "Can we meet later?" in client.get(f"/patients/{people.patient.id}/plan").text

    def test_a_form_sent_again_with_other_words_is_not_taken_for_the_first(
        self, client, people, plan, sign_in, session
    ):
        # Issue 16, item 4: the form's one-time key with different content was answered as a
        # repeat of the first and the new words dropped without a word.
        token = sign_in(PATIENT)
        data = {"csrf_token": token, "idem": uuid.uuid4().hex, "body": "Can we meet later?"}
        assert client.post("/my/plan/comments", data=data).status_code == 303
        other = client.post("/my/plan/comments", data={**data, "body": "Actually, not today"})
        assert other.status_code == 409
        assert count(session, PlanComment) == 1

    def test_a_patient_marks_a_step_done(self, client, people, plan, sign_in, session):
        step = plans.load_contents(session, plan).action_steps[0]
        token = sign_in(PATIENT)
        response = client.post(
            f"/my/steps/{step.id}/status",
            data={"csrf_token": token, "version": step.version, "status": "done", "back": "/my"},
        )
        assert response.status_code == 303
        session.refresh(step)
        assert step.status == "done"

    def test_a_patient_with_no_plan_can_still_suggest_a_goal(
        self, client, people, sign_in, session
    ):
        sign_in(PATIENT)
        assert "Your care team has not started your plan yet" in client.get("/my").text
        assert count(session, CarePlan) == 0

    def test_the_patient_pages_are_in_spanish_for_a_spanish_speaker(
        self, client, people, plan, sign_in, session
    ):
        people.patient_user.language = "es"
        commit(session)
        sign_in(PATIENT)
        home = client.get("/my")
        assert '<html lang="es">' in home.text
        assert "Hola, Pat" in home.text
        page = client.get("/my/plan")
        assert "Sus metas" in page.text
        assert "¿Está de acuerdo con este plan?" in page.text
        assert "Your goals" not in page.text

    def test_a_patient_changes_their_language(self, client, people, sign_in):
        token = sign_in(PATIENT)
        client.post(
            "/account/language", data={"csrf_token": token, "language": "es", "next": "/my"}
        )
        assert "Hola" in client.get("/my").text

    def test_a_patient_sees_who_looked_at_their_record(self, client, people, plan, sign_in):
        sign_in(CM)
        client.get(f"/patients/{people.patient.id}/plan")
        sign_in(PATIENT)
        log = client.get("/my/access-log")
        assert log.status_code == 200
        rows = log.context["rows"]
        assert any(
            r.actor_name == "Cara Manager"
            and r.event.action == "read"
            and r.event.object_type == "CarePlan"
            for r in rows
        )
        assert "Cara Manager" in log.text and "Looked at" in log.text


def _goal_in(statement):
    from concord.careplans.schemas import GoalIn

    return GoalIn(statement=statement, category="wellbeing")


def _strength(text):
    from concord.careplans.schemas import StrengthIn

    return StrengthIn(description=text)


def _step(text, owner_id):
    from concord.careplans.schemas import ActionStepIn

    return ActionStepIn(description=text, owner=str(owner_id))


def test_a_patient_whose_plan_ended_is_not_listed_as_never_having_one(
    client, people, plan, sign_in, session
):
    from concord.careplans.models import PlanStatus

    plans.end_plan(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        status=PlanStatus.completed,
        reason="Goals met",
    )
    commit(session)
    sign_in(CM)
    page = client.get("/patients")
    [row] = page.context["rows"]
    assert row["summary"].plan is None and row["summary"].last_ended.id == plan.id
    assert "last plan completed" in page.text and "no plan yet" not in page.text
    assert "The last plan was completed" in client.get(f"/patients/{people.patient.id}").text

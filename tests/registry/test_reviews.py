"""Psychiatric case review: the queue, the review, each recommendation as a proposed change
to the care plan that the team accepts or declines and the patient can answer, and the tasks
that keep any of it from sitting unread."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from concord.actions import recommendation
from concord.audit.models import AuditEvent
from concord.careplans import service as plans
from concord.errors import Conflict, InvalidInput
from concord.patients.models import CareTeamMember
from concord.patients.service import remove_team_member
from concord.registry import reviews as rv
from concord.registry.jobs import sync_all_tasks
from concord.registry.models import CaseReview, Contact, Episode, Recommendation, WorkTask
from tests.conftest import commit
from tests.factories import acc_for, create_plan
from tests.registry.conftest import contact, days_ago, enroll, phq9

CM = "cara@test.example.org"
CONSULTANT = "consultant@test.example.org"


@pytest.fixture
def not_improving(session, people, plan, clock):
    """Pat: 9 weeks into depression care, PHQ-9 18 then 16."""
    enroll(session, people, started_on=days_ago(63))
    contact(session, people, "initial_assessment", days_ago(62), minutes=50)
    contact(session, people, "follow_up", days_ago(10), minutes=20)
    clock.advance(days=-62)
    phq9(session, people, 18)
    clock.advance(days=60)
    phq9(session, people, 16)
    clock.advance(days=2)
    return people


def test_a_not_improving_patient_is_in_the_consultants_queue(session, not_improving):
    people = not_improving
    items = rv.queue(session, by=people.consultant)
    assert [(i.patient.id, i.reason) for i in items] == [(people.patient.id, "not_improving")]
    assert rv.queue(session, by=people.therapist) == []  # not a consultant on the team


def test_the_care_manager_asks_and_the_request_is_queued_once(session, not_improving):
    people = not_improving
    acc = acc_for(session, people.care_manager, people.patient)
    with pytest.raises(InvalidInput):
        rv.request_review(session, access=acc, question=" ")
    review = rv.request_review(
        session, access=acc, question="Sertraline 100 mg for 8 weeks; next step?"
    )
    commit(session)
    with pytest.raises(Conflict):
        rv.request_review(session, access=acc, question="Again?")
    session.rollback()
    (item,) = rv.queue(session, by=people.consultant)
    assert item.review.id == review.id and item.reason == "not_improving"  # the more urgent
    task = session.scalar(select(WorkTask).where(WorkTask.source == f"review:{review.id}"))
    assert (task.owner_id, task.status) == (people.consultant.id, "open")


def test_review_to_revision(session, not_improving):
    """The consultant's review becomes proposed changes; the team accepts one (a new plan
    revision with an intervention) and declines the other with a reason."""
    people = not_improving
    cm = acc_for(session, people.care_manager, people.patient)
    rv.request_review(session, access=cm, question="Next step?")
    commit(session)
    consultant = acc_for(session, people.consultant, people.patient)
    with pytest.raises(InvalidInput) as caught:
        rv.record_review(
            session,
            access=consultant,
            data=rv.ReviewIn(minutes="0", summary="", recommendations=[]),
        )
    assert set(caught.value.errors) == {"minutes", "summary"}
    session.rollback()
    review = rv.record_review(
        session,
        access=consultant,
        data=rv.ReviewIn(
            minutes="15",
            summary="Partial effect at 8 weeks; tolerating well.",
            recommendations=[
                rv.RecommendationIn("increase_dose", "Increase sertraline to 150 mg daily"),
                rv.RecommendationIn("add_psychotherapy", "Add behavioural activation, 8 sessions"),
                rv.RecommendationIn("other", ""),  # an empty row is ignored
            ],
        ),
    )
    commit(session)
    assert (review.status, review.minutes, review.reviewed_by_id) == (
        "reviewed",
        15,
        people.consultant.id,
    )
    minutes = session.scalar(select(Contact).where(Contact.review_id == review.id))
    assert (minutes.kind, minutes.minutes, minutes.role) == (
        "case_review",
        15,
        "psychiatric_consultant",
    )
    recs = session.scalars(select(Recommendation).order_by(Recommendation.text)).all()
    assert [r.status for r in recs] == ["proposed", "proposed"]
    # One task for the review's two recommendations, not two identical ones (issue 16, 12).
    tasks = session.scalars(select(WorkTask).where(WorkTask.source.like("recommendation:%"))).all()
    assert [t.owner_id for t in tasks] == [people.care_manager.id]
    assert tasks[0].source == f"recommendation:review-{review.id}"
    assert "Increase sertraline to 150 mg daily" in tasks[0].detail
    assert tasks[0].title.endswith("recommendations with the patient")
    assert (
        session.scalar(select(WorkTask).where(WorkTask.source == f"review:{review.id}")).status
        == "done"
    )

    plan = plans.current_plan(session, people.patient.id)
    before = plan.revision_number
    dose = next(r for r in recs if r.kind == "increase_dose")
    therapy = next(r for r in recs if r.kind == "add_psychotherapy")
    with pytest.raises(InvalidInput):
        recommendation.decide(session, access=cm, rec_id=therapy.id, accept=False, reason="")
    recommendation.decide(
        session, access=cm, rec_id=dose.id, accept=True, reason="Agreed with Pat today"
    )
    assert tasks[0].status == "open"  # one of two decided
    recommendation.decide(
        session,
        access=cm,
        rec_id=therapy.id,
        accept=False,
        reason="Already in weekly therapy elsewhere",
    )
    commit(session)
    session.refresh(plan)
    assert plan.revision_number == before + 1
    contents = plans.load_contents(session, plan)
    added = next(i for i in contents.interventions if i.id == dose.intervention_id)
    assert (added.kind, added.description) == ("medication", "Increase sertraline to 150 mg daily")
    assert therapy.decline_reason == "Already in weekly therapy elsewhere"
    assert {
        t.status
        for t in session.scalars(select(WorkTask).where(WorkTask.source.like("recommendation:%")))
    } == {"done"}
    with pytest.raises(Conflict):
        recommendation.decide(session, access=cm, rec_id=dose.id, accept=True)
    # The substantive change waits for the patient's agreement again.
    assert plans.agreement_state(session, plan).patient is None


def test_an_unanswered_recommendation_is_flagged_after_14_days(session, not_improving, clock):
    from concord.registry.caseload import View, caseload

    people = not_improving
    consultant = acc_for(session, people.consultant, people.patient)
    rv.record_review(
        session,
        access=consultant,
        data=rv.ReviewIn(
            minutes=10,
            summary="Review",
            recommendations=[rv.RecommendationIn("refer", "Refer to CBT group")],
        ),
    )
    commit(session)

    def flagged():
        rows, _ = caseload(session, by=people.care_manager, scope="mine", view=View())
        return "recommendation_not_acted_on" in rows[0].flag_codes

    clock.advance(days=14)
    assert not flagged()
    clock.advance(days=1)
    assert flagged()


def test_a_reviewed_patient_leaves_the_queue_for_4_weeks(session, not_improving, clock):
    people = not_improving
    rv.record_review(
        session,
        access=acc_for(session, people.consultant, people.patient),
        data=rv.ReviewIn(minutes=10, summary="Seen", recommendations=[]),
    )
    commit(session)
    assert rv.queue(session, by=people.consultant) == []
    clock.advance(days=28)
    assert [i.reason for i in rv.queue(session, by=people.consultant)] == ["not_improving_escalate"]


def test_the_patient_gives_their_view(client, session, not_improving, sign_in):
    people = not_improving
    rv.record_review(
        session,
        access=acc_for(session, people.consultant, people.patient),
        data=rv.ReviewIn(
            minutes=10,
            summary="Seen",
            recommendations=[rv.RecommendationIn("refer", "Refer to a CBT group")],
        ),
    )
    commit(session)
    rec = session.scalar(select(Recommendation))
    token = sign_in("pat@patients.example.org")
    page = client.get("/my/plan").text
    assert "Refer to a CBT group" in page
    client.post(
        f"/my/recommendations/{rec.id}",
        data={"csrf_token": token, "agree": "false", "reason": "Groups are hard for me"},
    )
    session.refresh(rec)
    assert (rec.patient_view, rec.patient_view_reason) == ("disagree", "Groups are hard for me")
    sign_in(CM)
    assert "Groups are hard for me" in client.get(f"/patients/{people.patient.id}/registry").text


def test_the_flow_through_the_pages(client, session, not_improving, sign_in):
    people = not_improving
    token = sign_in(CM)
    client.post(
        f"/patients/{people.patient.id}/registry/reviews",
        data={"csrf_token": token, "question": "Is it time to switch?"},
    )
    sign_in(CONSULTANT)
    queue = client.get("/registry/reviews").text
    assert "Pat Ient" in queue and "Is it time to switch?" in queue
    token = client.get(f"/patients/{people.patient.id}/registry")
    from tests.conftest import csrf_of

    csrf = csrf_of(token.text)
    done = client.post(
        f"/patients/{people.patient.id}/registry/reviews/record",
        data={
            "csrf_token": csrf,
            "idem": uuid.uuid4().hex,
            "minutes": "20",
            "summary": "Switch to bupropion.",
            "recommendations.kind": ["switch_medication", "increase_dose", "increase_dose"],
            "recommendations.text": ["Switch sertraline to bupropion XL 150 mg", "", ""],
        },
    )
    assert done.status_code == 303
    review = session.scalar(select(CaseReview))
    assert review.status == "reviewed" and review.question == "Is it time to switch?"
    sign_in(CM)
    page = client.get(f"/patients/{people.patient.id}/registry").text
    assert "Switch sertraline to bupropion XL 150 mg" in page
    rec = session.scalar(select(Recommendation))
    token = csrf_of(page)
    accepted = client.post(
        f"/patients/{people.patient.id}/registry/recommendations/{rec.id}",
        data={"csrf_token": token, "version": str(rec.version), "accept": "true", "reason": ""},
    )
    assert accepted.status_code == 303
    assert (
        "Switch sertraline to bupropion XL 150 mg"
        in client.get(f"/patients/{people.patient.id}/plan").text
    )


def test_flag_tasks_open_and_close_with_the_flags(session, people, plan, clock):
    episode = enroll(session, people, started_on=days_ago(1))
    sync_all_tasks(session)
    commit(session)
    task = session.scalar(
        select(WorkTask).where(WorkTask.source.like("flag:needs_initial_assessment:%"))
    )
    assert (task.owner_id, task.status, task.priority) == (people.care_manager.id, "open", "urgent")
    before = len(session.scalars(select(WorkTask)).all())
    sync_all_tasks(session)  # running again opens nothing new
    commit(session)
    assert len(session.scalars(select(WorkTask)).all()) == before
    contact(session, people, "initial_assessment", days_ago(0))
    sync_all_tasks(session)
    commit(session)
    session.refresh(task)
    assert task.status == "done" and "no longer applies" in task.close_note
    del episode


def test_one_bad_episode_skips_its_patient_not_the_clinics_tasks(
    session, people, plan, factory, monkeypatch
):
    # Issue 16, item 3: the task sync worked 500 episodes in one go; one record it could not
    # read stopped every patient's tasks. The batch is retried an episode at a time.
    from sqlalchemy import update

    from concord.registry import caseload
    from concord.worker import registry_tasks_job

    create_plan(session, people, patient=people.other_patient, by=people.outsider, activate=True)
    good = enroll(session, people, started_on=days_ago(1))
    bad = enroll(session, people, people.other_patient, started_on=days_ago(1), by=people.outsider)
    session.execute(update(Episode).where(Episode.id == bad.id).values(program="unknown"))
    # The caseload shows an unknown program with the PHQ-9; here reading it fails, as any
    # record a job cannot process would.
    known = caseload.instruments_of

    def unreadable(program):
        if program == "unknown":
            raise ValueError("an episode this job cannot read")
        return known(program)

    monkeypatch.setattr(caseload, "instruments_of", unreadable)
    commit(session)
    skipped = []
    assert registry_tasks_job(factory, skipped) >= 1
    session.expire_all()
    sources = session.scalars(select(WorkTask.source)).all()
    assert any(s.startswith("flag:needs_initial_assessment:") for s in sources)
    owners = {t.patient_id for t in session.scalars(select(WorkTask))}
    assert owners == {good.patient_id}
    assert [(s.job, s.object_type, s.object_id) for s in skipped] == [
        ("registry_tasks", "Episode", str(bad.id))
    ]


def test_my_tasks_page(client, session, people, plan, sign_in):
    enroll(session, people)
    sync_all_tasks(session)
    commit(session)
    token = sign_in(CM)
    page = client.get("/tasks").text
    assert "Do the initial assessment" in page and "Pat Ient" in page
    task = session.scalar(select(WorkTask))
    client.post(f"/tasks/{task.id}/done", data={"csrf_token": token})
    session.refresh(task)
    assert task.status == "done" and task.closed_by_id == people.care_manager.id
    sign_in("otto@test.example.org")
    assert "Pat Ient" not in client.get("/tasks?done=1").text


def test_two_workers_run_the_registry_job_once_per_period(session, factory, clock):
    from datetime import timedelta

    from concord.worker import claim_run

    assert claim_run(session, "registry_tasks", timedelta(minutes=15)) is True
    assert claim_run(session, "registry_tasks", timedelta(minutes=15)) is False  # the other worker
    clock.advance(minutes=14)
    assert claim_run(session, "registry_tasks", timedelta(minutes=15)) is False
    clock.advance(minutes=1)
    assert claim_run(session, "registry_tasks", timedelta(minutes=15)) is True


def test_waiting_since_is_when_the_flag_began_or_the_request_was_made(
    session, not_improving, clock
):
    """Issue 16, item 12: "waiting since" showed the episode's start (63 days ago)."""
    from datetime import timedelta

    people = not_improving
    started = days_ago(63)
    (item,) = rv.queue(session, by=people.consultant)
    assert item.waiting_since == started + timedelta(weeks=8)  # not improving from week 8
    clock.advance(days=1)
    rv.request_review(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        question="Next step?",
    )
    commit(session)
    (item,) = rv.queue(session, by=people.consultant)
    assert item.waiting_since == clock.now().date() != started


def test_a_task_title_is_shown_in_the_readers_language(client, session, not_improving, sign_in):
    """Task titles are stored in English; a Spanish-speaking clinician read them in English."""
    people = not_improving
    rv.request_review(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        question="Next step?",
    )
    people.consultant.language = "es"
    commit(session)
    sign_in(CONSULTANT)
    page = client.get("/tasks").text
    assert "Revisión psiquiátrica del caso" in page
    assert "Psychiatric case review" not in page


def test_a_consultant_who_left_the_team_rejoins_on_their_old_row(session, not_improving):
    """Issue 17: care-team membership has one writer (patients.service.set_member). A
    consultant asked to review a patient whose team they left is put back on their old row,
    added by nobody (the system did it), and the join is audited."""

    people = not_improving
    member = session.scalar(
        select(CareTeamMember).where(CareTeamMember.user_id == people.consultant.id)
    )
    remove_team_member(session, by=people.care_manager, patient=people.patient, member_id=member.id)
    commit(session)
    acc = acc_for(session, people.care_manager, people.patient)
    rv.request_review(
        session, access=acc, question="Next step?", consultant_id=str(people.consultant.id)
    )
    commit(session)
    rows = session.scalars(
        select(CareTeamMember).where(CareTeamMember.user_id == people.consultant.id)
    ).all()
    assert [(r.id, r.ended_at, r.added_by_id, r.is_lead) for r in rows] == [
        (member.id, None, None, False)
    ]
    joined = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "team_add",
            AuditEvent.patient_id == people.patient.id,
            AuditEvent.actor_id.is_(None),
        )
    ).all()
    assert [e.detail["user"] for e in joined] == [str(people.consultant.id)]


def test_only_patients_service_writes_care_team_rows():
    """Issue 17: one place writes care-team membership. synth.py's bulk COPY is the one
    exception (it says why)."""
    root = Path(__file__).resolve().parents[2] / "concord"
    allowed = {root / "patients" / "service.py"}
    writers = []
    for path in sorted(root.rglob("*.py")):
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "CareTeamMember"
            ):
                writers.append(f"{path.relative_to(root)}:{node.lineno}")
    assert writers == []

"""What a patient does elsewhere reaches the team as a message (issue 22): a suggested goal,
a comment on the plan and a question on a decision each post the patient's message in a thread
about it, with one reply task for the care manager; a second one joins the open thread; the
team's answer closes the task; the team's and family's own doing posts nothing; family without
consent and strangers never see the thread, and the family member the plan is shared with sees
the care plan's thread, never a decision's. Through the actions, the JSON API and the portal.
Both engines."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from concord.actions import careplan as plan_actions
from concord.actions import decisions as decision_actions
from concord.actions import messaging as act
from concord.careplans.schemas import GoalProposal
from concord.clock import now
from concord.decisions import service as ds
from concord.errors import InvalidInput, NotFound
from concord.messaging import service as messages
from concord.messaging.models import Message, MessageThread
from concord.registry.models import TaskStatus, WorkTask
from concord.safety.models import SafetyAlert
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for, create_plan

AID = "depression-treatment"


@pytest.fixture
def plan(session, people):
    created = create_plan(session, people, activate=True)
    commit(session)
    return created


def _me(session, people):
    return acc_for(session, people.patient_user, people.patient)


def _threads(session, people):
    session.expire_all()
    return session.scalars(
        select(MessageThread).where(MessageThread.patient_id == people.patient.id)
    ).all()


def _messages(session, thread):
    return session.scalars(
        select(Message).where(Message.thread_id == thread.id).order_by(Message.number)
    ).all()


def _tasks(session, people):
    return session.scalars(
        select(WorkTask).where(
            WorkTask.patient_id == people.patient.id, WorkTask.source.like("message:%")
        )
    ).all()


def _goal(session, access, words="I want to walk the dog every morning"):
    return plan_actions.propose_goal(
        session,
        access=access,
        data=GoalProposal(statement=words, category="physical_health", priority="medium"),
    )


def _comment(session, access, words="Could the visits be after work?"):
    return plan_actions.add_comment(session, access=access, body=words)


def _question(session, access, words="Will the tablets make me sleepy?"):
    decision = ds.start(session, access=access, aid_id=AID)
    return decision_actions.add_question(
        session, access=access, decision_id=decision.id, text=words
    )


PATHS = {
    "goal": (_goal, "careplan", "My care plan", "I want to walk the dog every morning"),
    "comment": (_comment, "careplan", "My care plan", "Could the visits be after work?"),
    "question": (_question, "decision:", "Decision: ", "Will the tablets make me sleepy?"),
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_each_path_posts_one_message_with_one_task(session, people, plan, path):
    do, topic, subject, words = PATHS[path]
    done = do(session, _me(session, people))
    commit(session)
    [thread] = _threads(session, people)
    assert thread.kind == "patient" and thread.topic.startswith(topic)
    assert thread.subject.startswith(subject) and thread.awaiting == "team"
    if path == "question":
        assert thread.topic == f"decision:{done.id}"
        assert thread.subject == "Decision: " + ds.aid_of(done).title["en"]
    [message] = _messages(session, thread)
    assert message.from_patient and message.author_id == people.patient_user.id
    assert words in message.body
    [task] = _tasks(session, people)
    assert task.status == TaskStatus.open and task.source == f"message:{thread.id}"
    assert task.owner_id == people.care_manager.id
    assert messages.unread_count(session, people.care_manager) == 1
    assert messages.unread_count(session, people.patient_user) == 0
    # where it links: the patient's own page, the team's page
    assert thread.about_path(for_patient=True).startswith("/my/")
    assert thread.about_path(for_patient=False).startswith(f"/patients/{people.patient.id}/")


def test_a_second_one_joins_the_open_thread_and_the_answer_closes_the_task(session, people, plan):
    me = _me(session, people)
    _goal(session, me)
    _comment(session, me)
    _question(session, me)
    commit(session)
    threads = _threads(session, people)
    assert sorted(t.topic.split(":")[0] for t in threads) == ["careplan", "decision"]
    plan_thread = next(t for t in threads if t.topic == "careplan")
    assert len(_messages(session, plan_thread)) == 2
    assert [t.status for t in _tasks(session, people)] == [TaskStatus.open] * 2
    assert messages.unread_count(session, people.care_manager) == 3
    act.answer(session, by=people.care_manager, thread_id=str(plan_thread.id), body="Yes.")
    commit(session)
    by_source = {t.source: t.status for t in _tasks(session, people)}
    assert by_source[f"message:{plan_thread.id}"] == TaskStatus.done
    assert sorted(by_source.values()) == sorted([TaskStatus.done, TaskStatus.open])
    # the answered thread is still open: the next comment joins it and opens a task again
    _comment(session, _me(session, people), "One more thing")
    commit(session)
    assert len(_threads(session, people)) == 2
    assert len(_messages(session, plan_thread)) == 4
    # a closed thread is not joined: the next one starts a new thread
    plan_thread.closed_at = now()
    commit(session)
    _comment(session, _me(session, people), "And another")
    commit(session)
    assert len([t for t in _threads(session, people) if t.topic == "careplan"]) == 2


def test_the_teams_own_doing_posts_nothing_and_family_and_strangers_never_see_it(
    session, people, plan
):
    cm = acc_for(session, people.care_manager, people.patient)
    _goal(session, cm)
    _comment(session, cm)
    _question(session, cm)
    commit(session)
    assert _threads(session, people) == [] and _tasks(session, people) == []
    _comment(session, _me(session, people))
    commit(session)
    [thread] = _threads(session, people)
    for who in (people.family_no_consent, people.outsider, people.other_patient_user):
        with pytest.raises(NotFound):
            messages.find_thread(session, by=who, ident=str(thread.id))
        assert messages.unread_count(session, who) == 0


def test_a_failed_suggestion_writes_no_message(session, people, plan):
    me = _me(session, people)
    with pytest.raises(InvalidInput):
        _question(session, me, "   ")
    session.rollback()
    assert _threads(session, people) == []
    assert session.scalar(select(func.count()).select_from(Message)) == 0


def test_through_the_api_and_the_portal(client, session, people, plan, sign_in):
    me = bearer(session, people.patient_user)
    team = bearer(session, people.care_manager)
    base = f"/api/v1/patients/{people.patient.id}"
    proposed = client.post(
        f"{base}/careplan/goals/propose",
        json={"statement": "Sleep before midnight", "category": "wellbeing"},
        headers={**me, "Idempotency-Key": "route-goal-1"},
    )
    assert proposed.status_code == 201, proposed.text
    again = client.post(
        f"{base}/careplan/goals/propose",
        json={"statement": "Sleep before midnight", "category": "wellbeing"},
        headers={**me, "Idempotency-Key": "route-goal-1"},
    )
    assert again.status_code in (200, 201) and again.json()["id"] == proposed.json()["id"]
    listed = client.get(f"{base}/messages", headers=team).json()
    threads = listed["threads"] if isinstance(listed, dict) else listed
    [thread] = threads
    assert thread["topic"] == "careplan" and thread["subject"] == "My care plan"
    assert thread["messages_count"] == 1 and thread["awaiting"] == "team"
    assert proposed.json()["message"] == {"thread_id": thread["id"], "crisis": False}
    started = client.post(f"{base}/decisions", json={"aid": AID}, headers=me).json()
    asked = client.post(
        f"{base}/decisions/{started['id']}/questions",
        json={"text": "What if I want to die on these?"},
        headers=me,
    )
    assert asked.status_code == 200 and asked.json()["message"]["crisis"] is True
    by_team = client.post(f"{base}/careplan/comments", json={"body": "Noted."}, headers=team).json()
    assert by_team["message"] is None
    for who in (people.family_no_consent, people.outsider):
        assert client.get(f"{base}/messages", headers=bearer(session, who)).status_code == 404
    # The family member the plan is shared with takes part in "My care plan", never in a
    # thread about a decision (family sharing does not cover decisions).
    fay = client.get(f"{base}/messages", headers=bearer(session, people.family)).json()
    assert [t["topic"] for t in fay["threads"]] == ["careplan"]
    decision_id = asked.json()["message"]["thread_id"]
    fay = bearer(session, people.family)
    assert client.get(f"{base}/messages/{decision_id}", headers=fay).status_code == 404
    wrote = client.post(f"{base}/messages/{decision_id}", json={"body": "Hi"}, headers=fay)
    assert wrote.status_code == 404
    # the portal: a question on a decision; each side's page links to it
    token = sign_in("pat@patients.example.org")
    started = client.post(
        "/my/decisions", data={"csrf_token": token, "idem": uuid.uuid4().hex, "aid": AID}
    )
    url = started.headers["location"]
    asked = client.post(
        f"{url}/question",
        data={"csrf_token": token, "idem": uuid.uuid4().hex, "question": "¿Y si me olvido?"},
    )
    assert asked.status_code in (200, 303), asked.text
    decision_thread = next(t for t in _threads(session, people) if t.topic != "careplan")
    page = client.get(f"/my/messages/{decision_thread.id}")
    assert page.status_code == 200 and "¿Y si me olvido?" in page.text
    assert f'href="/my/decisions/{decision_thread.topic.split(":")[1]}"' in page.text
    sign_in("cara@test.example.org")
    page = client.get(f"/patients/{people.patient.id}/messages/{decision_thread.id}")
    assert page.status_code == 200
    assert f'href="/patients/{people.patient.id}/decisions/' in page.text


def test_crisis_words_in_a_comment_raise_the_alert_like_a_message(session, people, plan):
    _comment(session, _me(session, people), "Honestly I keep thinking I want to die")
    commit(session)
    [thread] = _threads(session, people)
    [message] = _messages(session, thread)
    assert message.crisis_rule == "wanting-to-die"
    alert = session.scalar(select(SafetyAlert).where(SafetyAlert.patient_id == people.patient.id))
    assert alert is not None and alert.source_kind == "message"
    assert [t.priority for t in _tasks(session, people)] == ["urgent"]
    _comment(session, _me(session, people), "Could we talk about my sleep?")
    commit(session)
    assert _messages(session, thread)[-1].crisis_rule is None


def test_crisis_words_on_the_portal_show_the_resources_at_once(
    client, session, people, plan, sign_in
):
    token = sign_in("pat@patients.example.org")
    data = {"csrf_token": token, "idem": uuid.uuid4().hex, "body": "I want to die, honestly"}
    sent = client.post("/my/plan/comments", data=data)
    assert sent.status_code == 303
    [thread] = _threads(session, people)
    assert sent.headers["location"] == f"/my/messages/{thread.id}?crisis=1"
    assert "data-crisis-now" in client.get(sent.headers["location"]).text
    calm = {"csrf_token": token, "idem": uuid.uuid4().hex, "body": "See you Tuesday"}
    assert client.post("/my/plan/comments", data=calm).headers["location"].startswith("/my/plan")

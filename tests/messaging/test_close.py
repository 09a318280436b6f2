"""Closing and reopening a conversation (issue 22): a clinician on the care team closes a
thread and its reply task with it; nothing more is written in it until it is reopened; the
reopened thread is the team's turn again when the patient's words are the last. The page and
its JSON twin, the patient and family refused, off-team not found, each change audited once.
Both engines."""

from __future__ import annotations

from sqlalchemy import func, select

from concord.actions import messaging as act
from concord.audit.models import AuditEvent
from concord.errors import Conflict, NotFound, PermissionDenied
from concord.messaging.models import Message
from concord.registry.models import TaskStatus, WorkTask
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for


def _patient_writes(session, people, body="Can we move my Thursday visit?"):
    acc = acc_for(session, people.patient_user, people.patient)
    return act.start(session, access=acc, kind="patient", subject="Visit", body=body)


def _tasks(session, thread):
    return session.scalars(
        select(WorkTask)
        .where(WorkTask.source == f"message:{thread.id}")
        .order_by(WorkTask.created_at, WorkTask.id)
    ).all()


def _changes(session, thread):
    commit(session)  # the audit trail is written with the transaction
    return session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.object_id == str(thread.id),
            AuditEvent.action == "update",
            AuditEvent.outcome == "success",
        )
    )


def test_closing_closes_the_reply_task_and_stops_writing_until_reopened(session, people, clock):
    sent = _patient_writes(session, people)
    thread = sent.thread
    assert [t.status for t in _tasks(session, thread)] == [TaskStatus.open]
    act.set_closed(session, by=people.therapist, thread_id=str(thread.id), closed=True)
    assert thread.closed_at is not None and thread.awaiting is None
    assert thread.reply_due_at is None
    task = _tasks(session, thread)[0]
    assert task.status == TaskStatus.done and task.closed_by_id == people.therapist.id
    assert "closed the conversation" in (task.close_note or "")
    # Asking again changes nothing and records nothing more.
    act.set_closed(session, by=people.care_manager, thread_id=str(thread.id), closed=True)
    assert _changes(session, thread) == 1
    # Nobody writes in a closed thread: the patient and the team alike; nothing is written.
    for who in (people.patient_user, people.care_manager):
        try:
            act.answer(session, by=who, thread_id=str(thread.id), body="One more thing")
            raise AssertionError("a closed thread took a message")
        except Conflict:
            pass
    assert session.scalar(select(func.count()).select_from(Message)) == 1
    # Reopened with the patient's words the last: the team's turn, a new task, due again.
    clock.advance(hours=1)
    act.set_closed(session, by=people.care_manager, thread_id=str(thread.id), closed=False)
    assert thread.closed_at is None and thread.awaiting == "team"
    assert thread.reply_due_at is not None and thread.reply_due_at > clock.now()
    statuses = [t.status for t in _tasks(session, thread)]
    assert statuses == [TaskStatus.done, TaskStatus.open]
    assert _tasks(session, thread)[1].owner_id == people.care_manager.id
    act.answer(session, by=people.patient_user, thread_id=str(thread.id), body="Thank you")
    assert _changes(session, thread) == 2


def test_a_thread_the_team_answered_last_reopens_as_the_patients_turn(session, people):
    sent = _patient_writes(session, people)
    act.answer(session, by=people.care_manager, thread_id=str(sent.thread.id), body="Friday?")
    act.set_closed(session, by=people.care_manager, thread_id=str(sent.thread.id), closed=True)
    act.set_closed(session, by=people.care_manager, thread_id=str(sent.thread.id), closed=False)
    assert sent.thread.awaiting == "patient"
    assert all(t.status == TaskStatus.done for t in _tasks(session, sent.thread))


def test_only_the_care_teams_clinicians_close_a_thread(session, people):
    sent = _patient_writes(session, people)
    tid = str(sent.thread.id)
    try:
        act.set_closed(session, by=people.patient_user, thread_id=tid, closed=True)
        raise AssertionError("the patient closed a thread")
    except PermissionDenied:
        pass
    try:
        act.set_closed(session, by=people.outsider, thread_id=tid, closed=True)
        raise AssertionError("a clinician off the team closed a thread")
    except NotFound:
        pass
    assert sent.thread.closed_at is None
    commit(session)
    denied = session.scalars(
        select(AuditEvent).where(AuditEvent.outcome == "denied", AuditEvent.action == "update")
    ).all()
    assert {e.actor_id for e in denied} == {people.patient_user.id, people.outsider.id}


def test_the_api_twin_and_the_pages(client, session, people, sign_in):
    sent = _patient_writes(session, people)
    commit(session)
    tid = str(sent.thread.id)
    base = f"/api/v1/patients/{people.patient.id}/messages/{tid}"
    team, me = bearer(session, people.care_manager), bearer(session, people.patient_user)
    assert client.post(f"{base}/status", json={"status": "closed"}, headers=me).status_code == 403
    bad = client.post(f"{base}/status", json={"status": "shut"}, headers=team)
    assert bad.status_code == 422 and "status" in bad.text
    closed = client.post(f"{base}/status", json={"status": "closed"}, headers=team)
    assert closed.status_code == 200, closed.text
    assert closed.json()["thread"]["status"] == "closed" and closed.json()["thread"]["closed_at"]
    refused = client.post(base, json={"body": "Still there?"}, headers=me)
    assert refused.status_code == 409
    fhir = client.get(f"/fhir/Communication/{tid}", headers=team).json()
    assert fhir["status"] == "completed"
    # The patient's portal: no answer form on a closed thread, a way to start a new one.
    sign_in("pat@patients.example.org")
    mine = client.get(f"/my/messages/{tid}")
    assert "data-thread-closed" in mine.text and 'name="body"' not in mine.text
    assert "data-closed" in client.get("/my/messages").text
    # The team's page reopens it, and the answer form is back.
    token = sign_in("cara@test.example.org")
    page = f"/patients/{people.patient.id}/messages/{tid}"
    assert "data-reopen" in client.get(page).text
    reopened = client.post(f"{page}/status", data={"csrf_token": token, "status": "open"})
    assert reopened.status_code == 303 and reopened.headers["location"] == page
    again = client.get(page).text
    assert "data-close" in again and 'name="body"' in again
    assert client.get(f"{base}", headers=team).json()["thread"]["status"] == "open"
    closed = client.post(f"{page}/status", data={"csrf_token": token, "status": "closed"})
    assert closed.status_code == 303
    answered = client.post(page, data={"csrf_token": token, "body": "Late answer"})
    assert answered.status_code == 409 and "This conversation is closed" in answered.text


def test_a_part2_programs_thread_is_neither_closed_nor_answered_by_whom_it_is_withheld_from(
    session, people
):
    """North is a Part 2 program; its care manager writes to the team; Dr Lee (primary care,
    South, on the team, no consent) cannot close the thread or write in it by its id."""
    from tests.part2.test_part2 import make_world

    pcp, _ = make_world(session, people)
    cm = acc_for(session, people.care_manager, people.patient)
    sent = act.start(session, access=cm, kind="team", subject="Relapse", body="Used on Friday")
    commit(session)
    tid = str(sent.thread.id)
    for attempt in (
        lambda: act.set_closed(session, by=pcp, thread_id=tid, closed=True),
        lambda: act.answer(session, by=pcp, thread_id=tid, body="Seen"),
    ):
        try:
            attempt()
            raise AssertionError("a withheld thread was changed")
        except NotFound:
            pass
    assert sent.thread.closed_at is None and sent.thread.message_count == 1
    # The program's own staff close it.
    act.set_closed(session, by=people.care_manager, thread_id=tid, closed=True)
    assert sent.thread.closed_at is not None

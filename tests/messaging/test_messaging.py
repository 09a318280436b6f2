"""Secure messages (issue 22): who may read and write which thread, the reply task, unread
counts that come from the messages, read receipts, attachments checked by their bytes, the
crisis phrase check, and the Part 2 label on a program's messages. Both engines."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from concord.actions import messaging as act
from concord.audit.models import AuditEvent
from concord.errors import InvalidInput, NotFound, PermissionDenied
from concord.messaging import service as messages
from concord.messaging.phrases import default_phrases, fold
from concord.registry.models import TaskStatus, WorkTask
from concord.safety.models import SafetyAlert
from tests.conftest import commit
from tests.factories import acc_for

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = b"%PDF-1.4\n%fake but starts right\n"


def _patient_writes(session, people, body="Can we move my Thursday visit?", subject="Visit"):
    acc = acc_for(session, people.patient_user, people.patient)
    return act.start(session, access=acc, kind="patient", subject=subject, body=body)


def _reply_tasks(session, people):
    return session.scalars(
        select(WorkTask).where(
            WorkTask.patient_id == people.patient.id, WorkTask.source.like("message:%")
        )
    ).all()


def test_a_patients_message_is_the_teams_turn_with_one_task_until_answered(session, people, clock):
    sent = _patient_writes(session, people)
    assert sent.thread.awaiting == "team" and not sent.crisis
    assert sent.thread.reply_due_at == clock.now() + timedelta(hours=48)
    again = act.answer(session, by=people.patient_user, thread_id=str(sent.thread.id), body="Also")
    assert again.thread.id == sent.thread.id
    open_tasks = [t for t in _reply_tasks(session, people) if t.status == TaskStatus.open]
    assert len(open_tasks) == 1
    assert open_tasks[0].owner_id == people.care_manager.id
    act.answer(session, by=people.therapist, thread_id=str(sent.thread.id), body="Yes, Friday?")
    assert sent.thread.awaiting == "patient"
    assert [t.status for t in _reply_tasks(session, people)] == [TaskStatus.done]


def test_unread_counts_come_from_the_messages_on_both_sides(session, people, clock):
    sent = _patient_writes(session, people)
    act.answer(session, by=people.patient_user, thread_id=str(sent.thread.id), body="Hello?")
    assert messages.unread_count(session, people.care_manager) == 2
    assert messages.unread_count(session, people.therapist) == 2
    assert messages.unread_count(session, people.patient_user) == 0
    assert messages.unread_count(session, people.outsider) == 0
    clock.advance(minutes=5)
    cm = acc_for(session, people.care_manager, people.patient)
    view = messages.open_thread(session, cm, sent.thread)
    assert [m.body for m in view.messages] == ["Can we move my Thursday visit?", "Hello?"]
    assert messages.unread_count(session, people.care_manager) == 0
    assert messages.unread_count(session, people.therapist) == 2  # each person's own mark
    mine = acc_for(session, people.patient_user, people.patient)
    seen = messages.threads_for(session, mine)[0]
    assert seen.read_by_team_at == clock.now()
    assert [seen.read_by_team(m) for m in seen.messages] == [True, True]
    clock.advance(minutes=5)
    act.answer(session, by=people.care_manager, thread_id=str(sent.thread.id), body="Friday 10")
    assert messages.unread_count(session, people.patient_user) == 1
    assert messages.unread_count(session, people.care_manager) == 0
    seen = messages.threads_for(session, mine)[0]
    assert [seen.read_by_patient(m) for m in seen.messages] == [True, True, False]


def test_team_threads_are_the_teams_own(session, people):
    cm = acc_for(session, people.care_manager, people.patient)
    sent = act.start(session, access=cm, kind="team", subject="Dose", body="Thoughts on the dose?")
    assert sent.thread.awaiting is None
    mine = acc_for(session, people.patient_user, people.patient)
    assert messages.threads_for(session, mine) == []
    with pytest.raises(NotFound):
        messages.find_thread(session, by=people.patient_user, ident=str(sent.thread.id))
    with pytest.raises(NotFound):
        messages.find_thread(session, by=people.outsider, ident=str(sent.thread.id))
    with pytest.raises(NotFound):
        act.answer(session, by=people.family, thread_id=str(sent.thread.id), body="hi")
    with pytest.raises(PermissionDenied):
        act.start(session, access=mine, kind="team", subject="x", body="y")
    assert messages.unread_count(session, people.patient_user) == 0
    assert messages.unread_count(session, people.therapist) == 1


def test_a_stranger_or_a_made_up_id_is_not_found_and_audited(session, people):
    sent = _patient_writes(session, people)
    for who, ident in ((people.outsider, str(sent.thread.id)), (people.care_manager, "nope")):
        with pytest.raises(NotFound):
            messages.find_thread(session, by=who, ident=ident)
    commit(session)
    denied = session.scalars(
        select(AuditEvent).where(AuditEvent.object_type == "Communication")
    ).all()
    assert any(e.outcome == "denied" and e.actor_id == people.outsider.id for e in denied)


@pytest.mark.parametrize(
    ("subject", "body", "field"),
    [
        ("", "body", "subject"),
        ("x" * 201, "body", "subject"),
        ("ok", "   ", "body"),
        ("ok", "x" * 5001, "body"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(session, people, subject, body, field):
    acc = acc_for(session, people.patient_user, people.patient)
    with pytest.raises(InvalidInput) as raised:
        act.start(session, access=acc, kind="patient", subject=subject, body=body)
    assert field in raised.value.errors
    assert messages.threads_for(session, acc) == []


def test_files_are_checked_by_their_first_bytes(session, people):
    acc = acc_for(session, people.patient_user, people.patient)
    bad = messages.Upload("letter.pdf", b"MZ\x90\x00 not a pdf")
    with pytest.raises(InvalidInput) as raised:
        act.start(session, access=acc, kind="patient", subject="s", body="b", files=[bad])
    assert "files" in raised.value.errors
    big = messages.Upload("scan.png", PNG + b"\x00" * messages.MAX_FILE_BYTES)
    with pytest.raises(InvalidInput):
        act.start(session, access=acc, kind="patient", subject="s", body="b", files=[big])
    good = [messages.Upload("../../etc/letter.pdf", PDF), messages.Upload("photo.png", PNG)]
    sent = act.start(session, access=acc, kind="patient", subject="s", body="b", files=good)
    names = sorted((a.filename, a.content_type) for a in sent.message.attachments)
    assert names == [("letter.pdf", "application/pdf"), ("photo.png", "image/png")]
    found, _ = messages.attachment_for(
        session, by=people.care_manager, ident=str(sent.message.attachments[0].id)
    )
    assert found.content in (PDF, PNG)
    with pytest.raises(NotFound):
        messages.attachment_for(
            session, by=people.outsider, ident=str(sent.message.attachments[0].id)
        )


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("Some days I want to die.", "wanting-to-die"),
        ("I WANT   TO\nDIE", "wanting-to-die"),
        ("Quiero morir", "wanting-to-die"),
        ("no tengo razón para vivir", "no-reason-to-live"),
        ("I can\u2019t go on like this", "no-reason-to-live"),
        ("everyone would be better off without me", "burden-to-others"),
        ("The suicide prevention poster was nice", "wanting-to-die"),  # words, not meaning
        ("My dog is killing me with the barking", None),
        ("I read about suicides in the paper", None),  # whole words only
        ("Can we move my visit?", None),
    ],
)
def test_the_phrase_list_matches_whole_words_case_and_accents_ignored(text, rule):
    assert default_phrases().match(text) == rule


def test_every_default_phrase_matches_itself():
    import yaml

    from concord.messaging.phrases import PHRASES_FILE

    raw = yaml.safe_load(PHRASES_FILE.read_text(encoding="utf-8"))
    for item in raw["rules"]:
        for words in item["phrases"].values():
            for phrase in words:
                assert default_phrases().match(f"... {phrase} ...") is not None, phrase
                assert fold(phrase) == phrase.casefold() or phrase != fold(phrase)


def test_a_crisis_phrase_raises_an_alert_and_says_so(session, people):
    sent = _patient_writes(session, people, body="I keep thinking I want to die", subject="Hi")
    assert sent.crisis
    assert sent.message.crisis_rule == "wanting-to-die"
    alert = session.scalar(select(SafetyAlert).where(SafetyAlert.patient_id == people.patient.id))
    assert alert is not None and alert.source_kind == "message" and alert.tier == "urgent"
    assert alert.owner_id is not None
    assert "want to die" not in str(alert.triggers) and alert.reason is None
    task = _reply_tasks(session, people)[0]
    assert task.priority == "urgent"


def test_a_clinicians_words_raise_nothing(session, people):
    cm = acc_for(session, people.care_manager, people.patient)
    sent = act.start(
        session, access=cm, kind="patient", subject="Check-in", body="Any thoughts of suicide?"
    )
    assert not sent.crisis
    assert session.scalar(select(SafetyAlert)) is None


def test_a_part2_programs_message_is_withheld_without_consent(session, people):
    """North is a Part 2 program; its care manager writes to the team; Dr Lee (primary care,
    South, on the team) has no consent: the thread is not there for them, nor in their count."""
    from tests.part2.test_part2 import make_world

    pcp, _ = make_world(session, people)
    cm = acc_for(session, people.care_manager, people.patient)
    sent = act.start(session, access=cm, kind="team", subject="Relapse", body="Used on Friday")
    commit(session)
    by_pcp = acc_for(session, pcp, people.patient)
    assert messages.threads_for(session, by_pcp) == []
    assert messages.unread_count(session, pcp) == 0
    assert messages.unread_count(session, people.therapist) == 1
    with pytest.raises(NotFound):
        messages.open_thread(session, by_pcp, sent.thread)

"""A message tells the other side through the notification service (issue 22): a patient's
message tells the owner of the reply task and nobody else; a team answer tells the patient;
once per thread while it is unread; in the person's language, channels and quiet hours; with
no subject, words or name in any channel; a team-only thread tells the colleagues on the
team who may read it. Both engines; the
email goes through a real SMTP server process, the text through a local HTTP gateway."""

from __future__ import annotations

import json
import mailbox
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from concord.actions import messaging as act
from concord.notifications import service as notices
from concord.notifications.models import Delivery, Notice
from concord.outbox import SmtpMailer
from concord.registry.models import WorkTask
from concord.settings import get_settings
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for
from tests.notifications.servers import sms_gateway, smtp_server

SUBJECT = "Sertraline side effects"
BODY = "Since the sertraline my PHQ-9 is 19 and I cannot sleep"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mail")
    log = tmp_path_factory.mktemp("sms") / "requests.jsonl"
    with smtp_server(folder / "maildir") as smtp_port, sms_gateway(log) as sms_port:
        yield {"maildir": folder / "maildir", "smtp": smtp_port, "sms": sms_port, "log": log}


def _notices(session, user=None):
    query = select(Notice).where(Notice.kind == "message_waiting").order_by(Notice.created_at)
    if user is not None:
        query = query.where(Notice.user_id == user.id)
    return session.scalars(query).all()


def _deliveries(session, user):
    return session.scalars(select(Delivery).where(Delivery.user_id == user.id)).all()


def _patient_writes(session, people, body=BODY):
    me = acc_for(session, people.patient_user, people.patient)
    return act.start(session, access=me, kind="patient", subject=SUBJECT, body=body)


def test_a_patients_message_tells_the_reply_tasks_owner_once_while_unread(session, people, clock):
    sent = _patient_writes(session, people)
    thread = str(sent.thread.id)
    act.answer(session, by=people.patient_user, thread_id=thread, body="And my dose?")
    mine = _notices(session, people.care_manager)
    assert [(n.kind, n.link, n.read_at) for n in mine] == [("message_waiting", "/messages", None)]
    assert len(_deliveries(session, people.care_manager)) == 1  # one email, not two
    # Nobody else on the team, off the team, or the patient themselves.
    assert [n.user_id for n in _notices(session)] == [people.care_manager.id]
    # Reading the thread marks the bell read; the next message tells them again.
    clock.advance(minutes=5)
    cm = acc_for(session, people.care_manager, people.patient)
    act.read(session, cm, sent.thread)
    session.expire_all()
    assert _notices(session, people.care_manager)[0].read_at == clock.now()
    assert notices.unread_count(session, people.care_manager) == 0
    clock.advance(minutes=5)
    act.answer(session, by=people.patient_user, thread_id=thread, body="Still here")
    assert len(_notices(session, people.care_manager)) == 2
    assert len(_deliveries(session, people.care_manager)) == 2
    assert notices.unread_count(session, people.care_manager) == 1


def test_a_reassigned_reply_task_tells_its_new_owner(session, people):
    sent = _patient_writes(session, people)
    cm = acc_for(session, people.care_manager, people.patient)
    act.read(session, cm, sent.thread)
    task = session.scalar(select(WorkTask).where(WorkTask.source == f"message:{sent.thread.id}"))
    task.owner_id = people.therapist.id
    session.flush()
    act.answer(session, by=people.patient_user, thread_id=str(sent.thread.id), body="Hello?")
    assert len(_notices(session, people.therapist)) == 1
    assert len(_notices(session, people.care_manager)) == 1  # only the first


def test_a_team_answer_tells_the_patient_once_while_unread(session, people, clock):
    sent = _patient_writes(session, people)
    thread = str(sent.thread.id)
    act.answer(session, by=people.therapist, thread_id=thread, body="Let us talk on Friday")
    act.answer(session, by=people.care_manager, thread_id=thread, body="I booked Friday 10:00")
    mine = _notices(session, people.patient_user)
    assert [(n.link, n.read_at) for n in mine] == [("/my/messages", None)]
    assert len(_deliveries(session, people.patient_user)) == 1
    # The team's own answers tell no colleague.
    assert not _notices(session, people.therapist)
    me = acc_for(session, people.patient_user, people.patient)
    clock.advance(minutes=1)
    act.read(session, me, sent.thread)
    clock.advance(minutes=1)
    act.answer(session, by=people.care_manager, thread_id=thread, body="See you then")
    assert len(_notices(session, people.patient_user)) == 2


def test_a_team_thread_tells_every_colleague_on_the_team_once_while_unread(session, people, clock):
    """A care-team-only thread: each other clinician on the patient's team is told (the bell
    and their channels), once while they have not read it; never the patient, nobody off the
    team, not the author; the notice names nothing."""
    cm = acc_for(session, people.care_manager, people.patient)
    sent = act.start(session, access=cm, kind="team", subject=SUBJECT, body=BODY)
    thread = str(sent.thread.id)
    told = {n.user_id for n in _notices(session)}
    assert told == {people.therapist.id, people.consultant.id}
    for user in (people.therapist, people.consultant):
        [notice] = _notices(session, user)
        assert (notice.link, notice.read_at) == ("/messages", None)
        assert notice.source == f"message:{thread}:0"
        assert [d.channel for d in _deliveries(session, user)] == ["email"]
    assert _deliveries(session, people.patient_user) == []
    assert _notices(session, people.outsider) == [] and _notices(session, people.care_manager) == []
    # A second message before they read it tells nobody again; the author is not told.
    act.answer(session, by=people.therapist, thread_id=thread, body="Agreed")
    assert len(_notices(session, people.consultant)) == 1
    assert len(_deliveries(session, people.consultant)) == 1
    assert [n.source for n in _notices(session, people.care_manager)] == [f"message:{thread}:1"]
    assert len(_notices(session, people.therapist)) == 1
    # Once the consultant has read it, the next message tells them again.
    clock.advance(minutes=1)
    act.read(session, acc_for(session, people.consultant, people.patient), sent.thread)
    session.expire_all()
    assert notices.unread_count(session, people.consultant) == 0
    clock.advance(minutes=1)
    act.answer(session, by=people.care_manager, thread_id=thread, body="Noted")
    assert len(_notices(session, people.consultant)) == 2
    assert notices.unread_count(session, people.consultant) == 1
    assert _notices(session, people.patient_user) == []


def test_a_part2_programs_team_message_is_not_announced_to_whom_it_is_withheld_from(
    session, people
):
    """North is a Part 2 program; its care manager writes in a team thread; Dr Lee (primary
    care at South, on the team, no consent) may not read it, so is not told it waits."""
    from tests.part2.test_part2 import make_world

    pcp, _ = make_world(session, people)
    cm = acc_for(session, people.care_manager, people.patient)
    act.start(session, access=cm, kind="team", subject="Relapse", body="Used on Friday")
    assert _notices(session, pcp) == [] and _deliveries(session, pcp) == []
    assert len(_notices(session, people.therapist)) == 1


def test_a_failed_send_notifies_nobody(client, session, people):
    """A message refused for a bad field writes nothing: no notice either."""
    me = bearer(session, people.patient_user)
    url = f"/api/v1/patients/{people.patient.id}/messages"
    bad = client.post(url, json={"kind": "patient", "subject": SUBJECT, "body": ""}, headers=me)
    assert bad.status_code == 422
    assert _notices(session) == []


def test_the_notice_says_only_that_a_message_waits_in_the_persons_language_and_hours(
    session, factory, people, servers, clock
):
    """The patient (Spanish, SMS then email, quiet hours) and the care manager (email) get the
    notice through the real SMTP server and HTTP gateway, after the quiet hours, and no channel
    carries the subject, the words or the patient's name."""
    people.org.timezone = "America/New_York"
    patient = people.patient_user
    patient.language = "es"
    notices.set_preferences(
        session, by=patient, channels=["sms", "email"], phone="+1 555 010 0199",
        quiet_from=21, quiet_until=7,
    )  # fmt: skip
    clock.set(datetime(2026, 11, 23, 3, 30, tzinfo=UTC))  # 22:30 in New York: quiet
    sent = _patient_writes(session, people)
    act.answer(session, by=people.care_manager, thread_id=str(sent.thread.id), body=BODY)
    commit(session)
    mailer = SmtpMailer("127.0.0.1", servers["smtp"], "concord@test.example.org", None, None, False)
    gateway = notices.HttpSmsGateway(f"http://127.0.0.1:{servers['sms']}/send", timeout=5)
    # The care manager's and the family member's (the patient's family-sharing consent names
    # Fay, so the team's answer tells her too); the patient's waits for the end of quiet hours.
    assert notices.send_due(factory, mailer, gateway) == 2
    clock.set(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))  # 07:00 there
    assert notices.send_due(factory, mailer, gateway) == 1
    texts = [json.loads(json.loads(line)["body"])["text"] for line in
             servers["log"].read_text().splitlines()]  # fmt: skip
    base = get_settings().base_url.rstrip("/")
    assert texts == [f"Concord: Tiene un mensaje nuevo en Concord. {base}/my/messages"]
    box = mailbox.Maildir(servers["maildir"], create=False)
    mails = [m for m in box if m["To"] == people.care_manager.email]
    assert len(mails) == 1 and mails[0]["Subject"] == "Concord: you have a new message"
    body = mails[0].get_payload()
    assert "You have a new message in Concord." in body and "/messages" in body
    secrets = [
        SUBJECT, "ertraline", "PHQ", "19", "sleep", people.patient.given_name,
        people.patient.family_name, people.patient.mrn, str(people.patient.id),
        str(sent.thread.id),
    ]  # fmt: skip
    family = [m for m in box if m["To"] == people.family.email]
    assert len(family) == 1 and family[0]["Subject"] == "Concord: you have a new message"
    assert "/shared" in family[0].get_payload()
    for text in [*texts, body, mails[0]["Subject"], family[0].get_payload()]:
        text = text.replace(base, "")
        assert [s for s in secrets if s in text] == [], text


def test_through_the_json_api_the_owner_is_told_and_reading_clears_the_bell(
    client, session, people
):
    me = bearer(session, people.patient_user)
    cm = bearer(session, people.care_manager)
    url = f"/api/v1/patients/{people.patient.id}/messages"
    made = client.post(url, json={"kind": "patient", "subject": SUBJECT, "body": BODY}, headers=me)
    assert made.status_code == 201, made.text
    assert client.get("/api/v1/notices", headers=cm).json()["unread"] == 1
    thread = made.json()["thread"]["id"]
    assert client.get(f"{url}/{thread}", headers=cm).status_code == 200
    assert client.get("/api/v1/notices", headers=cm).json()["unread"] == 0
    assert [n.read_at is not None for n in _notices(session, people.care_manager)] == [True]

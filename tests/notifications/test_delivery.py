"""The notification service (issue 22): email through a real SMTP server process, SMS through
an HTTP gateway process, back-off, fallback to the next channel, deduplication, quiet hours,
the bell, and a check that no notice carries a patient's name, diagnosis, medication, score
or reason."""

from __future__ import annotations

import json
import mailbox
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from concord.actions import appointments as act
from concord.actions import messaging as msg_act
from concord.appointments.schemas import AttendanceIn, BookIn, VisitIn, VisitRequestIn
from concord.notifications import service as notices
from concord.notifications.models import Delivery, DeliveryStatus, Notice
from concord.outbox import SmtpMailer
from tests.careplans.test_api import bearer
from tests.conftest import NOW, commit
from tests.factories import acc_for
from tests.notifications.servers import sms_gateway, smtp_server

SOON = NOW + timedelta(days=3)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mail")
    log = tmp_path_factory.mktemp("sms") / "requests.jsonl"
    with smtp_server(folder / "maildir") as smtp_port, sms_gateway(log) as sms_port:
        yield {"maildir": folder / "maildir", "smtp": smtp_port, "sms": sms_port, "log": log}


def _mailer(servers):
    return SmtpMailer("127.0.0.1", servers["smtp"], "concord@test.example.org", None, None, False)


def _gateway(servers, path="/send?to={to}"):
    url = f"http://127.0.0.1:{servers['sms']}{path}"
    return notices.HttpSmsGateway(url, "clinic", "s3cret", timeout=5)


def _mail_to(servers, address):
    box = mailbox.Maildir(servers["maildir"], create=False)
    return [m for m in box if m["To"] == address]


def _sms_requests(servers):
    if not servers["log"].exists():
        return []
    return [json.loads(line) for line in servers["log"].read_text().splitlines()]


def _notify(session, user, source="test:1", kind="visit_booked"):
    made = notices.notify(session, user=user, kind=kind, link="/my/visits", source=source)
    commit(session)
    return made


def test_email_goes_through_a_real_smtp_server(session, factory, people, servers):
    user = people.patient_user
    _notify(session, user, source=f"email:{uuid.uuid4()}")
    assert notices.send_due(factory, _mailer(servers), None) == 1
    got = _mail_to(servers, user.email)
    assert got, "the SMTP server received nothing"
    message = got[-1]
    assert message["Subject"] == "Concord: you have a visit update"
    body = message.get_payload()
    assert "/my/visits" in body and people.patient.family_name not in body
    sent = session.scalar(select(Delivery).where(Delivery.user_id == user.id))
    session.refresh(sent)
    assert sent.status == DeliveryStatus.sent and sent.attempts == 1 and sent.sent_at


def test_sms_goes_through_the_http_gateway_in_the_patients_language(
    session, factory, people, servers
):
    user = people.patient_user
    user.language = "es"
    notices.set_preferences(
        session,
        by=user,
        channels=["sms"],
        phone="+1 555 010 0199",
        quiet_from=None,
        quiet_until=None,
    )
    _notify(session, user, source=f"sms:{uuid.uuid4()}", kind="visit_reminder")
    before = len(_sms_requests(servers))
    assert notices.send_due(factory, _mailer(servers), _gateway(servers)) == 1
    request = _sms_requests(servers)[before]
    assert request["path"] == "/send?to=%2B15550100199"
    assert request["auth"].startswith("Basic ")
    body = json.loads(request["body"])
    assert body["to"] == "+15550100199"
    assert "Concord" in body["text"] and "/my/visits" in body["text"]
    assert body["text"].startswith("Concord: Tiene una visita")


def test_a_bounced_text_falls_back_to_email(session, factory, people, servers):
    user = people.patient_user
    notices.set_preferences(
        session,
        by=user,
        channels=["sms", "email"],
        phone="+15550100199",
        quiet_from=None,
        quiet_until=None,
    )
    _notify(session, user, source=f"bounce:{uuid.uuid4()}")
    mails = len(_mail_to(servers, user.email))
    gateway = _gateway(servers, "/bounce")
    assert notices.send_due(factory, _mailer(servers), gateway) == 1  # the email, next in line
    rows = session.scalars(
        select(Delivery).where(Delivery.user_id == user.id).order_by(Delivery.created_at)
    ).all()
    for row in rows:
        session.refresh(row)
    assert [(r.channel, r.status) for r in rows] == [("sms", "bounced"), ("email", "sent")]
    assert len(_mail_to(servers, user.email)) == mails + 1


def test_a_failing_channel_is_retried_with_back_off_then_falls_back(
    session, factory, people, servers, clock
):
    user = people.patient_user
    notices.set_preferences(
        session,
        by=user,
        channels=["sms", "email"],
        phone="+15550100199",
        quiet_from=None,
        quiet_until=None,
    )
    _notify(session, user, source=f"down:{uuid.uuid4()}")
    gateway = _gateway(servers, "/down")
    waits = []
    for _ in range(notices.ATTEMPTS):
        notices.send_due(factory, _mailer(servers), gateway)
        row = session.scalar(select(Delivery).where(Delivery.channel == "sms"))
        session.refresh(row)
        waits.append(row.send_after - clock.now())
        clock.set(row.send_after)
    assert waits[:3] == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert row.status == DeliveryStatus.failed and row.last_error == "OSError"
    email = session.scalar(select(Delivery).where(Delivery.channel == "email"))
    # The email went in the same pass that gave up on the text message.
    assert email is not None and email.status == DeliveryStatus.sent


def test_the_same_source_notifies_once_and_quiet_hours_wait(session, people, clock):
    user = people.patient_user
    people.org.timezone = "America/New_York"
    notices.set_preferences(
        session, by=user, channels=["email"], phone=None, quiet_from=21, quiet_until=7
    )
    clock.set(datetime(2026, 11, 23, 3, 30, tzinfo=UTC))  # 22:30 in New York
    first = _notify(session, user, source="visit:x:booked:1")
    assert _notify(session, user, source="visit:x:booked:1") is None
    assert session.scalar(select(func.count()).select_from(Notice)) == 1
    delivery = session.scalar(select(Delivery).where(Delivery.notice_id == first.id))
    assert delivery.send_after == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # 07:00 there


def test_preferences_name_the_bad_field_and_the_bell_counts(client, session, people):
    me = bearer(session, people.patient_user)
    bad = client.put(
        "/api/v1/notification-preferences",
        json={"channels": ["sms", "pigeon"], "quiet_from": 22},
        headers=me,
    )
    assert bad.status_code == 422
    assert {"channels", "phone", "quiet_until"} <= {f["field"] for f in bad.json()["fields"]}
    ok = client.put(
        "/api/v1/notification-preferences",
        json={"channels": ["sms", "email"], "phone": "+1 555 010 0199"},
        headers=me,
    )
    assert ok.status_code == 200 and ok.json()["channels"] == ["sms", "email"]
    _notify(session, people.patient_user, source="bell:1")
    _notify(session, people.patient_user, source="bell:2", kind="checkin_waiting")
    bell = client.get("/api/v1/notices", headers=me).json()
    assert bell["unread"] == 2
    one = bell["notices"][0]["id"]
    read = client.post("/api/v1/notices/read", json={"notice_id": one}, headers=me).json()
    assert read == {"marked": 1, "unread": 1}
    other = bearer(session, people.other_patient_user)
    assert (
        client.post("/api/v1/notices/read", json={"notice_id": one}, headers=other).status_code
        == 404
    )
    assert client.post("/api/v1/notices/read", json={}, headers=me).json()["unread"] == 0


SECRETS_REASON = "Sertraline 100 mg, PHQ-9 score 19, major depressive disorder F32.1"


def test_no_notice_carries_health_information(session, people, clock):
    """Every notice kind, rendered in every language for a synthetic patient, and every notice
    the visit and message actions raise: none names the patient, the reason, a medication, a score or a
    diagnosis, nor the visit's time."""
    people.org.video_url_template = "https://meet.example.org/{room}"
    patient = people.patient
    secrets = [
        patient.given_name,
        patient.family_name,
        patient.mrn,
        "Sertraline",
        "sertraline",
        "PHQ",
        "19",
        "depress",
        "F32",
        str(patient.id),
    ]
    for kind in notices.KINDS:
        for lang in ("en", "es"):
            subject, body, sms = notices.render(kind, "/my/visits/abc", lang)
            for text in (subject, body, sms):
                leaked = [s for s in secrets if s in text]
                assert leaked == [], (kind, lang, leaked)
    team = acc_for(session, people.care_manager, patient)
    me = acc_for(session, people.patient_user, patient)
    asked = act.request_visit(
        session,
        access=me,
        data=VisitRequestIn(kind="video", start=SOON, minutes=30, reason=SECRETS_REASON),
    )
    act.book_requested(session, access=team, visit_id=asked.id, data=BookIn(version=1))
    other = act.book(
        session,
        access=team,
        data=VisitIn(kind="phone", start=SOON, reason=SECRETS_REASON, propose=True),
    )
    act.cancel(session, access=me, visit_id=other.id, version=1, reason=SECRETS_REASON)
    clock.set(SOON - timedelta(minutes=30))
    assert act.send_visit_reminders(session) == 1
    clock.set(SOON + timedelta(minutes=10))
    act.set_attendance(
        session, access=team, visit_id=asked.id, data=AttendanceIn(version=2, status="noshow")
    )
    # Messages both ways, with the patient's health information in the subject and the words.
    said = msg_act.start(
        session, access=me, kind="patient", subject=SECRETS_REASON, body=SECRETS_REASON
    )
    msg_act.answer(
        session, by=people.care_manager, thread_id=str(said.thread.id), body=SECRETS_REASON
    )
    session.flush()
    rows = session.scalars(select(Delivery)).all()
    kinds = {r.kind for r in rows}
    assert {"visit_requested", "visit_booked", "visit_proposed", "visit_cancelled"} <= kinds
    assert {"visit_reminder", "message_waiting"} <= kinds
    time_text = SOON.strftime("%H:%M")
    for row in rows:
        for column in ("kind", "link", "key", "last_error"):
            value = str(getattr(row, column) or "")
            assert SECRETS_REASON not in value and patient.family_name not in value
        # The link is a path with a random visit id (its digits are no score): checked apart.
        # "/shared": a family member's notice of a reply in the patient's thread (no id in it).
        assert row.link in ("/visits", "/my/visits", "/messages", "/my/messages", "/shared") or (
            row.link.startswith("/my/visits/")
        )
        assert str(said.thread.id) not in row.link
        for lang in ("en", "es"):
            for text in notices.render(row.kind, row.link, lang):
                text = text.replace(row.link, "")
                leaked = [s for s in [*secrets, time_text] if s in text]
                assert leaked == [], (row.kind, lang, leaked)


def test_the_settings_page_saves_with_blank_hours_and_names_bad_ones(client, people, sign_in):
    token = sign_in("pat@patients.example.org")
    page = client.get("/notifications/settings")
    assert page.status_code == 200 and "data-preferences" in page.text
    saved = client.post(
        "/notifications/settings",
        data={
            "csrf_token": token,
            "channels": "email",
            "phone": "",
            "quiet_from": "",
            "quiet_until": "",
        },
    )
    assert saved.status_code == 303, saved.text[:500]
    bad = client.post(
        "/notifications/settings",
        data={"csrf_token": token, "channels": ["email", "sms"], "quiet_from": "25"},
    )
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    assert 'value="sms" checked' in bad.text

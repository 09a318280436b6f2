"""Nothing with patient data leaves Concord in a notice (issue 22): every place in the code that
sends something out (the notification service's kinds, the outbox's emails) is known here, so
a new one fails until it is checked; every text each of them can send, in every language, is
rendered for a synthetic patient whose name, record number, id and words are then searched
for; and the emails real flows queue (a crisis alert raised from a message, the team told of a
patient's suggestion, escalation) are read back from the outbox and searched the same way.
Both engines."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

import concord
from concord.actions import messaging as msg_act
from concord.notifications import service as notices
from concord.outbox import OutboxMessage
from concord.safety import escalation
from concord.safety import notices as team_notices
from concord.safety.emails import _email_text
from concord.safety.models import SafetyAlert
from tests.conftest import commit
from tests.factories import acc_for

ROOT = Path(concord.__file__).parent
# Where mail or a text is sent from, and why it is safe: the test below renders each.
SENDERS = {
    "notifications/service.py": "the notification service: KINDS, rendered below",
    "outbox.py": "sends what was queued; the queueing places are below",
    "safety/notices.py": "patient_notice: the team told something from a patient waits",
    "safety/notifications.py": "safety_<kind>: an alert needs someone (safety/emails.py)",
}
SAFETY_KINDS = ("raised", "escalated", "reminder", "no_owner")
LANGS = ("en", "es")
WORDS = "I want to die. Sertraline 100 mg, PHQ-9 score 19, F32.1 major depressive disorder"


def _secrets(patient) -> list[str]:
    return [
        patient.given_name,
        patient.family_name,
        patient.mrn,
        str(patient.id),
        "want to die",
        "Sertraline",
        "PHQ",
        "F32",
        "depress",
    ]


def _leaks(text: str, secrets: list[str]) -> list[str]:
    """The secrets the text holds as words (the given name "Pat" is not in "patient")."""
    return [s for s in secrets if re.search(rf"(?<!\w){re.escape(s)}(?!\w)", text, re.IGNORECASE)]


def test_every_place_that_sends_mail_or_text_is_known():
    """A new sender (an SMTP call, a queued email, an SMS gateway) fails here until it is
    added to SENDERS and its texts to the checks below."""
    pattern = re.compile(r"queue_email\(|\.sendmail\(|\.send_message\(|mailer\.send\(|sms\.send\(")
    found = set()
    for path in ROOT.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if pattern.search(text):
            found.add(path.relative_to(ROOT).as_posix())
    assert found == set(SENDERS), sorted(found ^ set(SENDERS))


def test_every_text_that_can_be_sent_names_nothing_of_the_patient(people):
    secrets = _secrets(people.patient)
    for kind in notices.KINDS:
        for lang in LANGS:
            for text in notices.render(kind, "/my", lang):
                assert _leaks(text, secrets) == [], (kind, lang)
    for kind in SAFETY_KINDS:
        for lang in LANGS:
            for text in _email_text(lang, kind, "Monday 09:00 (UTC)", "https://x.test/alerts/1"):
                assert _leaks(text, secrets) == [], (kind, lang)


def test_the_emails_real_flows_queue_name_nothing_of_the_patient(session, people, clock):
    patient = people.patient
    secrets = _secrets(patient)
    me = acc_for(session, people.patient_user, patient)
    # Words of crisis: an alert raised through the escalation chain, emailed to its owner.
    sent = msg_act.start(session, access=me, kind="patient", subject=WORDS, body=WORDS)
    assert sent.crisis
    # Everything a patient does that the team is told of.
    for kind in team_notices.KINDS:
        team_notices.notify_care_team(session, patient_id=patient.id, kind=kind)
    commit(session)
    # The alert not acknowledged in time: escalated and reminded.
    alert = session.scalars(select(SafetyAlert).where(SafetyAlert.patient_id == patient.id)).one()
    for _ in range(3):
        clock.advance(hours=2)
        escalation.escalate_due(session)
        commit(session)
    assert alert.id is not None
    queued = session.scalars(select(OutboxMessage)).all()
    kinds = {m.kind for m in queued}
    assert {"patient_notice", "safety_raised"} <= kinds, kinds
    assert kinds & {"safety_escalated", "safety_reminder"}, kinds
    for m in queued:
        for text in (m.subject, m.body, m.kind):
            assert _leaks(text, secrets) == [], (m.kind, _leaks(text, secrets))
        # The only id an email carries is the alert's, behind the sign-in.
        assert str(sent.thread.id) not in m.body and str(sent.message.id) not in m.body

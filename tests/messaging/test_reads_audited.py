"""Every read of a message, a thread, a file and a visit is in the audit trail, on every door
(the pages, the JSON API, FHIR, the .ics file), with the record's id; a clinician off the team
gets not found, and the refusal is audited; a family member reads the patient's threads only
while the patient's consent names them (issue 22: "off-team 404, family only with consent,
every read audited"). Both engines."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from concord.actions import appointments as visit_act
from concord.actions import messaging as act
from concord.appointments.schemas import VisitIn
from concord.audit.models import AuditEvent
from concord.messaging.service import Upload
from tests.careplans.test_api import bearer
from tests.conftest import NOW, commit
from tests.factories import acc_for

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


@pytest.fixture
def records(session, people):
    me = acc_for(session, people.patient_user, people.patient)
    sent = act.start(
        session,
        access=me,
        kind="patient",
        subject="Visit",
        body="Can we talk on Friday?",
        files=[Upload("diary.png", PNG)],
    )
    team = acc_for(session, people.care_manager, people.patient)
    visit = visit_act.book(
        session,
        access=team,
        data=VisitIn(kind="phone", start=NOW + timedelta(days=2), reason="Follow-up"),
    )
    commit(session)
    return {
        "thread": str(sent.thread.id),
        "message": str(sent.message.id),
        "file": str(sent.message.attachments[0].id),
        "visit": str(visit.id),
        "patient": str(people.patient.id),
    }


def _events(session, user, since_seq, outcome="success"):
    return session.scalars(
        select(AuditEvent).where(
            AuditEvent.actor_id == user.id,
            AuditEvent.outcome == outcome,
            AuditEvent.seq > since_seq,
        )
    ).all()


def _last_seq(session):
    return session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) or 0


# (door, url, object audited) for the care team's token, and whether the patient's token may
# use it too. The pages are tried with a signed-in browser below.
API_READS = [
    ("api thread", "/api/v1/patients/{patient}/messages/{thread}", "thread"),
    ("api list", "/api/v1/patients/{patient}/messages", "thread"),
    ("api file", "/api/v1/message-files/{file}", "message"),
    ("fhir thread", "/fhir/Communication/{thread}", "thread"),
    ("fhir message", "/fhir/Communication/{message}", "message"),
    ("fhir search", "/fhir/Communication?patient={patient}", "thread"),
    ("api visit", "/api/v1/patients/{patient}/visits/{visit}", "visit"),
    ("fhir visit", "/fhir/Appointment/{visit}", "visit"),
    ("fhir visits", "/fhir/Appointment?patient={patient}", "visit"),
]


@pytest.mark.parametrize("door,url,audited", API_READS, ids=[d for d, _, _ in API_READS])
def test_every_read_through_the_api_and_fhir_is_audited_and_off_team_is_not_found(
    client, session, people, records, door, url, audited
):
    full = url.format(**records)
    for who in (people.care_manager, people.patient_user):
        headers = bearer(session, who)
        since = _last_seq(session)
        got = client.get(full, headers=headers)
        assert got.status_code == 200, (door, got.text[:300])
        if full.startswith("/fhir/") and "?" in full:
            assert got.json().get("entry"), door
        commit(session)
        ids = {e.object_id for e in _events(session, who, since)}
        assert records[audited] in ids, (door, who.email, ids)
    since = _last_seq(session)
    stranger = client.get(full, headers=bearer(session, people.outsider))
    if "?" in full:  # a search: an empty Bundle, and the refusal in the trail
        assert stranger.status_code == 200 and not stranger.json().get("entry"), door
    else:
        assert stranger.status_code == 404, (door, stranger.text[:200])
    commit(session)
    assert _events(session, people.outsider, since, "denied"), door


def test_a_made_up_id_is_not_found_and_audited(client, session, people, records):
    headers = bearer(session, people.care_manager)
    made_up = str(uuid.uuid4())
    urls = [
        f"/api/v1/patients/{records['patient']}/messages/{made_up}",
        f"/api/v1/message-files/{made_up}",
        f"/fhir/Communication/{made_up}",
        f"/api/v1/patients/{records['patient']}/visits/{made_up}",
        f"/fhir/Appointment/{made_up}",
    ]
    for url in urls:
        since = _last_seq(session)
        assert client.get(url, headers=headers).status_code == 404, url
        commit(session)
        assert _events(session, people.care_manager, since, "denied"), url


def test_the_pages_and_the_ics_file_are_audited(client, session, people, records, sign_in):
    pages = {
        "cara@test.example.org": [
            ("/patients/{patient}/messages/{thread}", "thread"),
            ("/patients/{patient}/messages", "thread"),
            ("/messages", "thread"),
            ("/messages/files/{file}", "message"),
            ("/patients/{patient}/visits/{visit}", "visit"),
            ("/visits/{visit}.ics", "visit"),
        ],
        "pat@patients.example.org": [
            ("/my/messages/{thread}", "thread"),
            ("/my/messages", "thread"),
            ("/messages/files/{file}", "message"),
            ("/my/visits/{visit}", "visit"),
            ("/visits/{visit}.ics", "visit"),
        ],
    }
    users = {"cara@test.example.org": people.care_manager, "pat@patients.example.org": None}
    users["pat@patients.example.org"] = people.patient_user
    for email, urls in pages.items():
        sign_in(email)
        for url, audited in urls:
            since = _last_seq(session)
            got = client.get(url.format(**records))
            assert got.status_code == 200, (url, got.status_code)
            commit(session)
            ids = {e.object_id for e in _events(session, users[email], since)}
            assert records[audited] in ids, (email, url, ids)
    # Off the team: every one of these pages is not found, and the refusal audited.
    sign_in("otto@test.example.org")
    for url, _ in pages["cara@test.example.org"][:2] + pages["cara@test.example.org"][3:]:
        since = _last_seq(session)
        assert client.get(url.format(**records)).status_code == 404, url
        commit(session)
        assert _events(session, people.outsider, since, "denied"), url


def test_family_reads_the_patients_threads_only_with_consent_and_is_audited(
    client, session, people, records
):
    url = f"/api/v1/patients/{records['patient']}/messages/{records['thread']}"
    since = _last_seq(session)
    with_consent = client.get(url, headers=bearer(session, people.family))
    assert with_consent.status_code == 200, with_consent.text[:300]
    commit(session)
    assert records["thread"] in {e.object_id for e in _events(session, people.family, since)}
    file_url = f"/api/v1/message-files/{records['file']}"
    assert client.get(file_url, headers=bearer(session, people.family)).status_code == 200
    without = bearer(session, people.family_no_consent)
    since = _last_seq(session)
    for target in (url, file_url, f"/api/v1/patients/{records['patient']}/visits"):
        assert client.get(target, headers=without).status_code == 404, target
    commit(session)
    assert len(_events(session, people.family_no_consent, since, "denied")) >= 3
    # A visit is the patient's record, not the shared plan: not found to family too.
    visit_url = f"/api/v1/patients/{records['patient']}/visits/{records['visit']}"
    assert client.get(visit_url, headers=bearer(session, people.family)).status_code == 404

"""The message doors (issue 22): the team's Messages tab and inbox, the patient's portal
(EN/ES), the JSON API with idempotency, and FHIR Communication; the same action behind each.
Off-team and family: not found. Both engines."""

from __future__ import annotations

import base64

from sqlalchemy import select

from concord.messaging.models import Message, MessageThread
from concord.registry.models import TaskStatus, WorkTask
from concord.safety.models import SafetyAlert
from tests.careplans.test_api import bearer
from tests.conftest import commit

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def _api(session, people):
    return bearer(session, people.care_manager), bearer(session, people.patient_user)


def test_the_api_threads_answers_and_counts(client, session, people):
    team, me = _api(session, people)
    base = f"/api/v1/patients/{people.patient.id}/messages"
    body = {
        "subject": "Sleep",
        "body": "The new tablets keep me awake.",
        "files": [{"filename": "diary.png", "data_base64": base64.b64encode(PNG).decode()}],
    }
    made = client.post(base, json=body, headers={**me, "Idempotency-Key": "msg-0001"})
    assert made.status_code == 201, made.text
    thread = made.json()["thread"]
    assert thread["awaiting"] == "team" and made.json()["crisis"] is False
    assert thread["messages"][0]["files"][0]["content_type"] == "image/png"
    again = client.post(base, json=body, headers={**me, "Idempotency-Key": "msg-0001"})
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    other = client.post(
        base, json={**body, "body": "Different"}, headers={**me, "Idempotency-Key": "msg-0001"}
    )
    assert other.status_code == 409
    commit(session)
    assert session.scalar(select(MessageThread.message_count)) == 1
    assert client.get("/api/v1/messages/unread", headers=team).json()["unread"] == 1
    assert client.get("/api/v1/messages/unread", headers=me).json()["unread"] == 0
    listed = client.get(base, headers=team).json()
    assert listed["threads"][0]["unread"] == 1 and listed["policy"]["reply_within_hours"] == 48
    read = client.get(f"{base}/{thread['id']}", headers=team).json()["thread"]
    assert read["messages"][0]["body"] == "The new tablets keep me awake."
    assert client.get("/api/v1/messages/unread", headers=team).json()["unread"] == 0
    file_url = read["messages"][0]["files"][0]["url"]
    got = client.get(file_url, headers=team)
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["cache-control"] == "no-store"
    answered = client.post(
        f"{base}/{thread['id']}", json={"body": "Take it in the morning."}, headers=team
    )
    assert answered.status_code == 201, answered.text
    mine = client.get(f"{base}/{thread['id']}", headers=me).json()["thread"]
    assert mine["messages"][0]["read_by_team"] is True
    assert client.get("/api/v1/messages/unread", headers=me).json()["unread"] == 0  # read now
    commit(session)
    task = session.scalar(select(WorkTask).where(WorkTask.source.like("message:%")))
    assert task.status == TaskStatus.done


def test_the_api_names_the_bad_field_and_writes_nothing(client, session, people):
    _, me = _api(session, people)
    base = f"/api/v1/patients/{people.patient.id}/messages"
    for body, field in (
        ({"subject": "", "body": "x"}, "subject"),
        ({"subject": "s", "body": ""}, "body"),
        ({"subject": "s", "body": "b", "files": [{"filename": "a", "data_base64": "%%"}]}, "files"),
        (
            {
                "subject": "s",
                "body": "b",
                "files": [{"filename": "a.pdf", "data_base64": base64.b64encode(b"MZ").decode()}],
            },
            "files",
        ),
    ):
        got = client.post(base, json=body, headers=me)
        assert got.status_code == 422, (body, got.text)
        assert field in got.text
    commit(session)
    assert session.scalar(select(Message)) is None


def test_a_crisis_phrase_through_the_api_answers_with_the_resources(client, session, people):
    _, me = _api(session, people)
    got = client.post(
        f"/api/v1/patients/{people.patient.id}/messages",
        json={"subject": "tonight", "body": "I don't want to be here, I want to die"},
        headers=me,
    )
    assert got.status_code == 201, got.text
    assert got.json()["crisis"] is True
    assert any("988" in r["contact"] for r in got.json()["crisis_resources"])
    commit(session)
    assert session.scalar(select(SafetyAlert.source_kind)) == "message"


def test_strangers_and_family_without_consent_get_not_found(client, session, people):
    team, me = _api(session, people)
    base = f"/api/v1/patients/{people.patient.id}/messages"
    made = client.post(base, json={"subject": "s", "body": "b"}, headers=me).json()
    tid = made["thread"]["id"]
    for who in (people.outsider, people.family_no_consent, people.other_patient_user):
        h = bearer(session, who)
        assert client.get(base, headers=h).status_code == 404
        assert client.get(f"{base}/{tid}", headers=h).status_code == 404
        assert client.post(f"{base}/{tid}", json={"body": "x"}, headers=h).status_code == 404
    other = f"/api/v1/patients/{people.other_patient.id}/messages/{tid}"
    assert client.get(other, headers=team).status_code == 404


def test_the_pages_thread_answer_and_count(client, session, people, sign_in):
    token = sign_in("pat@patients.example.org")
    page = client.get("/my/messages")
    assert page.status_code == 200 and "data-urgent" in page.text and "988" in page.text
    sent = client.post(
        "/my/messages",
        data={"csrf_token": token, "subject": "Visit", "body": "Can we talk on Friday?"},
    )
    assert sent.status_code == 303, sent.text
    thread_url = sent.headers["location"]
    assert thread_url.startswith("/my/messages/") and "crisis" not in thread_url
    bad = client.post("/my/messages", data={"csrf_token": token, "subject": "", "body": ""})
    assert bad.status_code == 422 and "has-error" in bad.text
    assert "Not read yet" in client.get(thread_url).text
    spanish = client.get(thread_url, headers={"Accept-Language": "es"})
    assert spanish.status_code == 200
    token = sign_in("cara@test.example.org")
    assert 'data-unread-messages="1"' in client.get("/messages/badge").text
    inbox = client.get("/messages")
    assert "Visit" in inbox.text and 'data-unread="1"' in inbox.text
    tab = client.get(f"/patients/{people.patient.id}/messages")
    assert tab.status_code == 200 and 'aria-current="page">Messages<' in tab.text
    tid = thread_url.rsplit("/", 1)[1]
    team_thread = f"/patients/{people.patient.id}/messages/{tid}"
    assert "Can we talk on Friday?" in client.get(team_thread).text
    assert "data-unread-messages" not in client.get("/messages/badge").text
    answered = client.post(team_thread, data={"csrf_token": token, "body": "Yes, 10 am."})
    assert answered.status_code == 303, answered.text
    sign_in("pat@patients.example.org")
    assert 'data-unread-messages="1"' in client.get("/messages/badge").text
    mine = client.get(thread_url)
    assert "Yes, 10 am." in mine.text and "Read by your care team" in mine.text


def test_a_crisis_phrase_on_the_portal_shows_the_resources_at_once(
    client, session, people, sign_in
):
    token = sign_in("pat@patients.example.org")
    sent = client.post(
        "/my/messages",
        data={"csrf_token": token, "subject": "Hard week", "body": "I feel I can't go on."},
    )
    assert sent.status_code == 303
    assert sent.headers["location"].endswith("?crisis=1")
    page = client.get(sent.headers["location"])
    assert "data-crisis-now" in page.text and "988" in page.text


def test_a_file_through_the_page_form(client, session, people, sign_in):
    token = sign_in("pat@patients.example.org")
    sent = client.post(
        "/my/messages",
        data={"csrf_token": token, "subject": "Letter", "body": "Here it is."},
        files=[("attachments", ("letter.pdf", b"%PDF-1.4 x", "application/pdf"))],
    )
    assert sent.status_code == 303, sent.text
    refused = client.post(
        "/my/messages",
        data={"csrf_token": token, "subject": "Letter", "body": "again"},
        files=[("attachments", ("letter.pdf", b"MZ not a pdf", "application/pdf"))],
    )
    assert refused.status_code == 422 and "is not a PDF, PNG or JPEG file" in refused.text


def test_fhir_communication_read_and_search(client, session, people):
    team, me = _api(session, people)
    base = f"/api/v1/patients/{people.patient.id}/messages"
    made = client.post(
        base,
        json={
            "subject": "Letter",
            "body": "My housing letter",
            "files": [{"filename": "l.pdf", "data_base64": base64.b64encode(b"%PDF-1.4").decode()}],
        },
        headers=me,
    ).json()["thread"]
    client.post(f"{base}/{made['id']}", json={"body": "Thanks, got it."}, headers=team)
    found = client.get(f"/fhir/Communication?patient={people.patient.id}", headers=team)
    assert found.status_code == 200, found.text
    resources = [e["resource"] for e in found.json()["entry"]]
    assert found.json()["total"] == 3
    header, first, second = resources
    assert header["id"] == made["id"] and header["topic"]["text"] == "Letter"
    assert first["partOf"] == [{"reference": f"Communication/{made['id']}"}]
    assert first["sender"]["reference"] == f"Patient/{people.patient.id}"
    assert first["recipient"][0]["reference"].startswith("CareTeam/")
    assert first["payload"][1]["contentAttachment"]["contentType"] == "application/pdf"
    assert second["recipient"][0]["reference"] == f"Patient/{people.patient.id}"
    one = client.get(f"/fhir/Communication/{first['id']}", headers=me)
    assert (
        one.status_code == 200 and one.json()["payload"][0]["contentString"] == "My housing letter"
    )
    for who in (people.outsider, people.family):
        h = bearer(session, who)
        assert client.get(f"/fhir/Communication/{first['id']}", headers=h).status_code == 404
        got = client.get(f"/fhir/Communication?patient={people.patient.id}", headers=h)
        assert got.status_code == 200 and got.json()["total"] == 0
    missing = client.get("/fhir/Communication", headers=team)
    assert missing.status_code == 422 and "patient" in missing.text

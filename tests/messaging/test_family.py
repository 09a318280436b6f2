"""A family member in secure messages (issue 22): with the patient's family-sharing consent
they read and write in the patient's threads with the team (counts, crisis check, files,
notices); without it, or once the patient withdraws it, not found and nothing counted (audited);
team-only threads and a Part 2 program's messages the consent does not cover never reach them.
Both engines."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from concord.actions import messaging as act
from concord.audit.models import AuditEvent
from concord.consents import service as consents
from concord.consents.schemas import ConsentIn
from concord.errors import NotFound, PermissionDenied
from concord.messaging import service as messages
from concord.notifications.models import Notice
from concord.patients import service as patients
from concord.patients.models import RelatedPerson
from concord.registry.models import TaskStatus, WorkTask
from concord.safety.models import SafetyAlert
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for

FAY = "fay@family.example.org"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def _thread(session, people, body="How was the visit?"):
    me = acc_for(session, people.patient_user, people.patient)
    return act.start(session, access=me, kind="patient", subject="Visit", body=body).thread


def _withdraw(session, people):
    link = session.scalar(select(RelatedPerson).where(RelatedPerson.user_id == people.family.id))
    me = acc_for(session, people.patient_user, people.patient)
    patients.set_related_person_consent(session, access=me, related_id=link.id, consented=False)


def _notices(session, user):
    return session.scalars(
        select(Notice).where(Notice.user_id == user.id, Notice.kind == "message_waiting")
    ).all()


def test_a_family_member_with_consent_reads_writes_and_is_counted(session, people):
    thread = _thread(session, people)
    fay = acc_for(session, people.family, people.patient)
    seen = messages.threads_for(session, fay)
    assert [v.thread.id for v in seen] == [thread.id]
    assert messages.unread_count(session, people.family) == 1
    sent = act.answer(session, by=people.family, thread_id=str(thread.id), body="It went well.")
    assert sent.message.side == "family" and not sent.message.from_patient
    assert sent.thread.awaiting == "team" and not sent.crisis
    assert messages.unread_count(session, people.family) == 0
    assert messages.unread_count(session, people.patient_user) == 1
    assert messages.unread_count(session, people.care_manager) == 2
    # A thread of their own with the team, never a team-only one.
    started = act.start(session, access=fay, kind="patient", subject="Rides", body="I can drive.")
    assert started.message.side == "family"
    with pytest.raises(PermissionDenied):
        act.start(session, access=fay, kind="team", subject="x", body="y")
    tasks = session.scalars(select(WorkTask).where(WorkTask.source.like("message:%"))).all()
    assert {t.status for t in tasks} == {TaskStatus.open} and len(tasks) == 2


def test_team_only_threads_never_reach_family(session, people):
    cm = acc_for(session, people.care_manager, people.patient)
    sent = act.start(session, access=cm, kind="team", subject="Dose", body="Thoughts?")
    fay = acc_for(session, people.family, people.patient)
    assert messages.threads_for(session, fay) == []
    assert messages.unread_count(session, people.family) == 0
    with pytest.raises(NotFound):
        messages.find_thread(session, by=people.family, ident=str(sent.thread.id))
    assert _notices(session, people.family) == []


def test_without_consent_or_once_withdrawn_nothing_is_there(session, people):
    thread = _thread(session, people)
    assert messages.unread_count(session, people.family_no_consent) == 0
    with pytest.raises(NotFound):
        messages.find_thread(session, by=people.family_no_consent, ident=str(thread.id))
    assert messages.unread_count(session, people.family) == 1
    _withdraw(session, people)
    assert messages.unread_count(session, people.family) == 0
    with pytest.raises(NotFound):
        messages.find_thread(session, by=people.family, ident=str(thread.id))
    with pytest.raises(NotFound):
        act.answer(session, by=people.family, thread_id=str(thread.id), body="Still here?")
    assert messages.family_taking_part(session, people.patient) == []
    commit(session)
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.actor_id == people.family.id, AuditEvent.outcome == "denied"
        )
    ).all()
    assert denied


def test_a_family_members_words_of_crisis_show_the_resources_and_raise_an_alert(session, people):
    thread = _thread(session, people)
    words = "He told me there is no reason to live."
    sent = act.answer(session, by=people.family, thread_id=str(thread.id), body=words)
    assert sent.crisis and sent.message.crisis_rule
    assert session.scalar(select(SafetyAlert.source_kind)) == "message"
    task = session.scalar(select(WorkTask).where(WorkTask.source == f"message:{thread.id}"))
    assert task.priority == "urgent"


def test_the_team_answer_tells_family_once_while_unread_and_without_words(session, people, clock):
    thread = _thread(session, people)
    act.answer(session, by=people.therapist, thread_id=str(thread.id), body="Friday at ten.")
    act.answer(session, by=people.therapist, thread_id=str(thread.id), body="Or Monday.")
    told = _notices(session, people.family)
    assert len(told) == 1 and told[0].link == "/shared"
    assert _notices(session, people.family_no_consent) == []
    clock.advance(minutes=5)
    act.read(session, acc_for(session, people.family, people.patient), thread)
    act.answer(session, by=people.therapist, thread_id=str(thread.id), body="Confirmed.")
    assert len(_notices(session, people.family)) == 2
    # The family member's own message tells the team's owner, not themselves.
    act.answer(session, by=people.family, thread_id=str(thread.id), body="Thanks")
    assert len(_notices(session, people.family)) == 2


def test_a_part2_programs_message_is_withheld_from_family_without_a_consent_covering_it(
    session, people, clock
):
    """North is a Part 2 program: its care manager's answer in the patient's thread is the
    program's record (and so, by the rule's author test, is what the patient, registered at
    North, writes there). Fay's family-sharing consent names the care plan only: she sees
    nothing, nothing is counted and she is not told. Once the patient's consent names her for
    substance-use records too, she reads the thread."""
    from tests.part2.test_part2 import make_world

    make_world(session, people)
    thread = _thread(session, people)
    act.answer(session, by=people.care_manager, thread_id=str(thread.id), body="From the program")
    commit(session)
    fay = acc_for(session, people.family, people.patient)
    assert messages.threads_for(session, fay) == []
    with pytest.raises(NotFound):
        messages.open_thread(session, fay, thread)
    assert messages.unread_count(session, people.family) == 0
    assert _notices(session, people.family) == []
    assert messages.family_taking_part(session, people.patient) != []  # the plan is still shared
    assert messages.unread_count(session, people.patient_user) == 1
    link = session.scalar(select(RelatedPerson).where(RelatedPerson.user_id == people.family.id))
    me = acc_for(session, people.patient_user, people.patient)
    consents.record(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        data=ConsentIn(
            grantee_kind="related_person",
            grantee_id=link.id,
            discloser="North Clinic",
            scope="categories",
            categories=["care_plan", "substance_use"],
            purposes=["family_sharing"],
            method="paper_scanned",
            signed_name="Pat Ient",
            signed_on=clock.now().date(),
        ),
        related_user_id=people.family.id,
    )
    commit(session)
    assert me.is_self
    fay = acc_for(session, people.family, people.patient)
    view = messages.open_thread(session, fay, thread)
    assert [m.body for m in view.messages] == ["How was the visit?", "From the program"]


def test_the_patients_page_names_who_takes_part_and_links_the_consent(
    client, session, people, sign_in
):
    sign_in("pat@patients.example.org")
    page = client.get("/my/messages")
    assert page.status_code == 200
    assert "data-family-taking-part" in page.text and "Fay Family" in page.text
    assert "Nico Noconsent" not in page.text and 'href="/my/consents"' in page.text
    assert "Fay Family" in client.get("/my/messages", headers={"Accept-Language": "es"}).text
    _withdraw(session, people)
    commit(session)
    assert "Fay Family" not in client.get("/my/messages").text


def test_the_family_pages_thread_answer_and_who_wrote(client, session, people, sign_in):
    thread = _thread(session, people)
    commit(session)
    token = sign_in(FAY)
    base = f"/shared/{people.patient.id}/messages"
    page = client.get(base)
    assert page.status_code == 200, page.text
    assert f'href="{base}/{thread.id}"' in page.text and "data-urgent" in page.text
    assert 'data-unread="1"' in page.text
    answered = client.post(f"{base}/{thread.id}", data={"csrf_token": token, "body": "I'll come."})
    assert answered.status_code == 303, answered.text
    assert answered.headers["location"] == f"{base}/{thread.id}"
    mine = client.get(f"{base}/{thread.id}")
    assert "I&#39;ll come." in mine.text and "Pat" in mine.text and "(the patient)" in mine.text
    crisis = client.post(
        f"{base}/{thread.id}", data={"csrf_token": token, "body": "She says she can't go on."}
    )
    assert crisis.headers["location"].endswith("?crisis=1")
    assert "data-crisis-now" in client.get(crisis.headers["location"]).text
    started = client.post(
        base,
        data={"csrf_token": token, "subject": "Lift", "body": "I can drive her.", "kind": "team"},
        files=[("attachments", ("ride.png", PNG, "image/png"))],
    )
    assert started.status_code == 303, started.text
    assert client.get(f"/patients/{people.patient.id}/messages").status_code == 404
    assert client.get(f"/my/messages/{thread.id}").status_code == 404
    team_url = f"/patients/{people.patient.id}/messages/{thread.id}"
    sign_in("cara@test.example.org")
    assert "Fay Family (family)" in client.get(team_url).text
    assert 'data-author="family"' in client.get(team_url).text
    # The family's thread is with the patient and the team (the kind they asked is ignored).
    tab = client.get(f"/patients/{people.patient.id}/messages")
    assert "Lift" in tab.text
    sign_in("nico@family.example.org")
    assert client.get(base).status_code == 404
    assert client.get(f"{base}/{thread.id}").status_code == 404


def test_the_api_and_fhir_name_the_family_sender(client, session, people):
    thread = _thread(session, people)
    commit(session)
    fay, team = bearer(session, people.family), bearer(session, people.care_manager)
    base = f"/api/v1/patients/{people.patient.id}/messages"
    listed = client.get(base, headers=fay)
    assert listed.status_code == 200 and [t["id"] for t in listed.json()["threads"]] == [
        str(thread.id)
    ]
    assert client.get("/api/v1/messages/unread", headers=fay).json()["unread"] == 1
    body = {
        "body": "Her photo of the letter",
        "files": [{"filename": "l.png", "data_base64": base64.b64encode(PNG).decode()}],
    }
    sent = client.post(f"{base}/{thread.id}", json=body, headers=fay)
    assert sent.status_code == 201, sent.text
    last = sent.json()["thread"]["messages"][-1]
    assert last["author"]["side"] == "family"
    assert last["author"]["display"] == "Fay Family (family)"
    assert client.get(last["files"][0]["url"], headers=fay).status_code == 200
    made = client.post(base, json={"kind": "team", "subject": "x", "body": "y"}, headers=fay)
    assert made.status_code in (403, 404)
    found = client.get(f"/fhir/Communication?patient={people.patient.id}", headers=team).json()
    senders = [e["resource"].get("sender") for e in found["entry"]]
    assert {"display": "Fay Family (family)"} in senders
    family_msg = [
        e["resource"]
        for e in found["entry"]
        if e["resource"].get("sender") == {"display": "Fay Family (family)"}
    ][0]
    assert family_msg["recipient"][0]["reference"].startswith("CareTeam/")
    # FHIR gives whole records: not to family (they have the JSON API and their pages).
    assert (
        client.get(f"/fhir/Communication?patient={people.patient.id}", headers=fay).json()["total"]
        == 0
    )
    _withdraw(session, people)
    commit(session)
    assert client.get(base, headers=fay).status_code == 404
    assert client.get(f"{base}/{thread.id}", headers=fay).status_code == 404
    assert client.get("/api/v1/messages/unread", headers=fay).json()["unread"] == 0

"""The social-needs pages through HTTP: the team sends a referral and gets the partner's link;
the partner works it without an account; the patient sees it and says nobody called; the
API twin answers the same; off-team is not found."""

from __future__ import annotations

import re
import uuid

import pytest

from concord.social import service as social
from tests.conftest import commit, csrf_of

CM = "cara@test.example.org"
PATIENT = "pat@patients.example.org"
OUTSIDER = "otto@test.example.org"


def post(client, url, token, **data):
    return client.post(url, data={"csrf_token": token, "idem": uuid.uuid4().hex, **data})


@pytest.fixture
def food_bank(session, people):
    service = social.add_service(
        session,
        by=people.care_manager,
        data={
            "provider_name": "Riverside Food Bank",
            "name": "Weekly groceries",
            "categories": ["food-insecurity"],
            "languages": ["en", "es"],
            "electronic_referrals": True,
        },
    )
    commit(session)
    return service


def send(client, sign_in, people, service):
    token = sign_in(CM)
    page = post(
        client,
        f"/patients/{people.patient.id}/social/referrals",
        token,
        service_id=str(service.id),
        shared_summary="Pat would like groceries; call after 3 pm.",
        contact="555-0100",
        signed_name="Pat Ient",
        signed_on="2026-01-01",
        respond_days="5",
    )
    assert page.status_code == 200, page.text
    link = re.search(r'<code id="partner-link">([^<]+)</code>', page.text).group(1)
    return link.replace("http://testserver", "")


def test_the_partner_works_the_referral_through_its_link(client, people, sign_in, food_bank):
    path = send(client, sign_in, people, food_bank)
    assert str(people.patient.id) not in path and "Pat" not in path
    client.cookies.clear()
    page = client.get(path)
    assert page.status_code == 200
    assert "Pat would like groceries" in page.text
    token = csrf_of(page.text)
    # Completing before accepting is refused (409) and changes nothing.
    refused = client.post(path, data={"csrf_token": token, "status": "completed", "outcome": "x"})
    assert refused.status_code == 409
    # Declining needs a reason.
    no_reason = client.post(path, data={"csrf_token": token, "status": "rejected"})
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    for status, extra in (
        ("accepted", {}),
        ("in-progress", {}),
        ("completed", {"outcome": "Two weeks of groceries"}),
    ):
        done = client.post(path, data={"csrf_token": token, "status": status, **extra})
        assert done.status_code == 200, done.text
    assert "This referral is closed" in done.text
    # The team sees the loop closed, with what was done.
    sign_in(CM)
    team = client.get(f"/patients/{people.patient.id}/social")
    assert "Two weeks of groceries" in team.text and "Completed" in team.text


def test_a_made_up_link_is_not_found(client):
    assert client.get("/referral-link/abc.def").status_code == 404
    assert (
        client.post("/api/v1/referral-link/abc.def", json={"status": "accepted"}).status_code == 404
    )


def test_the_patient_sees_the_referral_and_says_nobody_called(client, people, sign_in, food_bank):
    send(client, sign_in, people, food_bank)
    token = sign_in(PATIENT)
    mine = client.get("/my/social")
    assert mine.status_code == 200 and "Riverside Food Bank" in mine.text
    rid = re.search(r'id="referral-([0-9a-f-]+)"', mine.text).group(1)
    answer = post(client, f"/my/social/referrals/{rid}/report", token, report="nobody_called")
    assert answer.status_code == 303
    assert "The patient says nobody called" in client.get("/my/social").text


def test_off_team_gets_not_found(client, people, sign_in, food_bank):
    sign_in(OUTSIDER)
    assert client.get(f"/patients/{people.patient.id}/social").status_code == 404


def test_the_api_twin_sends_and_reads(client, people, sign_in, food_bank, session):
    from concord.accounts.tokens import create_api_token

    raw, _ = create_api_token(session, user=people.care_manager, by=people.care_manager)
    commit(session)
    headers = {"Authorization": f"Bearer {raw}"}
    sent = client.post(
        f"/api/v1/patients/{people.patient.id}/referrals",
        headers=headers,
        json={
            "service_id": str(food_bank.id),
            "shared_summary": "Groceries, please.",
            "signed_name": "Pat Ient",
            "signed_on": "2026-01-01",
        },
    )
    assert sent.status_code == 201, sent.text
    link = sent.json()["partner_link"].replace("http://testserver", "")
    token = link.rsplit("/", 1)[1]
    accepted = client.post(f"/api/v1/referral-link/{token}", json={"status": "accepted"})
    assert accepted.status_code == 200
    assert accepted.json()["next"] == ["in-progress", "on-hold", "completed", "failed", "cancelled"]
    read = client.get(f"/api/v1/patients/{people.patient.id}/social", headers=headers)
    assert read.json()["referrals"][0]["status"] == "accepted"
    bad = client.post(
        f"/api/v1/patients/{people.patient.id}/referrals",
        headers=headers,
        json={"service_id": str(food_bank.id), "shared_summary": "x"},
    )
    assert bad.status_code == 422 and "consent_id" in bad.text

"""The gaps of issue 23 on the pages: an expired partner's link says so and the team sends a
fresh one in one step (the old link stays dead; the API twin the same); every social-needs form
refused for bad input shows its page again with the field named and what was typed, and writes
nothing."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import func, select

from concord.audit.models import AuditEvent
from concord.consents.models import Consent
from concord.social import service as social
from concord.social.models import CommunityService, Referral, SocialConcern
from tests.conftest import commit, csrf_of

CM = "cara@test.example.org"
PATIENT = "pat@patients.example.org"
SUMMARY = "Pat would like groceries; call after 3 pm."


def post(client, url, token, **data):
    return client.post(url, data={"csrf_token": token, "idem": uuid.uuid4().hex, **data})


def count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


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


def link_of(html: str) -> str:
    found = re.search(r'<code id="partner-link">([^<]+)</code>', html)
    assert found, "no partner link on the page"
    return found.group(1).replace("http://testserver", "")


def send(client, sign_in, people, service) -> str:
    token = sign_in(CM)
    page = post(
        client,
        f"/patients/{people.patient.id}/social/referrals",
        token,
        service_id=str(service.id),
        shared_summary=SUMMARY,
        contact="555-0100",
        signed_name="Pat Ient",
        signed_on="2026-01-01",
        respond_days="5",
    )
    assert page.status_code == 200, page.text
    return link_of(page.text)


# --- the expired link, and a fresh one ---------------------------------------------------------


def test_an_expired_link_says_so_and_the_team_sends_a_fresh_one(
    client, people, sign_in, food_bank, session, clock
):
    old = send(client, sign_in, people, food_bank)
    client.cookies.clear()
    csrf = csrf_of(client.get(old).text)  # the partner opened it in time, and left it open
    clock.advance(days=social.LINK_DAYS + 1)
    page = client.get(old)
    assert page.status_code == 410
    assert "This referral link has expired" in page.text and "new link" in page.text
    # Nothing of the referral or the person on it.
    for private in ("Pat", "groceries", "555-0100", "Riverside", str(people.patient.id)):
        assert private not in page.text
    # A post through it changes nothing and says the same.
    tried = client.post(old, data={"csrf_token": csrf, "status": "accepted"})
    assert tried.status_code == 410 and "expired" in tried.text
    referral = session.scalar(select(Referral))
    session.refresh(referral)
    assert referral.status == "requested"
    # Audited as a denied use of the link, with no actor.
    expired = session.scalars(
        select(AuditEvent).where(
            AuditEvent.object_type == "ReferralLink", AuditEvent.outcome == "denied"
        )
    ).all()
    assert expired and all(e.detail.get("reason") == "expired" for e in expired)
    assert all(e.actor_id is None for e in expired)

    # The team sees the link expired and sends a fresh one in one step.
    token = sign_in(CM)
    team = client.get(f"/patients/{people.patient.id}/social")
    assert "The service&#39;s link has expired" in team.text or "link has expired" in team.text
    fresh_page = post(
        client, f"/patients/{people.patient.id}/social/referrals/{referral.id}/link", token
    )
    assert fresh_page.status_code == 200, fresh_page.text
    assert "The old link no longer works" in fresh_page.text
    fresh = link_of(fresh_page.text)
    assert fresh != old and str(people.patient.id) not in fresh
    renewed = session.scalars(
        select(AuditEvent).where(
            AuditEvent.object_type == "Referral", AuditEvent.object_id == str(referral.id)
        )
    ).all()
    assert any(e.detail == {"link": "renewed"} for e in renewed)

    client.cookies.clear()
    # The old link stays dead (not even "expired": it opens nothing now); the fresh one works.
    assert client.get(old).status_code == 404
    opened = client.get(fresh)
    assert opened.status_code == 200 and SUMMARY in opened.text
    csrf = csrf_of(opened.text)
    accepted = client.post(fresh, data={"csrf_token": csrf, "status": "accepted"})
    assert accepted.status_code == 200
    session.refresh(referral)
    assert referral.status == "accepted"


def test_the_api_twin_sends_a_fresh_link(client, people, food_bank, session, clock):
    from concord.accounts.tokens import create_api_token

    raw, _ = create_api_token(session, user=people.care_manager, by=people.care_manager)
    commit(session)
    headers = {"Authorization": f"Bearer {raw}"}
    base = f"/api/v1/patients/{people.patient.id}/referrals"
    sent = client.post(
        base,
        headers=headers,
        json={
            "service_id": str(food_bank.id),
            "shared_summary": SUMMARY,
            "signed_name": "Pat Ient",
            "signed_on": "2026-01-01",
        },
    )
    assert sent.status_code == 201, sent.text
    old = sent.json()["partner_link"].rsplit("/", 1)[1]
    clock.advance(days=social.LINK_DAYS + 1)
    gone = client.get(f"/api/v1/referral-link/{old}")
    assert gone.status_code == 410 and gone.json()["error"] == "expired"
    assert "Pat" not in gone.text
    renewed = client.post(f"{base}/{sent.json()['id']}/link", headers=headers)
    assert renewed.status_code == 200, renewed.text
    body = renewed.json()
    assert body["link_expires_at"] > sent.json()["link_expires_at"]
    new = body["partner_link"].rsplit("/", 1)[1]
    assert client.get(f"/api/v1/referral-link/{old}").status_code == 404
    assert client.get(f"/api/v1/referral-link/{new}").json()["status"] == "requested"
    # A closed referral needs no link: 409, and the link it has is left as it was.
    done = client.post(
        f"{base}/{body['id']}/status",
        headers=headers,
        json={"status": "cancelled", "reason": "Found help elsewhere"},
    )
    assert done.status_code == 200
    refused = client.post(f"{base}/{body['id']}/link", headers=headers)
    assert refused.status_code == 409
    assert client.get(f"/api/v1/referral-link/{new}").status_code == 200


def test_only_the_team_sends_a_fresh_link(client, people, sign_in, food_bank, session):
    send(client, sign_in, people, food_bank)
    referral = session.scalar(select(Referral))
    before = referral.token_hash
    token = sign_in(PATIENT)
    refused = post(
        client, f"/patients/{people.patient.id}/social/referrals/{referral.id}/link", token
    )
    assert refused.status_code == 404
    session.refresh(referral)
    assert referral.token_hash == before


# --- the partner's form -------------------------------------------------------------------------


def test_the_partners_form_shows_the_error_and_keeps_what_was_typed(
    client, people, sign_in, food_bank, session
):
    path = send(client, sign_in, people, food_bank)
    client.cookies.clear()
    csrf = csrf_of(client.get(path).text)
    events = count(session, AuditEvent)
    refused = client.post(
        path, data={"csrf_token": csrf, "status": "rejected", "outcome": "Typed by the partner"}
    )
    assert refused.status_code == 422
    # The partner's page, not a bare error page: the form, the field named, the text kept.
    assert "Update the referral" in refused.text and SUMMARY in refused.text
    assert 'id="reason-error"' in refused.text
    assert "Typed by the partner" in refused.text
    assert re.search(r'<option value="rejected" selected', refused.text)
    referral = session.scalar(select(Referral))
    session.refresh(referral)
    assert referral.status == "requested" and referral.outcome is None
    # Only the page's read of the referral was recorded, nothing changed.
    new = session.scalars(select(AuditEvent).offset(events)).all()
    assert {(e.action, e.outcome) for e in new} <= {("read", "success")}
    # A status not on the list: the field named, on the page.
    odd = client.post(path, data={"csrf_token": csrf, "status": "finished"})
    assert odd.status_code == 422 and 'id="status-error"' in odd.text
    # A change the partner may not make from here: 409 on the page, saying what is allowed.
    early = client.post(path, data={"csrf_token": csrf, "status": "completed", "outcome": "x"})
    assert early.status_code == 409 and "Allowed" in early.text
    assert "Update the referral" in early.text


# --- the clinician's forms --------------------------------------------------------------------


def test_a_refused_referral_shows_the_form_again_and_records_no_consent(
    client, people, sign_in, food_bank, session
):
    token = sign_in(CM)
    consents = count(session, Consent)
    page = post(
        client,
        f"/patients/{people.patient.id}/social/referrals",
        token,
        service_id=str(food_bank.id),
        shared_summary=SUMMARY,
        contact="555-0100",
        signed_name="Pat Ient",
        signed_on="2026-01-01",
        respond_days="90",
    )
    assert page.status_code == 422
    assert "Send the referral" in page.text and 'id="respond_days-error"' in page.text
    assert SUMMARY in page.text and 'value="555-0100"' in page.text
    assert 'value="Pat Ient"' in page.text
    # The consent the form would have recorded with it was undone with the referral.
    assert count(session, Consent) == consents
    assert count(session, Referral) == 0
    # A field the model refuses (not a date) also comes back on the page, not as JSON.
    bad_date = post(
        client,
        f"/patients/{people.patient.id}/social/referrals",
        token,
        service_id=str(food_bank.id),
        shared_summary=SUMMARY,
        signed_name="Pat Ient",
        signed_on="last week",
    )
    assert bad_date.status_code == 422 and 'id="signed_on-error"' in bad_date.text
    assert bad_date.headers["content-type"].startswith("text/html")
    assert count(session, Consent) == consents


@pytest.fixture
def concern(session, people):
    found = SocialConcern(
        organization_id=people.patient.organization_id,
        patient_id=people.patient.id,
        domain="food-insecurity",
        status="proposed",
    )
    session.add(found)
    commit(session)
    return found


def test_a_refused_concern_decision_shows_the_form_again(client, people, sign_in, concern, session):
    token = sign_in(CM)
    long_words = "x" * 501
    page = post(
        client,
        f"/patients/{people.patient.id}/social/concerns/{concern.id}",
        token,
        decision="confirm",
        words=long_words,
    )
    assert page.status_code == 422 and "Social needs" in page.text
    assert long_words in page.text and 'aria-invalid="true"' in page.text
    session.refresh(concern)
    assert concern.status == "proposed" and concern.patient_words is None
    # The same on the patient's page.
    token = sign_in(PATIENT)
    mine = post(
        client, f"/my/social/concerns/{concern.id}", token, decision="maybe", words="Food is short"
    )
    assert mine.status_code == 422 and "Help with everyday needs" in mine.text
    assert "Food is short" in mine.text and "must be confirm, decline or resolve" in mine.text
    session.refresh(concern)
    assert concern.status == "proposed"


def test_a_refused_plan_item_from_a_concern_shows_the_form_again(
    client, people, sign_in, concern, session
):
    token = sign_in(CM)
    page = post(
        client,
        f"/patients/{people.patient.id}/social/concerns/{concern.id}/plan",
        token,
        goal="",
        barrier="",
        way_around="Volunteer driver",
    )
    assert page.status_code == 422 and 'id="g1-goal-error"' in page.text
    assert 'value="Volunteer driver"' in page.text
    session.refresh(concern)
    assert concern.status == "proposed"


def test_a_refused_status_change_shows_the_form_again(client, people, sign_in, food_bank, session):
    send(client, sign_in, people, food_bank)
    token = csrf_of(client.get(f"/patients/{people.patient.id}/social").text)
    referral = session.scalar(select(Referral))
    page = post(
        client,
        f"/patients/{people.patient.id}/social/referrals/{referral.id}/status",
        token,
        status="cancelled",
        reason="",
    )
    assert page.status_code == 422 and 'id="r1-reason-error"' in page.text
    session.refresh(referral)
    assert referral.status == "requested"


def test_the_directory_forms_show_their_errors(client, people, sign_in, session):
    token = sign_in(CM)
    services = count(session, CommunityService)
    added = post(
        client,
        "/directory/services",
        token,
        provider_name="Pantry",
        name="",
        categories="food-insecurity",
        languages="english",
    )
    assert added.status_code == 422 and "Add a service" in added.text
    assert 'id="name-error"' in added.text and 'id="languages-error"' in added.text
    assert 'value="Pantry"' in added.text and 'value="english"' in added.text
    imported = post(
        client, "/directory/import", token, kind="json", content='[{"name": "No provider"}]'
    )
    assert imported.status_code == 422 and 'id="import-errors"' in imported.text
    assert "services[0].provider_name" in imported.text
    assert count(session, CommunityService) == services
    # A search for a need Concord does not know: the field named, the page still shown.
    search = client.get("/directory?need=moon")
    assert search.status_code == 200 and 'id="need-error"' in search.text
    team = client.get(f"/patients/{people.patient.id}/social?need=moon&near=ZZ999")
    assert team.status_code == 200
    assert 'id="need-error"' in team.text and 'id="near-error"' in team.text


def test_the_patients_refused_self_referral_and_report_show_the_page_again(
    client, people, sign_in, food_bank, session
):
    token = sign_in(PATIENT)
    consents = count(session, Consent)
    page = post(
        client,
        "/my/social/referrals",
        token,
        service_id=str(food_bank.id),
        shared_summary="x" * 1001,
        contact="555-0100",
        signed_name="Pat Ient",
    )
    assert page.status_code == 422 and "Ask a service for help yourself" in page.text
    assert 'id="shared_summary-error"' in page.text and 'value="555-0100"' in page.text
    # Nothing kept: neither the referral nor the portal signature given with it.
    assert count(session, Consent) == consents and count(session, Referral) == 0
    # Sent properly, then a report the page does not offer: named, on the page, nothing kept.
    sent = post(
        client,
        "/my/social/referrals",
        token,
        service_id=str(food_bank.id),
        shared_summary="Groceries, please.",
        signed_name="Pat Ient",
    )
    assert sent.status_code == 303
    referral = session.scalar(select(Referral))
    odd = post(client, f"/my/social/referrals/{referral.id}/report", token, report="maybe")
    assert odd.status_code == 422 and "must be got_help or nobody_called" in odd.text
    assert "Your referrals" in odd.text
    session.refresh(referral)
    assert referral.patient_report is None

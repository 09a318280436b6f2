"""Social needs in Debian's Chromium: the patient completes the AHC HRSN screen (question 2's
boxes included) and sees the needs it found; the community partner works a referral through
its link, without an account, and a refused step is explained."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Visitor

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def asked(live):
    """The team asks the patient for the AHC HRSN today; a food bank is in the directory."""
    from concord.audit.service import set_context, write_pending
    from concord.measures import service as measures
    from concord.social import service as social
    from tests.factories import acc_for

    people = live["people"]
    with live["factory"]() as session:
        set_context(session, channel="system")
        acc = acc_for(session, people.care_manager, people.patient)
        measures.ask_now(session, access=acc, instrument_code="AHC-HRSN")
        social.add_service(
            session,
            by=people.care_manager,
            data={
                "provider_name": "Riverside Food Bank",
                "name": "Weekly groceries",
                "categories": ["food-insecurity"],
                "languages": ["en"],
            },
        )
        write_pending(session)
        session.commit()
    return people


def test_the_patient_completes_the_screen_and_the_partner_works_the_referral(live, browser, asked):
    pat = Visitor(browser, live["url"])
    try:
        pat.sign_in("pat@patients.example.org")
        page = pat.page
        page.goto("/my/check-ins")
        page.get_by_role("button", name=re.compile(r"^(Start|Continue)\s*: AHC-HRSN")).click()
        pat.check_accessibility()
        questions = page.locator("fieldset.question")
        questions.nth(0).get_by_text("I have a steady place to live").click()
        # Check all that apply: two problems with the place.
        questions.nth(1).get_by_text("Mold").click()
        questions.nth(1).get_by_text("Water leaks").click()
        questions.nth(2).get_by_text("Sometimes true").click()
        questions.nth(3).get_by_text("Never true").click()
        questions.nth(4).get_by_text("No", exact=True).click()
        questions.nth(5).get_by_text("No", exact=True).click()
        for n in range(6, 10):
            questions.nth(n).get_by_text("Never", exact=True).click()
        page.get_by_role("button", name="Send my answers").click()
        expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
        pat.goto("/my/social")
        found = page.locator("li[id^=concern-] strong")
        texts = sorted(found.all_inner_texts())
        assert texts == ["Food", "Problems with the place you live"]
        # The patient refers themselves to the food bank.
        page.locator("#service_id").select_option(label="Riverside Food Bank: Weekly groceries")
        page.locator("#shared_summary").fill("I would like help with groceries.")
        page.locator("#signed_name").fill("Pat Ient")
        page.get_by_role("button", name="Send the referral").click()
        expect(page.get_by_text("Sent, waiting for an answer", exact=True)).to_be_visible()
        pat.check_accessibility()
    finally:
        pat.close()

    # The team sends one too and gives the partner the link shown once.
    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        page = cara.page
        cara.goto(f"/patients/{asked.patient.id}/social")
        page.locator("#service_id").select_option(label="Riverside Food Bank: Weekly groceries")
        page.locator("#shared_summary").fill("Pat would like groceries.")
        page.locator("#signed_name").fill("Pat Ient")
        page.locator("#signed_on").fill("2026-11-20")
        page.get_by_role("button", name="Send the referral").click()
        link = page.locator("#partner-link").inner_text()
        cara.check_accessibility()
    finally:
        cara.close()

    partner = Visitor(browser, live["url"])
    try:
        partner.goto(link)
        page = partner.page
        expect(page.get_by_text("Pat would like groceries.")).to_be_visible()
        page.locator("#status").select_option(label="Decline")
        page.get_by_role("button", name="Save").click()
        # Refused, naming the field; nothing changed.
        expect(
            page.get_by_role("paragraph").filter(has_text="is required: say why")
        ).to_be_visible()
        # The partner's own page again, the error beside its field and the choice kept.
        expect(page.locator("#reason-error")).to_have_text("is required: say why")
        expect(page.locator("#status")).to_have_value("rejected")
        expect(page.get_by_text("Pat would like groceries.")).to_be_visible()
        partner.check_accessibility()
        partner.goto(link)
        expect(page.locator("#referral-status")).to_have_text("Sent, waiting for an answer")
        page.locator("#status").select_option(label="Accept")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#referral-status")).to_have_text("Accepted")
        page.locator("#status").select_option(label="Mark in progress")
        page.get_by_role("button", name="Save").click()
        page.locator("#status").select_option(label="Mark completed")
        page.locator("#outcome").fill("Two weeks of groceries")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text("This referral is closed. Thank you.")).to_be_visible()
        partner.check_accessibility()
    finally:
        partner.close()


def test_an_expired_link_says_so_and_the_care_manager_sends_a_fresh_one(
    live, browser, asked, clock
):
    """The partner opens a link whose 30 days are over: a 410 page that says so and what to
    do, nothing of the referral on it. The care manager sees the link has expired on the
    referral and sends a fresh one; it works, and the old one opens nothing."""
    from sqlalchemy import select

    from concord.social.models import Referral
    from concord.social.service import LINK_DAYS

    summary = "Pat needs a ride to the pantry on Tuesdays."
    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        page = cara.page
        cara.goto(f"/patients/{asked.patient.id}/social")
        page.locator("#service_id").select_option(label="Riverside Food Bank: Weekly groceries")
        page.locator("#shared_summary").fill(summary)
        page.locator("#signed_name").fill("Pat Ient")
        page.locator("#signed_on").fill("2026-11-20")
        page.get_by_role("button", name="Send the referral").click()
        old = page.locator("#partner-link").inner_text()
    finally:
        cara.close()
    with live["factory"]() as session:
        referral_id = session.scalar(select(Referral.id).where(Referral.shared_summary == summary))
    assert referral_id is not None

    clock.advance(days=LINK_DAYS + 1)  # the server reads the same clock
    partner = Visitor(browser, live["url"])
    try:
        page = partner.page
        expired = partner.goto(old)
        assert expired.status == 410
        expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
        expect(page.locator("#link-expired")).to_contain_text("Ask the clinic that sent it")
        expect(page.get_by_text(summary)).to_have_count(0)
    finally:
        partner.close()

    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        page = cara.page
        cara.goto(f"/patients/{asked.patient.id}/social")
        renew = page.locator(f"#link-{referral_id}")
        expect(renew.get_by_text("The service's link has expired")).to_be_visible()
        renew.get_by_role("button", name="Send a fresh link").click()
        expect(page.get_by_text("The old link no longer works.", exact=False)).to_be_visible()
        fresh = page.locator("#partner-link").inner_text()
        cara.check_accessibility()
    finally:
        cara.close()
    assert fresh != old

    partner = Visitor(browser, live["url"])
    try:
        page = partner.page
        opened = partner.goto(fresh)
        assert opened.status == 200
        expect(page.get_by_text(summary)).to_be_visible()
        page.locator("#status").select_option(label="Accept")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#referral-status")).to_have_text("Accepted")
        partner.check_accessibility()
        # Only the new link's hash is kept: the old link is now one Concord does not know.
        assert partner.goto(old).status == 404
    finally:
        partner.close()

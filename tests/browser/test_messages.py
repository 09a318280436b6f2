"""Secure messages in Debian's Chromium (issue 22): a patient writes to the team on a phone, a
clinician sees the unread count, answers, and the patient sees the answer, the count and that
the team read their message; words of crisis show the crisis resources at once and raise an
alert the clinician sees."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Visitor

pytestmark = pytest.mark.browser


def _badge(page):
    return page.locator("[data-unread-messages]")


def test_a_patient_writes_a_clinician_answers_the_counts_follow(live, browser):
    pat = Visitor(browser, live["url"], phone=True)
    cara = Visitor(browser, live["url"])
    try:
        pat.sign_in("pat@patients.example.org")
        pat.goto("/my/messages")
        page = pat.page
        expect(page.locator("[data-urgent]")).to_contain_text("988")
        page.get_by_label("What it is about").fill("My Thursday visit")
        page.get_by_label("Your message").fill("Could we move it to Friday morning?")
        page.get_by_role("button", name="Send").click()
        page.wait_for_load_state()
        pat.check_accessibility()
        expect(page.locator("[data-not-read]")).to_be_visible()

        cara.sign_in("cara@test.example.org")
        desk = cara.page
        expect(_badge(desk)).to_have_attribute("data-unread-messages", "1")
        cara.goto("/messages")
        desk.get_by_role("link", name="My Thursday visit").click()
        desk.wait_for_load_state()
        cara.check_accessibility()
        expect(desk.locator("[data-messages]")).to_contain_text("Friday morning")
        expect(_badge(desk)).to_have_count(0)
        desk.get_by_label("Message").fill("Friday at 10 works. See you then.")
        desk.get_by_role("button", name="Send").click()
        desk.wait_for_load_state()
        expect(desk.locator("[data-messages] li")).to_have_count(2)

        pat.goto("/my/messages")
        expect(_badge(page)).to_have_attribute("data-unread-messages", "1")
        expect(page.locator("[data-unread]")).to_have_attribute("data-unread", "1")
        page.get_by_role("link", name="My Thursday visit").click()
        page.wait_for_load_state()
        pat.check_accessibility()
        expect(page.locator("[data-messages]")).to_contain_text("Friday at 10 works")
        expect(page.locator("[data-read-by-team]")).to_be_visible()
        expect(_badge(page)).to_have_count(0)
    finally:
        pat.close()
        cara.close()


def test_words_of_crisis_show_the_resources_and_raise_an_alert(live, browser):
    pat = Visitor(browser, live["url"], phone=True)
    cara = Visitor(browser, live["url"])
    try:
        pat.sign_in("pat@patients.example.org")
        pat.goto("/my/messages")
        page = pat.page
        page.get_by_label("What it is about").fill("This week")
        page.get_by_label("Your message").fill("Honestly I feel I can't go on anymore.")
        page.get_by_role("button", name="Send").click()
        page.wait_for_load_state()
        pat.check_accessibility()
        notice = page.locator("[data-crisis-now]")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text("988")

        cara.sign_in("cara@test.example.org")
        desk = cara.page
        expect(desk.locator(".alert-banner").first).to_contain_text("Pat")
        cara.goto(f"/patients/{live['people'].patient.id}/messages")
        desk.get_by_role("link", name="This week").click()
        desk.wait_for_load_state()
        expect(desk.locator("[data-crisis-flag]")).to_be_visible()
    finally:
        pat.close()
        cara.close()

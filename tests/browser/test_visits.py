"""Visits in Debian's Chromium (issue 22): a patient asks for a visit and the clinician books
it, each told under their bell; a missed visit raises an outreach task."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Visitor
from tests.conftest import NOW

pytestmark = pytest.mark.browser


def test_a_patient_asks_for_a_visit_and_the_clinician_books_it(live, browser):
    pat = Visitor(browser, live["url"])
    try:
        pat.sign_in("pat@patients.example.org")
        page = pat.page
        page.get_by_role("navigation", name="Main").get_by_role("link", name="My visits").click()
        pat.check_accessibility()
        page.get_by_label("How would you like to meet?").select_option("phone")
        when = (NOW + timedelta(days=3)).strftime("%Y-%m-%dT10:00")
        page.get_by_label("When (date and time)").fill(when)
        page.get_by_label("What would you like to talk about? (optional)").fill("Sleep again")
        page.get_by_role("button", name="Send my request").click()
        expect(page.get_by_text("Your request was sent.")).to_be_visible()
        expect(page.get_by_text("asked for: your team will book a time")).to_be_visible()
        pat.check_accessibility()
    finally:
        pat.close()

    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        page = cara.page
        expect(page.locator("[data-bell]")).to_have_attribute("data-bell", "1")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Visits").click()
        cara.check_accessibility()
        requests = page.locator("[data-visit-requests]")
        requests.get_by_role("link", name=re.compile("Pat Ient")).click()
        cara.check_accessibility()
        expect(page.get_by_text("Sleep again")).to_be_visible()
        page.get_by_role("button", name="Book it").click()
        expect(page.get_by_text("Visit booked.")).to_be_visible()
        expect(page.locator("[data-visit-status]")).to_have_text("Booked")
        cara.check_accessibility()
        cara.goto("/notices")
    finally:
        cara.close()

    pat = Visitor(browser, live["url"])
    try:
        pat.sign_in("pat@patients.example.org")
        page = pat.page
        expect(page.locator("[data-bell]")).to_have_attribute("data-bell", "1")
        page.locator("[data-bell]").click()
        pat.check_accessibility()
        expect(page.get_by_text("A visit was booked or changed")).to_be_visible()
        page.get_by_role("button", name="Open").click()
        pat.check_accessibility()
        expect(page.locator("[data-visit-status]")).to_have_text("Booked")
        expect(page.locator("[data-bell]")).to_have_attribute("data-bell", "0")
        expect(page.get_by_role("link", name="Add to my calendar (.ics)")).to_be_visible()
    finally:
        pat.close()


@pytest.fixture(scope="module")
def missed_visit(live):
    """A phone visit with Pat an hour ago, booked by Cara last week."""
    from concord.actions import appointments as act
    from concord.appointments.schemas import VisitIn
    from concord.audit.service import set_context, write_pending
    from concord.clock import get_clock
    from tests.factories import acc_for

    people = live["people"]
    clock = get_clock()
    with live["factory"]() as session:
        set_context(session, channel="system")
        clock.set(NOW - timedelta(days=7))
        try:
            visit = act.book(
                session,
                access=acc_for(session, people.care_manager, people.patient),
                data=VisitIn(kind="phone", start=NOW - timedelta(hours=1), minutes=30),
            )
        finally:
            clock.set(NOW)
        write_pending(session)
        session.commit()
        return visit.id


def test_a_no_show_raises_an_outreach_task(live, browser, missed_visit):
    people = live["people"]
    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        page = cara.page
        cara.goto(f"/patients/{people.patient.id}/visits/{missed_visit}")
        page.get_by_label("What happened").select_option("noshow")
        page.get_by_role("button", name="Record").click()
        expect(page.get_by_text("Attendance recorded.")).to_be_visible()
        expect(page.locator("[data-visit-status]")).to_have_text("Missed (no-show)")
        cara.check_accessibility()
        cara.goto("/tasks")
        expect(
            page.get_by_text("Reach out to the patient: they missed a visit", exact=True)
        ).to_be_visible()
        cara.goto(f"/patients/{people.patient.id}/visits")
        expect(page.locator("[data-attendance]")).to_contain_text("Missed: 1")
    finally:
        cara.close()

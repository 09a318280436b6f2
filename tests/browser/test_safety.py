"""Safety in Debian's Chromium: a patient's path from a positive answer to crisis resources to
their safety plan, on a phone; a clinician's path from the alert to closing it and writing the
safety plan together, on a desktop."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Visitor

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def ready(live):
    """An active plan (so check-ins are due) and a safety plan the patient wrote earlier."""
    from concord.audit.service import set_context, write_pending
    from concord.careplans import service as plans
    from concord.safety import plans as safety_plans
    from tests.factories import acc_for, create_plan

    people = live["people"]
    with live["factory"]() as session:
        set_context(session, channel="system")
        if plans.current_plan(session, people.patient.id) is None:
            create_plan(session, people, activate=True)
            safety_plans.save(
                session,
                access=acc_for(session, people.patient_user, people.patient),
                base_version=0,
                reason=None,
                content={
                    "warning_signs": ["I stop answering my phone"],
                    "people": [{"name": "Fay, my sister", "contact": "555-0101"}],
                    "reasons": ["My garden"],
                },
            )
        write_pending(session)
        session.commit()
    return people


def test_from_a_positive_answer_to_crisis_resources_to_the_safety_plan(live, browser, ready):
    pat = Visitor(browser, live["url"], phone=True)
    try:
        pat.sign_in("pat@patients.example.org")
        page = pat.page
        # The safety plan is on the portal's first page.
        expect(page.get_by_role("link", name="Open my safety plan")).to_be_visible()
        page.goto("/my/check-ins")
        page.get_by_role("button", name=re.compile(r"^(Start|Continue)\s*: PHQ-9")).click()
        questions = page.locator("fieldset.question")
        for n in range(8):
            questions.nth(n).get_by_text("Not at all").click()
        questions.nth(8).get_by_text("More than half the days").click()
        questions.nth(9).get_by_text("Somewhat difficult").click()
        page.get_by_role("button", name="Send my answers").click()
        # Crisis resources at once, then the way to the safety plan.
        expect(
            page.get_by_role("heading", name=re.compile("You do not have to face this"))
        ).to_be_visible()
        expect(page.get_by_role("link", name="Call or text 988")).to_have_attribute(
            "href", "tel:988"
        )
        pat.check_accessibility()
        page.get_by_role("link", name="Open my safety plan").click()
        expect(page.get_by_role("heading", name="My safety plan", exact=True)).to_be_visible()
        expect(page.get_by_text("I stop answering my phone")).to_be_visible()
        expect(page.get_by_role("link", name="555-0101")).to_have_attribute("href", "tel:5550101")
        pat.check_accessibility()
        # The pocket PDF opens from the page.
        pdf = page.request.get("/my/safety-plan.pdf")
        assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.body()[:5] == b"%PDF-"
        # The patient adds to it in their own words.
        page.get_by_role("link", name="Change it").click()
        pat.check_accessibility()
        page.get_by_label("My reasons for living").fill("My garden\nMy sister's kids")
        page.get_by_role("button", name="Save the safety plan").click()
        expect(page.get_by_text("Saved. Your care team can see it.")).to_be_visible()
        expect(page.get_by_text("My sister's kids")).to_be_visible()
    finally:
        pat.close()


def test_the_team_takes_the_alert_closes_it_and_reviews_the_plan(live, browser, ready):
    from sqlalchemy import select

    from concord.safety.models import SafetyAlert

    with live["factory"]() as session:
        alert = session.scalar(select(SafetyAlert).where(SafetyAlert.status == "open"))
        assert alert is not None, "the patient's answer raised an alert"
    pid = ready.patient.id
    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        page = cara.page
        banner = page.get_by_role("alert").filter(has_text="yours to act on")
        expect(banner).to_be_visible()
        banner.get_by_role("link", name=re.compile("Urgent: Pat")).click()
        cara.check_accessibility()
        expect(page.get_by_text("Thoughts that you would be better off dead")).to_be_visible()
        page.get_by_role("button", name="I am dealing with this").click()
        expect(page.get_by_text(re.compile("It is yours now"))).to_be_visible()
        # Closing needs an outcome (and a note, which the browser asks for itself): try
        # without saying what was done, then properly. What was typed is kept.
        page.get_by_role("textbox", name="Note").fill(
            "Called her: safe tonight, her sister is with her."
        )
        page.get_by_role("button", name="Close the alert").click()
        expect(page.get_by_text(re.compile("choose what was done"))).to_be_visible()
        expect(page.get_by_role("textbox", name="Note")).to_have_value(
            "Called her: safe tonight, her sister is with her."
        )
        cara.check_accessibility()
        page.get_by_label("Safety assessment done").check()
        page.get_by_label("Risk level now").select_option(label="High")
        page.get_by_role("button", name="Close the alert").click()
        expect(page.get_by_text("The alert is closed.")).to_be_visible()
        cara.check_accessibility()
        page.get_by_role("link", name="Review the safety plan").click()
        cara.check_accessibility()
        expect(page.get_by_label("Why it changed")).to_have_value("Reviewed after an alert")
        page.get_by_label("Things I can do on my own to feel better").fill("Water the garden")
        page.get_by_role("button", name="Save the safety plan").click()
        expect(page.get_by_text("Saved as a new version.")).to_be_visible()
        expect(page.get_by_text("Water the garden")).to_be_visible()
        cara.goto(f"/patients/{pid}/safety")
        expect(page.get_by_text(re.compile("Risk: High"))).to_be_visible()
    finally:
        cara.close()


def test_a_clinician_off_the_team_sees_neither_alert_nor_plan(live, browser, ready):
    otto = Visitor(browser, live["url"])
    try:
        otto.sign_in("otto@test.example.org")
        response = otto.page.goto(f"/patients/{ready.patient.id}/safety-plan")
        assert response.status == 404
        otto.page.goto("/alerts")
        expect(otto.page.get_by_text("No open alerts.")).to_be_visible()
    finally:
        otto.close()

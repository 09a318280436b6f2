"""Shared decision making in Debian's Chromium: the patient works through a decision aid at
home, the clinician opens it in the visit and records the decision, the choice is proposed in
the care plan, and the patient agrees to the revised plan."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Visitor

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def with_plan(live):
    from concord.audit.service import set_context, write_pending
    from concord.careplans import service as plans
    from tests.factories import acc_for, create_plan

    people = live["people"]
    with live["factory"]() as session:
        set_context(session, channel="system")
        if plans.current_plan(session, people.patient.id) is None:
            plan = create_plan(session, people, activate=True)
            for who in (people.patient_user, people.care_manager):
                plans.agree(
                    session,
                    access=acc_for(session, who, people.patient),
                    revision=plan.revision_number,
                )
        write_pending(session)
        session.commit()
    return people


def test_a_decision_made_together_from_home_to_the_plan(live, browser, with_plan):
    people = with_plan
    pat = Visitor(browser, live["url"])
    try:
        pat.sign_in("pat@patients.example.org")
        page = pat.page
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Decisions").click()
        pat.check_accessibility()
        page.get_by_role("button", name="Open Ways to treat depression").click()
        pat.check_accessibility()
        expect(page.get_by_role("table")).to_contain_text("How well it works")
        page.locator("summary", has_text="Go to talk therapy").click()
        page.get_by_role("checkbox", name="Learning skills I can keep using").check()
        page.get_by_role("checkbox", name="Not taking a pill each day").check()
        page.get_by_label("Which option are you leaning toward?").select_option("therapy")
        page.get_by_role("button", name="Save and show the fit").click()
        expect(
            page.get_by_text("Saved. Your care team can see what matters to you.")
        ).to_be_visible()
        fit = page.locator("#fit")
        expect(fit).to_contain_text("Learning skills I can keep using")
        expect(fit.locator(".fit-option").first).to_contain_text("good fit")
        pat.check_accessibility()
        page.get_by_label("Your question").fill("Can I do therapy by video after work?")
        page.get_by_role("button", name="Add the question").click()
        expect(page.get_by_text("Your question is saved.")).to_be_visible()
        sure = page.locator("#sure")
        for index in range(4):
            value = "no" if index == 0 else "yes"
            sure.locator("fieldset").nth(index).locator(f"input[value={value}]").check()
        sure.get_by_role("button", name="Save the answers").click()
        expect(page.get_by_text("not ready to decide yet")).to_be_visible()
        pat.check_accessibility()
    finally:
        pat.close()

    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        page = cara.page
        cara.goto(f"/patients/{people.patient.id}")
        page.get_by_role("navigation", name="About this patient").get_by_role(
            "link", name="Decisions"
        ).click()
        cara.check_accessibility()
        expect(page.get_by_text("1 waiting")).to_be_visible()
        page.get_by_role("link", name=re.compile("depression", re.I)).first.click()
        cara.check_accessibility()
        expect(page.get_by_text("Can I do therapy by video after work?")).to_be_visible()
        expect(page.locator("#before-h + dl")).to_contain_text("feeling sure about the choice")
        page.get_by_role("button", name=re.compile("^Mark answered")).click()
        expect(page.get_by_text("Saved.")).to_be_visible()
        record = page.locator("#record")
        record.get_by_label("The choice").select_option("therapy")
        record.get_by_label("Reasons, in the patient's words").fill(
            "I want skills I can keep, and no pills for now."
        )
        record.get_by_role("checkbox", name=re.compile("Theo Therapist")).check()
        record.get_by_role("button", name="Record the decision").click()
        expect(page.get_by_text("The decision is recorded.")).to_be_visible()
        cara.check_accessibility()
        page.get_by_role("link", name="Open the care plan").click()
        expect(page.get_by_text(re.compile("talk(ing)? therapy", re.I)).first).to_be_visible()
        cara.check_accessibility()
    finally:
        cara.close()

    pat = Visitor(browser, live["url"])
    try:
        pat.sign_in("pat@patients.example.org")
        page = pat.page
        pat.goto("/my/plan")
        page.get_by_role("button", name="Yes, I agree with this plan").click()
        pat.check_accessibility()
        pat.goto("/my/decisions")
        page.get_by_role("link", name=re.compile("depression", re.I)).first.click()
        expect(page.get_by_text("I want skills I can keep, and no pills for now.")).to_be_visible()
        pat.check_accessibility()
    finally:
        pat.close()

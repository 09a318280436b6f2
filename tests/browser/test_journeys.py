"""The main journeys, in Debian's Chromium, with axe-core on every page visited."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Visitor

pytestmark = pytest.mark.browser


def test_a_clinician_builds_a_plan(live, browser):
    people = live["people"]
    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        expect(cara.page.get_by_role("heading", name="My patients")).to_be_visible()
        cara.page.get_by_role("link", name="Pat Ient").click()
        cara.check_accessibility()
        page = cara.page
        page.get_by_role("button", name="Start a care plan").click()
        expect(page.get_by_text("This plan is a draft")).to_be_visible()
        cara.check_accessibility()

        # A goal, in the patient's words, with its SMART parts (HTMX: no page reload).
        goals = page.locator("#section-goals")
        goals.get_by_text("Add a goal").click()
        goals.get_by_label("Goal, in the patient's own words").fill("I want to enjoy cooking again")
        goals.get_by_label("Area of life").select_option("daily_functioning")
        goals.get_by_label("How we will measure it").fill("Meals cooked each week")
        goals.get_by_label("Target").fill("3 a week")
        goals.get_by_label("Due date").fill("2027-03-01")
        goals.get_by_role("button", name="Add").click()
        expect(page.locator("#section-goals .goal-statement")).to_have_text(
            "“I want to enjoy cooking again”"
        )
        cara.check_accessibility()

        # A milestone on that goal.
        goals = page.locator("#section-goals")
        goals.get_by_text("Add a milestone to this goal").click()
        goals.get_by_label("Milestone").fill("Cook one simple meal")
        goals.get_by_label("Target date").last.fill("2026-12-15")
        goals.get_by_role("button", name="Add").last.click()
        expect(page.locator("#section-goals .milestones")).to_contain_text("Cook one simple meal")

        # A treatment, with the therapist responsible.
        section = page.locator("#section-interventions")
        section.get_by_text("Add treatment or support").click()
        section.get_by_label("Type").select_option("psychotherapy")
        section.get_by_label("What").fill("Behavioural activation, weekly")
        section.get_by_label("Responsible").select_option(label="Theo Therapist")
        section.get_by_role("button", name="Add").click()
        expect(page.locator("#section-interventions")).to_contain_text("Theo Therapist")

        # An action step for the patient.
        section = page.locator("#section-action_steps")
        section.get_by_text("Add an action step").click()
        section.get_by_label("Step").fill("Buy ingredients for one meal")
        section.get_by_label("Due date").fill("2026-11-29")
        section.get_by_role("button", name="Add").click()
        expect(page.locator("#section-action_steps")).to_contain_text(
            "Buy ingredients for one meal"
        )

        # A mistake only the server can catch is shown beside the field; what was typed stays.
        section = page.locator("#section-concerns")
        section.get_by_text("Add a concern").click()
        section.get_by_label("Concern").fill("Low mood since the spring")
        section.get_by_label("Code system").select_option("icd10")
        section.get_by_label("Code", exact=True).fill("depression")
        section.get_by_role("button", name="Add").click()
        section = page.locator("#section-concerns")
        expect(section.locator(".error")).to_have_text(
            "must be an ICD-10-CM code such as F32.1 or F10.20"
        )
        expect(section.get_by_label("Concern")).to_have_value("Low mood since the spring")
        cara.check_accessibility()
        section.get_by_label("Code", exact=True).fill("F32.1")
        section.get_by_role("button", name="Add").click()
        expect(page.locator("#section-concerns")).to_contain_text("ICD-10-CM F32.1")

        page.get_by_role("button", name="Activate the plan").click()
        expect(page.locator("#section-status")).to_contain_text("Next review")
        page.get_by_role("button", name="Agree to this version as lead clinician").click()
        expect(page.locator("#section-status")).to_contain_text("The lead clinician agreed on")
        cara.check_accessibility()

        # Reading still works with no JavaScript at all.
        cara.goto(f"/patients/{people.patient.id}/plan/history")
        expect(page.get_by_text("Every version of")).to_be_visible()
    finally:
        cara.close()


def test_a_patient_proposes_a_goal_and_agrees_on_a_phone(live, browser):
    pat = Visitor(browser, live["url"], phone=True)
    try:
        pat.sign_in("pat@patients.example.org")
        page = pat.page
        expect(page.get_by_role("heading", name=re.compile("Hello, Pat"))).to_be_visible()
        page.get_by_role("link", name="Suggest a goal").first.click()
        pat.check_accessibility()
        page.get_by_label("My goal").fill("I want to walk my dog every morning")
        page.get_by_label("What part of your life is it about?").select_option("physical_health")
        page.get_by_role("button", name="Send to my team").click()
        expect(page.get_by_text("Your goal was sent to your care team")).to_be_visible()
        pat.check_accessibility()
        expect(page.locator("body")).to_contain_text("I want to walk my dog every morning")
        page.get_by_role("button", name="Yes, I agree with this plan").click()
        expect(page.get_by_text("Thank you. You agreed to your plan.")).to_be_visible()
        pat.check_accessibility()
        page.get_by_label("Your message").fill("Can my sister come next time?")
        page.get_by_role("button", name="Send to my team").click()
        expect(page.get_by_text("Your message was added")).to_be_visible()
        pat.goto("/my/access-log")
        expect(
            page.get_by_role("heading", name="Who has looked at or changed your record")
        ).to_be_visible()
        # The log reads at 390 px without sideways scrolling, in words.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        expect(page.locator("main")).to_contain_text("your care plan")
        expect(page.locator("main")).not_to_contain_text("CarePlan")
    finally:
        pat.close()


def test_a_patient_reads_their_plan_in_spanish(live, browser):
    people = live["people"]
    from tests.factories import PASSWORD

    with live["factory"]() as session:
        from concord.accounts.models import User

        user = session.get(User, people.patient_user.id)
        user.language = "es"
        session.commit()
    pat = Visitor(browser, live["url"], phone=True)
    try:
        pat.sign_in("pat@patients.example.org", PASSWORD)
        expect(pat.page.get_by_role("heading", name=re.compile("Hola, Pat"))).to_be_visible()
        pat.goto("/my/plan")
        expect(pat.page.get_by_role("heading", name="Sus metas")).to_be_visible()
    finally:
        with live["factory"]() as session:
            user = session.get(User, people.patient_user.id)
            user.language = "en"
            session.commit()
        pat.close()


def test_a_clinician_off_the_team_gets_not_found(live, browser):
    people = live["people"]
    otto = Visitor(browser, live["url"])
    try:
        otto.sign_in("otto@test.example.org")
        response = otto.goto(f"/patients/{people.patient.id}/plan")
        assert response.status == 404
        expect(otto.page.get_by_role("heading", name="Not found")).to_be_visible()
        expect(otto.page.locator("body")).not_to_contain_text("Pat Ient")
    finally:
        otto.close()


def test_a_family_member_sees_only_the_shared_plan(live, browser):
    fay = Visitor(browser, live["url"], phone=True)
    try:
        fay.sign_in("fay@family.example.org")
        expect(
            fay.page.get_by_role("heading", name=re.compile("Care plan for Pat"))
        ).to_be_visible()
        expect(fay.page.locator("body")).not_to_contain_text("N-1")
    finally:
        fay.close()

"""Check-ins in Debian's Chromium: one question per screen on a phone, all on one page on a
wide screen; crisis resources at once after a positive answer; the team's alert and chart."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Visitor

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def active_plan(live):
    """Both patients get an active plan, which schedules their PHQ-9 and GAD-7."""
    from concord.audit.service import set_context, write_pending
    from concord.careplans import service as plans
    from tests.factories import create_plan

    people = live["people"]
    with live["factory"]() as session:
        set_context(session, channel="system")
        for patient, lead in (
            (people.patient, people.care_manager),
            (people.other_patient, people.outsider),
        ):
            if plans.current_plan(session, patient.id) is None:
                create_plan(session, people, patient=patient, by=lead, activate=True)
        write_pending(session)
        session.commit()
    return people


def test_a_phone_shows_one_question_per_screen(live, browser, active_plan):
    pat = Visitor(browser, live["url"], phone=True)
    try:
        pat.sign_in("pat@patients.example.org")
        page = pat.page
        page.get_by_role("navigation").get_by_role("link", name="Check-ins").click()
        pat.check_accessibility()
        page.get_by_role("button", name=re.compile(r"^(Start|Continue)\s*: PHQ-9")).click()
        pat.check_accessibility()
        questions = page.locator("fieldset.question")
        expect(questions.nth(0)).to_be_visible()
        expect(questions.nth(1)).to_be_hidden()
        expect(page.locator(".step-status")).to_have_text("1 / 10")
        # Choosing an answer moves on to the next question.
        questions.nth(0).get_by_text("Several days").click()
        expect(questions.nth(1)).to_be_visible()
        expect(questions.nth(0)).to_be_hidden()
        page.get_by_role("button", name="Back").click()
        expect(questions.nth(0)).to_be_visible()
        page.get_by_role("button", name="Next").click()
        for n in range(1, 9):
            questions.nth(n).get_by_text("Not at all").click()
        # Save and finish later, then come back to the same place.
        page.get_by_role("button", name="Save and finish later").click()
        expect(page.get_by_role("heading", name=re.compile("Hello"))).to_be_visible()
        page.goto("/my/check-ins")
        page.get_by_role("button", name=re.compile(r"^Continue\s*: PHQ-9")).click()
        expect(page.locator("fieldset.question").nth(0).locator("input:checked")).to_have_count(1)
        page.get_by_role("button", name="Send my answers").click()
        expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
        pat.check_accessibility()
    finally:
        pat.close()


def test_a_wide_screen_shows_every_question_and_a_positive_answer_brings_help(
    live, browser, active_plan
):
    olive = Visitor(browser, live["url"])
    pat = olive
    try:
        olive.sign_in("olive@patients.example.org")
        page = olive.page
        page.goto("/my/check-ins")
        page.get_by_role("button", name=re.compile(r"^(Start|Continue)\s*: GAD-7")).click()
        questions = page.locator("fieldset.question")
        expect(questions).to_have_count(7)
        for n in range(7):
            expect(questions.nth(n)).to_be_visible()
        for n in range(7):
            questions.nth(n).get_by_text("More than half the days").click()
        page.get_by_role("button", name="Send my answers").click()
        expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
        # A PHQ-9 with question 9 answered above zero: crisis resources at once.
        page.goto("/my/check-ins")
        page.get_by_role("button", name=re.compile(r"^(Start|Continue)\s*: PHQ-9")).click()
        for n in range(9):
            page.locator("fieldset.question").nth(n).get_by_text("Several days").click()
        page.get_by_role("button", name="Send my answers").click()
        expect(
            page.get_by_role("heading", name=re.compile("You do not have to face this"))
        ).to_be_visible()
        expect(page.get_by_role("link", name="Call or text 988")).to_have_attribute(
            "href", "tel:988"
        )
        pat.check_accessibility()
        page.goto("/my/progress")
        expect(page.get_by_role("heading", name=re.compile("Generalized Anxiety"))).to_be_visible()
        pat.check_accessibility()
    finally:
        pat.close()


def test_the_team_sees_the_alert_the_chart_and_acknowledges(live, browser, active_plan):
    from concord import access
    from concord.actions import checkin
    from concord.audit.service import set_context, write_pending
    from concord.measures import service as measures

    people = active_plan
    with live["factory"]() as session:  # a phone check-in Cara recorded, with question 9 at 1
        set_context(session, channel="system")
        cara_access = access.patient_for(session, people.care_manager, people.patient.id)
        checkin.record_response(
            session,
            access=cara_access,
            instrument_code="PHQ-9",
            submission=measures.Submission(
                answers={str(i): 2 for i in range(1, 9)} | {"9": 1}, mode=measures.Mode.phone
            ),
        )
        write_pending(session)
        session.commit()
    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        page = cara.page
        expect(page.get_by_role("alert").filter(has_text="yours to act on")).to_be_visible()
        # The patient's overview: the plan, the alert and the PHQ-9 chart on one page.
        cara.goto(f"/patients/{people.patient.id}")
        expect(page.locator("canvas[data-chart='chart-PHQ-9']")).to_be_visible()
        assert page.evaluate(
            'Chart.getChart(document.querySelector("canvas[data-chart='
            "'chart-PHQ-9']\")) !== undefined"
        )
        cara.check_accessibility()
        cara.goto(f"/patients/{people.patient.id}/measures")
        expect(page.locator("canvas[data-chart='chart-PHQ-9']")).to_be_visible()
        # Chart.js drew on the canvas.
        drawn = page.evaluate(
            'Chart.getChart(document.querySelector("canvas[data-chart='
            "'chart-PHQ-9']\")) !== undefined"
        )
        assert drawn
        page.get_by_role("button", name="I am dealing with this").first.click()
        expect(page.get_by_text(re.compile("It is yours now"))).to_be_visible()
        cara.check_accessibility()
        cara.goto("/alerts")
        cara.goto(f"/patients/{people.patient.id}/measures/record/PHQ-9")
    finally:
        cara.close()


def test_a_wide_screen_will_not_send_with_a_question_unanswered(live, browser, active_plan):
    pat = Visitor(browser, live["url"])
    try:
        pat.sign_in("pat@patients.example.org")
        page = pat.page
        page.goto("/my/check-ins")
        page.get_by_role("button", name=re.compile(r"^(Start|Continue)\s*: GAD-7")).click()
        questions = page.locator("fieldset.question")
        expect(page.get_by_role("button", name="Back")).to_be_hidden()
        expect(page.get_by_role("button", name="Next")).to_be_hidden()
        for n in range(6):
            questions.nth(n).get_by_text("Several days").click()
        page.get_by_role("button", name="Send my answers").click()
        # Not sent: the question left out says so and has the focus.
        expect(questions.nth(6).get_by_role("alert")).to_contain_text("Choose an answer")
        expect(questions.nth(6).locator("input").first).to_be_focused()
        assert "/done" not in page.url
        pat.check_accessibility()
        page.goto("/my/check-ins")  # leave it unsent, with nothing saved
    finally:
        pat.close()


def test_a_phone_shows_only_the_current_steps_buttons_and_keeps_focus_on_the_questions(
    live, browser, active_plan
):
    """The hidden attribute hides Back, Next and "Send my answers" (a `display` rule for
    buttons overrode it, so all three showed on every step); Next will not skip a question
    left unanswered; and each answer moves focus to the next question, not to the page."""
    pat = Visitor(browser, live["url"], phone=True)
    try:
        pat.sign_in("pat@patients.example.org")
        page = pat.page
        page.goto("/my/check-ins")
        page.get_by_role("button", name=re.compile(r"^(Start|Continue)\s*: GAD-7")).click()
        questions = page.locator("fieldset.question")
        back = page.get_by_role("button", name="Back")
        next_ = page.get_by_role("button", name="Next")
        send = page.get_by_role("button", name="Send my answers")
        expect(back).to_be_hidden()
        expect(next_).to_be_visible()
        expect(send).to_be_hidden()
        # Next with nothing chosen says so and stays on the question.
        next_.click()
        expect(questions.nth(0)).to_be_visible()
        expect(questions.nth(0).get_by_role("alert")).to_contain_text("Choose an answer")
        expect(questions.nth(0).locator("input").first).to_be_focused()
        pat.check_accessibility()
        count = questions.count()
        for n in range(count - 1):
            questions.nth(n).get_by_text("Not at all").click()
            expect(questions.nth(n + 1)).to_be_visible()
            focused = page.evaluate(
                "() => document.activeElement.closest('fieldset.question')?.id || "
                "document.activeElement.tagName"
            )
            assert focused == f"q-{n + 2}", f"after answer {n + 1} focus is on {focused}"
            expect(back).to_be_visible()
            if n + 1 < count - 1:
                expect(next_).to_be_visible()
                expect(send).to_be_hidden()
        expect(next_).to_be_hidden()
        expect(send).to_be_visible()
        questions.nth(count - 1).get_by_text("Not at all").click()
        send.click()
        expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    finally:
        pat.close()

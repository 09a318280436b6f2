"""The registry in Debian's Chromium: the caseload, and the review-to-revision flow from the
care manager's question to the consultant's recommendation to the accepted change in the plan."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Visitor

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def enrolled(live):
    """Pat: an active plan, enrolled 9 weeks ago, PHQ-9 18 then 16 (not improving)."""
    from datetime import timedelta

    from concord.actions import checkin
    from concord.audit.service import set_context, write_pending
    from concord.careplans import service as plans
    from concord.clock import get_clock
    from concord.measures import service as measures
    from concord.registry import service as reg
    from tests.factories import acc_for, create_plan

    people = live["people"]
    clock = get_clock()
    with live["factory"]() as session:
        set_context(session, channel="system")
        if plans.current_plan(session, people.patient.id) is None:
            create_plan(session, people, activate=True)
            cm = acc_for(session, people.care_manager, people.patient)
            today = clock.now().date()
            reg.enroll(
                session,
                access=cm,
                data=reg.Enrolment(program="depression", started_on=today - timedelta(days=63)),
            )
            reg.log_contact(
                session,
                access=cm,
                data=reg.ContactIn(
                    "initial_assessment", "in_person", 50, today - timedelta(days=62)
                ),
            )
            for total, days in ((18, 62), (16, 1)):
                answers = {str(i): 2 for i in range(1, 9)} | {"9": 0, "difficulty": 1}
                extra = total - 16  # 8 items at 2 make 16; raise items to 3 for the rest
                for item in range(1, extra + 1):
                    answers[str(item)] = 3
                checkin.record_response(
                    session,
                    access=cm,
                    instrument_code="PHQ-9",
                    submission=measures.Submission(
                        answers=answers,
                        mode=measures.Mode.phone,
                        completed_at=clock.now() - timedelta(days=days),
                    ),
                )
        write_pending(session)
        session.commit()
    return people


def test_the_caseload_and_the_review_to_revision_flow(live, browser, enrolled):
    people = enrolled
    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        page = cara.page
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Registry").click()
        cara.check_accessibility()
        row = page.get_by_role("row", name=re.compile("Pat Ient"))
        expect(row).to_contain_text("not improving")
        expect(row).to_contain_text("Not 50% better at week 9")
        # Filter by a flag; the page remembers it.
        page.get_by_text("Filter, sort and choose columns").click()
        page.get_by_role("checkbox", name=re.compile(r"^not improving \(")).check()
        page.get_by_role("button", name="Show").click()
        expect(page.get_by_text("filtered")).to_be_visible()
        cara.check_accessibility()
        row.get_by_role("link", name="Pat Ient").click()
        cara.check_accessibility()
        page.get_by_text("Ask the psychiatric consultant").click()
        page.get_by_label("Your question").fill("Sertraline 50 mg for 8 weeks. Increase?")
        page.get_by_role("button", name="Add to the review queue").click()
        expect(page.get_by_text("Added to the psychiatric case review queue.")).to_be_visible()
    finally:
        cara.close()

    con = Visitor(browser, live["url"])
    try:
        con.sign_in("consultant@test.example.org")
        page = con.page
        con.goto("/registry/reviews")
        expect(page.get_by_text("Sertraline 50 mg for 8 weeks. Increase?")).to_be_visible()
        page.get_by_role("link", name="Pat Ient").click()
        con.check_accessibility()
        page.get_by_label("Minutes").last.fill("15")
        page.get_by_label("What you found").fill("Partial effect, well tolerated.")
        page.get_by_label("Recommendation 1: kind").select_option("increase_dose")
        page.get_by_label("Recommendation 1: what").fill("Increase sertraline to 100 mg daily")
        page.get_by_role("button", name="Record the review").click()
        expect(page.get_by_text(re.compile("Review recorded"))).to_be_visible()
        con.check_accessibility()
    finally:
        con.close()

    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        page = cara.page
        cara.goto(f"/patients/{people.patient.id}/registry#recommendations")
        item = page.locator("#recommendations li", has_text="Increase sertraline to 100 mg daily")
        item.get_by_role("button", name="Accept: add to the care plan").click()
        expect(page.get_by_text("Decision recorded.")).to_be_visible()
        cara.goto(f"/patients/{people.patient.id}/plan")
        expect(page.get_by_text("Increase sertraline to 100 mg daily").first).to_be_visible()
        cara.goto("/tasks")
        cara.goto("/registry/minutes")
        cara.goto("/registry/program")
    finally:
        cara.close()

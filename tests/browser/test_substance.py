"""The days-of-use calendar in Debian's Chromium (issue 19): the patient fills in a day at
phone width and sees the figure; the team sees it charted against the goal's target. Each page
passes axe."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from concord.audit.service import set_context, write_pending
from concord.careplans import service as plans
from concord.careplans.schemas import GoalIn, PlanStart
from tests.browser.conftest import Visitor
from tests.factories import acc_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def with_goal(live):
    people = live["people"]
    with live["factory"]() as session:
        set_context(session, channel="system")
        cm = acc_for(session, people.care_manager, people.patient)
        if plans.current_plan(session, people.patient.id) is None:
            plans.start_plan(session, access=cm, data=PlanStart(title="Care plan"))
        plans.add_item(
            session,
            access=cm,
            section="goals",
            data=GoalIn(
                statement="Smoke weed only at weekends",
                category="substance_use",
                substance="cannabis",
                use_aim="reduction",
                measure_instrument="days-of-use-30",
                measure_op="at_most",
                measure_value=8,
            ),
        )
        write_pending(session)
        session.commit()
    return people


def test_the_patient_fills_in_a_day_and_the_team_sees_the_chart(live, browser, with_goal):
    pat = Visitor(browser, live["url"], phone=True)
    try:
        pat.sign_in("pat@patients.example.org")
        page = pat.page
        pat.goto("/my/substance-use")
        calendar = page.locator('[data-calendar-form="cannabis"]')
        calendar.locator("xpath=ancestor::details").locator("summary").click()
        calendar.locator("select").first.select_option("true")
        calendar.get_by_role("button", name="Save these days").click()
        page.wait_for_load_state()
        pat.check_accessibility()
        expect(page.locator('[data-substance="cannabis"]')).to_contain_text(
            "Days of use in the last 30 days: 1 (1 of 30 days recorded)"
        )
    finally:
        pat.close()
    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        page = cara.page
        cara.goto(f"/patients/{with_goal.patient.id}/substance-use")
        expect(page.locator('canvas[data-chart="chart-cannabis-days-of-use-30"]')).to_be_visible()
        expect(page.locator("[data-goal-standing]")).to_contain_text("Smoke weed only at weekends")
    finally:
        cara.close()

"""The Quality page in Debian's Chromium: the process measures' trend charts are drawn by the
vendored Chart.js (concord/web/static/quality.js), and the page stays accessible."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from concord.audit.service import set_context, write_pending
from concord.clock import get_clock
from concord.registry import service as reg
from tests.browser.conftest import Visitor
from tests.factories import acc_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def followed_up(live):
    """Pat: enrolled 3 weeks ago, assessed, followed up a week later."""
    people = live["people"]
    today = get_clock().now().date()
    with live["factory"]() as session:
        set_context(session, channel="system")
        if reg.open_episode(session, people.patient.id) is None:
            cm = acc_for(session, people.care_manager, people.patient)
            reg.enroll(
                session,
                access=cm,
                data=reg.Enrolment(program="depression", started_on=today - timedelta(days=21)),
            )
            for kind, days in (("initial_assessment", 20), ("follow_up", 13)):
                reg.log_contact(
                    session,
                    access=cm,
                    data=reg.ContactIn(kind, "phone", 30, today - timedelta(days=days)),
                )
        write_pending(session)
        session.commit()
    return people


def test_the_process_measures_trend_is_drawn(live, browser, followed_up):
    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        page = cara.page
        year = get_clock().now().year
        cara.goto(f"/quality?start={year}-01-01&end={year}-12-31")
        name = "Follow-up within 4 weeks of the initial assessment"
        expect(page.get_by_role("heading", name=name)).to_be_visible()
        canvas = page.locator('canvas[data-quality-trend="follow_up_4_weeks"]')
        expect(canvas).to_be_visible()
        assert page.evaluate(
            "() => !!Chart.getChart(document.querySelector("
            "'canvas[data-quality-trend=\"follow_up_4_weeks\"]'))"
        )
    finally:
        cara.close()

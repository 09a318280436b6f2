"""The Medications tab's MOUD section in Debian's Chromium (issue 19): the team records a PDMP
check through the form and sees it with the MOUD state; the page stays accessible."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from concord.actions import medications as act
from concord.audit.service import set_context, write_pending
from concord.medications.schemas import MedicationIn
from tests.browser.conftest import Visitor
from tests.factories import acc_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def on_moud(live):
    people = live["people"]
    with live["factory"]() as session:
        set_context(session, channel="system")
        cm = acc_for(session, people.care_manager, people.patient)
        act.add(session, access=cm, data=MedicationIn(rxcui="1819", dose="8 mg"))
        write_pending(session)
        session.commit()
    return people


def test_the_team_records_a_pdmp_check_on_the_moud_section(live, browser, on_moud):
    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        page = cara.page
        cara.goto(f"/patients/{on_moud.patient.id}/medications")
        section = page.locator("[data-moud]")
        expect(section.get_by_text("No naloxone on file")).to_be_visible()
        section.locator("summary").click()
        page.locator("#moud-kind").select_option("pdmp_check")
        page.get_by_label("Result as recorded (PDMP check, urine drug test)").fill(
            "No other prescriber found"
        )
        section.get_by_role("button", name="Record it").click()
        page.wait_for_load_state()
        cara.check_accessibility()
        expect(page.locator('[data-moud-record="pdmp_check"]')).to_contain_text(
            "No other prescriber found"
        )
        expect(page.locator("[data-pdmp]")).to_contain_text("Last PDMP check")
    finally:
        cara.close()

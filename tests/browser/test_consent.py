"""Consent in Debian's Chromium (issue 18): the patient, on a phone, gives a consent in the
portal ("Share my record"), naming the primary care provider; the PCP, who did not see the
AUDIT-C before, then sees it on the patient's measures page. Every page is checked with axe."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Visitor

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def part2(live):
    """North a Part 2 program with the patient's episode and an AUDIT-C; Pat Lee, a PCP at
    South, on the care team (tests/part2's world)."""
    from concord.audit.service import set_context
    from tests.part2.test_part2 import make_world

    people = live["people"]
    with live["factory"]() as session:
        set_context(session, channel="system")
        pcp, _ = make_world(session, people)
        return people, pcp.email


def _audit_c_shown(visitor: Visitor, patient_id) -> bool:
    """The AUDIT-C's scores on the page (its chart), not the instrument offered in the list of
    questionnaires to record."""
    visitor.goto(f"/patients/{patient_id}/measures")
    return 'data-chart="chart-AUDIT-C"' in visitor.page.content()


def test_the_patient_consents_in_the_portal_and_the_pcp_then_sees_the_audit_c(live, browser, part2):
    people, pcp_email = part2
    doctor = Visitor(browser, live["url"])
    pat = Visitor(browser, live["url"], phone=True)
    try:
        doctor.sign_in(pcp_email)
        assert not _audit_c_shown(doctor, people.patient.id)

        pat.sign_in("pat@patients.example.org")
        page = pat.page
        pat.goto("/my/consents")
        page.get_by_role("link", name="Share my record").click()
        page.wait_for_load_state()
        pat.check_accessibility()
        page.get_by_role("link", name="One clinician who treats me", exact=False).click()
        page.wait_for_load_state()
        pat.check_accessibility()
        expect(page.get_by_text("42 CFR 2.31(a)(2)")).to_be_visible()
        page.get_by_label("Choose the person").select_option(label="Pat Lee (South Clinic)")
        page.get_by_label("My full name (signature)").fill(people.patient.full_name.lower())
        page.get_by_role("button", name="Sign and share").click()
        page.wait_for_load_state()
        pat.check_accessibility()
        expect(page.get_by_text("Done. Your consent is signed")).to_be_visible()
        expect(page.get_by_text("with Pat Lee for treatment").first).to_be_visible()

        assert _audit_c_shown(doctor, people.patient.id)
    finally:
        pat.close()
        doctor.close()

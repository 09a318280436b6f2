"""The 42 CFR 2.32 notice on every door that discloses Part 2 records outside the program
(issue 18): the JSON API's answers carry it as a header (ADR 0022), an HTMX fragment sends it
into the page's footer out of band, and (§ 2.32(b), the reading of ADR 0022) each names the
consent the disclosure was made under: a Link to the consent's JSON, and on a page the consent's
plain summary with a link to read it. Nothing of the kind where no Part 2 record went out."""

from __future__ import annotations

import uuid

from concord.careplans import service as plans
from concord.careplans.schemas import GoalIn
from concord.disclosures.notice import STATEMENT
from concord.web.headers import NOTICE_HEADER
from tests.careplans.test_api import bearer
from tests.careplans.test_pages import HX, goal_form
from tests.conftest import commit, csrf_of
from tests.factories import acc_for, create_plan
from tests.part2.test_part2 import _tpo, make_world

HEADER = NOTICE_HEADER.decode()


def test_the_json_api_carries_the_notice_and_the_consent_only_when_part2_went_out(
    client, session, people
):
    pcp, _ = make_world(session, people)
    url = f"/api/v1/patients/{people.patient.id}/measures/responses"
    without = client.get(url, headers=bearer(session, pcp))
    assert without.status_code == 200 and HEADER not in without.headers
    inside = client.get(url, headers=bearer(session, people.care_manager))  # the program's own
    assert "AUDIT-C" in inside.text and HEADER not in inside.headers
    consent = _tpo(session, people, pcp)
    shown = client.get(url, headers=bearer(session, pcp))
    assert "AUDIT-C" in shown.text
    assert STATEMENT in shown.headers[HEADER] and "42 CFR 2.32(a)(2)" in shown.headers[HEADER]
    link = f"</api/v1/patients/{people.patient.id}/consents/{consent.id}>"
    assert link in shown.headers["link"] and 'rel="describedby"' in shown.headers["link"]
    # The recipient can open it: the consent's plain summary and every element.
    read = client.get(link.strip("<>"), headers=bearer(session, pcp))
    assert read.status_code == 200 and "may share" in read.json()["summary"]


def test_a_page_explains_the_consent_beside_the_notice(client, session, people, sign_in):
    pcp, _ = make_world(session, people)
    _tpo(session, people, pcp)
    sign_in(pcp.email)
    page = client.get(f"/patients/{people.patient.id}/measures")
    assert STATEMENT in page.text and "data-part2-consent" in page.text
    assert "Shared with you under the patient's consent (42 CFR 2.32(b))" in page.text
    assert "may share your substance-use treatment records with Pat Lee" in page.text
    assert f'href="/patients/{people.patient.id}/consents"' in page.text


def test_an_htmx_fragment_with_part2_records_sends_the_notice_out_of_band(
    client, session, people, sign_in
):
    pcp, _ = make_world(session, people)
    create_plan(session, people, activate=True)
    # A goal written by the program's own staff (the care manager at North) is Part 2.
    plans.add_item(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        section="goals",
        data=GoalIn(statement="Stay sober through the holidays", category="symptoms"),
    )
    commit(session)
    token = sign_in(pcp.email)
    url = f"/patients/{people.patient.id}/plan/goals"
    plain = client.post(url, data=goal_form(token), headers=HX)
    assert plain.status_code == 200 and "Stay sober" not in plain.text
    assert STATEMENT not in plain.text
    _tpo(session, people, pcp, categories=["substance_use", "care_plan"])
    page = client.get(f"/patients/{people.patient.id}/plan")
    shown = client.post(
        url, data={**goal_form(csrf_of(page.text)), "idem": uuid.uuid4().hex}, headers=HX
    )
    assert shown.status_code == 200 and "Stay sober" in shown.text
    assert '<div id="part2-notice" hx-swap-oob="true">' in shown.text
    assert STATEMENT in shown.text and HEADER in shown.headers

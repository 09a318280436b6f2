"""Each state change of a referral is shown on the patient's plan (issue 23): the team's plan
page, its history page and the patient's "My plan" list every recorded change of every
referral (who, when, what, why). A change is not plan content: it makes no plan version and
asks for no new agreement. A reader the patient's consent refuses social needs sees none."""

from __future__ import annotations

import re

from sqlalchemy import select

from concord.careplans.models import CarePlan
from concord.consents import service as consents
from concord.consents.schemas import ConsentIn
from concord.social import service as social
from tests.conftest import commit
from tests.factories import acc_for, create_plan
from tests.social import test_referrals as referrals
from tests.social.test_referrals import SECRET, me, send

food_bank = referrals.food_bank  # the fixture: the food bank in the directory

CM, PAT, THEO = "cara@test.example.org", "pat@patients.example.org", "theo@test.example.org"


def revision_of(session, people) -> int:
    session.expire_all()
    plan = session.scalar(select(CarePlan).where(CarePlan.patient_id == people.patient.id))
    return plan.revision_number


def items(html: str, list_id: str) -> list[str]:
    """The text of each item of the list with this id."""
    found = re.search(rf'<ol class="small" id="{list_id}">(.*?)</ol>', html, re.S)
    assert found, list_id
    return [
        " ".join(re.sub(r"<[^>]+>", "", li).split())
        for li in re.findall(r"<li>(.*?)</li>", found.group(1), re.S)
    ]


def test_each_change_of_a_referral_is_on_the_plan_pages_and_makes_no_plan_version(
    client, session, people, sign_in, food_bank
):
    create_plan(session, people, activate=True)
    referral, token = send(session, people, food_bank)
    commit(session)
    before = revision_of(session, people)
    social.partner_transition(session, token=token, secret=SECRET, to="accepted")
    social.partner_transition(session, token=token, secret=SECRET, to="in-progress")
    social.partner_transition(
        session, token=token, secret=SECRET, to="completed", outcome="Two weeks of groceries"
    )
    social.patient_report(
        session, access=me(session, people), referral_id=referral.id, report="got_help"
    )
    commit(session)
    # The loop moved four times; the plan did not change.
    assert revision_of(session, people) == before

    sign_in(CM)
    page = client.get(f"/patients/{people.patient.id}/plan")
    assert page.status_code == 200
    assert 'id="plan-referrals"' in page.text
    assert "Riverside Food Bank" in page.text
    shown = items(page.text, f"plan-referral-history-{referral.id}")
    assert len(shown) == 5
    assert "Sent, waiting for an answer (care team)" in shown[0]
    assert "Accepted (the service)" in shown[1]
    assert "In progress (the service)" in shown[2]
    assert "Completed (the service): Two weeks of groceries" in shown[3]
    assert "The patient says they got help" in shown[4]
    assert f'id="plan-referral-status-{referral.id}"' in page.text

    history = client.get(f"/patients/{people.patient.id}/plan/history")
    assert history.status_code == 200
    section = history.text.split('id="referral-changes"', 1)[1]
    assert "Completed (the service): Two weeks of groceries" in section
    # Newest first.
    assert section.index("The patient says they got help") < section.index("Accepted (the")

    sign_in(PAT)
    mine = client.get("/my/plan")
    assert mine.status_code == 200
    assert "My referrals to community services" in mine.text
    shown = items(mine.text, f"plan-referral-history-{referral.id}")
    assert "Completed (the service): Two weeks of groceries" in shown[3]
    assert 'href="/my/social"' in mine.text


def test_a_reader_refused_social_needs_sees_no_referral_on_the_plan(
    client, session, people, sign_in, food_bank
):
    create_plan(session, people, activate=True)
    referral, token = send(session, people, food_bank)
    social.partner_transition(session, token=token, secret=SECRET, to="accepted")
    consents.record(
        session,
        access=acc_for(session, people.patient_user, people.patient),
        data=ConsentIn(
            grantee_kind="user",
            grantee_id=people.therapist.id,
            scope="categories",
            categories=["social_needs"],
            provision="deny",
            purposes=["treatment"],
            method="portal_signature",
            signed_name="Pat Ient",
        ),
    )
    commit(session)
    sign_in(THEO)
    page = client.get(f"/patients/{people.patient.id}/plan")
    assert page.status_code == 200
    assert 'id="plan-referrals"' in page.text  # the section, empty for this reader
    assert f"plan-referral-{referral.id}" not in page.text
    assert "Riverside Food Bank" not in page.text
    history = client.get(f"/patients/{people.patient.id}/plan/history")
    assert "Riverside Food Bank" not in history.text
    # The care manager, whom the consent does not name, sees it.
    sign_in(CM)
    assert f"plan-referral-{referral.id}" in client.get(f"/patients/{people.patient.id}/plan").text

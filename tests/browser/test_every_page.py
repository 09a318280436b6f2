"""Every kind of page, as each kind of person sees it, checked with axe-core; and the pages
read and edit with JavaScript switched off."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Visitor
from tests.conftest import NOW

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def with_plan(live):
    """Give the shared patient a plan with one of everything, once for this module."""
    from concord.audit.service import set_context, write_pending
    from concord.careplans import service as plans
    from concord.careplans.schemas import (
        BarrierIn,
        ConcernIn,
        ContingencyIn,
        InterventionIn,
        MilestoneIn,
        StrengthIn,
    )
    from concord.clock import get_clock
    from tests.factories import acc_for, create_plan

    people = live["people"]
    with live["factory"]() as session:
        set_context(session, channel="system")
        if plans.current_plan(session, people.patient.id) is None:
            get_clock()  # the fixed test clock
            plan = create_plan(session, people, activate=True)
            a = acc_for(session, people.care_manager, people.patient)
            goal = plans.load_contents(session, plan).goals[0]
            plans.add_item(
                session,
                access=a,
                section="concerns",
                data=ConcernIn(description="Low mood", code_system="icd10", code="F32.1"),
            )
            plans.add_item(
                session,
                access=a,
                section="milestones",
                data=MilestoneIn(goal_id=goal.id, description="First walk"),
            )
            plans.add_item(
                session,
                access=a,
                section="interventions",
                data=InterventionIn(
                    kind="education", description="Reading", responsible_id=people.therapist.id
                ),
            )
            plans.add_item(
                session, access=a, section="strengths", data=StrengthIn(description="Patient")
            )
            plans.add_item(
                session,
                access=a,
                section="barriers",
                data=BarrierIn(kind="money", description="Bus fare", way_around="Pass"),
            )
            plans.add_item(
                session,
                access=a,
                section="contingencies",
                data=ContingencyIn(if_this="I miss a visit", then_we="We call"),
            )
            plans.add_comment(session, access=a, body="Welcome")
            write_pending(session)
            session.commit()
    return people


@pytest.fixture(scope="module")
def with_safety(live, with_plan):
    """An open alert, a safety plan, and the plan shared with Fay, once for this module."""
    from sqlalchemy import select

    from concord.actions import checkin
    from concord.audit.service import set_context, write_pending
    from concord.measures import service as measures
    from concord.patients.models import RelatedPerson
    from concord.safety import plans as safety_plans
    from concord.safety.models import SafetyAlert
    from tests.factories import acc_for

    people = with_plan
    with live["factory"]() as session:
        set_context(session, channel="system")
        alert = session.scalar(select(SafetyAlert))
        if alert is None:
            a = acc_for(session, people.care_manager, people.patient)
            alert = checkin.record_response(
                session,
                access=a,
                instrument_code="ASQ",
                submission=measures.Submission(
                    answers={"1": 1, "2": 0, "3": 0, "4": 0, "5": 0}, mode=measures.Mode.in_person
                ),
            ).alert
            safety_plans.save(
                session,
                access=a,
                base_version=0,
                reason="Written together",
                content={
                    "warning_signs": ["Not sleeping"],
                    "people": [{"name": "Fay", "contact": "555-0101"}],
                    "reasons": ["My garden"],
                },
            )
            fay = session.scalar(
                select(RelatedPerson).where(RelatedPerson.user_id == people.family.id)
            )
            safety_plans.set_share(session, access=a, related_person_id=fay.id, share=True)
            from concord.decisions import service as ds

            me = acc_for(session, people.patient_user, people.patient)
            open_one = ds.start(session, access=me, aid_id="depression-treatment")
            aid = ds.aid_of(open_one)
            ds.save_values(session, access=me, decision_id=open_one.id, values=[aid.values[0].id])
            ds.add_question(session, access=me, decision_id=open_one.id, text="How long?")
            ds.save_sure(
                session,
                access=me,
                decision_id=open_one.id,
                answers=dict.fromkeys(ds.SURE_ITEMS, True) | {"sure": False},
            )
            done = ds.start(session, access=me, aid_id="opioid-use-medications")
            ds.record_outcome(
                session,
                access=a,
                decision_id=done.id,
                outcome=ds.Outcome(
                    "buprenorphine", "At home.", ["buprenorphine", "methadone"], NOW.date(), []
                ),
            )
            write_pending(session)
            session.commit()
            people.decisions = (open_one.id, done.id)
        people.alert_id = alert.id
    return people


def pages_for(people):
    pid = people.patient.id
    aid = getattr(people, "alert_id", None)
    decisions = getattr(people, "decisions", ())
    return {
        "cara@test.example.org": [
            "/patients",
            "/patients?show=awaiting_agreement",
            f"/patients/{pid}",
            f"/patients/{pid}/plan",
            f"/patients/{pid}/team",
            f"/patients/{pid}/plan/history?from=1&to=3",
            "/steps",
            "/account",
            "/account/password",
            "/patients/new",
            "/account/mfa/setup",
            "/alerts",
            "/alerts?closed=1",
            f"/patients/{pid}/alerts/{aid}",
            f"/patients/{pid}/safety",
            f"/patients/{pid}/safety-plan",
            f"/patients/{pid}/safety-plan?edit=1",
            f"/patients/{pid}/safety-plan/versions/1",
            "/safety/figures",
            f"/patients/{pid}/registry",
            f"/patients/{pid}/relapse-plan",
            f"/patients/{pid}/relapse-plan?edit=1",
            "/registry",
            "/registry/reviews",
            "/registry/program",
            "/registry/minutes",
            "/tasks",
            f"/patients/{pid}/decisions",
            *(f"/patients/{pid}/decisions/{d}" for d in decisions),
            "/decisions/collaborate",
            f"/patients/{pid}/consents",
            f"/patients/{pid}/visits",
            f"/patients/{pid}/timeline",
            "/visits",
            "/visits?view=week",
            "/notices",
            "/notifications/settings",
        ],
        "pat@patients.example.org": [
            "/my",
            "/my/plan",
            "/my/plan/propose",
            "/my/people",
            "/my/access-log",
            "/account",
            "/my/safety-plan",
            "/my/safety-plan?edit=1",
            "/my/safety-plan/people",
            "/my/relapse-plan",
            "/my/relapse-plan?edit=1",
            "/my/decisions",
            *(f"/my/decisions/{d}" for d in decisions),
            "/my/consents",
            "/my/consents/share",
            "/my/consents/share?template=treating-providers",
            "/my/consents/share?template=family-member",
            "/my/apps",
            "/my/visits",
            "/notices",
            "/notifications/settings",
        ],
        "fay@family.example.org": ["/shared", f"/shared/{pid}", f"/shared/{pid}/safety-plan"],
        "admin@test.example.org": [
            "/admin/users",
            "/admin/users/new",
            f"/admin/users/{people.therapist.id}",
            "/admin/patients",
            f"/admin/patients/{pid}",
            "/admin/settings",
            "/admin/risk-rules",
            "/admin/messages",
            "/ehr/imports",
            "/safety/figures",
            "/registry/minutes",
            "/registry/program",
            "/admin/part2",
            "/admin/smart-apps",
            "/privacy/notices",
        ],
        "otto@test.example.org": [f"/patients/{pid}/plan", "/no/such/page"],
    }


@pytest.mark.parametrize(
    "email",
    [
        "cara@test.example.org",
        "pat@patients.example.org",
        "fay@family.example.org",
        "admin@test.example.org",
        "otto@test.example.org",
    ],
)
def test_every_page_has_no_serious_accessibility_problem(live, browser, with_safety, email):
    visitor = Visitor(browser, live["url"], phone=email.endswith("patients.example.org"))
    try:
        visitor.sign_in(email)
        for path in pages_for(with_safety)[email]:
            response = visitor.goto(path)
            if email != "otto@test.example.org" and path != "/no/such/page":
                assert response.status == 200, f"{email} {path}: {response.status}"
        # The sign-in page and its error, signed out.
        visitor.context.clear_cookies()
        visitor.goto("/sign-in")
        visitor.page.get_by_label("Email").fill(email)
        visitor.page.get_by_label("Password").fill("wrong password!!")
        visitor.page.get_by_role("button", name="Sign in").click()
        visitor.check_accessibility()
    finally:
        visitor.close()


def test_the_editor_opens_every_form_without_problems(live, browser, with_plan):
    """Open every edit and add form on the plan page at once, then check the page."""
    cara = Visitor(browser, live["url"])
    try:
        cara.sign_in("cara@test.example.org")
        cara.goto(f"/patients/{with_plan.patient.id}/plan")
        cara.page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        cara.check_accessibility()
    finally:
        cara.close()


def test_reading_and_editing_work_without_javascript(live, browser, with_plan):
    context = browser.new_context(java_script_enabled=False, base_url=live["url"])
    page = context.new_page()
    try:
        page.goto("/sign-in")
        page.get_by_label("Email").fill("cara@test.example.org")
        page.get_by_label("Password").fill("correct horse battery")
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"/patients/{with_plan.patient.id}/plan")
        expect(page.locator("#section-goals")).to_contain_text("I want to feel better")
        strengths = page.locator("#section-strengths")
        strengths.get_by_text("Add a strength").click()  # <details> opens without script
        page.locator("#strengths-add-description").fill("Keeps a diary")
        strengths.get_by_role("button", name="Add").last.click()
        expect(page).to_have_url(
            f"{live['url']}/patients/{with_plan.patient.id}/plan?done=added#section-strengths"
        )
        expect(page.locator("#section-strengths")).to_contain_text("Keeps a diary")
    finally:
        context.close()

"""Acting on an alert: acknowledge, close with an outcome and a note, follow up; the patient's
risk status; the pages; who may see what; and what happens when the mail server is down."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from concord.errors import Conflict, InvalidInput, NotFound
from concord.outbox import FakeMailer, OutboxMessage, send_pending
from concord.safety.alerts import Closing, acknowledge
from concord.safety.alerts import close as close_alert
from concord.safety.figures import figures
from concord.safety.models import AlertEvent, SafetyAlert
from concord.safety.risk import current_risk, risk_history
from tests.conftest import commit, csrf_of
from tests.factories import acc_for
from tests.safety.conftest import asq, phq9, respond

CM = "cara@test.example.org"
THEO = "theo@test.example.org"
OTTO = "otto@test.example.org"


def high_alert(session, people):
    alert = respond(session, people, "PHQ-9", phq9([1, 1, 1, 1, 1, 1, 1, 1, 1])).alert
    commit(session)
    return alert


def close(session, people, alert, user=None, **fields):
    closing = Closing(
        **{"outcome": "assessed", "risk_after": "moderate", "note": "Seen.", **fields}
    )
    result = close_alert(
        session,
        access=acc_for(session, user or people.care_manager, people.patient),
        alert_id=alert.id,
        closing=closing,
    )
    commit(session)
    return result


class TestClosing:
    @pytest.mark.parametrize(
        ("fields", "problem_field"),
        [
            ({"outcome": ""}, "outcome"),
            ({"outcome": "forgot"}, "outcome"),
            ({"note": "  "}, "note"),
            ({"risk_after": None}, "risk_after"),  # an assessment must say what it found
            ({"risk_after": "severe"}, "risk_after"),
            ({"note": "x" * 5001}, "note"),
        ],
    )
    def test_it_needs_an_outcome_and_a_note(self, session, people, plan, fields, problem_field):
        alert = high_alert(session, people)
        with pytest.raises(InvalidInput) as caught:
            close(session, people, alert, **fields)
        assert problem_field in caught.value.errors
        session.rollback()
        session.refresh(alert)
        assert alert.status == "open" and alert.closed_at is None

    def test_the_follow_up_must_be_ahead_and_within_90_days(self, session, people, plan, clock):
        alert = high_alert(session, people)
        for when in (clock.now() - timedelta(minutes=1), clock.now() + timedelta(days=91)):
            with pytest.raises(InvalidInput) as caught:
                close(session, people, alert, follow_up_due_at=when)
            assert "follow_up_due_at" in caught.value.errors
            session.rollback()

    def test_closing_records_everything_and_sets_the_risk_status(
        self, session, people, plan, clock
    ):
        alert = high_alert(session, people)
        assert current_risk(session, people.patient.id).tier == "high"
        clock.advance(minutes=20)
        close(
            session,
            people,
            alert,
            user=people.therapist,
            risk_after="none",
            note="Safe; plan reviewed.",
        )
        session.refresh(alert)
        assert alert.status == "closed"
        assert (alert.closed_by_id, alert.closed_at) == (people.therapist.id, clock.now())
        # Closing without acknowledging first counts as acknowledging.
        assert (alert.acknowledged_by_id, alert.acknowledged_at) == (
            people.therapist.id,
            clock.now(),
        )
        assert (alert.outcome, alert.risk_after, alert.note) == (
            "assessed",
            "none",
            "Safe; plan reviewed.",
        )
        assert alert.follow_up_due_at == clock.now() + timedelta(hours=48)
        status = current_risk(session, people.patient.id)
        assert status.tier is None and status.reason == "assessment"
        with pytest.raises(Conflict):
            close(session, people, alert)

    def test_the_risk_status_never_drops_below_an_alert_still_open(self, session, people, plan):
        first = respond(session, people, "ASQ", asq(2)).alert  # urgent
        second = high_alert(session, people)
        assert current_risk(session, people.patient.id).tier == "urgent"
        close(session, people, second, risk_after="none")
        assert current_risk(session, people.patient.id).tier == "urgent"
        close(session, people, first, risk_after="moderate")
        assert current_risk(session, people.patient.id).tier == "moderate"
        history = risk_history(session, people.patient.id)
        assert [h.tier for h in history] == ["moderate", "urgent"]

    def test_an_outcome_other_than_an_assessment_keeps_the_risk_status(self, session, people, plan):
        alert = high_alert(session, people)
        close(
            session,
            people,
            alert,
            outcome="unreachable",
            risk_after=None,
            note="Called twice, left a message; letter sent.",
        )
        assert current_risk(session, people.patient.id).tier == "high"

    def test_acknowledging_twice_is_refused_naming_who(self, session, people, plan):
        alert = high_alert(session, people)
        acknowledge(
            session, access=acc_for(session, people.therapist, people.patient), alert_id=alert.id
        )
        commit(session)
        with pytest.raises(Conflict) as caught:
            acknowledge(
                session,
                access=acc_for(session, people.care_manager, people.patient),
                alert_id=alert.id,
            )
        assert "Theo Therapist" in caught.value.message


class TestWhoMaySee:
    def test_a_clinician_off_the_team_sees_no_alert(self, client, session, people, plan, sign_in):
        alert = high_alert(session, people)
        sign_in(OTTO)
        assert client.get(f"/patients/{people.patient.id}/alerts/{alert.id}").status_code == 404
        assert client.get(f"/alerts/{alert.id}").status_code == 404
        assert client.get(f"/patients/{people.patient.id}/safety").status_code == 404
        assert str(alert.id) not in client.get("/alerts").text
        assert "No open alerts" in client.get("/alerts").text
        with pytest.raises(NotFound):
            acc_for(session, people.outsider, people.patient)

    def test_nobody_off_the_team_can_act_on_it(self, client, session, people, plan, sign_in):
        alert = high_alert(session, people)
        token = sign_in(OTTO)
        for action in ("acknowledge", "close", "follow-up"):
            response = client.post(
                f"/patients/{people.patient.id}/alerts/{alert.id}/{action}",
                data={
                    "csrf_token": token,
                    "outcome": "assessed",
                    "note": "x",
                    "risk_after": "none",
                },
            )
            assert response.status_code == 404
        session.refresh(alert)
        assert alert.status == "open"

    def test_the_patient_and_family_see_no_alert_pages(
        self, client, session, people, plan, sign_in
    ):
        alert = high_alert(session, people)
        for email in (
            "pat@patients.example.org",
            "fay@family.example.org",
            "admin@test.example.org",
        ):
            sign_in(email)
            assert client.get(f"/patients/{people.patient.id}/alerts/{alert.id}").status_code == 404
            assert client.get("/alerts").status_code == 200
            assert str(alert.id) not in client.get("/alerts").text

    def test_an_alert_of_another_patient_is_not_found_under_this_one(
        self, client, session, people, plan, sign_in
    ):
        alert = high_alert(session, people)
        sign_in(CM)
        other = uuid.uuid4()
        assert client.get(f"/patients/{people.patient.id}/alerts/{other}").status_code == 404
        assert client.get(f"/patients/{people.patient.id}/alerts/not-an-id").status_code == 404
        assert client.get(f"/patients/{people.patient.id}/alerts/{alert.id}").status_code == 200


class TestThePages:
    def test_the_alert_page_shows_the_answers_the_owner_the_chain_and_the_deadline(
        self, client, session, people, plan, sign_in
    ):
        alert = high_alert(session, people)
        sign_in(CM)
        page = client.get(f"/patients/{people.patient.id}/alerts/{alert.id}").text
        assert "High safety alert" in page
        assert "Thoughts that you would be better off dead" in page and "Several days" in page
        assert "Cara Manager" in page and "Dr Con Sultant" in page
        assert "Acknowledge by" in page and "4 hours for this tier" in page
        assert "I am dealing with this" in page

    def test_acknowledge_then_close_through_the_pages(self, client, session, people, plan, sign_in):
        alert = high_alert(session, people)
        token = sign_in(THEO)
        taken = client.post(
            f"/patients/{people.patient.id}/alerts/{alert.id}/acknowledge",
            data={"csrf_token": token},
        )
        assert taken.status_code == 303
        page = client.get(taken.headers["location"]).text
        assert "It is yours now" in page
        refused = client.post(
            f"/patients/{people.patient.id}/alerts/{alert.id}/close",
            data={"csrf_token": token, "idem": uuid.uuid4().hex, "outcome": "assessed", "note": ""},
        )
        assert refused.status_code == 422
        assert (
            "write what happened" in refused.text
            and "say what the assessment found" in refused.text
        )
        session.refresh(alert)
        assert alert.status == "acknowledged"
        idem = uuid.uuid4().hex
        form = {
            "csrf_token": token,
            "idem": idem,
            "outcome": "assessed",
            "risk_after": "moderate",
            "note": "Talked for 30 minutes. Safe tonight; sister staying over.",
            "follow_up_due_at": "2026-11-24T10:00",
        }
        closed = client.post(f"/patients/{people.patient.id}/alerts/{alert.id}/close", data=form)
        assert closed.status_code == 303
        again = client.post(f"/patients/{people.patient.id}/alerts/{alert.id}/close", data=form)
        assert again.status_code == 303  # the same submission: no second close, no error
        page = client.get(closed.headers["location"]).text
        assert "The alert is closed." in page and "Create a safety plan" in page
        session.refresh(alert)
        # 10:00 in the organization's zone (Chicago, UTC-6 in November) is 16:00 UTC.
        assert alert.follow_up_due_at.isoformat() == "2026-11-24T16:00:00+00:00"
        assert (
            len(session.scalars(select(AlertEvent).where(AlertEvent.kind == "closed")).all()) == 1
        )

    def test_a_risk_flag_raised_from_the_safety_page(self, client, session, people, plan, sign_in):
        token = sign_in(THEO)
        page = client.get(f"/patients/{people.patient.id}/safety")
        assert "Raise a risk flag" in page.text and "No current risk flag." in page.text
        refused = client.post(
            f"/patients/{people.patient.id}/safety/flag",
            data={"csrf_token": token, "idem": uuid.uuid4().hex, "tier": "", "reason": ""},
        )
        assert refused.status_code == 422 and session.scalars(select(SafetyAlert)).all() == []
        raised = client.post(
            f"/patients/{people.patient.id}/safety/flag",
            data={
                "csrf_token": token,
                "idem": uuid.uuid4().hex,
                "tier": "high",
                "reason": "Gave away his guitar.",
            },
        )
        assert raised.status_code == 303
        alert = session.scalar(select(SafetyAlert))
        assert (alert.tier, alert.raised_by_id, alert.owner_id) == (
            "high",
            people.therapist.id,
            people.care_manager.id,
        )
        assert "Gave away his guitar." in client.get(raised.headers["location"]).text
        safety_page = client.get(f"/patients/{people.patient.id}/safety").text
        assert "Risk: High" in safety_page

    def test_the_risk_status_shows_on_every_patient_page_and_the_list(
        self, client, session, people, plan, sign_in
    ):
        high_alert(session, people)
        sign_in(THEO)
        for path in ("", "/plan", "/measures", "/team", "/safety"):
            assert "Risk: High" in client.get(f"/patients/{people.patient.id}{path}").text
        listing = client.get("/patients").text
        assert "High" in listing

    def test_follow_up_recorded_through_the_page(self, client, session, people, plan, sign_in):
        alert = high_alert(session, people)
        close(session, people, alert)
        token = sign_in(THEO)
        done = client.post(
            f"/patients/{people.patient.id}/alerts/{alert.id}/follow-up",
            data={"csrf_token": token, "follow_up_note": "Phoned; she is OK."},
        )
        assert done.status_code == 303
        session.refresh(alert)
        assert (
            alert.follow_up_by_id == people.therapist.id
            and alert.follow_up_note == "Phoned; she is OK."
        )


class TestWhenTheMailServerIsDown:
    def test_the_alert_stays_visible_the_send_is_retried_and_admins_see_it(
        self, client, session, factory, people, plan, sign_in, clock
    ):
        mailer = FakeMailer()
        mailer.failing = True
        alert = high_alert(session, people)
        assert send_pending(factory, mailer) == 0
        message = session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "safety_raised"))
        session.refresh(message)
        assert message.attempts == 1 and "mail server is down" in message.last_error
        # The alert is on the owner's pages whatever happens to the email.
        sign_in(CM)
        assert f"/alerts/{alert.id}" in client.get("/patients").text
        # An administrator sees what failed, and nobody's clinical detail.
        token = sign_in("admin@test.example.org")
        page = client.get("/admin/users").text
        assert "1 email could not be sent." in page
        failed = client.get("/admin/messages").text
        assert "cara@test.example.org" in failed and "mail server is down" in failed
        # The kind of email in words, not its key (issue 16: internal keys shown to a person).
        assert "safety alert: a new one for its owner" in failed and "safety_raised" not in failed
        assert "Pat" not in failed.replace("Patients", "")
        # Too early for the retry; after the back-off it goes out.
        assert send_pending(factory, mailer) == 0
        clock.advance(minutes=1)
        mailer.failing = False
        assert send_pending(factory, mailer) == 1
        assert [m.to for m in mailer.sent] == ["cara@test.example.org"]
        assert "Every email was delivered." in client.get("/admin/messages").text
        del token

    def test_an_administrator_can_send_again_now(
        self, client, session, factory, people, plan, sign_in, clock
    ):
        mailer = FakeMailer()
        mailer.failing = True
        high_alert(session, people)
        for _ in range(10):
            send_pending(factory, mailer)
            clock.advance(hours=1)
        message = session.scalar(select(OutboxMessage))
        session.refresh(message)
        assert message.attempts == 10  # given up
        token = sign_in("admin@test.example.org")
        assert "gave up" in client.get("/admin/messages").text
        client.post(f"/admin/messages/{message.id}/retry", data={"csrf_token": token})
        mailer.failing = False
        assert send_pending(factory, mailer) == 1

    def test_another_organizations_administrator_sees_none_of_it(
        self, client, session, factory, people, plan, sign_in
    ):
        from concord.accounts.organizations import create_organization
        from tests.factories import create_staff

        other = create_organization(session, name="Other Org", slug="other-org")
        from concord.accounts.organizations import create_clinic

        clinic = create_clinic(session, organization=other, name="Elsewhere")
        create_staff(
            session,
            other,
            clinic,
            __import__("concord.accounts.models", fromlist=["Role"]).Role.admin,
            "Alex Else",
            "alex@other.example.org",
        )
        commit(session)
        mailer = FakeMailer()
        mailer.failing = True
        high_alert(session, people)
        send_pending(factory, mailer)
        sign_in("alex@other.example.org")
        assert "Every email was delivered." in client.get("/admin/messages").text
        message = session.scalar(select(OutboxMessage))
        token = csrf_of(client.get("/admin/messages").text)
        assert (
            client.post(
                f"/admin/messages/{message.id}/retry", data={"csrf_token": token}
            ).status_code
            == 404
        )


def test_figures_count_acknowledgement_times_escalations_and_overdue(
    client, session, factory, people, plan, sign_in, clock
):
    from concord.worker import escalate_job

    first = high_alert(session, people)  # high: 4 hours
    clock.advance(minutes=30)
    acknowledge(
        session, access=acc_for(session, people.care_manager, people.patient), alert_id=first.id
    )
    commit(session)
    second = respond(session, people, "ASQ", asq(2)).alert  # urgent: 1 hour
    commit(session)
    clock.advance(hours=1)
    escalate_job(factory)  # second escalates once
    clock.advance(minutes=30)
    acknowledge(
        session, access=acc_for(session, people.consultant, people.patient), alert_id=second.id
    )
    commit(session)
    third = respond(session, people, "ASQ", asq(1)).alert  # urgent, left open
    commit(session)
    clock.advance(hours=2)
    session.expire_all()  # the worker wrote through its own sessions
    result = figures(
        session,
        organization_id=people.org.id,
        since=clock.now() - timedelta(days=1),
        until=clock.now() + timedelta(minutes=1),
    )
    urgent = next(t for t in result.tiers if t.tier == "urgent")
    high = next(t for t in result.tiers if t.tier == "high")
    assert (high.raised, high.acknowledged, high.acknowledged_in_time, high.median_minutes) == (
        1,
        1,
        1,
        30.0,
    )
    assert (urgent.raised, urgent.acknowledged, urgent.acknowledged_in_time) == (2, 1, 0)
    assert urgent.median_minutes == 90.0 and urgent.escalated == 1
    assert urgent.open_past_deadline == 1
    assert result.total.raised == 3
    del third
    sign_in(CM)
    page = client.get("/safety/figures")
    assert (
        page.status_code == 200
        and "Median minutes to acknowledge" in page.text
        and "Alerts escalated" in page.text
    )
    csv_text = client.get("/safety/figures.csv").text
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("alert,tier,rule,source,raised_at")
    assert len(lines) == 4
    assert "Pat" not in csv_text and "Ient" not in csv_text
    assert client.get("/safety/figures?from=2026-13-01").status_code == 422


def test_in_app_notifications_list_what_happened_and_can_be_marked_read(
    client, session, factory, people, plan, sign_in, clock
):
    from concord.worker import escalate_job

    alert = high_alert(session, people)
    clock.advance(hours=4)
    escalate_job(factory)  # passed from Cara to the consultant
    token = sign_in(CM)
    page = client.get("/alerts").text
    assert "New for you" in page
    assert "a safety alert you held was passed to the next person in the chain" in page
    assert f"/patients/{people.patient.id}/alerts/{alert.id}" in page
    client.post("/alerts/notifications/read", data={"csrf_token": token})
    assert "New for you" not in client.get("/alerts").text
    sign_in("consultant@test.example.org")
    assert "passed to you because nobody acknowledged it in time" in client.get("/alerts").text
    sign_in(OTTO)  # nothing about patients off their teams
    assert "New for you" not in client.get("/alerts").text

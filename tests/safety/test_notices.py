"""What a patient does for the team to read reaches the team: a notice in the app for the lead
and the care managers, an email with no patient details, never two unread for the same thing
(issue 16, item 12: a patient's suggested goal or comment notified no one)."""

from __future__ import annotations

import re

from sqlalchemy import select

from concord.careplans import service as plans
from concord.careplans.schemas import GoalProposal
from concord.outbox import OutboxMessage
from concord.safety.models import Notification
from tests.conftest import commit
from tests.factories import acc_for, create_plan

CM = "cara@test.example.org"


def notices(session, user):
    session.expire_all()
    return session.scalars(select(Notification).where(Notification.user_id == user.id)).all()


def test_a_patients_goal_and_comment_reach_the_lead(client, session, people, sign_in):
    create_plan(session, people, activate=True)
    commit(session)
    me = acc_for(session, people.patient_user, people.patient)
    plans.propose_goal(session, access=me, data=GoalProposal(statement="Walk the dog daily"))
    plans.add_comment(session, access=me, body="Can we meet on Tuesdays? I feel hopeless")
    plans.add_comment(session, access=me, body="And a second thought")
    commit(session)
    mine = notices(session, people.care_manager)
    assert sorted(n.kind for n in mine) == ["patient_comment", "patient_goal"]  # not two comments
    assert notices(session, people.therapist) == []  # neither lead nor care manager
    emails = session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "patient_notice")
    ).all()
    assert len(emails) == 2 and {e.recipient for e in emails} == {people.care_manager.email}
    for email in emails:
        text = email.subject + email.body
        assert "Pat" not in text and "hopeless" not in text and "dog" not in text
    sign_in(CM)
    page = client.get("/alerts").text
    assert "suggested a goal for the care plan" in page
    assert "wrote a comment on the care plan" in page
    links = [
        client.get(href).headers["location"]
        for href in re.findall(r'href="(/alerts/notifications/[0-9a-f-]+)"', page)
    ]
    assert links == [f"/patients/{people.patient.id}/plan"] * 2
    # Once read, the next comment is a new notice.
    client.post("/alerts/notifications/read", data={"csrf_token": sign_in(CM)})
    plans.add_comment(session, access=me, body="A third")
    commit(session)
    unread = [n for n in notices(session, people.care_manager) if n.read_at is None]
    assert [n.kind for n in unread] == ["patient_comment"]


def test_the_teams_own_comment_notifies_nobody(session, people):
    create_plan(session, people, activate=True)
    commit(session)
    cm = acc_for(session, people.care_manager, people.patient)
    plans.add_comment(session, access=cm, body="Noted")
    commit(session)
    assert session.scalars(select(Notification)).all() == []


def test_a_patients_safety_plan_change_and_question_reach_the_team(session, people):
    from concord.decisions import service as ds
    from concord.safety import plans as safety_plans

    me = acc_for(session, people.patient_user, people.patient)
    safety_plans.save(
        session, access=me, base_version=0, reason=None, content={"warning_signs": ["Pacing"]}
    )
    decision = ds.start(session, access=me, aid_id="depression-treatment")
    ds.add_question(session, access=me, decision_id=decision.id, text="How long does it take?")
    commit(session)
    kinds = sorted(n.kind for n in notices(session, people.care_manager))
    assert kinds == ["patient_question", "patient_safety_plan"]


def test_a_reminder_repeated_is_one_unread_notice(session, factory, people, clock):
    """Each escalation run after the chain is used up told everyone again: the emails repeat,
    but the "New for you" list kept one more identical line each time."""
    from concord.worker import escalate_job
    from tests.safety.test_escalation import urgent_alert

    create_plan(session, people, activate=True)
    commit(session)
    alert = urgent_alert(session, people)
    for _ in range(4):
        clock.advance(hours=1)
        escalate_job(factory)
    session.expire_all()
    reminders = session.scalars(
        select(Notification).where(
            Notification.alert_id == alert.id,
            Notification.kind == "reminder",
            Notification.user_id == people.care_manager.id,
        )
    ).all()
    assert len(reminders) == 1


def nav_count(html):
    """The number beside "New for you" in the navigation (None when it is not there)."""
    nav = html[html.index("<nav") : html.index("</nav>")]
    found = re.search(r'data-unread-notices="(\d+)"', nav)
    return int(found.group(1)) if found else None


def test_the_navigation_counts_unread_notices_on_every_page(client, session, people, sign_in):
    """Notices appeared only in "New for you" on /alerts: nothing told a clinician on another
    page that a patient had written. The count has no name and no kind in it, and goes down
    as notices are read."""
    create_plan(session, people, activate=True)
    commit(session)
    me = acc_for(session, people.patient_user, people.patient)
    plans.propose_goal(session, access=me, data=GoalProposal(statement="Walk the dog daily"))
    plans.add_comment(session, access=me, body="I feel hopeless")
    commit(session)
    token = sign_in(CM)
    for path in ("/patients", "/registry", "/tasks", f"/patients/{people.patient.id}/plan"):
        page = client.get(path).text
        assert nav_count(page) == 2, path
        nav = page[page.index("<nav") : page.index("</nav>")]
        assert "Pat" not in nav and "hopeless" not in nav and "goal" not in nav.lower()
    alerts = client.get("/alerts").text
    first = re.search(r'href="(/alerts/notifications/[0-9a-f-]+)"', alerts).group(1)
    assert client.get(first).status_code == 303
    assert nav_count(client.get("/patients").text) == 1  # opening one marks it read
    assert client.get(first).status_code == 404  # read: no longer in the list
    client.post("/alerts/notifications/read", data={"csrf_token": token})
    assert nav_count(client.get("/patients").text) is None
    sign_in("theo@test.example.org")  # not told (neither lead nor care manager)
    assert nav_count(client.get("/patients").text) is None


def test_someone_elses_notice_is_not_found(client, session, people, sign_in):
    create_plan(session, people, activate=True)
    commit(session)
    me = acc_for(session, people.patient_user, people.patient)
    plans.propose_goal(session, access=me, data=GoalProposal(statement="Walk"))
    commit(session)
    (notice,) = notices(session, people.care_manager)
    sign_in("theo@test.example.org")
    assert client.get(f"/alerts/notifications/{notice.id}").status_code == 404
    assert client.get("/alerts/notifications/not-an-id").status_code == 404
    assert notices(session, people.care_manager)[0].read_at is None

"""The check-in's optional steps after the questionnaires (issue 19): how the medicines are
going (the same action as My medications) and the days-of-use calendar, each skippable, each
offered only when it applies."""

from __future__ import annotations

from sqlalchemy import select

from concord.actions import medications as med_actions
from concord.careplans import service as plans
from concord.careplans.schemas import GoalIn, PlanStart
from concord.medications.models import MedicationReport
from concord.medications.schemas import MedicationIn
from tests.conftest import commit
from tests.factories import acc_for

PATIENT = "pat@patients.example.org"
SERTRALINE = "36437"
# PHQ-9 answers with nothing critical (item 9 at 0).
ANSWERS = {f"a.{i}": "1" for i in range(1, 9)} | {"a.9": "0", "a.difficulty": "1"}


def _check_in(client, token):
    started = client.post("/my/check-ins/start", data={"csrf_token": token, "instrument": "PHQ-9"})
    assert started.status_code == 303, started.text
    sent = client.post(
        started.headers["location"],
        data={"csrf_token": token, "version": 1, "action": "submit", **ANSWERS},
    )
    assert sent.status_code == 303, sent.text
    return client.get(sent.headers["location"])


def test_no_step_is_offered_when_none_applies(client, session, people, sign_in):
    done = _check_in(client, sign_in(PATIENT))
    assert done.status_code == 200
    assert "data-checkin-next" not in done.text and 'href="/my"' in done.text


def test_the_medicines_step_then_the_calendar_each_skippable(client, session, people, sign_in):
    team = acc_for(session, people.care_manager, people.patient)
    med = med_actions.add(session, access=team, data=MedicationIn(rxcui=SERTRALINE)).medication
    commit(session)
    token = sign_in(PATIENT)
    done = _check_in(client, token)
    assert 'href="/my/check-in/medications"' in done.text and "data-checkin-next" in done.text
    step = client.get("/my/check-in/medications")
    assert step.status_code == 200 and "sertraline" in step.text
    # With no calendar to fill in, the step leads home.
    assert 'href="/my?done=checkin_done"' in step.text
    told = client.post(
        f"/my/medications/{med.id}/checkin",
        data={
            "csrf_token": token,
            "missed_doses": "2",
            "missed_why": "Ran out",
            "effects": "Nausea",
            "back": "/my/check-in/medications?done=checkin",
        },
    )
    assert told.status_code == 303 and told.headers["location"] == (
        "/my/check-in/medications?done=checkin"
    )
    kinds = sorted(r.kind for r in session.scalars(select(MedicationReport)))
    assert kinds == ["adherence", "side_effects"]  # the same action as My medications
    # A substance-use goal makes the calendar the next step.
    plans.start_plan(session, access=team, data=PlanStart(title="Care plan"))
    plans.add_item(
        session,
        access=team,
        section="goals",
        data=GoalIn(
            statement="Stay off drinking",
            category="substance_use",
            substance="alcohol",
            use_aim="abstinence",
        ),
    )
    commit(session)
    step = client.get("/my/check-in/medications")
    assert 'href="/my/substance-use?step=checkin"' in step.text
    cal = client.get("/my/substance-use?step=checkin")
    assert cal.status_code == 200 and "Skip this step" in cal.text
    assert 'name="back" value="/my?done=checkin_done"' in cal.text
    home = client.get("/my?done=checkin_done")
    assert "Your check-in is complete" in home.text

"""A clinician asks the patient to complete a questionnaire now, scheduled or not (issue 16,
item 12: adding a schedule answered 409 for a scheduled instrument, and nothing else asked)."""

from __future__ import annotations

from sqlalchemy import select

from concord.measures import service as measures
from concord.measures.models import MeasureSchedule
from tests.conftest import commit
from tests.factories import acc_for, create_plan

CM = "cara@test.example.org"


def due(session, people):
    me = acc_for(session, people.patient_user, people.patient)
    return {c.instrument.code: c.state.status for c in measures.check_ins(session, access=me)}


def test_a_scheduled_questionnaire_is_asked_now(client, session, people, clock, sign_in):
    create_plan(session, people, activate=True)
    commit(session)
    measures.record_response(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        instrument_code="GAD-7",
        submission=measures.Submission(
            answers={str(i): 1 for i in range(1, 8)}, mode=measures.Mode.phone
        ),
    )
    commit(session)
    clock.advance(days=10)
    assert due(session, people)["GAD-7"] == "completed"  # next due in 18 days
    token = sign_in(CM)
    page = client.get(f"/patients/{people.patient.id}/measures").text
    assert "Ask the patient now" in page
    asked = client.post(
        f"/patients/{people.patient.id}/measures/ask-now",
        data={"csrf_token": token, "instrument": "GAD-7"},
    )
    assert asked.status_code == 303, asked.text
    session.expire_all()
    assert due(session, people)["GAD-7"] == "due"
    schedule = session.scalar(select(MeasureSchedule).where(MeasureSchedule.instrument == "GAD-7"))
    assert (schedule.every_days, schedule.start_on) == (28, clock.now().date())
    # Asking again while it waits changes nothing.
    again = client.post(
        f"/patients/{people.patient.id}/measures/ask-now",
        data={"csrf_token": token, "instrument": "GAD-7"},
    )
    assert again.status_code == 303
    session.refresh(schedule)
    assert schedule.version == 2


def test_an_unscheduled_questionnaire_is_asked_once(client, session, people, clock, sign_in):
    create_plan(session, people, activate=True)
    commit(session)
    token = sign_in(CM)
    asked = client.post(
        f"/patients/{people.patient.id}/measures/ask-now",
        data={"csrf_token": token, "instrument": "AUDIT-C"},
    )
    assert asked.status_code == 303, asked.text
    session.expire_all()
    assert due(session, people)["AUDIT-C"] == "due"
    clock.advance(days=1)
    assert due(session, people)["AUDIT-C"] == "ended"
    # The one-off does not block a schedule afterwards.
    scheduled = client.post(
        f"/patients/{people.patient.id}/measures/schedules",
        data={"csrf_token": token, "instrument": "AUDIT-C", "every_days": "28"},
    )
    assert scheduled.status_code == 303, scheduled.text


def test_only_the_team_asks(client, session, people, sign_in):
    create_plan(session, people, activate=True)
    commit(session)
    token = sign_in("otto@test.example.org")
    response = client.post(
        f"/patients/{people.patient.id}/measures/ask-now",
        data={"csrf_token": token, "instrument": "GAD-7"},
    )
    assert response.status_code == 404
    unknown = client.post(
        f"/patients/{people.patient.id}/measures/ask-now",
        data={"csrf_token": sign_in(CM), "instrument": "MADE-UP"},
    )
    assert unknown.status_code == 422 and "is not an instrument here" in unknown.text

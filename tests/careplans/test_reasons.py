"""Revision reasons the system writes are shown in the reader's language with the
organization's local date, not as stored English with an ISO date; reasons stored as English
before still read the new way, and a person's own reason is shown as written (issue 16
follow-up, item 4)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from concord.actions import recommendation
from concord.careplans import service as plans
from concord.careplans.models import PlanRevision
from concord.careplans.reasons import reason_text
from concord.registry import reviews as rv
from tests.conftest import commit
from tests.factories import acc_for, create_plan
from tests.registry.conftest import days_ago, enroll

CM = "cara@test.example.org"


def _accept_a_recommendation(session, people):
    create_plan(session, people, activate=True)
    enroll(session, people, started_on=days_ago(63))
    commit(session)
    cm = acc_for(session, people.care_manager, people.patient)
    rv.request_review(session, access=cm, question="Next step?")
    review = rv.record_review(
        session,
        access=acc_for(session, people.consultant, people.patient),
        data=rv.ReviewIn(
            minutes="15",
            summary="Partial effect.",
            recommendations=[rv.RecommendationIn("increase_dose", "Sertraline 150 mg")],
        ),
    )
    review.reviewed_on = date(2026, 12, 6)
    (rec,) = session.scalars(select(rv.Recommendation)).all()
    recommendation.decide(session, access=cm, rec_id=rec.id, accept=True, reason="Agreed with Pat")
    commit(session)
    plan = plans.current_plan(session, people.patient.id)
    return session.scalar(
        select(PlanRevision).where(
            PlanRevision.plan_id == plan.id, PlanRevision.number == plan.revision_number
        )
    )


def test_an_accepted_recommendation_reads_in_spanish_with_a_local_date(
    client, session, people, sign_in
):
    revision = _accept_a_recommendation(session, people)
    # The column keeps the English text the API and older readers know.
    assert revision.reason.startswith("Psychiatric case review recommendation (")
    assert "2026-12-06" in revision.reason
    assert reason_text(revision, "en", "America/Chicago") == (
        f"Psychiatric case review recommendation ({people.consultant.name}, Dec 6, 2026) "
        "accepted: Agreed with Pat"
    )
    spanish = reason_text(revision, "es", "America/Chicago")
    assert "2026-12-06" not in spanish and "6 dic 2026" in spanish
    assert "Psychiatric" not in spanish and spanish.endswith(": Agreed with Pat")
    people.care_manager.language = "es"
    commit(session)
    sign_in(CM)
    page = client.get(f"/patients/{people.patient.id}/plan/history").text
    assert spanish in page.replace("&#39;", "'")
    assert "2026-12-06" not in page


def test_a_reason_stored_in_english_before_reads_the_new_way(session, people):
    create_plan(session, people, activate=True)
    commit(session)
    old = PlanRevision(
        reason="Psychiatric case review recommendation (Dr Ada Consultant, 2026-12-06) accepted",
        summary={"changes": []},
    )
    assert "6 dic 2026" in reason_text(old, "es", "America/Chicago")
    assert "Dr Ada Consultant" in reason_text(old, "es", "America/Chicago")
    decided = PlanRevision(
        reason="Decision made together (Depression treatment): Talking therapy",
        summary={"changes": []},
    )
    assert "Psychiatric" not in reason_text(decided, "es", None)
    assert reason_text(decided, "es", None).endswith("Talking therapy")
    assert "Decision made together" not in reason_text(decided, "es", None)
    own = PlanRevision(reason="Patient asked for a weekly call (2026-12-06)", summary={})
    assert reason_text(own, "es", "America/Chicago") == own.reason


def test_a_decision_made_together_is_in_the_readers_language():
    """The message keeps both languages of the aid's title and the option's name."""
    from concord.careplans.reasons import DECISION_MADE, render, system_reason

    english, message = system_reason(
        DECISION_MADE,
        aid={"en": "Depression treatment", "es": "Tratamiento de la depresión"},
        option={"en": "Talking therapy", "es": "Terapia de conversación"},
    )
    assert english == "Decision made together (Depression treatment): Talking therapy"
    spanish = render(message, "es", "America/Chicago")
    assert "Tratamiento de la depresión" in spanish and "Terapia de conversación" in spanish
    assert "Decision made together" not in spanish


def test_a_task_closed_by_the_system_says_so_in_the_readers_language(
    client, session, people, sign_in
):
    """The same class: notes the system writes when it closes a task ("Every recommendation
    decided.", "Recommendation accepted.") were stored English shown as is."""
    _accept_a_recommendation(session, people)
    people.care_manager.language = "es"
    commit(session)
    sign_in(CM)
    page = client.get("/tasks?done=1").text
    assert "Every recommendation decided." not in page
    assert "Recommendation accepted." not in page
    assert "Recomendación aceptada." in page or "Se decidieron todas" in page

"""A decision made together: values, the fit shown for every option, questions, SURE, the
recorded outcome proposing a care-plan revision the patient and team agree to, and who may do
what."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from concord.audit.models import AuditEvent
from concord.careplans import service as plans
from concord.careplans.models import Intervention
from concord.decisions import service as ds
from concord.decisions.models import Decision
from concord.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from tests.conftest import NOW, commit
from tests.factories import acc_for, create_plan

AID = "depression-treatment"


@pytest.fixture
def plan(session, people):
    created = create_plan(session, people, activate=True)
    commit(session)
    return created


def _patient(session, people):
    return acc_for(session, people.patient_user, people.patient)


def _cm(session, people):
    return acc_for(session, people.care_manager, people.patient)


def test_starting_twice_gives_the_same_open_decision(session, people):
    first = ds.start(session, access=_patient(session, people), aid_id=AID)
    commit(session)
    again = ds.start(session, access=_cm(session, people), aid_id=AID)
    assert again.id == first.id and first.started_by_patient
    with pytest.raises(InvalidInput) as caught:
        ds.start(session, access=_patient(session, people), aid_id="no-such-aid")
    assert "aid" in caught.value.errors


def test_values_are_checked_and_kept_in_the_patients_order(session, people):
    acc = _patient(session, people)
    decision = ds.start(session, access=acc, aid_id=AID)
    commit(session)
    with pytest.raises(InvalidInput) as caught:
        ds.save_values(session, access=acc, decision_id=decision.id, values=["flying"])
    assert set(caught.value.errors) == {"values"}
    session.rollback()
    with pytest.raises(InvalidInput) as caught:
        ds.save_values(session, access=acc, decision_id=decision.id, values=[], leaning="magic")
    assert set(caught.value.errors) == {"leaning"}
    session.rollback()
    aid = ds.aid_of(decision)
    picked = [aid.values[2].id, aid.values[0].id, aid.values[2].id]
    ds.save_values(
        session,
        access=acc,
        decision_id=decision.id,
        values=picked,
        note="  I work nights  ",
        leaning="therapy",
        base_version=decision.version,
    )
    commit(session)
    assert decision.values == [aid.values[2].id, aid.values[0].id]
    assert decision.values_note == "I work nights" and decision.leaning == "therapy"
    with pytest.raises(Conflict):  # an old page
        ds.save_values(session, access=acc, decision_id=decision.id, values=[], base_version=1)


def test_the_fit_shows_every_option_with_the_reason_and_orders_by_good_fits(session, people):
    aid = ds.aid_of(ds.start(session, access=_patient(session, people), aid_id=AID))
    assert [s.option.id for s in ds.fit_summary(aid, [])] == [o.id for o in aid.options]
    for value in aid.values:
        summary = ds.fit_summary(aid, [value.id])
        assert {s.option.id for s in summary} == {o.id for o in aid.options}  # none hidden
        goods = [s.good for s in summary]
        assert goods == sorted(goods, reverse=True)
        for s in summary:
            ((shown, fit),) = s.fits
            assert shown.id == value.id and fit == value.fits[s.option.id]
    # Two values: an option that fits both well comes before one that fits one.
    both = [v.id for v in aid.values[:2]]
    summary = ds.fit_summary(aid, both)
    scores = [(s.good, -s.poor) for s in summary]
    assert scores == sorted(scores, reverse=True)


def test_sure_scores_and_names_what_is_missing(session, people):
    acc = _patient(session, people)
    decision = ds.start(session, access=acc, aid_id=AID)
    with pytest.raises(InvalidInput) as caught:
        ds.parse_sure({"sure_sure": "yes", "sure_understand": "maybe"})
    assert set(caught.value.errors) == {
        "sure_understand",
        "sure_risk_benefit",
        "sure_encouragement",
    }
    answers = ds.parse_sure(
        {
            "sure_sure": "no",
            "sure_understand": "yes",
            "sure_risk_benefit": "no",
            "sure_encouragement": "yes",
        }
    )
    ds.save_sure(session, access=acc, decision_id=decision.id, answers=answers)
    ready = ds.readiness(decision)
    assert (ready.score, ready.ready, ready.missing) == (2, False, ["certainty", "values"])
    ds.save_sure(
        session, access=acc, decision_id=decision.id, answers=dict.fromkeys(ds.SURE_ITEMS, True)
    )
    assert ds.readiness(decision).ready and decision.sure_score == 4
    three = dict.fromkeys(ds.SURE_ITEMS, True) | {"encouragement": False}
    ds.save_sure(session, access=acc, decision_id=decision.id, answers=three)
    assert ds.readiness(decision) == ds.Readiness(3, False, ["support"])  # 3 is conflict


def test_questions_reach_the_team(session, people):
    acc = _patient(session, people)
    decision = ds.start(session, access=acc, aid_id=AID)
    with pytest.raises(InvalidInput):
        ds.add_question(session, access=acc, decision_id=decision.id, text="   ")
    ds.add_question(session, access=acc, decision_id=decision.id, text="Can I drive on it?")
    commit(session)
    seen = ds.get_decision(session, access=_cm(session, people), decision_id=decision.id)
    assert [q["text"] for q in seen.questions] == ["Can I drive on it?"]
    with pytest.raises(PermissionDenied):  # only the team marks a question answered
        ds.mark_answered(session, access=acc, decision_id=decision.id, index=0)
    ds.mark_answered(session, access=_cm(session, people), decision_id=decision.id, index=0)
    assert seen.questions[0]["answered"] is True


def _outcome(choice, **changes):
    values = {
        "choice": choice,
        "reasons": "I want to learn skills, and I do not want pills right now.",
        "considered": ["medication", "therapy", "both", "self_help"],
        "decided_on": NOW.date(),
        "clinician_ids": [],
    }
    values.update(changes)
    return ds.Outcome(**values)


def test_recording_a_choice_proposes_it_in_the_plan_for_agreement(session, people, plan):
    decision = ds.start(session, access=_patient(session, people), aid_id=AID)
    commit(session)
    before = plan.substantive_revision_number
    cm = _cm(session, people)
    ds.record_outcome(
        session,
        access=cm,
        decision_id=decision.id,
        outcome=_outcome("therapy", clinician_ids=[str(people.therapist.id)], others="Fay"),
    )
    commit(session)
    assert decision.status == "decided" and decision.choice == "therapy"
    item = session.get(Intervention, decision.intervention_id)
    assert item is not None and item.kind == "psychotherapy" and item.plan_id == plan.id
    current = plans.current_plan(session, people.patient.id)
    assert current.substantive_revision_number > before
    state = plans.agreement_state(session, current)
    assert set(state.awaiting) == {"patient", "lead_clinician"}  # both asked to agree again
    kinds = [p["kind"] for p in decision.participants]
    assert kinds == ["patient", "clinician", "clinician", "other"]
    with pytest.raises(Conflict):  # recorded once
        ds.record_outcome(session, access=cm, decision_id=decision.id, outcome=_outcome(None))
    with pytest.raises(Conflict):
        ds.save_values(
            session, access=_patient(session, people), decision_id=decision.id, values=[]
        )


def test_not_decided_yet_is_recorded_without_touching_the_plan(session, people, plan):
    decision = ds.start(session, access=_patient(session, people), aid_id=AID)
    commit(session)
    revision = plan.revision_number
    ds.record_outcome(
        session,
        access=_cm(session, people),
        decision_id=decision.id,
        outcome=_outcome(None, reasons=""),
    )
    commit(session)
    assert decision.status == "not_decided" and decision.intervention_id is None
    assert plans.current_plan(session, people.patient.id).revision_number == revision


def test_a_bad_outcome_names_every_field_and_writes_nothing(session, people, plan):
    assert session.scalars(select(Intervention).where(Intervention.plan_id == plan.id)).all() == []
    decision = ds.start(session, access=_patient(session, people), aid_id=AID)
    commit(session)
    with pytest.raises(InvalidInput) as caught:
        ds.record_outcome(
            session,
            access=_cm(session, people),
            decision_id=decision.id,
            outcome=_outcome(
                "therapy",
                reasons=" ",
                considered=["medication"],
                decided_on=date(2001, 1, 1),
                clinician_ids=[str(people.outsider.id)],
            ),
        )
    assert set(caught.value.errors) == {"reasons", "considered", "decided_on", "clinician_ids"}
    session.rollback()
    assert session.get(Decision, decision.id).status == "open"
    assert session.get(Decision, decision.id).participants == []
    assert session.scalars(select(Intervention).where(Intervention.plan_id == plan.id)).all() == []


def test_a_choice_needs_a_current_plan(session, people):
    decision = ds.start(session, access=_patient(session, people), aid_id=AID)
    commit(session)
    with pytest.raises(Conflict):
        ds.record_outcome(
            session,
            access=_cm(session, people),
            decision_id=decision.id,
            outcome=_outcome("therapy"),
        )


def test_who_may_see_and_do_what(session, people, plan):
    decision = ds.start(session, access=_patient(session, people), aid_id=AID)
    commit(session)
    # A family member may read the shared care plan, not the decisions behind it (the
    # patient's values and questions): no page shows them one, and no door does.
    family = acc_for(session, people.family, people.patient)
    with pytest.raises(NotFound):
        ds.get_decision(session, access=family, decision_id=decision.id)
    with pytest.raises(NotFound):
        ds.list_decisions(session, access=family)
    with pytest.raises((PermissionDenied, NotFound)):
        ds.save_values(session, access=family, decision_id=decision.id, values=[])
    with pytest.raises(PermissionDenied):  # the patient decides with the team, not alone
        ds.record_outcome(
            session,
            access=_patient(session, people),
            decision_id=decision.id,
            outcome=_outcome("therapy"),
        )
    # A patient's decision is not found through another patient's record.
    other = acc_for(session, people.other_patient_user, people.other_patient)
    with pytest.raises(NotFound):
        ds.get_decision(session, access=other, decision_id=decision.id)
    commit(session)
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.object_type == "Decision", AuditEvent.outcome == "denied"
        )
    ).all()
    assert len(denied) == 4


def test_do_both_beside_a_medicine_the_plan_has_is_shown_and_a_repeat_is_not_added(
    client, session, people, plan, sign_in
):
    """Issue 16, item 12: "Do both" added a treatment the plan already had without a word."""
    from concord.careplans.schemas import InterventionIn

    cm = _cm(session, people)
    plans.add_item(
        session,
        access=cm,
        section="interventions",
        data=InterventionIn(kind="medication", description="Sertraline 50 mg daily"),
    )
    therapy = "Refer for talk therapy such as CBT, one-on-one or in a group"
    plans.add_item(
        session,
        access=cm,
        section="interventions",
        data=InterventionIn(kind="psychotherapy", description=therapy),
    )
    commit(session)
    # The therapy option's intervention is already in the plan: nothing is added again.
    first = ds.start(session, access=_patient(session, people), aid_id=AID)
    commit(session)
    current = plans.current_plan(session, people.patient.id)
    count = len(plans.load_contents(session, current).interventions)
    ds.record_outcome(
        session, access=_cm(session, people), decision_id=first.id, outcome=_outcome("therapy")
    )
    commit(session)
    contents = plans.load_contents(session, plans.current_plan(session, people.patient.id))
    assert len(contents.interventions) == count
    assert session.get(Intervention, first.intervention_id).description == therapy
    # "Do both" adds its entry, and the page shows the medicine the plan already has.
    second = ds.start(session, access=_patient(session, people), aid_id=AID)
    commit(session)
    ds.record_outcome(
        session, access=_cm(session, people), decision_id=second.id, outcome=_outcome("both")
    )
    commit(session)
    sign_in("cara@test.example.org")
    page = client.get(f"/patients/{people.patient.id}/decisions/{second.id}").text
    assert "The care plan already has a treatment of this kind" in page
    warning = page[page.index("The care plan already has a treatment of this kind") :]
    assert "Sertraline 50 mg daily" in warning[: warning.index("</div>")]
    recorded = client.get(
        f"/patients/{people.patient.id}/decisions/{first.id}?done=recorded_existing"
    )
    assert "already had this treatment, so nothing was added" in recorded.text

"""The disclosure table reaches each domain's reads: narrowing one rule (as issue 18 will)
withholds that category from the care plan, the safety plan shared with family, and the
safety alerts, without touching anything else."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from concord import disclosure
from concord.access import Relation
from concord.actions import checkin
from concord.careplans import service as plans
from concord.categories import DataCategory, Purpose
from concord.errors import NotFound
from concord.measures import service as measures
from concord.patients.models import RelatedPerson
from concord.safety import alerts
from concord.safety import plans as safety_plans
from tests.conftest import commit
from tests.factories import acc_for, create_plan
from tests.safety.test_plans import written  # noqa: F401  (a fixture: a saved safety plan)


def _narrow(monkeypatch, relation, purpose, category):
    rules = {r: dict(p) for r, p in disclosure.RULES.items()}
    rules[relation][purpose] = rules[relation][purpose] - {category}
    monkeypatch.setattr(disclosure, "RULES", rules)


def _denied(session, user):
    return [
        e
        for e in session.info.get("audit_pending", [])
        if e.actor_id == user.id and e.outcome == "denied"
    ]


def test_a_family_member_loses_the_care_plan_when_the_table_withholds_it(
    session, people, monkeypatch
):
    create_plan(session, people, activate=True)
    commit(session)
    family = acc_for(session, people.family, people.patient)
    assert family.relation == Relation.related
    assert plans.get_plan(session, access=family) is not None
    assert len(plans.list_plans(session, access=family)) == 1
    _narrow(monkeypatch, Relation.related, Purpose.family_sharing, DataCategory.care_plan)
    session.info["audit_pending"] = []
    with pytest.raises(NotFound):
        plans.get_plan(session, access=family)
    assert plans.list_plans(session, access=family) == []
    assert [e.detail.get("reason") for e in _denied(session, people.family)] == [
        "category_not_permitted",
        None,  # the list's one event, with its counts
    ]
    # The team's answer is untouched.
    team = acc_for(session, people.care_manager, people.patient)
    assert plans.get_plan(session, access=team) is not None


def test_the_shared_safety_plan_follows_the_table(session, people, written, monkeypatch):  # noqa: F811
    fay = session.scalar(select(RelatedPerson).where(RelatedPerson.user_id == people.family.id))
    safety_plans.set_share(
        session,
        access=acc_for(session, people.therapist, people.patient),
        related_person_id=fay.id,
        share=True,
    )
    commit(session)
    _, plan = safety_plans.shared_plan(session, people.family, people.patient.id)
    assert plan is not None
    _narrow(monkeypatch, Relation.related, Purpose.family_sharing, DataCategory.safety_plan)
    with pytest.raises(NotFound):
        safety_plans.shared_plan(session, people.family, people.patient.id)


def test_safety_alerts_follow_the_table(session, people, monkeypatch):
    create_plan(session, people, activate=True)
    team = acc_for(session, people.care_manager, people.patient)
    answers = {**{str(i): 1 for i in range(1, 10)}, "9": 2, "difficulty": 1}
    checkin.record_response(
        session,
        access=team,
        instrument_code="PHQ-9",
        submission=measures.Submission(answers=answers, mode=measures.Mode.in_person),
    )
    commit(session)
    assert alerts.list_alerts(session, by=people.care_manager)
    (alert,) = alerts.alerts_for_patient(session, access=team)
    _narrow(monkeypatch, Relation.team, Purpose.treatment, DataCategory.safety)
    session.info["audit_pending"] = []
    assert alerts.list_alerts(session, by=people.care_manager) == []
    assert alerts.alerts_for_patient(session, access=team) == []
    with pytest.raises(NotFound):
        alerts.get_alert(session, access=team, alert_id=alert.id)
    assert len(_denied(session, people.care_manager)) == 3
    # The PHQ-9 itself is mental health: still there.
    assert [r.instrument for r in measures.list_responses(session, access=team)] == ["PHQ-9"]

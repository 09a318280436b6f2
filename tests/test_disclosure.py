"""The disclosure decision (concord.disclosure): one explicit answer for every relation,
category and purpose; deny by default; withholding audited without patient data."""

from __future__ import annotations

import itertools
import uuid

import pytest
from sqlalchemy import inspect as sa_inspect

from concord import disclosure
from concord.access import PatientAccess, Relation
from concord.categories import DataCategory, Purpose
from concord.db import Base
from concord.errors import NotFound
from tests.factories import acc_for

C = DataCategory
ALL = set(DataCategory)
RECORD = ALL - {C.psychotherapy_notes}

# Today's answers, written out by hand: what each relation sees, by the purpose it reads for.
EXPECTED = {
    (Relation.team, Purpose.treatment): RECORD,
    (Relation.team, Purpose.payment): {C.general, C.mental_health},
    (Relation.team, Purpose.operations): RECORD,
    (Relation.team, Purpose.emergency): RECORD,
    (Relation.self, Purpose.patient_access): RECORD,
    (Relation.related, Purpose.family_sharing): {C.care_plan, C.safety_plan},
}


def test_the_table_answers_every_relation_and_purpose_explicitly():
    assert set(disclosure.RULES) == set(Relation)
    for relation, by_purpose in disclosure.RULES.items():
        assert set(by_purpose) == set(Purpose), relation
        for allowed in by_purpose.values():
            assert allowed <= ALL


@pytest.mark.parametrize(
    ("relation", "category", "purpose"),
    list(itertools.product(Relation, DataCategory, Purpose)),
)
def test_each_answer_is_todays(relation, category, purpose):
    decision = disclosure.decide_for(relation, category, purpose)
    expected = category in EXPECTED.get((relation, purpose), set())
    assert decision.permit is expected
    assert decision.reason == ("permitted" if expected else "category_not_permitted")


def test_psychotherapy_notes_are_disclosed_to_no_one():
    assert not any(
        disclosure.decide_for(r, C.psychotherapy_notes, p) for r in Relation for p in Purpose
    )


@pytest.mark.parametrize(
    ("relation", "category", "purpose", "reason"),
    [
        ("team", "lab_results", "treatment", "unknown_category"),
        ("team", None, "treatment", "unknown_category"),
        ("team", "general", "marketing", "unknown_purpose"),
        ("team", "general", None, "unknown_purpose"),
        ("stranger", "general", "treatment", "unknown_relation"),
    ],
)
def test_an_unknown_category_purpose_or_relation_is_denied(relation, category, purpose, reason):
    decision = disclosure.decide_for(relation, category, purpose)
    assert not decision and decision.reason == reason


def test_a_relation_or_purpose_missing_from_the_table_is_denied(monkeypatch):
    rules = {r: dict(p) for r, p in disclosure.RULES.items()}
    del rules[Relation.team][Purpose.treatment]
    del rules[Relation.self]
    monkeypatch.setattr(disclosure, "RULES", rules)
    assert disclosure.decide_for("team", "general", "treatment").reason == "no_rule_for_purpose"
    assert disclosure.decide_for("self", "general", "patient_access").reason == (
        "no_rule_for_relation"
    )


def test_each_relation_reads_for_its_own_purpose(session, people):
    team = acc_for(session, people.care_manager, people.patient)
    own = acc_for(session, people.patient_user, people.patient)
    assert disclosure.default_purpose(team) == Purpose.treatment
    assert disclosure.default_purpose(own) == Purpose.patient_access
    related = PatientAccess(people.patient_user, people.patient, Relation.related)
    assert disclosure.default_purpose(related) == Purpose.family_sharing
    # The care plan goes to a family member only under a consent naming them (ADR 0021): this
    # made-up relation has none; the safety plan's own share is checked by safety.plans.
    assert disclosure.permitted(related) == {C.safety_plan}
    # A purpose named by the door is the one decided on: the team reads nothing for research.
    assert disclosure.permitted(team, Purpose.research) == set()
    assert not disclosure.decide(own, C.safety, Purpose.treatment)


class _Row:
    def __init__(self, category):
        self.data_category = category
        self.id = uuid.uuid4()


def _denials(session, user):
    session.flush()
    return [
        e
        for e in session.info.get("audit_pending", [])
        if e.actor_id == user.id and e.outcome == "denied"
    ]


def test_a_list_keeps_what_is_permitted_and_audits_the_rest_once(session, people):
    # The family member the patient consented to share the care plan with (ADR 0021: the
    # consent record, not the relation alone, permits it).
    related = acc_for(session, people.family, people.patient)
    assert related.relation == Relation.related
    rows = [_Row(C.care_plan), _Row(C.substance_use), _Row(C.safety), _Row(C.substance_use)]
    rows.append(_Row(None))  # a record naming no category is withheld too
    kept = disclosure.filter_records(session, related, rows, object_type="CarePlan")
    assert kept == [rows[0]]
    (event,) = _denials(session, people.family)
    assert event.patient_id == people.patient.id
    assert event.detail == {
        "withheld": {"none": 1, "safety": 1, "substance_use": 2},
        "purpose": "family_sharing",
    }


def test_nothing_withheld_writes_no_denial(session, people):
    team = acc_for(session, people.care_manager, people.patient)
    rows = [_Row(c) for c in RECORD]
    assert disclosure.filter_records(session, team, rows, object_type="X") == rows
    assert _denials(session, people.care_manager) == []


def test_one_record_refused_is_not_found_and_audited(session, people):
    own = acc_for(session, people.patient_user, people.patient)
    row = _Row(C.psychotherapy_notes)
    with pytest.raises(NotFound):
        disclosure.check_record(session, own, row, object_type="Note")
    (event,) = _denials(session, people.patient_user)
    assert event.object_id == str(row.id)
    assert event.detail == {
        "category": "psychotherapy_notes",
        "purpose": "patient_access",
        "reason": "category_not_permitted",
    }
    disclosure.check_record(session, own, _Row(C.care_plan), object_type="CarePlan")


def _patient_tables():
    """Every mapped class holding patient data: a patient_id column, or the patient itself."""
    for mapper in Base.registry.mappers:
        columns = {c.key for c in mapper.columns}
        if "patient_id" in columns or mapper.class_.__name__ == "Patient":
            yield mapper.class_


def test_every_model_holding_patient_data_names_its_category():
    classes = list(_patient_tables())
    assert len(classes) >= 15
    missing = []
    for cls in classes:
        declared = inspect_static(cls)
        if not (isinstance(declared, DataCategory) or isinstance(declared, property)):
            missing.append(cls.__name__)
    assert missing == [], f"add data_category to {missing} (concord/categories.py)"


def inspect_static(cls):
    import inspect

    return inspect.getattr_static(cls, "data_category", None)


def test_a_measure_is_the_category_of_its_instrument():
    from concord.measures.models import MeasureObservation, MeasureResponse, MeasureSchedule

    assert MeasureResponse(instrument="AUDIT-C").data_category == C.substance_use
    assert MeasureObservation(instrument="PHQ-9").data_category == C.mental_health
    assert MeasureSchedule(instrument="ASQ").data_category == C.safety
    assert MeasureResponse(instrument="NOT-LOADED").data_category is None
    assert disclosure.category_of(MeasureResponse(instrument="NOT-LOADED")) is None


def test_the_mapper_sees_no_column_for_the_category():
    from concord.measures.models import MeasureResponse
    from concord.safety.models import SafetyAlert

    for cls in (MeasureResponse, SafetyAlert):
        assert "data_category" not in {c.key for c in sa_inspect(cls).columns}

"""A decision made together as FHIR: the aid as a Questionnaire, the decision as a
QuestionnaireResponse with the values, SURE and outcome, linked from the CarePlan activity it
produced; for the care team and the patient only (ADR 0012)."""

from __future__ import annotations

from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from concord.decisions import service as ds
from tests.careplans.test_api import bearer
from tests.conftest import NOW, commit
from tests.factories import acc_for, create_plan

FHIR = {"Accept": "application/fhir+json"}


def test_a_recorded_decision_exports_with_its_values_sure_and_plan_link(client, session, people):
    plan = create_plan(session, people, activate=True)
    patient = acc_for(session, people.patient_user, people.patient)
    decision = ds.start(session, access=patient, aid_id="alcohol-use")
    aid = ds.aid_of(decision)
    ds.save_values(
        session, access=patient, decision_id=decision.id, values=[aid.values[1].id], note="Work"
    )
    ds.save_sure(
        session, access=patient, decision_id=decision.id, answers=dict.fromkeys(ds.SURE_ITEMS, True)
    )
    ds.record_outcome(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        decision_id=decision.id,
        outcome=ds.Outcome(
            choice="counselling",
            reasons="I want to talk it through.",
            considered=["cut_down", "counselling"],
            decided_on=NOW.date(),
            clinician_ids=[],
        ),
    )
    commit(session)
    token = bearer(session, people.care_manager)

    q = client.get("/fhir/Questionnaire/decision-aid-alcohol-use", headers=token)
    assert q.status_code == 200, q.text
    questionnaire = Questionnaire.model_validate(q.json())
    assert {i.linkId for i in questionnaire.item} >= {"values", "sure", "outcome"}

    r = client.get(f"/fhir/QuestionnaireResponse/decision-{decision.id}", headers=token)
    assert r.status_code == 200, r.text
    qr = QuestionnaireResponse.model_validate(r.json())
    assert qr.status == "completed" and qr.questionnaire.startswith(questionnaire.url)
    assert qr.basedOn[0].reference == f"CarePlan/{plan.id}"
    items = {i.linkId: i for i in qr.item}
    assert items["values"].answer[0].valueCoding.code == aid.values[1].id
    assert [a.answer[0].valueBoolean for a in items["sure"].item] == [True] * 4
    outcome = {i.linkId: i for i in items["outcome"].item}
    assert outcome["outcome.choice"].answer[0].valueCoding.code == "counselling"
    assert outcome["outcome.reasons"].answer[0].valueString == "I want to talk it through."

    p = client.get(f"/fhir/CarePlan/{plan.id}", headers=token)
    careplan = CarePlan.model_validate(p.json())
    assert [s.reference for s in careplan.supportingInfo] == [
        f"QuestionnaireResponse/decision-{decision.id}"
    ]
    linked = [a for a in careplan.activity if a.extension]
    assert len(linked) == 1
    assert linked[0].extension[0].valueReference.reference.endswith(f"decision-{decision.id}")
    assert linked[0].detail.code.coding[0].code == "psychotherapy"

    outsider = bearer(session, people.outsider)
    denied = client.get(f"/fhir/QuestionnaireResponse/decision-{decision.id}", headers=outsider)
    assert denied.status_code == 404

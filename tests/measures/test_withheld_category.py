"""The single point works: when the disclosure table withholds a category, a response of
that category vanishes from every door reading through the measures service (the page's
list, the JSON API, FHIR search and its Bundle.total, FHIR read), and the withholding is
audited. Issue 18 fills in the rules; this proves they will hold everywhere."""

from __future__ import annotations

import pytest

from concord import disclosure
from concord.access import Relation
from concord.actions import checkin
from concord.categories import DataCategory, Purpose
from concord.errors import NotFound
from concord.measures import service as measures
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for

PHQ9 = {**{str(i): 1 for i in range(1, 10)}, "difficulty": 1}
AUDIT_C = {"1": 2, "2": 1, "3": 1}


@pytest.fixture
def answered(session, people):
    acc = acc_for(session, people.care_manager, people.patient)
    made = {}
    for code, answers in (("PHQ-9", PHQ9), ("AUDIT-C", AUDIT_C)):
        done = checkin.record_response(
            session,
            access=acc,
            instrument_code=code,
            submission=measures.Submission(answers=answers, mode=measures.Mode.in_person),
        )
        made[code] = done.response.id
    commit(session)
    return made


@pytest.fixture
def no_substance_use(monkeypatch):
    rules = {r: dict(p) for r, p in disclosure.RULES.items()}
    rules[Relation.team][Purpose.treatment] = rules[Relation.team][Purpose.treatment] - {
        DataCategory.substance_use
    }
    monkeypatch.setattr(disclosure, "RULES", rules)


def _fhir(client, url, headers):
    got = client.get(url, headers=headers)
    assert got.status_code == 200, got.text
    return got.json()


def _seen(client, session, people, answered):
    """What each door shows the care manager of the patient's responses."""
    token = bearer(session, people.care_manager)
    pid = people.patient.id
    acc = acc_for(session, people.care_manager, people.patient)
    service = {r.instrument for r in measures.list_responses(session, access=acc)}
    api = client.get(f"/api/v1/patients/{pid}/measures/responses", headers=token)
    assert api.status_code == 200, api.text
    observations = _fhir(client, f"/fhir/Observation?patient={pid}", token)
    responses = _fhir(client, f"/fhir/QuestionnaireResponse?patient={pid}", token)
    audit_c = str(answered["AUDIT-C"])
    return {
        "service": service,
        "api": {r["instrument"] for r in api.json()},
        "observations": observations["total"],
        "observation_codes": {
            c["code"]
            for e in observations.get("entry", [])
            for c in e["resource"]["code"]["coding"]
        },
        "responses": {e["resource"]["id"] for e in responses.get("entry", [])},
        "responses_total": responses["total"],
        "read": client.get(f"/fhir/QuestionnaireResponse/{audit_c}", headers=token).status_code,
    }


def test_every_door_shows_both_while_the_table_permits_them(client, session, people, answered):
    seen = _seen(client, session, people, answered)
    assert seen["service"] == seen["api"] == {"PHQ-9", "AUDIT-C"}
    assert seen["responses_total"] == 2 and seen["read"] == 200
    assert "75626-2" in seen["observation_codes"]  # the AUDIT-C total


def test_a_withheld_category_vanishes_from_every_door(
    client, session, people, answered, no_substance_use
):
    seen = _seen(client, session, people, answered)
    assert seen["service"] == seen["api"] == {"PHQ-9"}
    assert seen["responses"] == {str(answered["PHQ-9"])} and seen["responses_total"] == 1
    assert "75626-2" not in seen["observation_codes"]
    assert seen["observations"] == len(seen["observation_codes"]) >= 1
    assert seen["read"] == 404
    acc = acc_for(session, people.care_manager, people.patient)
    with pytest.raises(NotFound):
        measures.get_response(session, access=acc, response_id=answered["AUDIT-C"])


def test_the_withholding_is_audited_once_with_counts(session, people, answered, no_substance_use):
    acc = acc_for(session, people.care_manager, people.patient)
    session.info["audit_pending"] = []
    measures.list_responses(session, access=acc)
    denied = [e for e in session.info["audit_pending"] if e.outcome == "denied"]
    assert [(e.object_type, e.detail) for e in denied] == [
        ("QuestionnaireResponse", {"withheld": {"substance_use": 1}, "purpose": "treatment"})
    ]


def test_the_patient_still_sees_their_own(session, people, answered, no_substance_use):
    own = acc_for(session, people.patient_user, people.patient)
    assert {r.instrument for r in measures.list_responses(session, access=own)} == {
        "PHQ-9",
        "AUDIT-C",
    }

"""The CDS Hooks service (issue 19): discovery; order-select and order-sign answered with cards
from the medication-safety rules (draft orders checked against each other and the current
list); the current list from the prefetch or, for the care team, from Concord; a cds-scoped
token and deny by default; a request that cannot be read is a 400 naming the field; every call
in the audit trail, with no medication names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from concord.accounts.models import TokenScope
from concord.actions import medications as med_actions
from concord.audit.models import AuditEvent
from concord.medications.schemas import MedicationIn
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for

ROOT = Path(__file__).resolve().parents[2]
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SELECT = "/cds-services/concord-medication-safety-select"
SIGN = "/cds-services/concord-medication-safety-sign"
BUPRENORPHINE, CLONAZEPAM, NALTREXONE, OXYCODONE = "1819", "2598", "7243", "7804"
SERTRALINE, TRAMADOL, IBUPROFEN = "36437", "10689", "5640"


def med(ident, *codes, kind="MedicationRequest", status="draft"):
    return {
        "resourceType": kind,
        "id": ident,
        "status": status,
        "intent": "order",
        "subject": {"reference": "Patient/ehr-1"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": c} for c in codes]},
    }


def bundle(*resources):
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }


def request(
    hook,
    drafts,
    *,
    selections=None,
    current=None,
    statements=None,
    patient=None,
    patient_id="ehr-1",
):
    context = {
        "userId": "Practitioner/ehr-7",
        "patientId": patient_id,
        "draftOrders": bundle(*drafts),
    }
    if hook == "order-select":
        context["selections"] = selections or [f"MedicationRequest/{drafts[0]['id']}"]
    body = {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context,
    }
    prefetch = {}
    if current is not None:
        prefetch["medicationRequests"] = bundle(*current)
    if statements is not None:
        prefetch["medicationStatements"] = bundle(*statements)
    if patient is not None:
        prefetch["patient"] = patient
    if prefetch:
        body["prefetch"] = prefetch
    return body


@pytest.fixture
def cds(session, people):
    return bearer(session, people.care_manager, scope=TokenScope.cds)


def _rules(response):
    assert response.status_code == 200, response.text
    return [c["source"].get("topic", {}).get("code") for c in response.json()["cards"]]


def test_discovery_lists_both_hooks_with_their_prefetch(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    services = {s["id"]: s for s in response.json()["services"]}
    assert {s["hook"] for s in services.values()} == {"order-select", "order-sign"}
    for service in services.values():
        assert service["title"] and service["description"]
        assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        assert (
            "MedicationRequest?patient={{context.patientId}}"
            in service["prefetch"]["medicationRequests"]
        )


def test_order_select_a_benzodiazepine_with_buprenorphine_on_the_list(client, cds):
    body = request(
        "order-select",
        [med("new-1", CLONAZEPAM)],
        current=[med("old-1", BUPRENORPHINE, status="active")],
    )
    response = client.post(SELECT, json=body, headers=cds)
    assert _rules(response) == ["moud-benzodiazepine-or-cns-depressant"]
    card = response.json()["cards"][0]
    assert card["indicator"] == "warning"
    assert len(card["summary"]) < 140
    assert "do not withhold MOUD" in card["summary"]
    assert "buprenorphine + clonazepam" in card["detail"]
    assert "must not be used to stop or withhold the order" in card["detail"]
    assert card["source"]["label"].startswith("FDA Drug Safety Communication 2017-09-20")
    assert card["source"]["url"].startswith("https://www.fda.gov/")
    assert "suggestions" not in card  # never_block: nothing offers to cancel the order


def test_order_sign_checks_drafts_against_each_other_with_a_suggestion(client, cds):
    body = request("order-sign", [med("n-1", NALTREXONE), med("o-1", OXYCODONE)], current=[])
    response = client.post(SIGN, json=body, headers=cds)
    assert _rules(response) == ["naltrexone-opioid-agonist"]
    card = response.json()["cards"][0]
    assert card["indicator"] == "critical"
    assert card["selectionBehavior"] == "at-most-one"
    removals = [a["resourceId"] for s in card["suggestions"] for a in s["actions"]]
    assert sorted(removals) == [["MedicationRequest/n-1"], ["MedicationRequest/o-1"]]
    assert all(a["type"] == "delete" for s in card["suggestions"] for a in s["actions"])


def test_order_select_checks_the_selection_not_the_list_alone(client, cds):
    """Buprenorphine and clonazepam already on the list raise nothing when ibuprofen is
    selected; an unselected draft counts as context for the selected one."""
    current = [med("a", BUPRENORPHINE, status="active"), med("b", CLONAZEPAM, status="active")]
    body = request("order-select", [med("new", IBUPROFEN)], current=current)
    assert _rules(client.post(SELECT, json=body, headers=cds)) == []
    body = request(
        "order-select",
        [med("s", SERTRALINE), med("t", TRAMADOL)],
        selections=["MedicationRequest/s"],
        current=[],
    )
    assert _rules(client.post(SELECT, json=body, headers=cds)) == ["opioid-serotonergic"]


def test_stopped_medications_in_the_prefetch_do_not_count(client, cds):
    stopped = med("old", BUPRENORPHINE, status="stopped")
    reported = med("r", BUPRENORPHINE, kind="MedicationStatement", status="completed")
    body = request("order-sign", [med("n", CLONAZEPAM)], current=[stopped], statements=[reported])
    assert _rules(client.post(SIGN, json=body, headers=cds)) == []
    taken = med("r", BUPRENORPHINE, kind="MedicationStatement", status="active")
    body = request("order-sign", [med("n", CLONAZEPAM)], statements=[taken])
    assert _rules(client.post(SIGN, json=body, headers=cds)) == [
        "moud-benzodiazepine-or-cns-depressant"
    ]


@pytest.mark.parametrize(
    ("birth_date", "fires"),
    [("2001-11-23", True), ("2001-11-22", False), ("2010-01-01", True), (None, False)],
)
def test_the_age_rule_at_its_boundary(client, cds, birth_date, fires):
    """Today is 2026-11-22: born 2001-11-23 is 24, born 2001-11-22 turns 25 today."""
    patient = {"resourceType": "Patient", "id": "ehr-1"}
    if birth_date:
        patient["birthDate"] = birth_date
    body = request("order-sign", [med("n", SERTRALINE)], current=[], patient=patient)
    rules = _rules(client.post(SIGN, json=body, headers=cds))
    assert rules == (["antidepressant-under-25"] if fires else [])


def test_a_medication_without_a_known_code_is_named_not_guessed(client, cds):
    body = request("order-sign", [med("x", "999999999"), med("y", OXYCODONE)], current=[])
    cards = client.post(SIGN, json=body, headers=cds).json()["cards"]
    assert len(cards) == 1
    assert cards[0]["indicator"] == "info"
    assert "MedicationRequest/x" in cards[0]["detail"]
    assert "MedicationRequest/y" not in cards[0]["detail"]


def test_a_contained_medication_is_read_by_its_ingredients(client, cds):
    combo = {
        "resourceType": "MedicationRequest",
        "id": "c",
        "status": "draft",
        "intent": "order",
        "contained": [
            {
                "resourceType": "Medication",
                "id": "m",
                "ingredient": [
                    {"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": BUPRENORPHINE}]}}
                ],
            }
        ],
        "medicationReference": {"reference": "#m"},
    }
    current = [med("b", CLONAZEPAM, status="active")]
    body = request("order-sign", [combo], current=current)
    assert _rules(client.post(SIGN, json=body, headers=cds)) == [
        "moud-benzodiazepine-or-cns-depressant"
    ]


def test_without_a_prefetch_the_care_team_gets_concords_list(client, session, people, cds):
    body = request(
        "order-sign", [med("n", NALTREXONE), med("o", OXYCODONE)], patient_id=str(people.patient.id)
    )
    assert _rules(client.post(SIGN, json=body, headers=cds)) == ["naltrexone-opioid-agonist"]
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "medication_check")
    ).all()[-1]
    assert event.patient_id == people.patient.id
    assert event.detail["current_from"] == "concord"
    assert event.outcome == "success"


def test_the_stored_list_raises_moud_benzodiazepine_for_a_clonazepam_order(
    client, session, people, cds
):
    """Issue 19: buprenorphine on the patient's list in Concord, and an EHR asks about a
    clonazepam order without sending the list: the card comes from the stored list."""
    team = acc_for(session, people.care_manager, people.patient)
    med_actions.add(session, access=team, data=MedicationIn(rxcui=BUPRENORPHINE, dose="8 mg"))
    commit(session)
    body = request("order-select", [med("c", CLONAZEPAM)], patient_id=str(people.patient.id))
    assert _rules(client.post(SELECT, json=body, headers=cds)) == [
        "moud-benzodiazepine-or-cns-depressant"
    ]


def test_without_a_prefetch_anyone_else_gets_412_and_an_audited_denial(client, session, people):
    outsider = bearer(session, people.outsider, scope=TokenScope.cds)
    body = request("order-sign", [med("n", NALTREXONE)], patient_id=str(people.patient.id))
    response = client.post(SIGN, json=body, headers=outsider)
    assert response.status_code == 412, response.text
    assert people.patient.family_name not in response.text
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "medication_check", AuditEvent.outcome == "denied"
        )
    ).all()
    assert [e.actor_id for e in denied] == [people.outsider.id]
    # A patient id that does not exist gets the same answer.
    body["context"]["patientId"] = "not-a-patient"
    assert client.post(SIGN, json=body, headers=outsider).status_code == 412


def test_the_call_is_audited_without_medication_names(client, session, cds):
    body = request(
        "order-sign", [med("n", CLONAZEPAM)], current=[med("b", BUPRENORPHINE, status="active")]
    )
    client.post(SIGN, json=body, headers=cds)
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "medication_check")).one()
    text = json.dumps(event.detail)
    assert "clonazepam" not in text and "buprenorphine" not in text
    assert event.detail["findings"] == 1 and event.detail["current_from"] == "request"
    assert event.detail["service"] == "concord-medication-safety-sign"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.pop("hookInstance"), "hookInstance"),
        (lambda b: b.update(hook="order-select"), "hook"),
        (lambda b: b["context"].pop("patientId"), "context.patientId"),
        (
            lambda b: b["context"].update(draftOrders={"resourceType": "Patient"}),
            "context.draftOrders.resourceType",
        ),
        (
            lambda b: b["context"]["draftOrders"]["entry"].append({"resource": "x"}),
            "context.draftOrders.entry[1].resource",
        ),
        (
            lambda b: b["prefetch"].update(patient={"resourceType": "Bundle"}),
            "prefetch.patient.resourceType",
        ),
    ],
)
def test_a_request_that_cannot_be_read_is_400_naming_the_field(client, session, cds, change, field):
    body = request("order-sign", [med("n", CLONAZEPAM)], current=[])
    change(body)
    before = session.scalar(
        select(AuditEvent.action).where(AuditEvent.action == "medication_check")
    )
    response = client.post(SIGN, json=body, headers=cds)
    assert response.status_code == 400, response.text
    assert [f["field"] for f in response.json()["fields"]] == [field]
    assert before is None
    assert (
        session.scalar(select(AuditEvent.action).where(AuditEvent.action == "medication_check"))
        is None
    )


def test_order_select_needs_its_selections(client, cds):
    body = request("order-select", [med("n", CLONAZEPAM)], current=[])
    body["context"].pop("selections")
    response = client.post(SELECT, json=body, headers=cds)
    assert response.status_code == 400
    assert response.json()["fields"][0]["field"] == "context.selections"


def test_not_json_is_400(client, cds):
    response = client.post(
        SIGN, content=b"{not json", headers={**cds, "Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_an_unknown_service_is_404(client, cds):
    response = client.post("/cds-services/nope", json={}, headers=cds)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_deny_by_default(client, session, people):
    body = request("order-sign", [med("n", CLONAZEPAM)], current=[])
    assert client.post(SIGN, json=body).status_code == 401
    assert client.post(SIGN, json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    write = bearer(session, people.care_manager)  # a write token is not a cds token
    assert client.post(SIGN, json=body, headers=write).status_code == 403
    patient = bearer(session, people.patient_user, scope=TokenScope.cds)
    assert client.post(SIGN, json=body, headers=patient).status_code == 403


def test_a_cds_token_opens_nothing_else(client, session, people, cds):
    for url in (f"/api/v1/patients/{people.patient.id}", f"/fhir/Patient/{people.patient.id}"):
        response = client.get(url, headers=cds)
        assert response.status_code == 403, url
        assert people.patient.family_name not in response.text


# --- the example in docs/cds-hooks.md ------------------------------------------------------


def _doc_example() -> tuple[str, dict]:
    text = (ROOT / "docs" / "cds-hooks.md").read_text()
    block = re.search(r"```sh\n(curl .*?)```", text, re.S)
    assert block, "docs/cds-hooks.md has a curl example in a ```sh block"
    command = block.group(1)
    url = re.search(r"(http://localhost:8000(/cds-services/[\w-]+))", command).group(2)
    body = json.loads(re.search(r"-d '(.*?)'", command, re.S).group(1))
    answer = re.search(r"```json\n(.*?)```", text[block.end() :], re.S).group(1)
    return url, body, json.loads(answer)


def test_the_documented_example_answers_as_documented(client, cds):
    url, body, documented = _doc_example()
    response = client.post(url, json=body, headers=cds)
    assert response.status_code == 200, response.text
    got = response.json()["cards"]
    assert [c["summary"] for c in got] == [c["summary"] for c in documented["cards"]]
    assert [c["indicator"] for c in got] == [c["indicator"] for c in documented["cards"]]
    assert [c["source"]["url"] for c in got] == [c["source"]["url"] for c in documented["cards"]]


@pytest.mark.parametrize(
    ("persona", "status"),
    [
        ("care_manager", 200),
        ("consultant", 200),
        ("therapist", 200),
        ("outsider", 412),
        ("patient_user", 403),
        ("other_patient_user", 403),
        ("family", 403),
        ("family_no_consent", 403),
        ("admin", 403),
    ],
)
def test_every_persona_with_a_cds_token(client, session, people, persona, status):
    """Without a prefetch list: the care team gets Concord's list; another clinician the same
    412 as for an unknown patient; no one else may ask. Every refusal is audited."""
    user = getattr(people, persona)
    headers = bearer(session, user, scope=TokenScope.cds)
    body = request("order-sign", [med("n", NALTREXONE)], patient_id=str(people.patient.id))
    response = client.post(SIGN, json=body, headers=headers)
    assert response.status_code == status, response.text
    assert people.patient.family_name not in response.text
    events = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "medication_check", AuditEvent.actor_id == user.id
        )
    ).all()
    assert [e.outcome for e in events] == ["success" if status == 200 else "denied"]


def test_the_account_page_names_a_cds_token_for_what_it_opens(client, session, people, sign_in):
    bearer(session, people.care_manager, scope=TokenScope.cds, name="EHR CDS Hooks")
    sign_in(people.care_manager.email)
    page = client.get("/account").text
    row = page.split("EHR CDS Hooks", 1)[1].split("</tr>", 1)[0]
    assert "medication checks from a health record system only" in row
    assert "read only" not in row


# --- feedback -------------------------------------------------------------------------------

FEEDBACK = "/cds-services/concord-medication-safety-sign/feedback"
WHEN = "2026-11-22T15:00:00Z"


def test_an_override_needs_a_reason_and_is_audited_without_the_comment(client, session, cds):
    reason = {"userComment": "Patient Jane Doe tapering, discussed with Dr X"}
    body = {
        "feedback": [
            {"card": "c-1", "outcome": "overridden", "outcomeTimestamp": WHEN},
        ]
    }
    response = client.post(FEEDBACK, json=body, headers=cds)
    assert response.status_code == 400
    assert response.json()["fields"][0]["field"] == "feedback[0].overrideReason"
    body["feedback"][0]["overrideReason"] = {}
    assert client.post(FEEDBACK, json=body, headers=cds).status_code == 400
    assert (
        session.scalars(select(AuditEvent).where(AuditEvent.action == "medication_override")).all()
        == []
    )

    body["feedback"][0]["overrideReason"] = reason
    body["feedback"].append(
        {
            "card": "c-2",
            "outcome": "overridden",
            "outcomeTimestamp": WHEN,
            "overrideReason": {
                "reason": {"system": "http://example.org/reasons", "code": "benefit"}
            },
        }
    )
    body["feedback"].append(
        {
            "card": "c-3",
            "outcome": "accepted",
            "outcomeTimestamp": WHEN,
            "acceptedSuggestions": [{"id": "s-1"}],
        }
    )
    response = client.post(FEEDBACK, json=body, headers=cds)
    assert response.status_code == 200, response.text
    events = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action.in_(["medication_override", "medication_accept"])
        )
    ).all()
    got = {(e.object_id, e.action, e.detail["reason_code"], e.detail["comment"]) for e in events}
    assert got == {
        ("c-1", "medication_override", "", True),
        ("c-2", "medication_override", "benefit", False),
        ("c-3", "medication_accept", "", False),
    }
    assert all("Jane" not in json.dumps(e.detail) for e in events)


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"outcome": "accepted", "outcomeTimestamp": WHEN}, "feedback[0].card"),
        ({"card": "c", "outcome": "maybe", "outcomeTimestamp": WHEN}, "feedback[0].outcome"),
        (
            {"card": "c", "outcome": "accepted", "outcomeTimestamp": "soon"},
            "feedback[0].outcomeTimestamp",
        ),
    ],
)
def test_feedback_that_cannot_be_read_is_400_naming_the_field(client, cds, item, field):
    response = client.post(FEEDBACK, json={"feedback": [item]}, headers=cds)
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["fields"]] == [field]


def test_feedback_needs_a_cds_token_and_a_known_service(client, session, people, cds):
    body = {"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": WHEN}]}
    assert client.post(FEEDBACK, json=body).status_code == 401
    assert (
        client.post(FEEDBACK, json=body, headers=bearer(session, people.therapist)).status_code
        == 403
    )
    assert client.post("/cds-services/nope/feedback", json=body, headers=cds).status_code == 404

"""Questionnaires, responses and scores through /fhir, as an EHR or app uses them."""

from __future__ import annotations

import copy
import json

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from sqlalchemy import func, select

from concord.accounts.models import TokenScope
from concord.measures.library import library
from concord.measures.models import MeasureResponse
from concord.safety.models import SafetyAlert
from tests.careplans.test_api import bearer

PHQ9_ITEMS = [
    "44250-9",
    "44255-8",
    "44259-0",
    "44254-1",
    "44251-7",
    "44258-2",
    "44252-5",
    "44253-3",
    "44260-8",
]
FREQUENCY = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]


def ehr_response(patient_id, values, *, identifier="visit-1", canonical=None, as_codes=True):
    """A PHQ-9 response the way an EHR sends it: LOINC linkIds and LOINC answer codes."""
    items = []
    for link, value in zip(PHQ9_ITEMS, values, strict=True):
        answer = (
            {"valueCoding": {"system": "http://loinc.org", "code": FREQUENCY[value]}}
            if as_codes
            else {"valueInteger": value}
        )
        items.append({"linkId": f"/{link}", "answer": [answer]})
    items.append({"linkId": "/44261-6", "answer": [{"valueInteger": sum(values)}]})
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": canonical or "http://loinc.org/q/44249-1",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": "2026-11-21T10:00:00Z",
        "identifier": {"system": "urn:ehr:visits", "value": identifier},
        "item": items,
    }


@pytest.fixture
def token(session, people):
    return bearer(session, people.care_manager)


def post(client, body, headers):
    return client.post(
        "/fhir/QuestionnaireResponse",
        json=body,
        headers={**headers, "Content-Type": "application/fhir+json"},
    )


class TestQuestionnaires:
    @pytest.mark.parametrize("code", [i.code for i in library().all() if i.usable])
    def test_every_instrument_is_a_valid_questionnaire(self, client, token, code):
        response = client.get(f"/fhir/Questionnaire/{code}", headers=token)
        assert response.status_code == 200
        questionnaire = Questionnaire.model_validate(response.json())
        assert questionnaire.status == "active"
        assert len(questionnaire.item) == len(library().get(code).items)

    def test_the_phq9_questionnaire_is_loinc_coded_and_bilingual(self, client, token):
        body = client.get("/fhir/Questionnaire/PHQ-9", headers=token).json()
        assert body["code"] == [{"system": "http://loinc.org", "code": "44249-1"}]
        first = body["item"][0]
        assert first["linkId"] == "44250-9"
        assert [o["valueCoding"]["code"] for o in first["answerOption"]] == FREQUENCY
        spanish = first["_text"]["extension"][0]["extension"]
        assert {"url": "lang", "valueCode": "es"} in spanish

    def test_search_by_loinc_panel_and_by_url(self, client, token):
        by_code = client.get(
            "/fhir/Questionnaire?code=http://loinc.org|44249-1", headers=token
        ).json()
        by_url = client.get(
            "/fhir/Questionnaire?url=http://loinc.org/q/69737-5", headers=token
        ).json()
        assert [e["resource"]["id"] for e in by_code["entry"]] == ["PHQ-9"]
        assert [e["resource"]["id"] for e in by_url["entry"]] == ["GAD-7"]

    def test_an_unlicensed_placeholder_is_not_offered(self, client, token):
        assert client.get("/fhir/Questionnaire/CollaboRATE", headers=token).status_code == 404


class TestAcceptingResponses:
    def test_an_ehr_response_is_scored_stored_and_returned(self, client, session, people, token):
        response = post(client, ehr_response(people.patient.id, [2, 2, 2, 1, 1, 1, 1, 0, 0]), token)
        assert response.status_code == 201, response.text
        stored = QuestionnaireResponse.model_validate(response.json())
        assert stored.status == "completed"
        assert response.headers["location"].endswith(f"/QuestionnaireResponse/{stored.id}")
        row = session.scalar(select(MeasureResponse))
        assert row.mode == "external" and row.scores["total"]["value"] == 10

    def test_integers_and_concord_canonical_urls_are_accepted_too(
        self, client, session, people, token
    ):
        body = ehr_response(
            people.patient.id,
            [0] * 9,
            as_codes=False,
            canonical="https://concord-care.org/fhir/Questionnaire/PHQ-9|1",
        )
        assert post(client, body, token).status_code == 201

    def test_the_same_submission_twice_is_stored_once(self, client, session, people, token):
        body = ehr_response(people.patient.id, [1] * 9)
        first = post(client, body, token)
        second = post(client, body, token)
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json()["id"] == second.json()["id"]
        assert session.scalar(select(func.count()).select_from(MeasureResponse)) == 1

    def test_an_identifier_without_a_system_is_matched_too(self, client, session, people, token):
        # Matched on "no system" (IS NULL), which an equality with a parameter never is.
        body = ehr_response(people.patient.id, [1] * 9)
        body["identifier"] = {"value": "visit-without-system"}
        first = post(client, body, token)
        second = post(client, body, token)
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json()["id"] == second.json()["id"]
        assert first.json()["identifier"] == {"value": "visit-without-system"}
        assert session.scalar(select(func.count()).select_from(MeasureResponse)) == 1

    def test_the_answer_names_who_entered_it(self, client, people, token):
        body = post(client, ehr_response(people.patient.id, [0] * 9), token).json()
        assert body["author"]["reference"] == f"Practitioner/{people.care_manager.id}"
        assert body["author"]["display"] == people.care_manager.name

    def test_a_critical_answer_raises_the_alert_even_from_outside(
        self, client, session, people, token
    ):
        post(client, ehr_response(people.patient.id, [0, 0, 0, 0, 0, 0, 0, 0, 2]), token)
        assert session.scalar(select(SafetyAlert)).tier == "urgent"  # item 9 = 2

    @pytest.mark.parametrize(
        ("mutate", "field", "problem"),
        [
            (
                lambda b: b["item"][0]["answer"][0]["valueCoding"].update(code="LA0000-0"),
                "item[44250-9]",
                "is not an answer to this question",
            ),
            (
                lambda b: b["item"][1].update(answer=[{"valueInteger": 7}]),
                "item[44255-8]",
                "7 is not an answer to this question; allowed: 0, 1, 2, 3",
            ),
            (
                lambda b: b["item"][2].update(answer=[{"valueBoolean": True}]),
                "item[44259-0]",
                "valueBoolean is not accepted",
            ),
            (
                lambda b: b["item"][3].update(answer=[{"valueString": "often"}]),
                "item[44254-1]",
                "valueString is not accepted",
            ),
            (
                lambda b: b["item"].append({"linkId": "12345-6", "answer": [{"valueInteger": 1}]}),
                "item[12345-6]",
                "is not a question of PHQ-9",
            ),
            (
                lambda b: b.update(questionnaire="http://loinc.org/q/00000-0"),
                "questionnaire",
                "is not an instrument here",
            ),
            (
                lambda b: b.update(authored="2030-01-01T00:00:00Z"),
                "authored",
                "cannot be in the future",
            ),
            (lambda b: b.update(status="in-progress"), "status", "only completed responses"),
        ],
    )
    def test_bad_input_is_refused_naming_the_item(
        self, client, session, people, token, mutate, field, problem
    ):
        body = copy.deepcopy(ehr_response(people.patient.id, [1] * 9))
        mutate(body)
        response = post(client, body, token)
        assert response.status_code == 422, response.text
        outcome = OperationOutcome.model_validate(response.json())
        diagnostics = {i.expression[0]: i.diagnostics for i in outcome.issue}
        assert field in diagnostics and problem in diagnostics[field], diagnostics
        assert session.scalar(select(func.count()).select_from(MeasureResponse)) == 0

    def test_a_patient_outside_the_callers_teams_is_refused_without_writing(
        self, client, session, people
    ):
        headers = bearer(session, people.outsider)
        response = post(client, ehr_response(people.patient.id, [1] * 9), headers)
        assert response.status_code == 422
        assert session.scalar(select(func.count()).select_from(MeasureResponse)) == 0

    def test_a_read_only_token_may_not_submit(self, client, session, people):
        headers = bearer(session, people.care_manager, scope=TokenScope.read)
        response = post(client, ehr_response(people.patient.id, [1] * 9), headers)
        assert response.status_code == 403
        outcome = OperationOutcome.model_validate(response.json())
        assert "only read" in outcome.issue[0].diagnostics
        assert session.scalar(select(func.count()).select_from(MeasureResponse)) == 0

    def test_the_token_is_checked_before_the_body(self, client, session, people):
        # Someone without a valid token learns nothing from the body's checks.
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            for content in (b"{nope", json.dumps(ehr_response(people.patient.id, [1] * 9))):
                response = client.post(
                    "/fhir/QuestionnaireResponse",
                    content=content,
                    headers={**headers, "Content-Type": "application/fhir+json"},
                )
                assert response.status_code == 401, response.text
                OperationOutcome.model_validate(response.json())
        assert session.scalar(select(func.count()).select_from(MeasureResponse)) == 0

    def test_a_submit_that_fails_at_commit_is_rolled_back_and_busy(
        self, client, session, people, token, monkeypatch
    ):
        # The submit commits in its own worker thread; a failure there (the database busy)
        # is answered like any other: nothing kept, 503 "busy", never a 500.
        from sqlalchemy.exc import OperationalError

        from concord.web import deps

        def busy(session, factory):
            session.flush()
            raise OperationalError("COMMIT", {}, Exception("database is locked"))

        monkeypatch.setattr(deps, "finish", busy)
        response = post(client, ehr_response(people.patient.id, [1] * 9), token)
        assert response.status_code == 503, response.text
        assert "busy" in OperationOutcome.model_validate(response.json()).issue[0].diagnostics
        monkeypatch.undo()
        assert session.scalar(select(func.count()).select_from(MeasureResponse)) == 0
        assert post(client, ehr_response(people.patient.id, [1] * 9), token).status_code == 201

    def test_not_json_is_refused(self, client, token):
        response = client.post(
            "/fhir/QuestionnaireResponse",
            content=b"{nope",
            headers={**token, "Content-Type": "application/fhir+json"},
        )
        assert response.status_code == 422
        OperationOutcome.model_validate(response.json())


class TestReadingScores:
    @pytest.fixture
    def history(self, client, people, token, clock):
        for n, values in enumerate(([3] * 9, [2] * 9, [1] * 9)):
            body = ehr_response(people.patient.id, values, identifier=f"v{n}")
            body["authored"] = f"2026-11-{10 + n:02d}T10:00:00Z"
            assert post(client, body, token).status_code == 201

    def test_phq9_totals_newest_first_with_severity(self, client, people, token, history):
        bundle = client.get(
            f"/fhir/Observation?patient={people.patient.id}&code=44261-6", headers=token
        ).json()
        Bundle.model_validate(bundle)
        observations = [Observation.model_validate(e["resource"]) for e in bundle["entry"]]
        assert [o.valueQuantity.value for o in observations] == [9, 18, 27]
        assert [o.interpretation[0].coding[0].code for o in observations] == [
            "mild",
            "moderately-severe",
            "severe",
        ]
        assert observations[0].effectiveDateTime.isoformat().startswith("2026-11-12")

    def test_a_response_reads_back_with_its_item_observations(self, client, people, token, history):
        bundle = client.get(
            f"/fhir/QuestionnaireResponse?patient={people.patient.id}", headers=token
        ).json()
        response_id = bundle["entry"][0]["resource"]["id"]
        QuestionnaireResponse.model_validate(
            client.get(f"/fhir/QuestionnaireResponse/{response_id}", headers=token).json()
        )
        derived = client.get(
            f"/fhir/Observation?derived-from=QuestionnaireResponse/{response_id}", headers=token
        ).json()
        codes = {e["resource"]["code"]["coding"][0]["code"] for e in derived["entry"]}
        assert "44261-6" in codes and set(PHQ9_ITEMS) <= codes
        item = next(
            e["resource"]
            for e in derived["entry"]
            if e["resource"]["code"]["coding"][0]["code"] == "44260-8"
        )
        Observation.model_validate(item)
        read = client.get(f"/fhir/Observation/{item['id']}", headers=token)
        assert read.status_code == 200 and read.json() == item

    def test_paging_through_scores(self, client, people, token, history):
        first = client.get(
            f"/fhir/Observation?patient={people.patient.id}&_count=2", headers=token
        ).json()
        next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
        second = client.get(next_url.replace("http://testserver", ""), headers=token).json()
        values = [e["resource"]["valueQuantity"]["value"] for e in first["entry"] + second["entry"]]
        assert values == [9, 18, 27]

    def test_scores_of_other_teams_patients_are_not_found(
        self, client, session, people, token, history
    ):
        headers = bearer(session, people.outsider)
        bundle = client.get(
            f"/fhir/Observation?patient={people.patient.id}", headers=headers
        ).json()
        assert bundle.get("entry", []) == []
        mine = client.get(f"/fhir/Observation?patient={people.patient.id}", headers=token).json()
        observation_id = mine["entry"][0]["resource"]["id"]
        assert client.get(f"/fhir/Observation/{observation_id}", headers=headers).status_code == 404


def test_the_capability_statement_offers_the_new_resources(client):
    statement = client.get("/fhir/metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {"Questionnaire", "QuestionnaireResponse", "Observation"} <= set(resources)
    assert {"code": "create"} in resources["QuestionnaireResponse"]["interaction"]


class TestDatesAndCommit:
    """Issue 16, item 3: a response dated year 0001 was stored, answered 500, and then broke
    the patient's pages, searches and the reminders job."""

    @pytest.mark.parametrize(
        "authored",
        ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "1899-12-31T23:59:59Z"],
    )
    def test_a_response_from_before_1900_is_refused_naming_authored(
        self, client, session, people, token, authored
    ):
        body = ehr_response(people.patient.id, [1] * 9)
        body["authored"] = authored
        response = post(client, body, token)
        assert response.status_code == 422, response.text
        outcome = OperationOutcome.model_validate(response.json())
        diagnostics = {i.expression[0]: i.diagnostics for i in outcome.issue}
        assert "between 1900 and 2200" in diagnostics["authored"]
        assert session.scalar(select(func.count()).select_from(MeasureResponse)) == 0
        # The patient's record still reads.
        assert client.get("/fhir/QuestionnaireResponse", headers=token).status_code == 200

    def test_an_answer_that_fails_its_check_commits_nothing(
        self, client, session, people, token, monkeypatch
    ):
        # Whatever makes the answer unsendable, the response it describes is not kept: the
        # answer is checked before the commit, not after.
        from concord.fhir import routes

        def broken(resource):
            raise ValueError("not a valid resource")

        monkeypatch.setattr(routes.mapping, "validate", broken)
        client_500 = client.__class__(client.app, raise_server_exceptions=False)
        response = client_500.post(
            "/fhir/QuestionnaireResponse",
            json=ehr_response(people.patient.id, [1] * 9),
            headers={**token, "Content-Type": "application/fhir+json"},
        )
        assert response.status_code == 500
        assert session.scalar(select(func.count()).select_from(MeasureResponse)) == 0


def _count(session, model=MeasureResponse):
    return session.scalar(select(func.count()).select_from(model))


class TestSameIdentifierDifferentContent:
    """Issue 16, item 4: the same identifier with different answers was answered "replayed"
    and the new answers (item 9 now 3) dropped, with no alert."""

    def test_different_content_under_the_same_identifier_is_a_conflict(
        self, client, session, people, token
    ):
        first = post(client, ehr_response(people.patient.id, [1] * 9), token)
        assert first.status_code == 201
        changed = ehr_response(people.patient.id, [1, 1, 1, 1, 1, 1, 1, 1, 3])
        second = post(client, changed, token)
        assert second.status_code == 409, second.text
        assert "amended" in OperationOutcome.model_validate(second.json()).issue[0].diagnostics
        assert _count(session) == 1
        assert session.scalar(select(MeasureResponse)).answers["9"] == 1

    def test_a_replay_must_be_the_same_bytes(self, client, session, people, token):
        body = ehr_response(people.patient.id, [1] * 9)
        raw = json.dumps(body).encode()
        headers = {**token, "Content-Type": "application/fhir+json"}
        first = client.post("/fhir/QuestionnaireResponse", content=raw, headers=headers)
        again = client.post("/fhir/QuestionnaireResponse", content=raw, headers=headers)
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.headers["Idempotent-Replayed"] == "true"
        body["language"] = "es"  # the same answers, but not the same request
        other = client.post(
            "/fhir/QuestionnaireResponse", content=json.dumps(body).encode(), headers=headers
        )
        assert other.status_code == 409
        assert _count(session) == 1

    def test_amended_rescores_raises_the_alert_and_keeps_the_old_version(
        self, client, session, people, token
    ):
        first = post(client, ehr_response(people.patient.id, [1, 1, 1, 1, 1, 1, 1, 1, 0]), token)
        assert _count(session, SafetyAlert) == 0
        amended = ehr_response(people.patient.id, [1, 1, 1, 1, 1, 1, 1, 1, 3])
        amended["status"] = "amended"
        response = post(client, amended, token)
        assert response.status_code == 201, response.text
        resource = QuestionnaireResponse.model_validate(response.json())
        assert resource.status == "amended" and resource.id != first.json()["id"]
        assert resource.identifier.value == "visit-1"
        session.expire_all()
        rows = {str(r.id): r for r in session.scalars(select(MeasureResponse))}
        old, new = rows[first.json()["id"]], rows[resource.id]
        assert old.status == "superseded" and old.answers["9"] == 0  # history kept
        assert old.scores["total"]["value"] == 8
        assert new.status == "completed" and new.amends_id == old.id
        assert new.scores["total"]["value"] == 11
        assert session.scalar(select(SafetyAlert)).tier == "urgent"  # item 9 = 3
        # Only the amendment is current: one score in the FHIR search, and the old version's
        # change is in the audit trail.
        bundle = client.get(
            "/fhir/Observation",
            params={"patient": people.patient.id, "code": "44261-6"},
            headers=token,
        ).json()
        assert [e["resource"]["valueQuantity"]["value"] for e in bundle["entry"]] == [11]
        from concord.audit.models import AuditEvent

        assert session.scalar(
            select(AuditEvent).where(
                AuditEvent.object_id == str(old.id), AuditEvent.action == "update"
            )
        ).detail["amended_by"] == str(new.id)
        # Sending the amendment again is a replay of it.
        again = post(client, amended, token)
        assert again.status_code == 200 and again.json()["id"] == resource.id

    def test_an_amendment_must_answer_the_same_questionnaire(self, client, session, people, token):
        post(client, ehr_response(people.patient.id, [1] * 9), token)
        gad7 = {
            "resourceType": "QuestionnaireResponse",
            "questionnaire": "https://concord-care.org/fhir/Questionnaire/GAD-7",
            "status": "amended",
            "subject": {"reference": f"Patient/{people.patient.id}"},
            "authored": "2026-11-21T10:00:00Z",
            "identifier": {"system": "urn:ehr:visits", "value": "visit-1"},
            "item": [{"linkId": str(n), "answer": [{"valueInteger": 1}]} for n in range(1, 8)],
        }
        response = post(client, gad7, token)
        assert response.status_code == 409, response.text
        session.expire_all()
        assert [r.status for r in session.scalars(select(MeasureResponse))] == ["completed"]

    def test_if_none_exist_returns_the_match_without_creating(self, client, session, people, token):
        first = post(client, ehr_response(people.patient.id, [1] * 9), token)
        other = ehr_response(people.patient.id, [2] * 9, identifier="visit-2")
        for criteria in ("identifier=urn:ehr:visits|visit-1", "identifier=visit-1"):
            response = client.post(
                "/fhir/QuestionnaireResponse",
                json=other,
                headers={
                    **token,
                    "Content-Type": "application/fhir+json",
                    "If-None-Exist": criteria,
                },
            )
            assert response.status_code == 200, response.text
            assert response.json()["id"] == first.json()["id"]
        assert _count(session) == 1
        response = client.post(
            "/fhir/QuestionnaireResponse",
            json=other,
            headers={
                **token,
                "Content-Type": "application/fhir+json",
                "If-None-Exist": "identifier=urn:ehr:visits|visit-2",
            },
        )
        assert response.status_code == 201
        assert _count(session) == 2
        statement = client.get("/fhir/metadata").json()
        resources = statement["rest"][0]["resource"]
        (qr,) = [r for r in resources if r["type"] == "QuestionnaireResponse"]
        assert qr["conditionalCreate"] is True

    @pytest.mark.parametrize("criteria", ["patient=x", "identifier=a&status=completed", "x"])
    def test_if_none_exist_refuses_what_it_cannot_honour(
        self, client, session, people, token, criteria
    ):
        response = client.post(
            "/fhir/QuestionnaireResponse",
            json=ehr_response(people.patient.id, [1] * 9),
            headers={**token, "Content-Type": "application/fhir+json", "If-None-Exist": criteria},
        )
        assert response.status_code == 422, response.text
        outcome = OperationOutcome.model_validate(response.json())
        assert outcome.issue[0].expression == ["If-None-Exist"]
        assert _count(session) == 0

"""FHIR search and read semantics (https://hl7.org/fhir/R4/search.html): a question Concord does
not support is refused (400 not-supported), never answered with something else."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from concord.actions import checkin
from concord.app import create_app
from concord.measures import service as measures
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for, create_patient, create_plan
from tests.fhir.test_fhir_measures import ehr_response, post
from tests.safety.conftest import asq, phq9, respond

LOINC = "http://loinc.org"
PHQ9_TOTAL = "44261-6"


@pytest.fixture
def token(session, people):
    return bearer(session, people.care_manager)


@pytest.fixture
def second(session, people):
    """A second patient on the care manager's team."""
    patient = create_patient(
        session,
        people.org,
        people.north,
        by=people.care_manager,
        given="Sam",
        family="Second",
        mrn="N-2",
        email=None,
    )
    commit(session)
    return patient


@pytest.fixture
def scored(session, people, second):
    """A PHQ-9 for each of the two patients."""
    for patient in (people.patient, second):
        respond(session, people, "PHQ-9", phq9([1, 1, 1, 1, 0, 0, 0, 0, 0]), patient=patient)
    commit(session)


def get(client, path, headers):
    response = client.get(f"/fhir/{path}", headers=headers)
    assert response.headers["content-type"].startswith("application/fhir+json"), response.text
    return response


def entries(response):
    assert response.status_code == 200, response.text
    Bundle.model_validate(response.json())
    return [e["resource"] for e in response.json().get("entry", [])]


def references_in(value):
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str) and not value["reference"].startswith("#"):
            yield value["reference"]
        for item in value.values():
            yield from references_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from references_in(item)


def ids(response):
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json().get("entry", [])]


def subjects(response):
    assert response.status_code == 200, response.text
    return {e["resource"]["subject"]["reference"] for e in response.json().get("entry", [])}


def not_supported(response, name):
    assert response.status_code == 400, response.text
    issue = OperationOutcome.model_validate(response.json()).issue[0]
    assert issue.code == "not-supported" and name in issue.diagnostics
    return issue


class TestPostSearch:
    def test_url_parameters_count_with_the_form_body(self, client, people, scored, token):
        response = client.post(
            f"/fhir/Observation/_search?patient={people.patient.id}",
            data={"code": f"{LOINC}|{PHQ9_TOTAL}"},
            headers=token,
        )
        assert subjects(response) == {f"Patient/{people.patient.id}"}

    def test_an_empty_body_keeps_the_url_parameters(self, client, people, scored, token):
        response = client.post(
            f"/fhir/Observation/_search?patient={people.patient.id}", data={}, headers=token
        )
        assert subjects(response) == {f"Patient/{people.patient.id}"}

    def test_the_same_parameter_in_url_and_body_is_and(self, client, people, second, scored, token):
        response = client.post(
            f"/fhir/Observation/_search?patient={people.patient.id}",
            data={"patient": str(second.id)},
            headers=token,
        )
        assert ids(response) == []

    def test_a_body_that_is_not_a_form_is_refused(self, client, people, scored, token):
        response = client.post(
            f"/fhir/Observation/_search?patient={people.patient.id}",
            json={"patient": "someone-else"},
            headers=token,
        )
        not_supported(response, "Content-Type")


class TestOrAndAnd:
    def test_a_comma_is_or(self, client, people, second, scored, token):
        response = get(client, f"Observation?patient={people.patient.id},{second.id}", token)
        assert subjects(response) == {f"Patient/{people.patient.id}", f"Patient/{second.id}"}

    def test_a_repeated_patient_is_and(self, client, people, second, scored, token):
        both = get(client, f"Observation?patient={people.patient.id}&patient={second.id}", token)
        assert ids(both) == []
        same = get(
            client,
            f"Observation?patient={people.patient.id}&subject=Patient/{people.patient.id}",
            token,
        )
        assert subjects(same) == {f"Patient/{people.patient.id}"}

    def test_a_repeated_code_is_and(self, client, people, scored, token):
        path = f"Observation?patient={people.patient.id}"
        assert len(ids(get(client, f"{path}&code={PHQ9_TOTAL}", token))) == 1
        assert ids(get(client, f"{path}&code={PHQ9_TOTAL}&code=70274-6", token)) == []
        assert ids(get(client, f"{path}&code=70274-6&code={PHQ9_TOTAL}", token)) == []
        assert len(ids(get(client, f"{path}&code={PHQ9_TOTAL},70274-6", token))) == 1

    def test_care_team_status_with_a_comma(self, client, people, token):
        path = f"CareTeam?patient={people.patient.id}"
        assert len(ids(get(client, f"{path}&status=active,inactive", token))) == 1
        assert ids(get(client, f"{path}&status=inactive", token)) == []
        assert ids(get(client, f"{path}&status=active&status=inactive", token)) == []

    def test_care_plan_and_goal_status_with_a_comma(self, client, session, people, token):
        create_plan(session, people, activate=True)
        commit(session)
        path = f"CarePlan?patient={people.patient.id}"
        assert len(ids(get(client, f"{path}&status=draft,active", token))) == 1
        assert (
            len(ids(get(client, f"{path}&status=http://hl7.org/fhir/request-status|active", token)))
            == 1
        )
        assert ids(get(client, f"{path}&status=http://example.org/other|active", token)) == []
        goals = f"Goal?patient={people.patient.id}&lifecycle-status"
        assert len(ids(get(client, f"{goals}=proposed,accepted", token))) == 1
        assert ids(get(client, f"{goals}=proposed,accepted&lifecycle-status=proposed", token)) == []

    def test_task_and_flag_status_with_a_comma(self, client, session, people, token):
        respond(session, people, "ASQ", asq(2))
        commit(session)
        tasks = f"Task?patient={people.patient.id}&status"
        assert len(ids(get(client, f"{tasks}=requested,completed", token))) == 1
        assert ids(get(client, f"{tasks}=requested&status=completed", token)) == []
        assert ids(get(client, f"{tasks}=completed&status=requested", token)) == []
        flags = f"Flag?patient={people.patient.id}&status"
        assert len(ids(get(client, f"{flags}=active,inactive", token))) == 1
        assert ids(get(client, f"{flags}=active&status=inactive", token)) == []
        assert ids(get(client, f"{flags}=inactive&status=active", token)) == []


class TestTokens:
    def test_the_system_of_a_code_counts(self, client, people, scored, token):
        path = f"Observation?patient={people.patient.id}&code"
        assert len(ids(get(client, f"{path}={LOINC}|{PHQ9_TOTAL}", token))) == 1
        assert ids(get(client, f"{path}=http://snomed.info/sct|{PHQ9_TOTAL}", token)) == []
        assert ids(get(client, f"{path}=|{PHQ9_TOTAL}", token)) == []  # a code with no system
        assert len(ids(get(client, f"{path}={LOINC}|", token))) == 1  # any LOINC code

    def test_an_identifier_without_a_system_does_not_match_one_with(self, client, people, token):
        system = get(client, f"Patient/{people.patient.id}", token).json()["identifier"][0][
            "system"
        ]
        assert ids(get(client, "Patient?identifier=|N-1", token)) == []
        assert ids(get(client, "Patient?identifier=N-1", token)) == [str(people.patient.id)]
        matched = get(client, f"Patient?identifier={quote(system, safe='')}|N-1", token)
        assert ids(matched) == [str(people.patient.id)]
        assert ids(get(client, "Patient?identifier=urn:other|N-1", token)) == []
        assert ids(get(client, "Patient?identifier=N-1&identifier=N-2", token)) == []

    def test_a_response_identifier_with_and_without_system(self, client, people, token):
        assert post(client, ehr_response(people.patient.id, [0] * 9), token).status_code == 201
        path = "QuestionnaireResponse?identifier"
        assert len(ids(get(client, f"{path}=urn:ehr:visits|visit-1", token))) == 1
        assert len(ids(get(client, f"{path}=visit-1", token))) == 1
        assert ids(get(client, f"{path}=|visit-1", token)) == []
        assert ids(get(client, f"{path}=urn:other|visit-1", token)) == []

    def test_a_questionnaire_code_with_another_system_does_not_match(self, client, token):
        assert ids(get(client, "Questionnaire?code=http://loinc.org|44249-1", token)) == ["PHQ-9"]
        assert ids(get(client, "Questionnaire?code=http://snomed.info/sct|44249-1", token)) == []


class TestCanonicals:
    def test_a_questionnaire_url_with_a_version(self, client, token):
        phq9 = get(client, "Questionnaire/PHQ-9", token).json()
        url, version = phq9["url"], phq9["version"]
        assert ids(get(client, f"Questionnaire?url={url}|{version}", token)) == ["PHQ-9"]
        assert ids(get(client, f"Questionnaire?url={url}|0.0-not-a-version", token)) == []

    def test_a_response_questionnaire_with_a_version(self, client, session, people, scored, token):
        phq9 = get(client, "Questionnaire/PHQ-9", token).json()
        url, version = phq9["url"], phq9["version"]
        path = f"QuestionnaireResponse?patient={people.patient.id}&questionnaire"
        assert len(ids(get(client, f"{path}={url}|{version}", token))) == 1
        assert len(ids(get(client, f"{path}={url}", token))) == 1
        assert ids(get(client, f"{path}={url}|0.0-not-a-version", token)) == []


class TestPaging:
    def walk(self, client, first, token):
        seen = [e["resource"]["id"] for e in first.get("entry", [])]
        page = first
        while True:
            links = {link["relation"]: link["url"] for link in page["link"]}
            if "next" not in links:
                return seen
            page = client.get(links["next"].replace("http://testserver", ""), headers=token)
            assert page.status_code == 200, page.text
            page = page.json()
            assert page["total"] == first["total"]
            seen += [e["resource"]["id"] for e in page.get("entry", [])]

    def test_questionnaires_page_with_a_next_link(self, client, token):
        first = get(client, "Questionnaire?_count=2", token).json()
        assert len(first["entry"]) == 2 and first["total"] > 2
        seen = self.walk(client, first, token)
        assert len(seen) == len(set(seen)) == first["total"]

    @pytest.mark.parametrize(
        "kind",
        [
            "Patient",
            "CareTeam",
            "CarePlan",
            "Goal",
            "QuestionnaireResponse",
            "Observation",
            "Task",
            "Flag",
        ],
    )
    def test_every_search_pages_to_its_total(self, client, session, people, second, token, kind):
        for patient in (people.patient, second):
            create_plan(session, people, patient=patient, goals=2, activate=True)
            respond(session, people, "PHQ-9", phq9([1, 1, 1, 1, 0, 0, 0, 0, 1]), patient=patient)
            respond(session, people, "ASQ", asq(2), patient=patient)
        commit(session)
        query = (
            f"patient={people.patient.id},{second.id}"
            if kind != "Patient"
            else "_id=" + (f"{people.patient.id},{second.id}")
        )
        first = get(client, f"{kind}?{query}&_count=1", token).json()
        assert first["total"] >= 2, kind
        seen = self.walk(client, first, token)
        assert len(seen) == len(set(seen)) == first["total"]
        count = get(client, f"{kind}?{query}&_summary=count", token).json()
        assert count["total"] == first["total"] and "entry" not in count

    def test_observations_derived_from_a_response_page_to_their_total(self, client, people, token):
        created = post(client, ehr_response(people.patient.id, [1] * 9), token).json()
        first = get(
            client,
            f"Observation?derived-from=QuestionnaireResponse/{created['id']}&_count=3",
            token,
        ).json()
        assert len(first["entry"]) == 3 and first["total"] > 9  # the items and the scores
        seen = self.walk(client, first, token)
        assert len(seen) == len(set(seen)) == first["total"]


class TestResultParameters:
    def test_summary_true_keeps_the_summary_elements(self, client, people, token):
        full = get(client, f"Patient/{people.patient.id}", token).json()
        summary = get(client, f"Patient/{people.patient.id}?_summary=true", token)
        assert summary.status_code == 200
        body = summary.json()
        assert "communication" in full and "communication" not in body
        assert body["name"] == full["name"] and body["identifier"] == full["identifier"]
        assert {"code": "SUBSETTED"}.items() <= body["meta"]["tag"][0].items()

    def test_elements_keeps_the_named_and_the_mandatory(self, client, people, scored, token):
        bundle = get(client, f"Observation?patient={people.patient.id}&_elements=subject", token)
        [obs] = entries(bundle)
        assert set(obs) == {"resourceType", "id", "meta", "subject", "status", "code"}
        read = get(client, f"Observation/{obs['id']}?_elements=value", token).json()
        assert "valueQuantity" in read and "subject" not in read
        assert get(client, f"Observation/{obs['id']}?_elements=nonsense", token).status_code == 422

    @pytest.mark.parametrize(
        "kind",
        [
            "Patient",
            "CareTeam",
            "CarePlan",
            "Goal",
            "Questionnaire",
            "QuestionnaireResponse",
            "Observation",
            "Task",
            "Flag",
        ],
    )
    def test_every_search_and_read_subsets_valid_resources(
        self, client, session, people, token, kind
    ):
        create_plan(session, people, activate=True)
        respond(session, people, "PHQ-9", phq9([1, 1, 1, 1, 0, 0, 0, 0, 1]))
        commit(session)
        param = {"Patient": "_id", "Questionnaire": "_count"}.get(kind, "patient")
        value = "1" if kind == "Questionnaire" else str(people.patient.id)
        for extra in ("_summary=true", "_elements=id"):
            found = entries(get(client, f"{kind}?{param}={value}&{extra}", token))
            assert found, (kind, extra)
            for resource in found:
                assert "SUBSETTED" in [t["code"] for t in resource["meta"]["tag"]]
                read = get(client, f"{kind}/{resource['id']}?{extra}", token)
                assert read.status_code == 200 and read.json() == resource

    def test_summary_count_gives_the_total_only(self, client, people, scored, token):
        response = get(client, "Observation?_summary=count", token).json()
        assert response["total"] == 2 and "entry" not in response

    @pytest.mark.parametrize("path", ["Patient", "Patient/{id}", "metadata"])
    def test_format_json_is_accepted_anything_else_is_406(self, client, people, token, path):
        path = path.format(id=people.patient.id)
        sep = "&" if "?" in path else "?"
        for value in ("json", "application/fhir+json", "application/json"):
            assert get(client, f"{path}{sep}_format={quote(value)}", token).status_code == 200
        for value in ("xml", "application/fhir+xml", "ttl"):
            response = get(client, f"{path}{sep}_format={quote(value)}", token)
            assert response.status_code == 406
            assert OperationOutcome.model_validate(response.json()).issue[0].code == (
                "not-supported"
            )

    @pytest.mark.parametrize("path", ["Patient", "Patient/{id}", "metadata"])
    def test_an_accept_header_without_json_is_406(self, client, people, token, path):
        path = path.format(id=people.patient.id)
        for accept in (
            "application/fhir+json",
            "application/json",
            "*/*",
            "application/fhir+xml;q=0.9, application/fhir+json",
        ):
            response = client.get(f"/fhir/{path}", headers={**token, "Accept": accept})
            assert response.status_code == 200, accept
        response = client.get(f"/fhir/{path}", headers={**token, "Accept": "application/fhir+xml"})
        assert response.status_code == 406
        overridden = client.get(
            f"/fhir/{path}?_format=json", headers={**token, "Accept": "application/fhir+xml"}
        )
        assert overridden.status_code == 200

    def test_a_read_refuses_what_it_does_not_support(self, client, people, token):
        for param in ("foo=bar", "_include=Patient:link", "_count=2", "patient=x"):
            response = get(client, f"Patient/{people.patient.id}?{param}", token)
            not_supported(response, param.split("=")[0])
        assert get(client, f"Patient/{people.patient.id}?_summary=text", token).status_code == 400

    def test_pretty_is_the_same_answer_indented(self, client, people, token):
        plain = get(client, f"Patient/{people.patient.id}", token)
        pretty = get(client, f"Patient/{people.patient.id}?_pretty=true", token)
        assert pretty.json() == plain.json() and "\n  " in pretty.text


class TestRefused:
    def test_a_405_names_the_allowed_methods(self, client, token):
        response = client.post("/fhir/CarePlan", json={"resourceType": "CarePlan"}, headers=token)
        assert response.status_code == 405
        assert "GET" in response.headers["Allow"]
        OperationOutcome.model_validate(response.json())

    def test_modifiers_and_unknown_parameters_are_not_supported(self, client, people, token):
        for param in (
            "code:text=x",
            "patient:missing=true",
            "_sort=value-quantity",
            "_include=x",
            "_revinclude=x",
            "_include:iterate=Observation:patient",
            "date=ap2026-01-01",
            "category:not=survey",
            "_sort=date,-status",
        ):
            not_supported(get(client, f"Observation?{param}", token), param.split("=")[0])

    def test_every_search_refuses_what_the_capability_statement_does_not_list(
        self, client, people, token
    ):
        """The supported parameters come from the CapabilityStatement, so a parameter added
        to one list and not the other fails here."""
        statement = client.get("/fhir/metadata").json()
        searchable = [
            r
            for r in statement["rest"][0]["resource"]
            if {"code": "search-type"} in r["interaction"]
        ]
        assert {r["type"] for r in searchable} == {
            "Patient",
            "CareTeam",
            "CarePlan",
            "Goal",
            "Questionnaire",
            "QuestionnaireResponse",
            "Observation",
            "Task",
            "Flag",
            "Consent",
            "MedicationRequest",
            "MedicationStatement",
            "Measure",
            "Communication",
            # Imported from the EHR (issue 20), searched by patient only.
            "Condition",
            "Encounter",
            "Procedure",
            "ServiceRequest",
            "Coverage",
            # Care teams and programs for Bulk Data export (issue 21): no parameters.
            "Group",
            # Visits (issue 22), searched by patient.
            "Appointment",
        }
        needs_patient = (
            "Flag",
            "Consent",
            "MedicationRequest",
            "MedicationStatement",
            "Communication",
            "Appointment",
        )
        samples = {
            "token": "x",
            "reference": str(people.patient.id),
            "uri": "urn:x",
            "number": "1",
            "string": "id",
            "date": "ge2026-01-01",
        }
        for resource in searchable:
            kind = resource["type"]
            listed = {p["name"]: p["type"] for p in resource["searchParam"]}
            for name, type_ in listed.items():
                if kind in needs_patient and name == "status":
                    value = f"{samples[type_]}&patient={people.patient.id}"
                elif kind == "Task" and name == "status":
                    value = "ready"
                elif name == "_summary":
                    value = "true"
                elif name == "_elements":
                    value = "id"
                elif name == "_total":
                    value = "none"
                else:
                    value = samples[type_]
                if kind in needs_patient and name not in ("patient", "subject", "status"):
                    value += f"&patient={people.patient.id}"
                answer = get(client, f"{kind}?{name}={value}", token)
                assert answer.status_code == 200, (kind, name, answer.text)
                modifier = "above" if type_ == "string" else "exact"
                not_supported(get(client, f"{kind}?{name}:{modifier}={value}", token), name)
            for unlisted in ("name", "_lastUpdated", "_sort", "_has:Observation:subject:code"):
                if unlisted in listed:
                    continue
                not_supported(get(client, f"{kind}?{unlisted}=x", token), unlisted)
                response = client.post(f"/fhir/{kind}/_search", data={unlisted: "x"}, headers=token)
                not_supported(response, unlisted)

    def test_an_empty_value_is_refused_not_ignored(self, client, people, scored, token):
        response = get(client, "Observation?patient=", token)
        assert response.status_code == 422 and "patient" in response.text
        response = get(client, "Observation?code=1,,2", token)
        assert response.status_code == 422 and "code" in response.text

    @pytest.mark.parametrize(
        "path", ["Patient?identifier=", "Observation?code=", "Patient/x?_elements="]
    )
    def test_a_control_character_is_refused(self, client, people, token, path):
        response = get(client, f"{path}%00", token)
        assert response.status_code == 422

    @pytest.mark.parametrize("kind", ["Patient", "CarePlan", "Questionnaire", "Observation"])
    def test_a_control_character_in_an_id_is_not_found(self, client, people, token, kind):
        assert get(client, f"{kind}/a%00b", token).status_code == 404

    def test_a_list_of_values_has_a_limit(self, client, people, token):
        many = ",".join(str(n) for n in range(101))
        response = get(client, f"Observation?patient={many}", token)
        assert response.status_code == 422 and "patient" in response.text


def portal_check_in(session, people, answers, instrument="ASQ"):
    """The patient answers in the portal."""
    acc = acc_for(session, people.patient_user, people.patient)
    started = measures.start_or_resume(session, access=acc, instrument_code=instrument)
    return checkin.submit(
        session, access=acc, response_id=started.id, answers=answers, version=started.version
    )


class TestReferences:
    def test_a_patients_own_check_in_flag_names_the_patient_not_a_practitioner(
        self, client, session, people, token
    ):
        portal_check_in(session, people, asq(2))
        commit(session)
        [flag] = entries(get(client, f"Flag?patient={people.patient.id}", token))
        author = flag["author"]
        assert author.get("reference") != f"Practitioner/{people.patient_user.id}"
        if "reference" in author:
            assert get(client, author["reference"], token).status_code == 200

    def test_every_reference_emitted_resolves(self, client, session, people, token):
        plan = create_plan(session, people, goals=2, activate=True)
        del plan
        portal_check_in(session, people, asq(2))
        respond(session, people, "ASQ", asq(2))
        commit(session)
        post(
            client,
            ehr_response(people.patient.id, [1] * 8 + [2]),
            bearer(session, people.patient_user),
        )
        emitted = []
        for kind in (
            "Patient",
            "CareTeam",
            "CarePlan",
            "Goal",
            "QuestionnaireResponse",
            "Observation",
            "Task",
            "Flag",
        ):
            param = "_id" if kind == "Patient" else "patient"
            emitted += entries(get(client, f"{kind}?{param}={people.patient.id}", token))
        references = set(references_in(emitted))
        assert any(r.startswith("Practitioner/") for r in references)
        for reference in sorted(references):
            assert get(client, reference, token).status_code == 200, reference


class TestMrnSystem:
    def test_the_mrn_system_does_not_follow_the_servers_address(
        self, settings, factory, session, people
    ):
        from starlette.testclient import TestClient

        systems = []
        for base in ("http://testserver", "https://concord.clinic.example.org"):
            app = create_app(
                settings.model_copy(update={"base_url": base}), session_factory=factory
            )
            with TestClient(app) as client:
                body = client.get(
                    f"/fhir/Patient/{people.patient.id}",
                    headers=bearer(session, people.care_manager),
                ).json()
            systems.append(body["identifier"][0]["system"])
        assert systems[0] == systems[1]

    def test_the_mrn_system_is_a_setting(self, settings, factory, session, people):
        from starlette.testclient import TestClient

        custom = settings.model_copy(update={"fhir_mrn_system": "urn:oid:2.16.840.1.113883.19.5"})
        with TestClient(create_app(custom, session_factory=factory)) as client:
            token = bearer(session, people.care_manager)
            body = client.get(f"/fhir/Patient/{people.patient.id}", headers=token).json()
            assert body["identifier"][0]["system"] == "urn:oid:2.16.840.1.113883.19.5"
            found = client.get(
                "/fhir/Patient?identifier=urn:oid:2.16.840.1.113883.19.5|N-1", headers=token
            )
            assert [e["resource"]["id"] for e in found.json()["entry"]] == [str(people.patient.id)]

    def test_a_mrn_system_that_is_not_a_uri_is_refused(self):
        from pydantic import ValidationError

        from concord.settings import Settings

        with pytest.raises(ValidationError) as exc:
            Settings(env="test", fhir_mrn_system="MRN")
        assert "fhir_mrn_system" in str(exc.value)

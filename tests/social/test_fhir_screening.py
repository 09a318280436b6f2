"""The AHC HRSN through FHIR: a QuestionnaireResponse with question 2's boxes as repeated
answers comes in as their sum; out, one Observation per box checked, each with the US Core
sdoh category and the item's SDOHCC domain."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from concord.errors import InvalidInput
from concord.fhir.measures import item_observations, parse_response, questionnaire_resource
from concord.measures.library import library

SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"


def qr(problem_codes, **extra):
    def coded(link, code):
        return {
            "linkId": link,
            "answer": [{"valueCoding": {"system": "http://loinc.org", "code": code}}],
        }

    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "http://loinc.org/q/96777-8",
        "subject": {"reference": "Patient/p1"},
        "item": [
            coded("71802-3", "LA31993-1"),
            {
                "linkId": "96778-6",
                "answer": [
                    {"valueCoding": {"system": "http://loinc.org", "code": c}}
                    for c in problem_codes
                ],
            },
            coded("88122-7", "LA6729-3"),
            coded("88123-5", "LA28398-8"),
            coded("93030-5", "LA32-8"),
            coded("96779-4", "LA32-8"),
            coded("95618-5", "LA6270-8"),
            coded("95617-7", "LA6270-8"),
            coded("95616-9", "LA6270-8"),
            coded("95615-1", "LA6270-8"),
        ],
        **extra,
    }


def test_repeated_answers_come_in_as_their_sum():
    intake = parse_response(qr(["LA28580-1", "LA32001-2"]), library())
    assert intake.instrument.code == "AHC-HRSN"
    assert intake.answers["2"] == 2 + 64
    assert intake.answers["3"] == 1


def test_none_of_the_above_with_a_problem_is_refused():
    with pytest.raises(InvalidInput) as exc:
        parse_response(qr(["LA9-3", "LA28580-1"]), library())
    assert "item[96778-6]" in exc.value.errors


def test_one_observation_per_box_with_the_sdoh_categories():
    ahc = library().get("AHC-HRSN")
    response = SimpleNamespace(
        id=uuid.uuid4(),
        answers={
            "1": 0,
            "2": 2 + 64,
            "3": 1,
            "4": 0,
            "5": 0,
            "6": 0,
            "7": 1,
            "8": 1,
            "9": 1,
            "10": 1,
        },
        completed_at=datetime(2026, 11, 1, tzinfo=UTC),
        updated_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    observations = item_observations(response, ahc, SimpleNamespace(id=uuid.uuid4()))
    housing = [o for o in observations if o["code"]["coding"][0]["code"] == "96778-6"]
    assert [o["valueCodeableConcept"]["coding"][0]["code"] for o in housing] == [
        "LA28580-1",
        "LA32001-2",
    ]
    assert len({o["id"] for o in observations}) == len(observations)
    for o in observations:
        codes = {(c["coding"][0]["system"], c["coding"][0]["code"]) for c in o["category"]}
        assert ("http://hl7.org/fhir/us/core/CodeSystem/us-core-category", "sdoh") in codes
    food = next(o for o in observations if o["code"]["coding"][0]["code"] == "88122-7")
    assert (SDOHCC, "food-insecurity") in {
        (c["coding"][0]["system"], c["coding"][0]["code"]) for c in food["category"]
    }
    item2 = next(i for i in questionnaire_resource(ahc)["item"] if i["linkId"] == "96778-6")
    assert item2["repeats"] is True


def test_the_observations_and_questionnaire_are_valid_fhir():
    from fhir.resources.R4B.observation import Observation
    from fhir.resources.R4B.questionnaire import Questionnaire

    ahc = library().get("AHC-HRSN")
    response = SimpleNamespace(
        id=uuid.uuid4(),
        answers={"1": 2, "2": 127, "3": 2, "4": 2, "5": 1, "6": 2, "7": 5, "8": 5, "9": 5, "10": 5},
        completed_at=datetime(2026, 11, 1, tzinfo=UTC),
        updated_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    for o in item_observations(response, ahc, SimpleNamespace(id=uuid.uuid4())):
        Observation.model_validate(o)
    Questionnaire.model_validate(questionnaire_resource(ahc))

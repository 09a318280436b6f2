"""The usual shape of a posted QuestionnaireResponse is recognised without the full R4 model
(concord.fhir.measures.plainly_valid, issue 17), and only ever where the full model accepts
the body too; every other body is checked by the full model, so a refused body gets the
OperationOutcome it got before."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from pydantic import ValidationError
from sqlalchemy import func, select

from bench.loadgen import body_for
from concord.fhir import measures as fhir_measures
from concord.fhir.measures import plainly_valid
from concord.measures.models import MeasureResponse
from tests.careplans.test_api import bearer
from tests.fhir.test_fhir_measures import ehr_response, post

PATIENT = "0f6c2f0a4b6e4d0f9a1d2c3b4a5f6e7d"


def usual_bodies() -> list[dict[str, Any]]:
    """Bodies of the usual shape: an EHR's PHQ-9 by codes and by integers, the benchmark's,
    a social-needs screen with several answers to one question, and one with every optional
    field the shape allows."""
    full = ehr_response(PATIENT, [1, 2, 3, 0, 1, 2, 3, 0, 1])
    full["id"] = "qr-1.a"
    full["language"] = "es"
    full["item"][0]["text"] = "Poco interés o placer en hacer cosas"
    full["item"][0]["answer"][0]["valueCoding"]["display"] = "Varios días"
    full["item"].append(
        {"linkId": "group", "item": [{"linkId": "inner", "answer": [{"valueInteger": 2}]}]}
    )
    full["item"].append(
        {
            "linkId": "nested",
            "answer": [{"valueInteger": 1, "item": [{"linkId": "why", "text": "free\ttext"}]}],
        }
    )
    return [
        ehr_response(PATIENT, [1] * 9),
        ehr_response(PATIENT, [3, 2, 1, 0, 3, 2, 1, 0, 3], as_codes=False),
        json.loads(body_for("checkin", PATIENT)),
        {
            "resourceType": "QuestionnaireResponse",
            "status": "amended",
            "questionnaire": "http://loinc.org/q/96777-8",
            "subject": {"reference": f"Patient/{PATIENT}"},
            "authored": "2026-11-21T10:00:00.123+02:00",
            "item": [
                {
                    "linkId": "96778-6",
                    "answer": [
                        {"valueCoding": {"system": "http://loinc.org", "code": c}}
                        for c in ("LA31993-1", "LA28580-1")
                    ],
                }
            ],
        },
        full,
    ]


def r4_accepts(body: dict[str, Any]) -> bool:
    try:
        QuestionnaireResponse.model_validate(body)
    except ValidationError:
        return False
    return True


# What a part of a body is replaced with: wrong types, empty and blank values, nulls,
# characters R4's string refuses, numbers at and past R4's integer, impossible dates.
ODD = [
    None,
    "",
    " ",
    "\n",
    " padded ",
    "two  spaces",
    "tab\there",
    "form\x0cfeed",
    "nbsp\u00a0here",
    "line\u2028sep",
    "x" * 70,
    "Patient/",
    "Patient/has space",
    "Practitioner/1",
    "2026-02-30T10:00:00Z",
    "2026-11-21T24:00:00Z",
    "2026-11-21T10:00:60Z",
    "2026-11-21T10:00:00",
    "2026-11-21T10:00:00+14:00",
    "2026-11-21T10:00:00+14:01",
    "2026-11-21T10:00:00+23:59",
    "2026-11-21T10:00:00-15:00",
    "2026-11-21T10:00:00.1234567Z",
    "2026-13-01T10:00:00Z",
    "2026-11-21T10:60:00Z",
    "2026-11-21",
    "2026",
    "0001-01-01T00:00:00Z",
    "in-progress",
    "QuestionnaireResponse",
    0,
    -1,
    1.0,
    1.5,
    True,
    2**31,
    -(2**31) - 1,
    10**20,
    [],
    {},
    [None],
    [{}],
    {"extension": []},
    {"url": "http://example.org"},
]
EXTRA_KEYS = ["extension", "meta", "text", "contained", "_status", "valueString", "unknown"]


def _locations(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _locations(inner, (*path, key))
    elif isinstance(value, list):
        for n, inner in enumerate(value):
            yield from _locations(inner, (*path, n))


def _at(body: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        body = body[step]
    return body


def mutants(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every part of `body` replaced by each odd value, removed, or given an extra key."""
    for path in _locations(body):
        if not path:
            continue
        parent_path, last = path[:-1], path[-1]
        for odd in ODD:
            changed = copy.deepcopy(body)
            _at(changed, parent_path)[last] = copy.deepcopy(odd)
            yield changed
        changed = copy.deepcopy(body)
        del _at(changed, parent_path)[last]
        yield changed
    for path in _locations(body):
        target = _at(body, path)
        if isinstance(target, dict):
            for key in EXTRA_KEYS:
                for odd in ("x", {"a": 1}, [{"url": "http://example.org"}]):
                    changed = copy.deepcopy(body)
                    _at(changed, path)[key] = odd
                    yield changed


@pytest.mark.parametrize("n", range(len(usual_bodies())))
def test_the_usual_bodies_are_recognised_and_valid_r4(n):
    body = usual_bodies()[n]
    assert r4_accepts(body)
    assert plainly_valid(body)


@pytest.mark.parametrize("n", range(len(usual_bodies())))
def test_a_body_recognised_as_plain_is_always_one_r4_accepts(n):
    recognised = refused_by_r4 = 0
    for mutant in mutants(usual_bodies()[n]):
        accepted = r4_accepts(mutant)
        if plainly_valid(mutant):
            recognised += 1
            assert accepted, json.dumps(mutant)[:2000]
        refused_by_r4 += not accepted
    # The variants reach both sides: some are still plain, many are not R4 at all.
    assert recognised > 10 and refused_by_r4 > 100, (recognised, refused_by_r4)


def test_the_full_model_is_not_asked_for_a_plain_body(monkeypatch):
    from concord.measures.library import library

    asked = []
    real = fhir_measures.QuestionnaireResponse.model_validate

    def counting(body):
        asked.append(body)
        return real(body)

    monkeypatch.setattr(fhir_measures.QuestionnaireResponse, "model_validate", counting)
    fhir_measures.parse_response(ehr_response(PATIENT, [1] * 9), library())
    assert asked == []
    odd = ehr_response(PATIENT, [1] * 9)
    odd["meta"] = {"source": "urn:ehr"}  # valid R4, outside the plain shape
    fhir_measures.parse_response(odd, library())
    assert len(asked) == 1


def _r4_errors(body: dict[str, Any]) -> dict[str, str]:
    """The fields and messages the full model gives (as parse_response words them)."""
    try:
        QuestionnaireResponse.model_validate(body)
    except ValidationError as exc:
        return {".".join(str(p) for p in e["loc"]) or "body": e["msg"] for e in exc.errors()}
    raise AssertionError("valid")


def _bad(mutate):
    def make(patient_id):
        body = ehr_response(patient_id, [1] * 9)
        mutate(body)
        return body

    return make


INVALID = [
    _bad(lambda b: b.update(authored="yesterday")),
    _bad(lambda b: b.update(authored="2026-02-30T10:00:00Z")),
    _bad(lambda b: b.update(subject={"reference": 5})),
    _bad(lambda b: b.update(status="")),
    _bad(lambda b: b.update(unknown=1)),
    _bad(lambda b: b["identifier"].update(value="")),
    _bad(lambda b: b["item"][0].update(linkId=7)),
    _bad(lambda b: b["item"][0]["answer"][0].update(valueInteger=True)),
    _bad(lambda b: b["item"][0]["answer"][0].update(valueString="two")),
    _bad(lambda b: b["item"][1]["answer"][0]["valueCoding"].update(code=" LA6568-5")),
    _bad(lambda b: b["item"][2].update(answer="1")),
]


@pytest.mark.parametrize("n", range(len(INVALID)))
def test_an_invalid_body_gets_the_full_models_outcome_and_nothing_is_stored(
    client, session, people, n
):
    token = bearer(session, people.care_manager)
    body = INVALID[n](str(people.patient.id))
    assert not plainly_valid(body)
    expected = _r4_errors(body)
    response = post(client, body, token)
    assert response.status_code == 422, response.text
    outcome = OperationOutcome.model_validate(response.json())
    got = {i.expression[0]: i.diagnostics for i in outcome.issue if i.expression}
    for field, message in expected.items():
        assert field in got and message in got[field], (field, message, got)
    assert session.scalar(select(func.count()).select_from(MeasureResponse)) == 0

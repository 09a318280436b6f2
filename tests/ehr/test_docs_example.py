"""docs/ehr-import.md's curl example, run as written: its bundle.json and its curl command
(method, address, headers, body) sent to the app with a client token made as the doc says."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from sqlalchemy import select

from concord.accounts.tokens import create_client_token
from concord.ehr.models import EhrResource
from concord.patients.models import Patient
from tests.conftest import commit

DOC = Path(__file__).resolve().parents[2] / "docs" / "ehr-import.md"


def _example() -> tuple[dict, list[str]]:
    text = DOC.read_text()
    body = json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1))
    line = next(line for line in text.splitlines() if line.startswith("curl "))
    return body, shlex.split(line)


def _request(words: list[str], env: dict[str, str]) -> tuple[str, str, dict[str, str], str]:
    method, url, headers, data = "GET", "", {}, ""
    words = words[1:]
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-s":
            i += 1
            continue
        if word == "-X":
            method = words[i + 1]
        elif word == "-H":
            name, _, value = words[i + 1].partition(":")
            headers[name.strip()] = value.strip()
        elif word == "--data":
            data = words[i + 1]
        else:
            url = word
            i += 1
            continue
        i += 2
    expand = lambda s: re.sub(r"\$(\w+)", lambda m: env[m.group(1)], s)  # noqa: E731
    return method, expand(url), {k: expand(v) for k, v in headers.items()}, data


def test_the_documented_example_imports_as_documented(client, session, people):
    # `concord token create --client ehr-feed --org test-health --scope import --scope quality`
    token, _ = create_client_token(
        session, organization=people.org, name="ehr-feed", scopes=["import", "quality"]
    )
    commit(session)
    body, words = _example()
    method, url, headers, data = _request(words, {"SERVER": "", "TOKEN": token})
    assert (method, url, data) == ("POST", "/fhir", "@bundle.json")
    response = client.request(method, url, headers=headers, content=json.dumps(body))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == "transaction-response"
    first = answer["entry"][0]["response"]
    assert first["status"] == "201 Created"
    assert first["location"] == "Patient/ehr-2001/_history/1"  # as the doc says
    assert first["etag"] == 'W/"1"'
    dana = session.scalar(select(Patient).where(Patient.mrn == "E-2001"))
    assert dana is not None
    kinds = session.scalars(
        select(EhrResource.resource_type).where(EhrResource.patient_id == dana.id)
    ).all()
    assert sorted(kinds) == ["Condition", "Observation", "Patient"]
    again = client.request(method, url, headers=headers, content=json.dumps(body))
    assert [e["response"]["status"] for e in again.json()["entry"]][:2] == ["200 OK", "200 OK"]

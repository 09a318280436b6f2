"""`concord token create --client`: a token for an integration client, not a person."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from concord.app import create_app
from concord.settings import Settings
from tests.test_cli import cli_db, run  # noqa: F401 (the fixture)

MRN = "https://concord-care.org/fhir/sid/mrn/l"


def _org() -> None:
    run(
        "org",
        "create",
        "--name",
        "L",
        "--slug",
        "l",
        "--clinic",
        "C",
        "--admin-email",
        "a@l.example.org",
        "--admin-name",
        "A",
    )


def test_a_client_token_imports_and_nothing_else(cli_db):  # noqa: F811
    _org()
    made = run(
        "token",
        "create",
        "--client",
        "ehr-feed",
        "--org",
        "l",
        "--scope",
        "import",
        "--scope",
        "quality",
    )
    assert made.exit_code == 0, made.output
    token = made.output.strip()
    assert re.fullmatch(r"cnc_[A-Za-z0-9_\-]{40,}", token)
    listed = run("token", "list", "--email", "ehr-feed@l.client.invalid")
    assert listed.exit_code == 0 and "quality" in listed.output
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    body = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": MRN, "value": "M-1"}],
                    "name": [{"family": "Feed", "given": ["Ana"]}],
                    "birthDate": "1990-01-01",
                },
                "request": {"method": "PUT", "url": "Patient/a1"},
            }
        ],
    }
    with TestClient(create_app(Settings(env="test", database_url=cli_db))) as client:
        answer = client.post("/fhir", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        # A client reaches no patient through the team's API, and cannot write there.
        assert client.get("/api/v1/patients", headers=headers).json() == []
        refused = client.post("/api/v1/patients", json={}, headers=headers)
        assert refused.status_code == 403


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--client", "ehr-feed", "--org", "l", "--scope", "write"], "client's scopes are"),
        (["--client", "ehr-feed", "--org", "l"], "at least one"),
        (["--client", "Bad Name", "--org", "l", "--scope", "import"], "lowercase"),
        (["--client", "ehr-feed", "--scope", "import"], "--org is required"),
        (["--client", "ehr-feed", "--org", "nope", "--scope", "import"], "no organization"),
        (["--client", "x", "--email", "a@l.example.org"], "either --email"),
    ],
)
def test_a_client_token_explains_what_is_wrong(cli_db, args, message):  # noqa: F811
    _org()
    result = run("token", "create", *args)
    assert result.exit_code == 1, result.output
    assert message in result.output

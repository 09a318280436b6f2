"""Limits on what a request may send: the body's size on every door, credentials before the
body on /api and /fhir (issue 16, item 5)."""

from __future__ import annotations

import json

import anyio
import pytest
from fastapi.testclient import TestClient

from concord.app import create_app
from concord.settings import Settings
from tests.careplans.test_api import bearer

LIMIT = 4096


@pytest.fixture
def small(database_url, factory):
    app = create_app(
        Settings(
            env="test",
            database_url=database_url,
            base_url="http://testserver",
            max_body_bytes=LIMIT,
        ),
        session_factory=factory,
    )
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        yield client


def chunks(total, size=1024):
    """A body sent in chunks, with no Content-Length (Transfer-Encoding: chunked)."""
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


class TestBodySize:
    def test_the_default_is_a_few_megabytes(self):
        assert Settings(env="test").max_body_bytes == 4 * 1024 * 1024

    def test_an_announced_large_body_on_fhir_is_an_operation_outcome_413(self, small):
        response = small.post(
            "/fhir/QuestionnaireResponse",
            content=b"{" + b" " * LIMIT + b"}",
            headers={"Content-Type": "application/fhir+json"},
        )
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("application/fhir+json")
        issue = response.json()["issue"][0]
        assert issue["code"] == "too-long" and issue["expression"] == ["body"]
        assert str(LIMIT) in issue["diagnostics"]
        assert response.headers["connection"] == "close"

    def test_an_announced_large_body_on_the_api_is_the_json_error_413(self, small, people):
        response = small.post(
            f"/api/v1/patients/{people.patient.id}/careplan/goals",
            content=b"x" * (LIMIT + 1),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        body = response.json()
        assert body["error"] == "too_large"
        assert body["fields"] == [{"field": "body", "problem": f"must be at most {LIMIT} bytes"}]

    def test_an_announced_large_form_is_an_html_413(self, small):
        response = small.post("/sign-in", content=b"email=" + b"x" * LIMIT)
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("text/html")
        assert "too large" in response.text
        assert response.headers["x-frame-options"] == "DENY"  # still inside the headers

    def test_a_chunked_body_is_counted_as_it_arrives_on_fhir(self, small, session, people):
        token = bearer(session, people.care_manager)
        response = small.post(
            "/fhir/QuestionnaireResponse",
            content=chunks(LIMIT * 4),
            headers={**token, "Content-Type": "application/fhir+json"},
        )
        assert response.status_code == 413, response.text
        assert response.json()["resourceType"] == "OperationOutcome"

    def test_a_chunked_body_is_counted_on_the_api(self, small, session, people):
        token = bearer(session, people.care_manager)
        response = small.post(
            f"/api/v1/patients/{people.patient.id}/careplan/goals",
            content=chunks(LIMIT * 4),
            headers={**token, "Content-Type": "application/json"},
        )
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "too_large"

    def test_a_chunked_form_is_counted_on_the_pages(self, small, people):
        page = small.get("/sign-in")
        response = small.post(
            "/sign-in",
            content=chunks(LIMIT * 4),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert page.status_code == 200
        assert response.status_code == 413

    def test_a_multipart_upload_is_counted_too(self, small, people, sign_in):
        csrf = sign_in(people.care_manager.email, target_client=small)
        response = small.post(
            "/account/password",
            data={"csrf_token": csrf},
            files={"file": ("big.bin", b"x" * (LIMIT * 2))},
        )
        assert response.status_code == 413

    def test_a_body_within_the_limit_is_taken(self, small, session, people):
        token = bearer(session, people.care_manager)
        response = small.post(
            "/fhir/QuestionnaireResponse",
            content=b"[]",
            headers={**token, "Content-Type": "application/fhir+json"},
        )
        assert response.status_code == 422  # read and judged, not refused for its size


def call(app, method, path, headers, body=b"x" * 100_000):
    """Run one request through the app as the server does, noting whether the app read any of
    its body."""
    state = {"reads": 0, "status": None, "body": b""}

    async def receive():
        state["reads"] += 1
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            state["status"] = message["status"]
        elif message["type"] == "http.response.body":
            state["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    anyio.run(app, scope, receive, send)
    return state


class TestCredentialsBeforeTheBody:
    @pytest.mark.parametrize(
        "headers",
        [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}],
    )
    def test_fhir_refuses_without_reading_the_body(self, app, people, headers):
        answer = call(
            app,
            "POST",
            "/fhir/QuestionnaireResponse",
            {**headers, "content-type": "application/fhir+json", "content-length": "100000"},
        )
        assert answer["status"] == 401
        assert answer["reads"] == 0
        assert json.loads(answer["body"])["resourceType"] == "OperationOutcome"

    def test_fhir_search_by_post_refuses_without_reading_the_body(self, app, people):
        answer = call(
            app,
            "POST",
            "/fhir/Observation/_search",
            {"content-type": "application/x-www-form-urlencoded", "content-length": "100000"},
        )
        assert answer["status"] == 401 and answer["reads"] == 0

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer not-a-token"},
            {"Cookie": "concord_session=not-a-session"},
        ],
    )
    def test_the_api_refuses_without_reading_the_body(self, app, people, headers):
        answer = call(
            app,
            "POST",
            f"/api/v1/patients/{people.patient.id}/careplan/goals",
            {**headers, "content-type": "application/json", "content-length": "100000"},
        )
        assert answer["status"] == 401
        assert answer["reads"] == 0
        assert json.loads(answer["body"])["error"] == "not_authenticated"

    def test_a_browser_api_write_without_its_csrf_header_is_refused_first(
        self, app, client, people, sign_in
    ):
        sign_in(people.care_manager.email)
        cookie = client.cookies.get("concord_session")
        answer = call(
            app,
            "PUT",
            f"/api/v1/patients/{people.patient.id}/careplan/preferences",
            {
                "Cookie": f"concord_session={cookie}",
                "content-type": "application/json",
                "content-length": "100000",
            },
        )
        assert answer["status"] == 403 and answer["reads"] == 0

    def test_a_revoked_token_is_refused_first(self, app, session, people):
        from concord.accounts.models import ApiToken
        from concord.accounts.service import revoke_api_token
        from tests.conftest import commit

        headers = bearer(session, people.care_manager)
        token = session.query(ApiToken).one()
        revoke_api_token(session, token_id=token.id, by=people.care_manager)
        commit(session)
        answer = call(
            app,
            "POST",
            "/fhir/QuestionnaireResponse",
            {**headers, "content-type": "application/fhir+json", "content-length": "100000"},
        )
        assert answer["status"] == 401 and answer["reads"] == 0

    def test_a_good_token_gets_its_body_read(self, app, session, people):
        headers = bearer(session, people.care_manager)
        answer = call(
            app,
            "POST",
            "/fhir/QuestionnaireResponse",
            {**headers, "content-type": "application/fhir+json", "content-length": "2"},
            body=b"[]",
        )
        assert answer["reads"] >= 1 and answer["status"] == 422

"""Limits on what a request may send: the body's size on every door, credentials before the
body on /api and /fhir (issue 16, item 5)."""

from __future__ import annotations

import json

import anyio
import pytest
from fastapi.testclient import TestClient

from concord import validation
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

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer not-a-token"},
            {"Cookie": "concord_session=not-a-session"},
        ],
    )
    def test_cds_hooks_refuses_without_reading_the_body(self, app, people, headers):
        """A CDS Hooks call is a program's, never a page's: the token before the body, and
        JSON, not a sign-in page."""
        answer = call(
            app,
            "POST",
            "/cds-services/concord-medication-safety-sign",
            {**headers, "content-type": "application/json", "content-length": "100000"},
        )
        assert answer["status"] == 401
        assert answer["reads"] == 0
        assert json.loads(answer["body"])["error"] == "not_authenticated"

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
        from concord.accounts.tokens import revoke_api_token
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

    def test_a_token_revoked_after_use_is_refused_first(self, app, session, people):
        # The check before the body remembers a usable token for a few seconds
        # (concord.accounts.tokens._RecentlyUsable); revoking it forgets it at once.
        from concord.accounts.models import ApiToken
        from concord.accounts.tokens import revoke_api_token
        from tests.conftest import commit

        headers = bearer(session, people.care_manager)
        used = call(
            app,
            "POST",
            "/fhir/QuestionnaireResponse",
            {**headers, "content-type": "application/fhir+json", "content-length": "2"},
            body=b"[]",
        )
        assert used["reads"] >= 1 and used["status"] == 422
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

    def test_a_token_revoked_elsewhere_is_still_refused_by_the_request(self, app, session, people):
        # Revoked by another process (here: the row changed behind this one's back) within the
        # few seconds a usable token is remembered: the body is read, and the request's own
        # check, in its transaction, refuses it.
        from sqlalchemy import update

        from concord.accounts.models import ApiToken
        from concord.clock import now
        from tests.conftest import commit

        headers = bearer(session, people.care_manager)
        used = call(
            app,
            "POST",
            "/fhir/QuestionnaireResponse",
            {**headers, "content-type": "application/fhir+json", "content-length": "2"},
            body=b"[]",
        )
        assert used["status"] == 422
        session.execute(update(ApiToken).values(revoked_at=now()))
        commit(session)
        answer = call(
            app,
            "POST",
            "/fhir/QuestionnaireResponse",
            {**headers, "content-type": "application/fhir+json", "content-length": "2"},
            body=b"[]",
        )
        assert answer["reads"] >= 1 and answer["status"] == 401
        assert json.loads(answer["body"])["resourceType"] == "OperationOutcome"

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


def qr_body(patient_id, **changes):
    from tests.fhir.test_fhir_measures import ehr_response

    return {**ehr_response(patient_id, [1] * 9), **changes}


def stored_responses(session):
    from sqlalchemy import func, select

    from concord.measures.models import MeasureResponse

    session.expire_all()
    return session.scalar(select(func.count()).select_from(MeasureResponse))


def fhir_post(client, token, content):
    return client.post(
        "/fhir/QuestionnaireResponse",
        content=content if isinstance(content, bytes) else json.dumps(content),
        headers={**token, "Content-Type": "application/fhir+json"},
    )


def expressions(response):
    return {e for issue in response.json()["issue"] for e in issue.get("expression", [])}


class TestJsonInput:
    @pytest.mark.parametrize("depth", [65, 100_000])
    def test_deep_nesting_on_fhir_is_a_422_not_a_500(self, client, session, people, depth):
        token = bearer(session, people.care_manager)
        body = qr_body(people.patient.id)
        nested = "[" * depth + "]" * depth
        raw = json.dumps(body)[:-1] + f', "extension": {nested}}}'
        response = fhir_post(client, token, raw.encode())
        assert response.status_code == 422, response.text[:300]
        issue = response.json()["issue"][0]
        assert "nested too deeply" in issue["diagnostics"]
        assert stored_responses(session) == 0

    def test_deep_nesting_on_the_api_names_the_body(self, client, session, people):
        depth = 100_000
        response = client.post(
            f"/api/v1/patients/{people.patient.id}/careplan/goals",
            content=("[" * depth + "]" * depth).encode(),
            headers={**bearer(session, people.care_manager), "Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text[:300]
        assert response.json()["fields"][0]["field"] == "body"
        assert "nested too deeply" in response.json()["fields"][0]["problem"]

    def test_a_long_identifier_is_refused_naming_its_fhir_path(self, client, session, people):
        token = bearer(session, people.care_manager)
        body = qr_body(people.patient.id, identifier={"system": "urn:x", "value": "v" * 100_000})
        response = fhir_post(client, token, body)
        assert response.status_code == 422, response.text[:300]
        assert expressions(response) == {"QuestionnaireResponse.identifier.value"}
        assert "at most 200 characters" in response.json()["issue"][0]["diagnostics"]
        assert stored_responses(session) == 0

    def test_the_limit_is_the_columns(self, client, session, people):
        token = bearer(session, people.care_manager)
        fits = qr_body(people.patient.id, identifier={"system": "s" * 200, "value": "v" * 200})
        assert fhir_post(client, token, fits).status_code == 201
        over = qr_body(people.patient.id, identifier={"system": "s" * 201, "value": "w"})
        response = fhir_post(client, token, over)
        assert response.status_code == 422
        assert expressions(response) == {"QuestionnaireResponse.identifier.system"}

    @pytest.mark.parametrize("bad", ["visit\x00-1", "visit\x07", "\x1b[31mred"])
    def test_control_characters_are_refused_naming_the_path(self, client, session, people, bad):
        token = bearer(session, people.care_manager)
        body = qr_body(people.patient.id, identifier={"system": "urn:x", "value": bad})
        response = fhir_post(client, token, body)
        assert response.status_code == 422, response.text[:300]
        assert expressions(response) == {"QuestionnaireResponse.identifier.value"}
        assert "control characters" in response.json()["issue"][0]["diagnostics"]
        assert stored_responses(session) == 0

    def test_a_control_character_deep_in_an_item_is_named_with_its_position(
        self, client, session, people
    ):
        token = bearer(session, people.care_manager)
        body = qr_body(people.patient.id)
        body["item"][3]["linkId"] = "44254-1\x00"
        response = fhir_post(client, token, body)
        assert response.status_code == 422
        assert expressions(response) == {"QuestionnaireResponse.item[3].linkId"}

    def test_a_hundred_thousand_items_are_refused_at_once(self, client, session, people):
        import time

        token = bearer(session, people.care_manager)
        # Small items, so a hundred thousand fit in the body limit (1.7 MB).
        body = qr_body(people.patient.id, item=[{"linkId": "1"}] * 100_000)
        started = time.monotonic()
        response = fhir_post(client, token, body)
        assert response.status_code == 422
        assert expressions(response) == {"QuestionnaireResponse.item"}
        assert "at most 1000 items" in response.json()["issue"][0]["diagnostics"]
        assert time.monotonic() - started < 5  # was 16 s of a worker's time

    def test_newlines_and_tabs_are_text(self, client, session, people):
        token = bearer(session, people.care_manager)
        body = qr_body(people.patient.id, identifier={"system": "urn:x", "value": "a\tb"})
        assert fhir_post(client, token, body).status_code == 201

    def test_a_nul_in_an_api_field_is_refused_naming_it(self, client, session, people):
        from tests.factories import create_plan

        create_plan(session, people, activate=True)
        from tests.conftest import commit

        commit(session)
        response = client.post(
            f"/api/v1/patients/{people.patient.id}/careplan/goals",
            json={"statement": "Back to work\x00", "category": "work_or_school", "reason": "x"},
            headers=bearer(session, people.care_manager),
        )
        assert response.status_code == 422, response.text
        fields = {f["field"]: f["problem"] for f in response.json()["fields"]}
        assert "control characters" in fields["statement"]

    def test_a_long_list_on_the_api_is_refused_naming_it(self, client, session, people):
        response = client.post(
            f"/api/v1/patients/{people.patient.id}/reviews/record",
            json={
                "minutes": 5,
                "summary": "s",
                "recommendations": [{"kind": "k", "text": "t"}] * 1001,
            },
            headers=bearer(session, people.care_manager),
        )
        assert response.status_code == 422
        assert response.json()["fields"][0]["field"] == "recommendations"


class TestFormInput:
    def test_a_nul_in_a_form_field_is_refused_naming_it(self, client, session, people, sign_in):
        from tests.factories import create_plan

        create_plan(session, people, activate=True)
        from tests.conftest import commit

        commit(session)
        csrf = sign_in(people.care_manager.email)
        response = client.post(
            f"/patients/{people.patient.id}/plan/goals",
            data={"csrf_token": csrf, "statement": "Back to work\x00", "reason": "x"},
        )
        assert response.status_code == 422, response.status_code
        assert "statement" in response.text and "control characters" in response.text

    def test_a_nul_on_the_sign_in_form_is_a_422_not_a_database_error(self, client):
        page = client.get("/sign-in")
        from tests.conftest import csrf_of

        response = client.post(
            "/sign-in",
            data={"csrf_token": csrf_of(page.text), "email": "a\x00@x.org", "password": "p"},
        )
        assert response.status_code == 422


def page_write_routes(app):
    from tests.test_routes import _routes

    for route in _routes(app):
        methods = getattr(route, "methods", None) or set()
        path = getattr(route, "path", "")
        programs = ("/api", "/fhir", "/cds-services")
        if methods & {"POST", "PUT", "PATCH", "DELETE"} and not path.startswith(programs):
            yield route


def needs_a_session(route):
    names = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        for sub in dependant.dependencies:
            names.add(getattr(sub.call, "__name__", ""))
            stack.append(sub)
    return bool(names & {"web_actor", "partial_actor"})


class TestSessionBeforeTheForm:
    def test_the_anonymous_forms_are_exactly_the_page_posts_without_a_session(self, app):
        from concord.web.deps import ANONYMOUS_FORMS, ANONYMOUS_PREFIXES, PROGRAM_FORMS

        anonymous = {r.path for r in page_write_routes(app) if not needs_a_session(r)}
        exact = {p for p in anonymous if not p.startswith(ANONYMOUS_PREFIXES)}
        assert exact == set(ANONYMOUS_FORMS) | set(PROGRAM_FORMS)
        # Each prefix is a page post that takes no session (the partner's referral link).
        assert {p for p in anonymous if p.startswith(ANONYMOUS_PREFIXES)} == {
            "/referral-link/{token}"
        }

    def test_a_page_post_without_a_session_is_sent_to_sign_in_unread(self, app, people):
        answer = call(
            app,
            "POST",
            "/account/language",
            {"content-type": "application/x-www-form-urlencoded", "content-length": "100000"},
        )
        assert answer["status"] == 303 and answer["reads"] == 0

    def test_a_page_post_with_a_stale_session_is_sent_to_sign_in_unread(self, app, people):
        answer = call(
            app,
            "POST",
            f"/patients/{people.patient.id}/plan/goals",
            {
                "Cookie": "concord_session=made-up",
                "content-type": "application/x-www-form-urlencoded",
                "content-length": "100000",
            },
        )
        assert answer["status"] == 303 and answer["reads"] == 0

    def test_the_sign_in_form_without_its_cookie_is_refused_unread(self, app):
        answer = call(
            app,
            "POST",
            "/sign-in",
            {"content-type": "application/x-www-form-urlencoded", "content-length": "100000"},
        )
        assert answer["status"] == 403 and answer["reads"] == 0

    def test_a_signed_in_post_is_read_and_judged(self, client, people, sign_in):
        csrf = sign_in(people.care_manager.email)
        response = client.post("/account/language", data={"language": "es", "csrf_token": csrf})
        assert response.status_code == 303


class TestTheAddress:
    @pytest.mark.parametrize(
        "url",
        [
            "/fhir/Patient?identifier=%00",
            "/fhir/QuestionnaireResponse?identifier=x%00y",
            "/fhir/Patient?name=a%1Fb",
        ],
    )
    def test_a_control_character_in_a_fhir_search_is_a_422_naming_the_parameter(
        self, client, session, people, url
    ):
        response = client.get(url, headers=bearer(session, people.care_manager))
        assert response.status_code == 422
        issue = response.json()["issue"][0]
        assert issue["expression"] == [url.split("?")[1].split("=")[0]]
        assert "control characters" in issue["diagnostics"]

    def test_a_control_character_in_an_api_query_is_named(self, client, session, people):
        response = client.get(
            "/api/v1/registry/caseload?scope=mine&q=ab%00",
            headers=bearer(session, people.care_manager),
        )
        assert response.status_code == 422
        assert response.json()["fields"] == [
            {"field": "q", "problem": "must not contain control characters (such as NUL)"}
        ]

    def test_a_control_character_in_a_page_address(self, client, people, sign_in):
        sign_in(people.care_manager.email)
        assert client.get("/patients?q=%00").status_code == 422
        assert client.get("/patients/%00").status_code == 404

    def test_an_encoded_line_break_or_ordinary_text_is_let_through(self, client, people, sign_in):
        sign_in(people.care_manager.email)
        assert client.get("/patients?q=a%0Ab%20%C3%B1").status_code == 200


@pytest.mark.parametrize(
    "value",
    [
        {"a": "plain", "b": [1, 2, {"c": None}]},
        {"a": "x\x01y"},  # escaped control character
        {"a": "d\x7fe"},  # DEL, sent raw
        {"k" * 201: 1},
        {"a": "b" * 20001},
        [1] * 1001,
        json.loads("[" * 63 + '"a"' + "]" * 63),
        json.loads("[" * 64 + '"a"' + "]" * 64),
        json.loads("[" * 65 + '"a"' + "]" * 65),
        {"resourceType": "QuestionnaireResponse", "identifier": {"value": "v" * 300}},
    ],
)
def test_the_quick_look_answers_as_the_walk(value, monkeypatch):
    """json_problems' quick look (_surely_fine) only skips the walk: the answer is the walk's."""
    limits = {"QuestionnaireResponse.identifier.value": 255}
    for ascii_only in (True, False):
        raw = json.dumps(value, ensure_ascii=ascii_only).encode()
        quick = validation.json_problems(raw, fhir=True, max_lengths=limits)
        monkeypatch.setattr(validation, "_surely_fine", lambda *a: False)
        walked = validation.json_problems(raw, fhir=True, max_lengths=limits)
        monkeypatch.undo()
        assert quick == walked

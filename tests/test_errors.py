"""Errors a person can act on: a busy database is 503 "try again", never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from concord.app import create_app
from concord.db import make_sessionmaker
from concord.settings import Settings
from concord.web.deps import DbSession


def test_a_query_past_the_statement_timeout_is_a_503(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("statement time-outs are a PostgreSQL setting; SQLite has none")
    app = create_app(Settings(env="test", database_url=database_url, db_statement_timeout_ms=100))

    def slow(session: DbSession) -> dict[str, str]:
        session.execute(text("SELECT pg_sleep(2)"))
        return {"status": "finished"}

    app.add_api_route("/api/v1/slow", slow)
    with TestClient(app) as client:
        response = client.get("/api/v1/slow")
    assert response.status_code == 503
    assert response.json()["detail"] == "The system is busy. Please try again in a moment."


def test_no_free_connection_in_time_is_a_503_too(database_url):
    """More requests than the pool has connections wait for one; past the pool's time-out
    the answer is "busy", as for a statement time-out."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.1)
    app = create_app(
        Settings(env="test", database_url=database_url), session_factory=make_sessionmaker(engine)
    )
    held = engine.connect()  # every connection of the pool in use
    try:
        with TestClient(app) as client:
            response = client.get("/healthz")
    finally:
        held.close()
        engine.dispose()
    assert response.status_code == 503
    assert "The system is busy. Please try again in a moment." in response.text


def test_an_unknown_page_is_a_plain_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "There is no page at this address." in response.text


def test_an_unexpected_error_is_a_500_that_says_nothing_was_saved(settings, factory):
    app = create_app(settings, session_factory=factory)

    def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/api/v1/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/v1/broken")
    assert response.status_code == 500
    assert "Nothing was saved" in response.json()["detail"]
    assert "a bug" not in response.text


def test_app_connections_run_without_jit_and_with_the_time_out(database_url):
    """PostgreSQL's JIT compiled the caseload's per-episode subqueries once a clinic had a
    million patients: 26 ms of compiling for a 3 ms query (docs/performance.md)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("JIT and statement time-outs are PostgreSQL settings")
    from concord.db import make_engine

    engine = make_engine(database_url, statement_timeout_ms=1234)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW jit")).scalar() == "off"
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "1234ms"
    finally:
        engine.dispose()

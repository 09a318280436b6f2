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


def _serve(app):
    """The app on a real uvicorn server in a thread (its own event loop and worker threads)."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, port


def test_a_burst_of_requests_does_not_wedge_the_threads_and_the_pool(database_url):
    """More requests at once than worker threads, and fewer connections than threads: requests
    waiting for a connection must not hold every thread while the ones holding a connection
    wait for a thread to finish in. Before requests queued for the database on the event loop,
    this burst stalled until the pool's time-out and some were answered 503."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    engine = create_engine(database_url, pool_size=2, max_overflow=0, pool_timeout=3)
    settings = Settings(env="test", database_url=database_url, request_threads=3)
    app = create_app(settings, session_factory=make_sessionmaker(engine))
    server, thread, port = _serve(app)

    def client(_: int) -> list[int]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        statuses = []
        for _ in range(5):
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()
        return statuses

    try:
        with ThreadPoolExecutor(16) as pool:
            statuses = [s for batch in pool.map(client, range(16)) for s in batch]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
    assert statuses == [200] * 80


def test_a_slow_upload_does_not_hold_a_database_slot(database_url):
    """A client trickling a form body (here one that never finishes) must not keep the
    process's only database slot from the requests behind it."""
    import http.client
    import socket

    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    app = create_app(
        Settings(env="test", database_url=database_url, request_threads=3),
        session_factory=make_sessionmaker(engine),
    )
    server, thread, port = _serve(app)
    slow = socket.create_connection(("127.0.0.1", port))
    try:
        slow.sendall(
            b"POST /sign-in HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n"
            b"email=someone"
        )
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        slow.close()
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


def test_request_threads_must_outnumber_the_database_slots(database_url):
    with pytest.raises(ValueError, match="CONCORD_REQUEST_THREADS"):
        create_app(Settings(env="test", database_url=database_url, request_threads=5))


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

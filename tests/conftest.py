"""Test fixtures: a real database (SQLite, or PostgreSQL when CONCORD_TEST_DATABASE_URL is set)
built by running the Alembic migrations; each test runs inside a transaction that is rolled
back; the clock is fixed; named personas stand in for the people who use Concord."""

from __future__ import annotations

import os

# Settings are read from the environment: set them before anything imports concord.
os.environ["CONCORD_ENV"] = "test"
os.environ["CONCORD_ARGON2_TIME_COST"] = "1"
os.environ["CONCORD_ARGON2_MEMORY_KIB"] = "1024"
os.environ.setdefault("CONCORD_SECRET_KEY", "test-secret-key-for-the-test-suite-only-0123456789")
# A commit waits for the disk only at checkpoints (WAL with synchronous=NORMAL): still atomic
# and safe when a process dies, not against power loss, which no test makes. FULL fsyncs every
# commit: 0.03 ms against 0.5-5.5 ms a commit on this machine's disk, paid by every live server,
# command and worker the suite starts. (PostgreSQL's test databases: `_no_commit_wait`.)
os.environ.setdefault("CONCORD_SQLITE_SYNCHRONOUS", "NORMAL")

import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, inspect, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from concord.app import create_app, database_slots
from concord.clock import FakeClock, set_clock
from concord.db import make_engine
from concord.migrate import upgrade
from concord.settings import Settings, get_settings
from concord.smart.service import _ORIGINS
from tests.factories import Personas, build_personas

NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


def test_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("CONCORD_TEST_DATABASE_URL")
    if url:
        return worker_database(Settings(env="test", database_url=url).database_url)
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


def worker_database(url: str) -> str:
    """Under pytest-xdist each worker gets a PostgreSQL database of its own beside the one
    named (test -> test_gw0, test_gw1), created when missing, since every worker resets its
    schema. Without xdist, the database named. (SQLite files are per worker already.)"""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    parsed = make_url(url)
    name = f"{parsed.database}_{worker}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            _no_commit_wait(connection, name)
    finally:
        admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def _no_commit_wait(connection: Connection, name: str) -> None:
    """A test database's commits do not wait for the WAL to reach the disk (PostgreSQL's
    `synchronous_commit = off`, for every connection to it: the suite's, a live server's, a
    command's). A commit is still atomic and visible at once to every other connection; only a
    crash of the PostgreSQL server itself could lose the last few, which no test makes. It saves
    about 0.9 ms a commit on this machine (psycopg, 500 single-row commits, on vs off)."""
    connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit TO off'))


@contextmanager
def fresh_database(
    database_url: str, tmp_path: Path, label: str, *, like: str | None = None
) -> Iterator[str]:
    """An empty database of its own, on the suite's engine, for tests that need real commits
    from several connections (a live server, a command, a race). Dropped afterwards. With
    `like` (a database of this worker's that nothing is connected to, e.g. `migrated_database`)
    a copy of it: a file copy on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL."""
    if not database_url.startswith("postgresql"):
        path = tmp_path / f"{label}.db"
        if like is not None:
            shutil.copyfile(make_url(like).database, path)
        yield f"sqlite:///{path}"
        return
    name = f"concord_{label}_{uuid.uuid4().hex[:8]}"
    template = f' TEMPLATE "{make_url(like).database}"' if like is not None else ""
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"{template}'))
        _no_commit_wait(connection, name)
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def migrated_database(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database at the newest migration, made once per worker, to copy: a live
    server's database starts as `fresh_database(..., like=migrated_database)` instead of
    running every migration again (about a second on SQLite, two on PostgreSQL, per module).
    Nothing stays connected to it (a template must have no connection)."""
    with fresh_database(database_url, tmp_path_factory.mktemp("migrated"), "migrated") as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        yield url


@pytest.fixture(scope="session")
def demo_database(
    database_url: str, migrated_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The demo, built once per worker the first time a test asks, through `concord demo
    --no-serve` on the tests' today, to copy (`fresh_database(..., like=demo_database)`): a
    build costs several seconds of CPU. Nothing stays connected to it."""
    from tests.demo_summary import build_demo

    tmp = tmp_path_factory.mktemp("demo")
    with fresh_database(database_url, tmp, "demo", like=migrated_database) as url:
        build_demo(url)
        yield url


def reset_database(engine: Engine) -> None:
    """An empty database, then the migrations: the schema tests see is the one users get."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    upgrade(engine)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return test_database_url(tmp_path_factory)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, sqlite_synchronous="NORMAL")
    reset_database(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """One connection per test, inside a transaction rolled back at the end."""
    with engine.connect() as connection:
        outer = connection.begin()
        yield connection
        outer.rollback()


@pytest.fixture
def factory(connection: Connection) -> sessionmaker[Session]:
    # Each unit of work becomes a savepoint of the test's transaction, so commits and
    # rollbacks behave as in production and nothing outlives the test.
    return sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    from concord.audit.service import set_context

    with factory() as session:
        set_context(session, channel="system")
        yield session


@pytest.fixture(autouse=True)
def clock() -> Iterator[FakeClock]:
    fake = FakeClock(NOW)
    previous = set_clock(fake)
    yield fake
    set_clock(previous)


@pytest.fixture
def settings(database_url: str) -> Settings:
    get_settings.cache_clear()
    return Settings(env="test", database_url=database_url, base_url="http://testserver")


_apps: dict[str, Any] = {}  # this worker's apps, by their settings


@pytest.fixture
def app(settings: Settings, factory: sessionmaker[Session]) -> Any:
    """The app, made once per worker for each set of settings and pointed at each test's own
    session factory and settings (what requests read from app.state). FastAPI prepares every
    route's dependencies on an app's first request, which cost each test about a quarter of a
    second of CPU when every test made an app of its own."""
    key = repr(sorted(settings.model_dump().items()))
    app = _apps.get(key)
    if app is None:
        app = _apps[key] = create_app(settings, session_factory=factory)
    app.state.settings = settings
    app.state.sessionmaker = factory
    app.state.database_slots = anyio.Semaphore(database_slots(factory))
    # The registered origins are cached per process for 30 s: read afresh from this test's
    # own data, and not again mid-test (a refresh would be counted by a test that counts a
    # request's statements).
    _ORIGINS.forget()
    return app


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        yield client


@dataclass(frozen=True)
class PersonaSnapshot:
    """What build_personas did, as the statements it sent (parameters included: ids, password
    hashes, times), recorded once per worker. Sending them again into a test's transaction gives
    that test the same rows as building them through the services, in a few milliseconds
    instead of about a tenth of a second (argon2, access checks, audit, ORM flushes)."""

    statements: tuple[tuple[str, Any, bool], ...]
    objects: tuple[tuple[str, type, Any], ...]  # Personas field, class, primary key
    chain_head: Any  # the audit chain head the recorded statements continue from

    def restore(self, session: Session) -> Personas:
        connection = session.connection()
        if _chain_head(connection) != self.chain_head:
            # The database is not the one the statements were recorded on (something committed
            # audit events): build through the services as before.
            personas = build_personas(session)
            commit(session)
            return personas
        # Straight to the driver's cursor, as recorded (the driver's own statements and
        # parameters): SQLAlchemy's work for each was most of the replay's time on SQLite.
        # On PostgreSQL in one pipeline: the statements go out without waiting for each
        # answer (some sixty round trips a test), and an error is raised when it ends.
        driver = connection.connection.driver_connection
        pipeline = driver.pipeline() if hasattr(driver, "pipeline") else nullcontext()
        cursor = driver.cursor()
        try:
            with pipeline:
                for statement, parameters, many in self.statements:
                    if many:
                        cursor.executemany(statement, list(parameters))
                    else:
                        cursor.execute(statement, parameters)
        finally:
            cursor.close()
        commit(session)
        wanted: dict[type, list[Any]] = {}
        for _, cls, key in self.objects:
            wanted.setdefault(cls, []).append(key)
        for cls, keys in wanted.items():  # one query per class; session.get then finds them
            session.scalars(select(cls).where(inspect(cls).primary_key[0].in_(keys))).all()
        return Personas(**{name: session.get(cls, key) for name, cls, key in self.objects})


def _chain_head(connection: Connection) -> Any:
    return connection.exec_driver_sql("SELECT seq, hash FROM audit_chain_head").all()


def record_personas(engine: Engine) -> PersonaSnapshot:
    """Build the personas through the real services in a transaction that is rolled back,
    recording every statement they send."""
    statements: list[tuple[str, Any, bool]] = []

    def note(_c: Any, _cursor: Any, statement: str, parameters: Any, _x: Any, many: bool) -> None:
        # Everything but the savepoints: on PostgreSQL the audit trail is written by a
        # SELECT of a function (concord_audit_append); the reads are harmless to repeat.
        if statement.lstrip().split(None, 1)[0].upper() not in ("SAVEPOINT", "RELEASE"):
            statements.append((statement, tuple(parameters) if many else parameters, many))

    previous = set_clock(FakeClock(NOW))
    try:
        with engine.connect() as connection:
            outer = connection.begin()
            head = _chain_head(connection)
            factory = sessionmaker(
                bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
            )
            event.listen(connection, "after_cursor_execute", note)
            try:
                with factory() as session:
                    from concord.audit.service import set_context

                    set_context(session, channel="system")
                    personas = build_personas(session)
                    commit(session)
                    assert not session.info.get("after_commit"), "personas left work for commit"
                    # A savepoint rolled back inside the build would replay writes it undid.
                    assert not [s for s, _, _ in statements if s.upper().startswith("ROLLBACK")]
                    objects = tuple(
                        (f.name, type(obj), inspect(obj).identity[0])
                        for f in fields(personas)
                        for obj in [getattr(personas, f.name)]
                    )
            finally:
                event.remove(connection, "after_cursor_execute", note)
                outer.rollback()
    finally:
        set_clock(previous)
    return PersonaSnapshot(tuple(statements), objects, head)


@pytest.fixture(scope="session")
def persona_snapshot(engine: Engine) -> PersonaSnapshot:
    return record_personas(engine)


@pytest.fixture
def people(session: Session, persona_snapshot: PersonaSnapshot) -> Personas:
    """The personas (tests/factories.py), built through the services once per worker and
    restored into each test's transaction from that recording."""
    return persona_snapshot.restore(session)


def commit(session: Session) -> None:
    """End a service-level unit of work the way a request does: audit events, then commit."""
    from concord.audit.service import write_pending

    write_pending(session)
    session.commit()


@pytest.fixture
def sign_in(client: TestClient) -> Any:
    """Sign a persona in through the real sign-in form; returns the page's CSRF token."""

    def _sign_in(
        email: str, password: str = "correct horse battery", target_client: Any = None
    ) -> str:
        c = target_client or client
        c.cookies.clear()
        page = c.get("/sign-in")
        token = csrf_of(page.text)
        response = c.post(
            "/sign-in",
            data={"email": email, "password": password, "csrf_token": token, "next": "/"},
        )
        assert response.status_code == 303, response.text
        home = c.get("/account")
        assert home.status_code == 200, home.headers
        return csrf_of(home.text)

    return _sign_in


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


ROOT = Path(__file__).resolve().parent.parent

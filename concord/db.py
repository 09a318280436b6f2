"""Engine, session factory, the declarative Base, and the transaction boundary.

One transaction per request, command or job: `unit_of_work()` commits on success and rolls
back on error. Services never commit. Audit events gathered during the unit of work are
chained and written just before commit, and the denials among them survive a rollback: the
audit trail sits above this module, so it registers its writers here (`on_finish`) rather than
this module importing it (issue 17).
"""

from __future__ import annotations

import logging
import threading
import traceback
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    MetaData,
    String,
    TypeDecorator,
    Uuid,
    any_,
    bindparam,
    create_engine,
    event,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql.functions import FunctionElement

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every engine (SQLite stores no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use concord.clock")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType, str: String()}


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    statement_timeout_ms: int = 0,
    sqlite_synchronous: str = "FULL",
) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_pre_ping=False,
        )
        _configure_sqlite(engine, sqlite_synchronous)
        return engine
    # JIT off: the planner's cost for the caseload's per-episode subqueries passes
    # jit_above_cost once a clinic has ~1,000,000 patients, and compiling took 26 ms of a 29 ms
    # query (3 ms without). Concord's queries are short; none was measured to gain from JIT.
    options = ["-c jit=off"]
    if statement_timeout_ms:
        options.append(f"-c statement_timeout={int(statement_timeout_ms)}")
    connect_args: dict[str, Any] = {"options": " ".join(options)}
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that BEGIN IMMEDIATE below is
        # what starts every transaction (SQLAlchemy's documented recipe for pysqlite).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    gate = WriterGate(timeout=30.0)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Nearly every unit of work writes (audit events, session activity), and a deferred
        # transaction that reads and then writes fails at once with SQLITE_BUSY when another
        # writer committed in between. Taking the write lock up front makes writers queue
        # instead of failing. Within this process they queue on the gate, which wakes the next
        # one the moment a transaction ends; SQLite's own busy handler sleeps in steps of up to
        # 100 ms, which under load turned a 9 ms median into a 400 ms 95th percentile. Other
        # processes on the same file still queue through busy_timeout.
        key = conn.connection.dbapi_connection
        gate.enter(key)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            gate.leave(key)
            raise

    def releasing(end: Callable[[Any], None]) -> Callable[[Any], None]:
        def wrapped(connection: Any) -> None:
            try:
                end(connection)
            finally:
                gate.leave(getattr(connection, "dbapi_connection", connection))

        return wrapped

    # Every way a transaction ends gives the gate back. The dialect object belongs to this
    # engine alone, so this wraps only its connections.
    dialect = engine.dialect
    for name in ("do_commit", "do_rollback", "do_close"):
        setattr(dialect, name, releasing(getattr(dialect, name)))


class WriterGate:
    """One writing transaction at a time per SQLite engine, handed over without polling.

    Held from BEGIN IMMEDIATE to COMMIT or ROLLBACK, so it mirrors SQLite's own write lock; a
    holder that never gives it back (a connection lost without a rollback) is overtaken after
    `timeout` seconds, leaving SQLite's lock as the guard."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._changed = threading.Condition()
        self._holder: Any = None

    def enter(self, key: Any) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self._holder is None, timeout=self.timeout):
                log.warning(
                    "a SQLite transaction held the write gate %.0f s; taking it over", self.timeout
                )
            self._holder = key

    def leave(self, key: Any) -> None:
        with self._changed:
            if self._holder is key:
                self._holder = None
                self._changed.notify()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def core(session: Session) -> Any:
    """The session's connection, for a Core statement built once (the busiest paths, where
    building an ORM statement and loading objects cost more than running it), after writing
    what the session holds, so the statement sees it as an ORM query would (autoflush)."""
    if session.autoflush:
        session.flush()
    return session.connection()


AfterCommit = Callable[[], None]


def after_commit(session: Session, fn: AfterCommit) -> None:
    """Run fn once the unit of work has committed; dropped if it rolls back."""
    session.info.setdefault("after_commit", []).append(fn)


# What the end of every unit of work runs, registered by the module that queues the work on the
# session: concord.audit.service registers its writers when it is imported, and audit events are
# queued only by its `record`, so whenever there is an event to write its writer is registered.
BeforeCommit = Callable[[Session], None]
AfterRollback = Callable[[Session, sessionmaker[Session]], None]
_before_commit: list[BeforeCommit] = []
_after_rollback: list[AfterRollback] = []


def on_finish(*, before_commit: BeforeCommit, after_rollback: AfterRollback) -> None:
    """Run `before_commit(session)` just before every unit of work commits (its writes land in
    the same transaction) and `after_rollback(session, factory)` after every one that rolls
    back. Registering the same pair twice (a module reloaded) runs it once."""
    if before_commit not in _before_commit:
        _before_commit.append(before_commit)
    if after_rollback not in _after_rollback:
        _after_rollback.append(after_rollback)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The transaction boundary for commands and jobs (requests use concord.web.deps.db)."""
    session = factory()
    try:
        yield session
        finish(session, factory)
    except BaseException:
        abort(session, factory)
        raise
    finally:
        session.close()


def finish(session: Session, factory: sessionmaker[Session]) -> None:
    for before_commit in _before_commit:
        before_commit(session)
    session.commit()
    for fn in session.info.pop("after_commit", []):
        fn()


@dataclass(frozen=True)
class Skipped:
    """A record a background job could not process: which job, what record (type and id, no
    patient data) and the kind of error. The job went on with the others."""

    job: str
    object_type: str
    object_id: str
    error: str


SKIPPED = "skipped"


def isolated(
    session: Session,
    work: Callable[[], Any],
    *,
    job: str,
    object_type: str,
    object_id: Any,
    report: bool = True,
) -> Any:
    """Run one record's part of a job (one patient's reminders, one alert's escalation) in a
    savepoint, so one bad record cannot stop the others: the job is one transaction, and
    before this a response dated year 0001 stopped every patient's reminders every 30 s.
    On an error, what `work` did is undone (its rows, the audit events and after-commit
    actions it noted), the record is logged by type and id with the error's type only (its
    message may quote the row) and listed in session.info["skipped"]. Returns what `work`
    returned, None when it failed (reported unless `report` is False: a caller that retries
    the records one by one)."""
    audit_mark = len(session.info.get("audit_pending", []))
    after_mark = len(session.info.get("after_commit", []))
    savepoint = session.begin_nested()
    try:
        result = work()
        savepoint.commit()
        return result
    except Exception as exc:
        if savepoint.is_active:
            savepoint.rollback()
        del session.info.get("audit_pending", [])[audit_mark:]
        del session.info.get("after_commit", [])[after_mark:]
        if not report:
            return None
        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(
            "job %s skipped %s %s: %s at %s:%s",
            job,
            object_type,
            object_id,
            type(exc).__name__,
            where.filename.rsplit("/", 1)[-1],
            where.lineno,
        )
        session.info.setdefault(SKIPPED, []).append(
            Skipped(job, object_type, str(object_id), type(exc).__name__)
        )
        return None


def isolated_each(
    session: Session,
    items: Collection[Any],
    work: Callable[[Any], Any],
    *,
    job: str,
    object_type: str,
    key: Callable[[Any], Any],
) -> list[Any]:
    """`work(item)` for every item, as `isolated` would run each, but in one savepoint while
    nothing fails (two statements, not two per item: a job over every patient runs every 30
    s); if one fails, everything is undone and each item is run in its own savepoint.
    Returns the results of the items that succeeded."""
    results = isolated(
        session,
        lambda: [work(item) for item in items],
        job=job,
        object_type=object_type,
        object_id=None,
        report=False,
    )
    if results is not None:
        return list(results)
    done = []
    for item in items:
        result = isolated(
            session,
            partial(work, item),
            job=job,
            object_type=object_type,
            object_id=key(item),
        )
        if result is not None:
            done.append(result)
    return done


def skipped(session: Session) -> list[Skipped]:
    return list(session.info.get(SKIPPED, []))


@contextmanager
def all_or_nothing(session: Session, *refused: type[BaseException]) -> Iterator[None]:
    """Run a page's action in a savepoint: when it raises one of `refused` (bad input, a
    conflict), everything it wrote is undone (a consent recorded before the referral was
    refused, say) and the error passes on, so the page can show the form again with the
    fields named while the request still commits what the page then reads and its audit
    events. The attempt's denied and failed audit events stay, as after a rollback
    (concord.audit.service.write_pending_after_rollback); its other events and after-commit
    actions are dropped with the rows they describe."""
    audit_mark = len(session.info.get("audit_pending", []))
    after_mark = len(session.info.get("after_commit", []))
    savepoint = session.begin_nested()
    try:
        yield
    except refused:
        if savepoint.is_active:
            savepoint.rollback()
        pending = session.info.get("audit_pending", [])
        pending[audit_mark:] = [
            e for e in pending[audit_mark:] if getattr(e, "outcome", "success") != "success"
        ]
        del session.info.get("after_commit", [])[after_mark:]
        raise
    except BaseException:
        if savepoint.is_active:
            savepoint.rollback()
        raise
    else:
        savepoint.commit()


def keep_after_rollback(session: Session, *objects: object) -> None:
    """Objects the error page still needs (who is signed in), kept readable after a rollback."""
    session.info.setdefault("keep_after_rollback", []).extend(o for o in objects if o is not None)


def abort(session: Session, factory: sessionmaker[Session]) -> None:
    # A rollback expires every object in the session; detach the ones to keep first, so they
    # hold the state they were loaded with.
    for obj in session.info.pop("keep_after_rollback", []):
        if obj in session:
            session.expunge(obj)
    session.rollback()
    session.info.pop("after_commit", None)
    for after_rollback in _after_rollback:
        after_rollback(session, factory)


def among(session: Session, column: Any, values: Collection[Any]) -> Any:
    """`column IN values` for a list built in Python (a caseload's patients, say). On
    PostgreSQL it is `column = ANY(:values)`, one array parameter: the statement's text is the
    same whatever the list's length, so the server prepares and plans it once, where an IN list
    of 150 parameters is a new statement for each length and costs more to send and plan than
    the lookup itself. SQLite has no arrays and plans an IN list cheaply."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))


class days_before(FunctionElement[Any]):
    """`date_column` minus `days` days, comparable with a timestamp, on both engines."""

    inherit_cache = True
    name = "days_before"

    def __init__(self, column: Any, days: int) -> None:
        self.days = days
        super().__init__(column)


@compiles(days_before, "postgresql")
def _days_before_pg(element: days_before, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return f"({compiler.process(column, **kw)} - {int(element.days)})"


@compiles(days_before, "sqlite")
def _days_before_sqlite(element: days_before, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return f"date({compiler.process(column, **kw)}, '-{int(element.days)} days')"

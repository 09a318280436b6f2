"""Running the Alembic migrations: `concord migrate`, the demo and the tests all use this."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d_%%(slug)s"
    )
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


# Any fixed number: the advisory lock PostgreSQL holds while one process migrates.
MIGRATION_LOCK = 0x636F6E636F7264  # "concord"


def upgrade(engine: Engine, revision: str = "head") -> None:
    if engine.dialect.name == "sqlite":
        _ensure_sqlite_dir(engine)
    with engine.connect() as connection, _foreign_keys_off(connection):
        with connection.begin():
            if engine.dialect.name == "postgresql":
                # Several app processes start at once and each migrates first (`concord
                # serve`): one migrates, the others wait here and then find the schema up to
                # date. SQLite needs nothing: every transaction there starts with the write
                # lock.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            command.upgrade(alembic_config(connection=connection), revision)
            _check_foreign_keys(connection)


@contextmanager
def _foreign_keys_off(connection: Connection) -> Iterator[None]:
    """On SQLite, a migration that changes a column copies its table (Alembic's batch mode)
    and drops the old one, which the foreign keys of the rows referring to it would refuse:
    they are off while migrations run, as Alembic's documentation asks for batch migrations,
    and checked whole before the migration commits (`_check_foreign_keys`). Set on the
    driver's connection outside any transaction: inside one the PRAGMA does nothing, and
    SQLAlchemy would open one first (BEGIN IMMEDIATE, concord.db). PostgreSQL alters tables
    in place: nothing to do."""
    raw = connection.connection.driver_connection if connection.dialect.name == "sqlite" else None
    if raw is not None:
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(connection: Connection) -> None:
    """Every row still refers to a row that exists (SQLite, after migrating with the checks
    off); a violation fails the migration, which then commits nothing."""
    if connection.dialect.name != "sqlite":
        return
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise RuntimeError(f"the migration left rows that refer to nothing in: {tables}")


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema down to `revision` (operators, and the migration tests), with the
    foreign keys off on SQLite as for `upgrade`."""
    with engine.connect() as connection, _foreign_keys_off(connection):
        with connection.begin():
            command.downgrade(alembic_config(connection=connection), revision)
            _check_foreign_keys(connection)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _ensure_sqlite_dir(engine: Engine) -> None:
    database = engine.url.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)

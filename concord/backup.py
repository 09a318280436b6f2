"""Backups of the embedded SQLite database: `concord backup FILE` and `concord restore FILE`.

The copy is made with SQLite's online backup API, under one read transaction, so it is the
database as of one moment even while Concord serves and writes (in WAL mode writers do not
wait for it). PostgreSQL has its own tools, pg_dump and pg_restore (docs/operations.md);
these commands name them when the configured database is PostgreSQL.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from concord.migrate import alembic_config, head_revision

# Tables that a freshly migrated, empty database already fills.
EMPTY_DATABASE_ROWS = {"alembic_version", "audit_chain_head"}


class BackupError(Exception):
    """A backup or restore that was refused or failed, with a message an operator can act on."""


@dataclass
class Contents:
    """What a database file holds, for the command's report."""

    path: Path
    size_bytes: int
    revision: str | None
    patients: int
    users: int
    audit_events: int
    rows: int  # in every table, beyond what an empty database holds

    def summary(self) -> str:
        return (
            f"{_size(self.size_bytes)}, schema revision {self.revision or 'none'}, "
            f"{self.patients} patients, {self.users} user accounts, "
            f"{self.audit_events} audit events"
        )


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    return f"{max(1, round(n / 1024))} KB"


def sqlite_path(database_url: str) -> Path:
    """The file of a sqlite:/// URL; a PostgreSQL URL is refused with the commands to use."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        safe = url.set(drivername="postgresql").render_as_string(hide_password=True)
        raise BackupError(
            "the database is PostgreSQL: use its own tools, e.g.\n"
            f"  pg_dump --format=custom --file FILE '{safe}'\n"
            f"  pg_restore --no-owner --exit-on-error --single-transaction --dbname '{safe}' FILE\n"
            "(docs/operations.md, 'Backups and restore')"
        )
    if not url.database or url.database == ":memory:":
        raise BackupError("the database is in memory; there is no file to copy")
    return Path(url.database)


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)


def _reader(path: Path) -> sqlite3.Connection:
    """A connection to a live database that only reads. Not opened read-only: the last
    connection to close then tidies the WAL files away as usual."""
    connection = sqlite3.connect(path, timeout=30)
    connection.execute("PRAGMA query_only=ON")
    return connection


def _tables(connection: sqlite3.Connection) -> list[str]:
    return [
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]


def _count(connection: sqlite3.Connection, table: str, tables: list[str]) -> int:
    if table not in tables:
        return 0
    return int(connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def _contents(connection: sqlite3.Connection, path: Path) -> Contents:
    tables = _tables(connection)
    revision = None
    if "alembic_version" in tables:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    rows = sum(_count(connection, t, tables) for t in tables if t not in EMPTY_DATABASE_ROWS)
    return Contents(
        path=path,
        size_bytes=path.stat().st_size if path.exists() else 0,
        revision=revision,
        patients=_count(connection, "patient", tables),
        users=_count(connection, "user_account", tables),
        audit_events=_count(connection, "audit_event", tables),
        rows=rows,
    )


def describe(path: Path) -> Contents:
    with closing(_read_only(path)) as connection:
        return _contents(connection, path)


def _check_copy(connection: sqlite3.Connection, what: str) -> None:
    result = connection.execute("PRAGMA integrity_check").fetchone()[0]
    if result != "ok":
        raise BackupError(f"{what} failed SQLite's integrity check: {result}")


def backup_sqlite(database: Path, target: Path, *, force: bool = False) -> Contents:
    """Copy the live database to `target` (one file, checked), never half-written."""
    if not database.exists():
        raise BackupError(f"there is no database at {database}")
    if target.resolve() == database.resolve():
        raise BackupError("the backup cannot be the database itself")
    if target.exists() and not force:
        raise BackupError(f"{target} already exists; choose another name, or --force to replace it")
    if not target.parent.is_dir():
        raise BackupError(f"there is no folder {target.parent}")
    # Written beside the target under another name and renamed when complete, so an
    # interrupted backup never leaves a half copy under the name an operator will restore.
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        with closing(_reader(database)) as source, closing(sqlite3.connect(partial)) as copy:
            if "alembic_version" not in _tables(source):
                raise BackupError(f"{database} is not a Concord database (no schema revision)")
            source.backup(copy)  # all pages in one step: one consistent moment
            # A rollback journal, not WAL: the backup is one self-contained file. Concord turns
            # WAL back on when it opens a restored database.
            copy.execute("PRAGMA journal_mode=DELETE")
            _check_copy(copy, "the copy")
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return describe(target)


def _known_revision(revision: str | None) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    if revision is None:
        return False
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:  # "Can't locate revision"
        return False


def _claim(database: Path) -> sqlite3.Connection:
    """A connection to the restore target that has made sure nobody else has it open.

    Leaving WAL mode needs the database to itself: SQLite refuses while any other connection
    (a running `concord serve` or `concord worker` keeps some open) is attached.
    """
    connection = sqlite3.connect(database, timeout=0)
    try:
        mode = connection.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
    except sqlite3.OperationalError:
        mode = "busy"
    if mode != "delete":
        connection.close()
        raise BackupError(
            f"{database} is in use: stop Concord (concord serve, concord worker) and try again"
        )
    return connection


def restore_sqlite(source: Path, database: Path, *, force: bool = False) -> tuple[Contents, bool]:
    """Replace the database with the backup `source`. Returns what the database now holds and
    whether the schema is older than this Concord's (then `concord migrate` brings it up)."""
    if not source.is_file():
        raise BackupError(f"there is no backup at {source}")
    if database.exists() and source.resolve() == database.resolve():
        raise BackupError("the backup is the database itself")
    try:
        with closing(_read_only(source)) as backup:
            _check_copy(backup, f"{source}")
            found = _contents(backup, source)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{source} is not a SQLite database ({exc})") from exc
    if found.revision is None:
        raise BackupError(f"{source} is not a Concord backup (no schema revision)")
    if not _known_revision(found.revision):
        raise BackupError(
            f"{source} has schema revision {found.revision}, which this Concord does not know: "
            "it was made by a newer version. Restore it with that version."
        )
    database.parent.mkdir(parents=True, exist_ok=True)
    with closing(_claim(database)) as target:
        present = _contents(target, database)
        if present.rows and not force:
            raise BackupError(
                f"{database} already holds data ({present.rows} rows; {present.summary()}); "
                "restore over it only with --force"
            )
        with closing(_read_only(source)) as backup:
            # The backup API writes the destination in one transaction: an interrupted
            # restore leaves the old database as it was.
            backup.backup(target)
        _check_copy(target, "the restored database")

    return describe(database), found.revision != head_revision()

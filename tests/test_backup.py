"""Backups as an operator takes and restores them: `concord backup` and `concord restore` for
SQLite, and pg_dump / pg_restore for PostgreSQL as docs/operations.md gives them."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from contextlib import closing
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from concord.audit.service import set_context, verify, write_pending
from concord.cli import app
from concord.db import make_engine, make_sessionmaker
from concord.migrate import upgrade
from tests.conftest import fresh_database
from tests.factories import build_personas, create_plan, create_staff

runner = CliRunner()


def run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def seed(url: str) -> None:
    """Personas and an active plan, written the way requests write them (audit events too)."""
    engine = make_engine(url)
    upgrade(engine)
    with make_sessionmaker(engine)() as session:
        set_context(session, channel="system")
        people = build_personas(session)
        create_plan(session, people, goals=2, activate=True)
        write_pending(session)
        session.commit()
    engine.dispose()


def chain_of(url: str) -> tuple[bool, int]:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        result = verify(session)
    engine.dispose()
    return result.ok, result.events


@pytest.fixture
def sqlite_db(tmp_path, monkeypatch):
    """Backups of the embedded database are SQLite's, whichever engine the suite runs on."""
    url = f"sqlite:///{tmp_path / 'live' / 'concord.db'}"
    monkeypatch.setenv("CONCORD_DATABASE_URL", url)
    monkeypatch.setenv("CONCORD_ENV", "test")
    seed(url)
    return url


def dump(path) -> list[str]:
    with closing(sqlite3.connect(path)) as connection:
        return list(connection.iterdump())


class TestSqlite:
    def test_backup_then_restore_into_a_fresh_path_gives_the_same_data(
        self, sqlite_db, tmp_path, monkeypatch
    ):
        live = make_url(sqlite_db).database
        copy = tmp_path / "concord-backup.db"
        made = run("backup", str(copy))
        assert made.exit_code == 0, made.output
        ok, events = chain_of(sqlite_db)
        assert ok and events > 0
        assert f"Backed up {live} to {copy}: " in made.output
        assert f"2 patients, 9 user accounts, {events} audit events." in made.output
        assert "Keep CONCORD_SECRET_KEY with it" in made.output
        # One self-contained file, nothing beside it.
        assert sorted(p.name for p in tmp_path.iterdir()) == ["concord-backup.db", "live"]

        target = tmp_path / "restored" / "concord.db"
        monkeypatch.setenv("CONCORD_DATABASE_URL", f"sqlite:///{target}")
        restored = run("restore", str(copy))
        assert restored.exit_code == 0, restored.output
        assert f"Restored {copy} into {target}: " in restored.output
        assert f"audit chain intact: {events} events" in restored.output
        assert dump(target) == dump(live)  # every table, row for row
        verified = run("audit", "verify")
        assert verified.exit_code == 0 and f"intact: {events} events" in verified.output

    def test_a_restored_database_carries_on(self, sqlite_db, tmp_path, monkeypatch):
        copy = tmp_path / "b.db"
        assert run("backup", str(copy)).exit_code == 0
        target = tmp_path / "restored.db"
        monkeypatch.setenv("CONCORD_DATABASE_URL", f"sqlite:///{target}")
        assert run("restore", str(copy)).exit_code == 0
        assert run("migrate").exit_code == 0
        added = run(
            "users",
            "create",
            "--email",
            "new@test.example.org",
            "--name",
            "New Nurse",
            "--role",
            "nurse",
            "--org",
            "test-health",
        )
        assert added.exit_code == 0, added.output
        ok, events = chain_of(f"sqlite:///{target}")
        assert ok and events > chain_of(sqlite_db)[1]  # the chain goes on from the backup's

    def test_the_copy_is_one_moment_even_with_a_write_under_way(self, sqlite_db, tmp_path):
        live = make_url(sqlite_db).database
        writer = sqlite3.connect(live, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # Concord's write lock, held mid-request
            writer.execute("UPDATE organization SET name = 'Half Written'")
            made = run("backup", str(tmp_path / "b.db"))  # does not wait for the writer
            writer.execute("COMMIT")
        finally:
            writer.close()
        assert made.exit_code == 0, made.output
        with closing(sqlite3.connect(tmp_path / "b.db")) as copy:
            assert copy.execute("SELECT name FROM organization").fetchall() == [("Test Health",)]

    def test_backup_refuses_to_overwrite_without_force(self, sqlite_db, tmp_path):
        copy = tmp_path / "b.db"
        copy.write_text("an older backup")
        refused = run("backup", str(copy))
        assert refused.exit_code == 1
        assert f"{copy} already exists; choose another name, or --force" in refused.output
        assert copy.read_text() == "an older backup"
        assert run("backup", str(copy), "--force").exit_code == 0
        assert dump(copy) == dump(make_url(sqlite_db).database)
        nowhere = run("backup", str(tmp_path / "no" / "such" / "b.db"))
        assert nowhere.exit_code == 1 and "there is no folder" in nowhere.output

    def test_restore_refuses_a_database_with_data_unless_forced(self, sqlite_db, tmp_path):
        live = make_url(sqlite_db).database
        copy = tmp_path / "b.db"
        assert run("backup", str(copy)).exit_code == 0
        with closing(sqlite3.connect(live)) as connection:
            connection.execute("INSERT INTO job_run VALUES ('after-the-backup', '2026-11-22')")
            connection.commit()
        refused = run("restore", str(copy))
        assert refused.exit_code == 1
        assert f"{live} already holds data" in refused.output
        assert "restore over it only with --force" in refused.output
        forced = run("restore", str(copy), "--force")
        assert forced.exit_code == 0, forced.output
        assert dump(live) == dump(copy)  # back to the moment of the backup

    def test_restore_refuses_a_database_in_use(self, sqlite_db, tmp_path):
        live = make_url(sqlite_db).database
        copy = tmp_path / "b.db"
        assert run("backup", str(copy)).exit_code == 0
        engine = make_engine(sqlite_db)  # a running Concord keeps connections open
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            refused = run("restore", str(copy), "--force")
        finally:
            engine.dispose()
        assert refused.exit_code == 1
        assert f"{live} is in use: stop Concord" in refused.output
        assert run("restore", str(copy), "--force").exit_code == 0

    def test_restore_refuses_what_is_not_a_concord_backup(self, sqlite_db, tmp_path, monkeypatch):
        monkeypatch.setenv("CONCORD_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
        junk = tmp_path / "junk.db"
        junk.write_bytes(b"not a database at all, just some bytes" * 200)
        refused = run("restore", str(junk))
        assert refused.exit_code == 1 and "is not a SQLite database" in refused.output
        other = tmp_path / "other.db"
        with closing(sqlite3.connect(other)) as connection:
            connection.execute("CREATE TABLE t (x)")
        refused = run("restore", str(other))
        assert refused.exit_code == 1 and "is not a Concord backup" in refused.output
        missing = run("restore", str(tmp_path / "missing.db"))
        assert missing.exit_code == 1 and "there is no backup at" in missing.output
        assert not (tmp_path / "new.db").exists()

    def test_a_backup_from_a_newer_concord_is_refused(self, sqlite_db, tmp_path, monkeypatch):
        copy = tmp_path / "b.db"
        assert run("backup", str(copy)).exit_code == 0
        with closing(sqlite3.connect(copy)) as connection:
            connection.execute("UPDATE alembic_version SET version_num = '9999'")
            connection.commit()
        monkeypatch.setenv("CONCORD_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
        refused = run("restore", str(copy))
        assert refused.exit_code == 1
        assert "schema revision 9999, which this Concord does not know" in refused.output

    def test_on_postgresql_the_commands_name_pg_dump_and_pg_restore(self, monkeypatch):
        monkeypatch.setenv(
            "CONCORD_DATABASE_URL", "postgresql://concord:hunter2@db.example.org:5432/concord"
        )
        monkeypatch.setenv("CONCORD_ENV", "test")
        for command in ("backup", "restore"):
            result = run(command, "x.dump")
            assert result.exit_code == 1
            assert "the database is PostgreSQL: use its own tools" in result.output
            assert (
                "pg_dump --format=custom --file FILE "
                "'postgresql://concord:***@db.example.org:5432/concord'" in result.output
            )
            assert "hunter2" not in result.output


def table_digests(url: str) -> dict[str, tuple[int, str]]:
    """Each table's row count and a digest of its rows in a fixed order."""
    engine = create_engine(url)
    digests = {}
    with engine.connect() as connection:
        tables = connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        ).scalars()
        for table in list(tables):
            digests[table] = tuple(
                connection.execute(
                    text(
                        f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY "
                        f"t::text), '')) FROM \"{table}\" AS t"
                    )
                ).one()
            )
    engine.dispose()
    return digests


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_pg_dump_and_pg_restore_as_documented(database_url, tmp_path):
    if not database_url.startswith("postgresql"):
        pytest.skip("pg_dump and pg_restore are PostgreSQL's; this run is on SQLite")
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump / pg_restore are not installed (Debian: postgresql-client)")
    dump_file = tmp_path / "concord.dump"
    with fresh_database(database_url, tmp_path, "dumped") as source:
        seed(source)
        subprocess.run(
            ["pg_dump", "--format=custom", "--file", str(dump_file), libpq(source)],
            check=True,
            capture_output=True,
        )
        before = table_digests(source)
        with fresh_database(database_url, tmp_path, "restored") as target:
            subprocess.run(
                [
                    "pg_restore",
                    "--no-owner",
                    "--exit-on-error",
                    "--single-transaction",
                    "--dbname",
                    libpq(target),
                    str(dump_file),
                ],
                check=True,
                capture_output=True,
            )
            assert table_digests(target) == before  # every table, row for row
            assert before["patient"][0] == 2 and before["audit_event"][0] > 0
            ok, events = chain_of(target)
            assert ok and events == before["audit_event"][0]
            # The restored database works on: the audit trail stays append-only and its
            # sequence goes on from the backup's.
            engine = make_engine(target)
            with pytest.raises(Exception, match="append-only"), engine.begin() as connection:
                connection.execute(text("DELETE FROM audit_event"))
            engine.dispose()
            seed_more(target)
            ok, more = chain_of(target)
            assert ok and more > events


def seed_more(url: str) -> None:
    """A new staff member in the restored database (an audited change)."""
    from concord.accounts.models import Clinic, Organization, Role

    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        set_context(session, channel="system")
        org = session.scalars(select(Organization)).one()
        clinic = session.scalars(select(Clinic).where(Clinic.organization_id == org.id)).first()
        create_staff(session, org, clinic, Role.nurse, "Nell Nurse", "nell@test.example.org")
        write_pending(session)
        session.commit()
    engine.dispose()

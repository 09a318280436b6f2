"""The `concord` command as an operator (or a script) runs it, on a database of its own."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from concord.cli import app
from concord.db import make_engine, make_sessionmaker
from tests.conftest import fresh_database

runner = CliRunner()


@pytest.fixture
def cli_db(tmp_path, monkeypatch, database_url, migrated_database):
    """A database of its own for each CLI test, of the same engine as the suite's, at the
    newest migration and holding nothing (a copy of `migrated_database`: each command still
    runs the migrations first, which then have nothing to do)."""
    with fresh_database(database_url, tmp_path, "cli", like=migrated_database) as url:
        monkeypatch.setenv("CONCORD_DATABASE_URL", url)
        monkeypatch.setenv("CONCORD_ENV", "test")
        yield url


@pytest.fixture
def demo_cli_db(tmp_path, monkeypatch, database_url, demo_database):
    """A copy of the worker's built demo (tests/conftest.py `demo_database`)."""
    with fresh_database(database_url, tmp_path, "cli", like=demo_database) as url:
        monkeypatch.setenv("CONCORD_DATABASE_URL", url)
        monkeypatch.setenv("CONCORD_ENV", "test")
        yield url


@pytest.fixture
def empty_cli_db(tmp_path, monkeypatch, database_url):
    """An empty database of its own, for the commands that create the schema."""
    with fresh_database(database_url, tmp_path, "cli") as url:
        monkeypatch.setenv("CONCORD_DATABASE_URL", url)
        monkeypatch.setenv("CONCORD_ENV", "test")
        yield url


def org_with_a_care_manager():
    assert (
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
        ).exit_code
        == 0
    )
    assert (
        run(
            "users",
            "create",
            "--email",
            "cm@l.example.org",
            "--name",
            "Cam",
            "--role",
            "care_manager",
            "--org",
            "l",
        ).exit_code
        == 0
    )


def run(*args):
    result = runner.invoke(app, list(args))
    return result


def session_for(url):
    engine = make_engine(url)
    return engine, make_sessionmaker(engine)()


def test_migrate_creates_and_reports_the_schema(empty_cli_db):
    result = run("migrate")
    assert result.exit_code == 0, result.output
    from concord.migrate import head_revision

    assert f"Database at revision {head_revision()}" in result.output
    again = run("migrate")
    assert again.exit_code == 0 and "(was" not in again.output


def test_an_organization_and_its_users_from_the_command_line(cli_db):
    result = run(
        "org",
        "create",
        "--name",
        "Lakeside Clinic",
        "--slug",
        "lakeside",
        "--clinic",
        "Main Street",
        "--clinic",
        "Harbor",
        "--admin-email",
        "boss@lakeside.example.org",
        "--admin-name",
        "Bo Boss",
        "--timezone",
        "America/Denver",
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"temporary password: \S+", result.output)
    made = run(
        "users",
        "create",
        "--email",
        "cm@lakeside.example.org",
        "--name",
        "Cam Man",
        "--role",
        "care_manager",
        "--org",
        "lakeside",
        "--clinic",
        "Harbor",
    )
    assert made.exit_code == 0, made.output
    bad = run(
        "users",
        "create",
        "--email",
        "x@lakeside.example.org",
        "--name",
        "X",
        "--role",
        "wizard",
        "--org",
        "lakeside",
    )
    assert bad.exit_code == 1 and "--role must be one of" in bad.output
    duplicate = run(
        "users",
        "create",
        "--email",
        "cm@lakeside.example.org",
        "--name",
        "Y",
        "--role",
        "nurse",
        "--org",
        "lakeside",
    )
    assert duplicate.exit_code == 1 and "already used" in duplicate.output
    zone = run(
        "org",
        "create",
        "--name",
        "X",
        "--slug",
        "x",
        "--clinic",
        "A",
        "--admin-email",
        "a@x.example.org",
        "--admin-name",
        "A",
        "--timezone",
        "Mars",
    )
    assert zone.exit_code == 1 and "IANA time zone" in zone.output


def test_token_create_prints_only_a_working_token(cli_db):
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
    run(
        "users",
        "create",
        "--email",
        "cm@l.example.org",
        "--name",
        "Cam",
        "--role",
        "care_manager",
        "--org",
        "l",
    )
    result = run("token", "create", "--email", "cm@l.example.org", "--expires-in", "30d")
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert re.fullmatch(r"cnc_[A-Za-z0-9_\-]{40,}", token)
    from fastapi.testclient import TestClient

    from concord.app import create_app
    from concord.settings import Settings

    application = create_app(Settings(env="test", database_url=cli_db))
    with TestClient(application) as client:
        response = client.get("/api/v1/patients", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200 and response.json() == []
        listed = run("token", "list", "--email", "cm@l.example.org")
        assert token[:10] in listed.output
        prefix = token[:10]
        assert run("token", "revoke", prefix).exit_code == 0
        assert (
            client.get("/api/v1/patients", headers={"Authorization": f"Bearer {token}"}).status_code
            == 401
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "nobody@l.example.org"], "no active user"),
        (["--email", "cm@l.example.org", "--expires-in", "soon"], "--expires-in must be"),
        (["--email", "cm@l.example.org", "--scope", "admin"], "--scope must be"),
    ],
)
def test_token_create_explains_what_is_wrong(cli_db, args, message):
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
    run(
        "users",
        "create",
        "--email",
        "cm@l.example.org",
        "--name",
        "Cam",
        "--role",
        "care_manager",
        "--org",
        "l",
    )
    result = run("token", "create", *args)
    assert result.exit_code == 1
    assert message in result.output


def test_audit_verify_passes_then_names_the_first_broken_event(cli_db):
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
    ok = run("audit", "verify")
    assert ok.exit_code == 0 and re.search(r"audit chain intact: \d+ events", ok.output)
    engine, session = session_for(cli_db)
    with session:
        if engine.dialect.name == "postgresql":
            session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update"))
        else:
            session.execute(text("DROP TRIGGER audit_event_no_update"))
        session.execute(text("UPDATE audit_event SET action = 'read' WHERE seq = 1"))
        session.commit()
    engine.dispose()
    broken = run("audit", "verify")
    assert broken.exit_code == 1
    assert "audit chain BROKEN at event 1" in broken.output


def test_audit_anchors_from_the_command_line_find_a_shortened_trail(cli_db, tmp_path):
    """anchor-key, anchor, verify --anchors as an operator runs them: a trail cut at the end
    and its head moved back passes `verify` alone, and fails with the anchors."""
    key, anchors = tmp_path / "keys" / "anchor.pem", tmp_path / "anchors"
    org_with_a_care_manager()
    made = run("audit", "anchor-key", "--out", str(key))
    assert made.exit_code == 0, made.output
    assert key.exists() and (tmp_path / "keys" / "anchor.pem.pub").exists()
    assert run("audit", "anchor-key", "--out", str(key)).exit_code == 1  # never replaced
    anchored = run("audit", "anchor", "--dir", str(anchors), "--key", str(key))
    assert anchored.exit_code == 0, anchored.output
    line = json.loads(anchored.output)
    assert line["sequence"] >= 2 and len(line["hash"]) == 64
    public = str(tmp_path / "keys" / "anchor.pem.pub")
    ok = run("audit", "verify", "--anchors", str(anchors), "--public-key", public)
    assert ok.exit_code == 0, ok.output
    assert f"events 1-{line['sequence']} are as anchored" in ok.output

    engine, session = session_for(cli_db)
    with session:
        keep = line["sequence"] - 1
        kept_hash = session.execute(
            text("SELECT hash FROM audit_event WHERE seq = :s"), {"s": keep}
        ).scalar_one()
        if engine.dialect.name == "postgresql":
            session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update"))
        else:
            session.execute(text("DROP TRIGGER audit_event_no_delete"))
        session.execute(text("DELETE FROM audit_event WHERE seq > :s"), {"s": keep})
        session.execute(
            text("UPDATE audit_chain_head SET seq = :s, hash = :h WHERE id = 1"),
            {"s": keep, "h": kept_hash},
        )
        session.commit()
    engine.dispose()
    assert run("audit", "verify").exit_code == 0  # the chain alone cannot tell
    cut = run("audit", "verify", "--anchors", str(anchors), "--public-key", public)
    assert cut.exit_code == 1
    assert f"event {line['sequence']}" in cut.output and "removed from the end" in cut.output
    # The key from the setting serves as well (its public half is derived).
    os.environ["CONCORD_AUDIT_ANCHOR_KEY"] = str(key)
    try:
        assert run("audit", "verify", "--anchors", str(anchors)).exit_code == 1
    finally:
        del os.environ["CONCORD_AUDIT_ANCHOR_KEY"]


def test_audit_anchor_explains_what_is_missing(cli_db, tmp_path):
    assert "CONCORD_AUDIT_ANCHOR_DIR" in run("audit", "anchor").output
    assert "anchor-key" in run("audit", "anchor", "--dir", str(tmp_path)).output
    assert "--public-key" in run("audit", "verify", "--anchors", str(tmp_path)).output


def test_the_demo_loads_once_and_prints_every_sign_in(cli_db):
    from concord.accounts.models import User
    from concord.careplans.models import CarePlan
    from concord.demo import DEMO_PASSWORD
    from concord.patients.models import Patient, RelatedPerson

    first = run("demo", "--no-serve")
    assert first.exit_code == 0, first.output
    assert "Created the demo organization" in first.output
    assert f"password is: {DEMO_PASSWORD}" in first.output
    second = run("demo", "--no-serve")
    assert second.exit_code == 0 and "Found the demo organization" in second.output
    engine, session = session_for(cli_db)
    with session:
        patients = session.scalar(select(func.count()).select_from(Patient))
        users = session.scalars(select(User)).all()
        statuses = session.scalars(select(CarePlan.status)).all()
        related = session.scalars(select(RelatedPerson)).all()
    engine.dispose()
    assert patients == 26  # the second run created nothing
    for user in users:  # every sign-in is printed, patients included
        assert user.email in first.output
    roles = {u.role for u in users}
    assert {
        "care_manager",
        "psychiatric_consultant",
        "primary_care_provider",
        "psychiatrist",
        "therapist",
        "addiction_counsellor",
        "social_worker",
        "peer_specialist",
        "nurse",
        "patient",
        "related_person",
        "admin",
    } <= roles
    assert {"draft", "active", "completed"} <= set(statuses)
    assert sorted(r.consent_recorded_at is not None for r in related) == [False, False, True]
    assert run("audit", "verify").exit_code == 0
    # The safety stories: alerts in every state, an escalation, a missed follow-up, a shared
    # safety plan with two versions.
    from concord.safety.models import SafetyAlert, SafetyPlan, SafetyPlanShare

    engine, session = session_for(cli_db)
    with session:
        alerts = session.scalars(select(SafetyAlert)).all()
        plan = session.scalar(select(SafetyPlan))
        shares = session.scalars(select(SafetyPlanShare)).all()
    engine.dispose()
    assert {a.status for a in alerts} == {"open", "acknowledged", "closed"}
    assert {a.source_kind for a in alerts} == {"measure", "manual", "follow_up", "overdose_risk"}
    assert any(a.step > 0 and a.status == "open" for a in alerts)
    assert plan.version == 2 and len(shares) == 1


def test_operator_commands_need_no_secret_key(cli_db, monkeypatch):
    monkeypatch.delenv("CONCORD_ENV")
    monkeypatch.delenv("CONCORD_SECRET_KEY", raising=False)
    assert run("migrate").exit_code == 0
    assert os.environ["CONCORD_ENV"] == "development"


FIXTURES = Path(__file__).parent / "measures" / "files"


def test_content_check_lists_what_is_loaded(cli_db):
    result = run("content", "check")
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert ["instrument", "PHQ-9", "v1", "en,es", "Pfizer", "Inc."] in lines
    assert any(line[:2] == ["instrument", "CollaboRATE"] and "(licensed" in line for line in lines)


def test_content_check_of_a_clinics_own_licensed_file(cli_db):
    result = run("content", "check", str(FIXTURES / "clinic-licensed.yaml"))
    assert result.exit_code == 0
    assert "CLINIC-YN10" in result.output and "(licensed by clinic)" in result.output


def test_content_check_refuses_a_broken_file_naming_it(cli_db, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text((FIXTURES / "rules.yaml").read_text().replace("max: 16", "max: 17"))
    result = run("content", "check", str(broken), str(FIXTURES / "clinic-licensed.yaml"))
    assert result.exit_code == 1
    assert f"ERROR {broken}: score total says 0-17 but its items add up to 0-16" in result.output
    assert "CLINIC-YN10" in result.output  # the good file is still listed


def test_a_clinics_folder_adds_instruments_and_replaces_a_placeholder(tmp_path, monkeypatch):
    from concord.measures import library as library_module
    from concord.settings import get_settings

    own = tmp_path / "instruments"
    own.mkdir()
    (own / "licensed.yaml").write_text((FIXTURES / "clinic-licensed.yaml").read_text())
    collaborate = (
        Path(library_module.__file__).parent / "instruments" / "collaborate.yaml"
    ).read_text()
    (own / "collaborate.yaml").write_text(
        collaborate.replace("ships_text: false", "ships_text: true")
    )
    monkeypatch.setenv("CONCORD_INSTRUMENTS_DIR", str(own))
    get_settings.cache_clear()
    library_module._library.cache_clear()
    try:
        lib = library_module.library()
        assert lib.get("CLINIC-YN10") is not None
        assert lib.get("CollaboRATE").usable  # the clinic's licensed copy replaced it
    finally:
        get_settings.cache_clear()
        library_module._library.cache_clear()


def test_worker_once_queues_and_sends_the_due_reminders(cli_db, tmp_path, monkeypatch):
    from concord.audit.service import set_context, write_pending
    from concord.migrate import upgrade
    from tests.factories import build_personas, create_plan

    engine, session = session_for(cli_db)
    upgrade(engine)
    with session:
        set_context(session, channel="system")
        people = build_personas(session)
        create_plan(session, people, activate=True)  # PHQ-9 and GAD-7 due today
        write_pending(session)
        session.commit()
    engine.dispose()
    monkeypatch.setenv("CONCORD_INSTANCE_DIR", str(tmp_path))
    result = run("worker", "--once")
    assert result.exit_code == 0, result.output
    assert (
        "reminders_queued: 2, registry_tasks_changed: 0, medication_findings_changed: 0, "
        "referral_tasks_opened: 0, visit_reminders_queued: 0, "
        "bulk_exports_finished: 0, bulk_exports_expired: 0, messages_sent: 0, notices_sent: 2"
    ) in result.output
    assert "alerts_escalated: 0, follow_up_alerts_raised: 0" in result.output
    mails = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(mails) == 2
    for mail in mails:
        text = mail.read_text()
        assert "To: pat@patients.example.org" in text
        assert "PHQ" not in text and "GAD" not in text
    again = run("worker", "--once")
    assert (
        "reminders_queued: 0, registry_tasks_changed: 0, medication_findings_changed: 0, "
        "referral_tasks_opened: 0, visit_reminders_queued: 0, "
        "bulk_exports_finished: 0, bulk_exports_expired: 0, messages_sent: 0, notices_sent: 0"
    ) in again.output


def test_the_worker_anchors_the_audit_trail_when_configured(cli_db, tmp_path, monkeypatch):
    org_with_a_care_manager()
    key = tmp_path / "anchor.pem"
    assert run("audit", "anchor-key", "--out", str(key)).exit_code == 0
    monkeypatch.setenv("CONCORD_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("CONCORD_AUDIT_ANCHOR_KEY", str(key))
    monkeypatch.setenv("CONCORD_AUDIT_ANCHOR_DIR", str(tmp_path / "anchors"))
    result = run("worker", "--once")
    assert result.exit_code == 0, result.output
    assert "audit_anchors_written: 1" in result.output
    assert "audit_anchors_written: 0" in run("worker", "--once").output  # once an hour
    checked = run("audit", "verify", "--anchors", str(tmp_path / "anchors"))
    assert checked.exit_code == 0, checked.output
    assert "anchors hold (1 checked)" in checked.output


def test_content_check_lists_and_checks_risk_rules(cli_db, tmp_path):
    result = run("content", "check")
    assert result.exit_code == 0, result.output
    assert any(
        line.split()[:3] == ["risk-rules", "concord-default", "v2026-11-22"]
        for line in result.output.splitlines()
    )
    from concord.safety.rules import DEFAULT_FILE

    broken = tmp_path / "rules.yaml"
    broken.write_text(
        DEFAULT_FILE.read_text().replace(
            "  standard: [care_manager, lead, psychiatric_consultant, on_call]", "  standard: []"
        )
    )
    result = run("content", "check", str(broken))
    assert result.exit_code == 1
    assert f"ERROR {broken}: chain standard: has no owner" in result.output


def test_safety_rules_shows_and_loads_for_an_organization(cli_db, tmp_path):
    from concord.safety.rules import DEFAULT_FILE

    created = run(
        "org",
        "create",
        "--name",
        "Demo Health",
        "--slug",
        "demo",
        "--clinic",
        "Main",
        "--admin-email",
        "a@demo.example.org",
        "--admin-name",
        "Al Admin",
    )
    assert created.exit_code == 0, created.output
    shown = run("safety", "rules", "--org", "demo")
    assert shown.exit_code == 0, shown.output
    assert "tier acute      acknowledge within 15m" in shown.output
    assert "chain acute: care_manager -> on_call -> lead -> psychiatric_consultant" in shown.output
    mine = tmp_path / "ours.yaml"
    mine.write_text(DEFAULT_FILE.read_text().replace('version: "2026-11-22"', 'version: "ours-1"'))
    loaded = run("safety", "rules", "--org", "demo", "--load", str(mine))
    assert loaded.exit_code == 0 and "ours-1" in loaded.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: risk-rules\ncode: x\n")
    refused = run("safety", "rules", "--org", "demo", "--load", str(bad))
    assert refused.exit_code == 1 and "the rules in force stay" in refused.output
    assert "ours-1" in run("safety", "rules", "--org", "demo").output
    assert run("safety", "rules", "--org", "nobody").exit_code == 1


def test_content_check_lists_the_decision_aids_and_names_a_broken_one(cli_db, tmp_path):
    result = run("content", "check")
    assert result.exit_code == 0, result.output
    aids = [line.split()[1] for line in result.output.splitlines() if line.startswith("aid ")]
    assert aids == [
        "alcohol-use",
        "anxiety-treatment",
        "depression-treatment",
        "opioid-use-medications",
    ]
    from concord.decisions.aids import BUILT_IN

    broken = tmp_path / "aid.yaml"
    broken.write_text(
        (BUILT_IN / "alcohol-use.yaml")
        .read_text(encoding="utf-8")
        .replace("if_stop:", "if_I_stop:"),
        encoding="utf-8",
    )
    result = run("content", "check", str(broken))
    assert result.exit_code == 1
    assert f"ERROR {broken}: options[0].attributes.if_I_stop: unknown attribute" in result.output


def test_the_demo_served_on_another_port_names_that_port_in_its_links(demo_cli_db, monkeypatch):
    """`concord demo --port P`: the app it serves links to http://127.0.0.1:P (a FHIR
    resource's Location, a bundle's fullUrl), not the default port. (On a copy of the built
    demo, which `concord demo` finds and serves: building it is the test above.)"""
    import uvicorn

    from concord import settings as settings_module

    monkeypatch.delenv("CONCORD_BASE_URL", raising=False)
    served = {}

    def serve(app, **kwargs):
        served["base_url"] = settings_module.get_settings().base_url
        served["port"] = kwargs["port"]

    monkeypatch.setattr(uvicorn, "run", serve)
    settings_module.get_settings()  # cached before the demo runs, as loading it does
    result = run("demo", "--port", "8124")
    monkeypatch.delenv("CONCORD_BASE_URL", raising=False)
    settings_module.get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert served == {"base_url": "http://127.0.0.1:8124", "port": 8124}

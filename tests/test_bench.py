"""The benchmark suite runs end to end on a small population: every case is measured beside
its baseline, the HTTP cases through separate server and load-generator processes."""

from __future__ import annotations

import os

import pytest

# These build their own SQLite populations (`concord bench --db sqlite`) whatever engine the
# suite runs on: the PostgreSQL pass would repeat the SQLite pass's work and test nothing more.
# (The raw baselines' test below reads the suite's own engine, and runs on both.)
sqlite_bench = pytest.mark.skipif(
    os.environ.get("CONCORD_TEST_DATABASE_URL", "").startswith("postgres"),
    reason="builds SQLite benchmark populations whatever the suite's engine: run in the "
    "SQLite pass",
)


@sqlite_bench
def test_the_suite_measures_every_case_beside_its_baseline(monkeypatch, tmp_path):
    from bench import suite

    monkeypatch.setattr(suite, "DATA", tmp_path)
    cases = suite.run("sqlite", 300, runs=2, http_seconds=1.0, write=False, quiet=True)
    names = [c.name for c in cases]
    assert len(cases) == 6, names
    for case in cases:
        assert case.measured and case.baseline
        assert case.ratio is None or case.ratio > 0
    checkin = cases[-1]
    assert checkin.figures["max_rps"] > 0 and checkin.figures["bare_rps"] > 0
    # The servers' own CPU per request, from the operating system.
    assert checkin.figures["cpu_ms"] > 0 and checkin.figures["bare_cpu_ms"] > 0
    # The load generator alone outruns the bare endpoint: it is not the bottleneck.
    assert checkin.figures["ping_rps"] > checkin.figures["bare_rps"]
    report = suite.render("sqlite", 300, type("P", (), {"measurements": 1})(), cases, None)
    assert "| caseload page (150 patients) |" in report


@sqlite_bench
def test_the_benchmark_times_pages_as_a_server_serves_them(monkeypatch, tmp_path):
    """The test client offers Starlette's "http.response.debug" extension, which sends a
    page's whole template context back into the client's closures: a reference cycle that
    keeps the page's rows until the garbage collector runs. No server offers it; a page timed
    by the benchmark must leave nothing of its rows for the collector."""
    import gc

    from bench import suite
    from concord.registry.caseload import CaseRow
    from concord.synth import CASE_MANAGER_EMAIL, PASSWORD

    monkeypatch.setattr(suite, "DATA", tmp_path)
    url, _ = suite.population("sqlite", 300, quiet=True)
    app = suite.App(url, CASE_MANAGER_EMAIL, PASSWORD)
    try:
        app.get("/registry")
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            page = app.get("/registry")
            assert "Collaborative care registry" in page.text
            gc.collect()
            left = [o for o in gc.garbage if isinstance(o, CaseRow)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        assert left == []
    finally:
        app.close()


@sqlite_bench
def test_the_scaling_curve_measures_every_size(monkeypatch, tmp_path):
    from bench import suite

    monkeypatch.setattr(suite, "DATA", tmp_path)
    curve = suite.scaling_curve("sqlite", [120, 240], 3, lambda *a: None)
    assert sorted(curve) == [120, 240]
    assert all(row["caseload"] > 0 and row["patient"] > 0 for row in curve.values())


def test_the_raw_baselines_read_the_facts_the_pages_show(database_url, tmp_path):
    """A page's baseline must read the same rows as the page, or its ratio says nothing:
    the raw caseload names the same episodes with the same latest PHQ-9 and GAD-7, alert
    counts, contacts and plan review dates as the caseload the app builds; the raw patient
    statements find the scores the overview charts."""
    from sqlalchemy import select, text

    from bench.raw import caseload_statements, patient_statements, run_all
    from concord.accounts.models import User
    from concord.audit.service import set_context
    from concord.db import make_engine, make_sessionmaker
    from concord.registry.caseload import View, caseload
    from concord.synth import CASE_MANAGER_EMAIL, build
    from tests.conftest import fresh_database

    with fresh_database(database_url, tmp_path, "rawbase") as url:
        build(url, patients=400, seed=3, quiet=True)
        engine = make_engine(url)
        sqlite = engine.dialect.name == "sqlite"

        def stored(**ids):  # Uuid columns are hex text on SQLite
            return {k: v.hex if sqlite else v for k, v in ids.items()}

        try:
            with make_sessionmaker(engine)() as session:
                set_context(session, channel="system")
                c = session.connection()  # (SQLite: one writer at a time, this is it)
                cm = session.scalar(select(User).where(User.email == CASE_MANAGER_EMAIL))
                rows, _ = caseload(session, by=cm, scope="mine", view=View())
                statements = caseload_statements(engine.dialect.name)
                raw, contacts, schedules, *decision = run_all(
                    c, statements, stored(cm=cm.id, org=cm.organization_id)
                )
                assert len(rows) >= 100 and len(raw) == len(rows)
                page = {r.episode.id.hex: r for r in rows}
                assert any("GAD-7" in r.measures for r in rows)  # anxiety episodes compared too
                for fact in raw:
                    row = page[fact.id if sqlite else fact.id.hex]
                    phq = row.measures["PHQ-9"].latest if "PHQ-9" in row.measures else None
                    # The same latest rows (the value; the page shows the local date). A row
                    # shows only its program's measures (GAD-7 for anxiety, not depression); the
                    # raw statement reads the GAD-7 for every episode.
                    if "PHQ-9" in row.measures:
                        assert (phq.value if phq else None) == fact[13]  # phq_latest.value
                    if "GAD-7" in row.measures:
                        gad = row.measures["GAD-7"].latest
                        assert (gad.value if gad else None) == fact[21]  # gad_latest.value
                    assert row.open_alerts == fact.alerts
                    assert row.plan_review_on == _as_date(fact.next_review_on)
                assert sum(r.contacts for r in rows) == len(contacts)
                assert schedules  # every active plan schedules check-ins
                # The consent decision's reads: every open episode of the caseload among the
                # patients' episodes it reads.
                assert len(decision) == 5
                assert {r.episode.id.hex for r in rows} <= {
                    (e[0] if sqlite else e[0].hex) for e in decision[1]
                }

                params = stored(p=rows[0].patient.id, u=cm.id)
                overview = run_all(c, patient_statements(), params)
                assert overview[0][0].on_team in (True, 1)
                phq9_scores = c.execute(
                    text(
                        "SELECT COUNT(*) FROM measure_observation WHERE patient_id = :p "
                        "AND instrument = 'PHQ-9' AND score_id = 'total'"
                    ),
                    {"p": params["p"]},
                ).scalar()
                charted = sum(1 for s in overview[4] if s.instrument == "PHQ-9")
                assert charted == phq9_scores > 0
        finally:
            engine.dispose()


def _as_date(value):
    from datetime import date

    return date.fromisoformat(value) if isinstance(value, str) else value


@sqlite_bench
def test_the_suite_brings_the_populations_tasks_up_to_date_first(monkeypatch, tmp_path):
    """A synthetic population is written without tasks; `concord bench` syncs them first (as
    the nightly run would), so its check-in case measures the steady state."""
    from bench import suite

    monkeypatch.setattr(suite, "DATA", tmp_path)
    url, _ = suite.population("sqlite", 100, quiet=True)
    assert suite.sync_tasks(url) > 0
    assert suite.sync_tasks(url) == 0

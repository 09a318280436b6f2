"""The benchmark suite runs end to end on a small population: every case is measured beside
its baseline, the HTTP cases through separate server and load-generator processes."""

from __future__ import annotations


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


def test_the_scaling_curve_measures_every_size(monkeypatch, tmp_path):
    from bench import suite

    monkeypatch.setattr(suite, "DATA", tmp_path)
    curve = suite.scaling_curve("sqlite", [120, 240], 3, lambda *a: None)
    assert sorted(curve) == [120, 240]
    assert all(row["caseload"] > 0 and row["patient"] > 0 for row in curve.values())

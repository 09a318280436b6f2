"""bench/medications.py runs end to end and prints each case beside its baseline (a benchmark
is not a test of time: nothing here fails on a figure)."""

from __future__ import annotations

import sys


def test_the_benchmark_prints_every_case_beside_its_baseline(monkeypatch, capsys):
    from bench import medications

    monkeypatch.setattr(sys, "argv", ["medications", "--lists", "5", "--size", "30"])
    medications.main()
    out = capsys.readouterr().out
    assert "5 lists of 30 medications" in out
    for case in ("baseline: read the codes", "check()", "CDS Hooks order-sign (no HTTP)"):
        assert case in out
    assert "slowest check():" in out

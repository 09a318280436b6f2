"""The synthetic population: deterministic for a seed and a day, the outcome mix it claims,
complete rows the app reads (a caseload page with flags), on both engines' bulk paths."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date

import pytest
from sqlalchemy import create_engine, func, select, text

from concord import synth
from concord.measures.models import MeasureObservation
from concord.patients.models import Patient
from concord.registry.models import Contact, Episode
from tests.conftest import fresh_database
from tests.test_cli import cli_db  # noqa: F401  (fixture)

DAY = date(2026, 11, 22)


def _fingerprint(url: str) -> tuple:
    from concord.db import make_engine

    engine = make_engine(url)
    with engine.connect() as c:
        patients = c.execute(select(Patient.id).order_by(Patient.mrn).limit(5)).scalars().all()
        scores = c.execute(
            select(MeasureObservation.patient_id, MeasureObservation.value)
            .order_by(MeasureObservation.id)
            .limit(50)
        ).all()
        counts = tuple(
            c.execute(select(func.count()).select_from(m)).scalar()
            for m in (Patient, Episode, Contact, MeasureObservation)
        )
    engine.dispose()
    return tuple(patients), tuple(scores), counts


def test_the_same_seed_and_day_give_the_same_rows(database_url, tmp_path):
    prints = []
    for n in range(2):
        with fresh_database(database_url, tmp_path / str(n), f"synth{n}") as url:
            population = synth.build(url, patients=300, seed=11, today=DAY, quiet=True)
            assert population.patients == 300 and population.rows > 300 * 20
            assert synth.build(url, patients=300, seed=11, today=DAY).rows == 0  # found, kept
            prints.append(_fingerprint(url))
    assert prints[0] == prints[1]
    with fresh_database(database_url, tmp_path / "other", "synth_other") as url:
        synth.build(url, patients=300, seed=12, today=DAY, quiet=True)
        assert _fingerprint(url)[0] != prints[0][0]


def test_the_outcome_mix_follows_the_sourced_shares():
    import random

    rng = random.Random(3)
    drawn = Counter(synth._pick(rng, synth.OUTCOMES) for _ in range(20_000))
    assert abs(sum(share for _, share in synth.OUTCOMES) - 1) < 1e-9
    for name, share in synth.OUTCOMES:
        assert abs(drawn[name] / 20_000 - share) < 0.02
    rng = random.Random(4)
    baseline = 16.0
    remits = synth._course("remission", baseline, 16, rng)
    responds = synth._course("response", baseline, 16, rng)
    stays = synth._course("not_improving", baseline, 16, rng)
    assert remits < 5 + 3 and responds <= baseline / 2 + 3 and stays > baseline - 4


def test_the_app_reads_what_synth_wrote(database_url, tmp_path):
    from fastapi.testclient import TestClient

    from concord.app import create_app
    from concord.settings import Settings

    with fresh_database(database_url, tmp_path, "synth_app") as url:
        synth.build(url, patients=400, seed=5, quiet=True)
        settings = Settings(env="test", database_url=url, base_url="http://synth")
        with TestClient(create_app(settings), base_url="http://synth") as client:
            page = client.get("/sign-in")
            token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            client.post(
                "/sign-in",
                data={
                    "email": synth.CASE_MANAGER_EMAIL,
                    "password": synth.PASSWORD,
                    "csrf_token": token,
                },
            )
            caseload = client.get("/registry")
            assert caseload.status_code == 200
            assert caseload.text.count('<th scope="row">') >= 100
            assert "not improving" in caseload.text
            assert client.get("/registry/program").status_code == 200


@pytest.mark.parametrize("table", ["measure_observation"])
def test_the_bulk_baseline_measures_the_same_rows(database_url, tmp_path, table):
    with fresh_database(database_url, tmp_path, "synth_copy") as url:
        synth.build(url, patients=200, seed=5, quiet=True)
        assert synth.copy_same_rows(url, table) > 1000
        assert synth.copy_same_rows(url, table, foreign_keys=False) > 1000


def test_the_baseline_table_keeps_or_drops_the_foreign_keys():
    create = (
        "CREATE TABLE measure_observation (\n\tid CHAR(32) NOT NULL, \n"
        "\tCONSTRAINT pk_measure_observation PRIMARY KEY (id), \n"
        "\tCONSTRAINT fk_a FOREIGN KEY(patient_id) REFERENCES patient (id), \n"
        "\tCONSTRAINT fk_b FOREIGN KEY(response_id) REFERENCES measure_response (id)\n)"
    )
    stripped = re.sub(synth.FOREIGN_KEY_CLAUSE, "", create)
    assert "FOREIGN KEY" not in stripped and "PRIMARY KEY (id)" in stripped
    assert stripped.rstrip().endswith(")")


def test_concord_synth_builds_once(cli_db):  # noqa: F811
    from tests.test_cli import run

    first = run("synth", "--patients", "150", "--seed", "2")
    assert first.exit_code == 0, first.output
    assert "Built 150 patients" in first.output and synth.CASE_MANAGER_EMAIL in first.output
    again = run("synth", "--patients", "150")
    assert again.exit_code == 0 and "already in this database" in again.output


def test_a_failed_build_leaves_nothing_and_keeps_the_keys(database_url, tmp_path, monkeypatch):
    """A build that fails half-way (after many tables) leaves no population behind, so the
    next `concord synth` builds it whole instead of finding a half-built one."""
    write = synth.Writer._write

    def fail_at_scores(self, table, rows, label, total, complete):
        if table.name == "measure_observation":
            raise RuntimeError("the disk is full")
        return write(self, table, rows, label, total, complete)

    monkeypatch.setattr(synth.Writer, "_write", fail_at_scores)
    with fresh_database(database_url, tmp_path, "synth_fail") as url:
        with pytest.raises(RuntimeError):
            synth.build(url, patients=120, seed=3, quiet=True)
        assert synth.existing(url) is None
        engine = create_engine(url)
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(Patient)).scalar() == 0
            if connection.dialect.name == "postgresql":
                keys = connection.execute(
                    text(
                        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                        "AND conrelid = 'measure_response'::regclass"
                    )
                ).scalar()
                assert keys >= 1
        engine.dispose()
        monkeypatch.setattr(synth.Writer, "_write", write)
        built = synth.build(url, patients=120, seed=3, quiet=True)
        assert built.patients == 120

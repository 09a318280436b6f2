"""A stable summary of what the demo (and the synthetic population) put in a database: the rows
per table, the patients' names, their plan items and their check-in scores. The fixtures in
tests/fixtures/ were written by running this file against main before the demo's content moved
to data files (issue 17), so the test compares the loaders' output with the old code's.

    python tests/demo_summary.py demo tests/fixtures/demo_summary.json
    python tests/demo_summary.py synth tests/fixtures/synth_summary.json
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)  # tests.conftest.NOW
SYNTH_DAY = date(2026, 11, 22)
SYNTH_PATIENTS = 60
SYNTH_SEED = 11

# Columns left out of a plan item: keys, and instants the database or hashing sets.
_SKIP = ("id", "created_at", "updated_at")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()[:10]
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "value"):  # an enum
        return value.value
    return value


def summary(url: str) -> dict[str, Any]:
    from sqlalchemy import func, select

    from concord.db import make_engine
    from concord.models import Base

    engine = make_engine(url)
    try:
        with engine.connect() as c:
            tables = Base.metadata.sorted_tables
            counts = {
                t.name: c.execute(select(func.count()).select_from(t)).scalar_one() for t in tables
            }
            meta = {t.name: t for t in tables}
            patient = meta["patient"]
            names = {
                r.id: f"{r.given_name} {r.family_name}"
                for r in c.execute(
                    select(patient.c.id, patient.c.given_name, patient.c.family_name)
                )
            }
            plans = {
                r.id: names[r.patient_id]
                for r in c.execute(select(meta["care_plan"].c.id, meta["care_plan"].c.patient_id))
            }
            items = []
            for t in tables:
                if "plan_id" not in t.c or t.name in ("plan_revision", "plan_agreement"):
                    continue
                if not any(fk.column.table.name == "care_plan" for fk in t.c.plan_id.foreign_keys):
                    continue
                for row in c.execute(select(t)).mappings():
                    fields = {
                        k: _plain(v)
                        for k, v in row.items()
                        if k not in _SKIP
                        and not k.endswith("_id")
                        and not k.endswith("_at")
                        and not isinstance(v, dict | list)
                    }
                    items.append([plans[row["plan_id"]], t.name, fields])
            obs = meta["measure_observation"]
            scores = [
                [
                    names[r.patient_id],
                    r.instrument,
                    r.score_id,
                    float(r.value),
                    _plain(r.effective_at),
                ]
                for r in c.execute(select(obs))
            ]
    finally:
        engine.dispose()
    key = json.dumps
    return {
        "counts": counts,
        "patients": sorted(names.values()),
        "plan_items": sorted(items, key=key),
        "scores": sorted(scores, key=key),
    }


def build_demo(url: str) -> None:
    from typer.testing import CliRunner

    from concord.cli import app
    from concord.clock import FakeClock, set_clock

    before = os.environ.get("CONCORD_DATABASE_URL")
    os.environ["CONCORD_DATABASE_URL"] = url
    previous = set_clock(FakeClock(NOW))
    try:
        result = CliRunner().invoke(app, ["demo", "--no-serve"])
    finally:
        set_clock(previous)
        if before is None:
            os.environ.pop("CONCORD_DATABASE_URL", None)
        else:
            os.environ["CONCORD_DATABASE_URL"] = before
    assert result.exit_code == 0, result.output


def build_synth(url: str) -> None:
    from concord import synth

    synth.build(url, patients=SYNTH_PATIENTS, seed=SYNTH_SEED, today=SYNTH_DAY, quiet=True)


def main(kind: str, out: str) -> None:
    import tempfile

    os.environ.setdefault("CONCORD_ENV", "test")
    os.environ.setdefault("CONCORD_ARGON2_TIME_COST", "1")
    os.environ.setdefault("CONCORD_ARGON2_MEMORY_KIB", "1024")
    os.environ.setdefault(
        "CONCORD_SECRET_KEY", "test-secret-key-for-the-test-suite-only-0123456789"
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'summary.db'}"
        if kind == "synth":
            build_synth(url)
        else:
            from concord.db import make_engine
            from concord.migrate import upgrade

            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
            build_demo(url)
        Path(out).write_text(json.dumps(summary(url), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Bulk Data export of every patient's Observations beside a raw dump of the same rows, in the
same run: `python -m bench.bulk_export [--patients 100000] [--measurements N] [--url URL]`.

Builds the synthetic population (concord.synth), puts one exporting clinician on every care
team (an export reads as its requester: a clinician sees their care teams' patients), then
times:

- the export: `$export?_type=Observation` recorded as the kick-off does, then the worker's job
  (concord.fhir.bulk.run_exports): every page through the FHIR Observation search as that
  clinician (access, consent and Part 2 labels, one audit event a resource read), each score
  mapped to a FHIR Observation and written as NDJSON;
- the baseline: the same measure_observation rows written to a file by the engine's raw path:
  PostgreSQL `COPY (SELECT row_to_json(o) ...) TO STDOUT`, SQLite one SELECT with each row
  dumped as JSON by Python.

Prints both and their ratio; a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("CONCORD_ENV", "development")

from sqlalchemy import func, insert, select, text  # noqa: E402

from concord.accounts.models import Clinic, Role  # noqa: E402
from concord.accounts.tokens import create_api_token  # noqa: E402
from concord.accounts.users import create_user  # noqa: E402
from concord.audit.service import set_context, write_pending  # noqa: E402
from concord.bulk.models import BulkExportFile  # noqa: E402
from concord.clock import now  # noqa: E402
from concord.db import make_engine, make_sessionmaker  # noqa: E402
from concord.fhir import bulk  # noqa: E402
from concord.measures.models import MeasureObservation  # noqa: E402
from concord.patients.models import CareTeam, CareTeamMember  # noqa: E402
from concord.synth import build  # noqa: E402

EXPORTER = "bulk-exporter@synthetic.example.org"


def _exporter(factory) -> tuple[str, object]:
    """A clinician on every care team, and a token for them."""
    with factory() as session:
        set_context(session, channel="cli")
        from concord.accounts.models import User

        user = session.scalar(select(User).where(User.email == EXPORTER))
        if user is None:
            clinic = session.scalar(select(Clinic).limit(1))
            user, _ = create_user(
                session,
                by=None,
                organization=clinic.organization,
                email=EXPORTER,
                name="Bulk Exporter",
                role=Role.care_manager,
                password="synthetic-password-2026",
                clinic=clinic,
                must_change_password=False,
            )
            session.flush()
            teams = session.scalars(select(CareTeam.id)).all()
            at = now()
            session.execute(
                insert(CareTeamMember),
                [
                    {
                        "id": uuid.uuid4(),
                        "care_team_id": t,
                        "user_id": user.id,
                        "role": "care_manager",
                        "is_lead": False,
                        "added_at": at,
                    }
                    for t in teams
                ],
            )
        token, api_token = create_api_token(session, user=user, by=None, name="bench")
        write_pending(session)
        session.commit()
        return token, (user.id, api_token.id)


def _export(factory, ids, folder: Path, base_url: str) -> tuple[float, int]:
    from concord.accounts.models import ApiToken, User

    with factory() as session:
        set_context(session, channel="fhir")
        user = session.get(User, ids[0])
        api_token = session.get(ApiToken, ids[1])
        export = bulk.kick_off(
            session,
            user=user,
            token=api_token,
            level="system",
            group_id=None,
            pairs=[("_type", "Observation")],
            request_url=base_url + "/fhir/$export?_type=Observation",
        )
        write_pending(session)
        session.commit()
        export_id = export.id
    schedule = bulk.BulkSchedule(folder, timedelta(hours=1), "urn:mrn:{organization}", base_url)
    started = time.perf_counter()
    finished = bulk.run_exports(factory, schedule)
    seconds = time.perf_counter() - started
    assert finished == 1, "the export did not finish"
    with factory() as session:
        count = session.scalar(
            select(func.coalesce(func.sum(BulkExportFile.count), 0)).where(
                BulkExportFile.export_id == export_id
            )
        )
    return seconds, int(count or 0)


def _raw(engine, out: Path) -> tuple[float, int]:
    started = time.perf_counter()
    rows = 0
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            raw = connection.connection.driver_connection
            with raw.cursor() as cursor, out.open("wb") as handle:
                with cursor.copy(
                    "COPY (SELECT row_to_json(o) FROM measure_observation o) TO STDOUT"
                ) as copy:
                    for block in copy:
                        handle.write(block)
            rows = connection.scalar(select(func.count()).select_from(MeasureObservation))
    else:
        with engine.connect() as connection, out.open("w") as handle:
            result = connection.execute(text("SELECT * FROM measure_observation"))
            keys = list(result.keys())
            for row in result:
                handle.write(json.dumps(dict(zip(keys, row, strict=True)), default=str))
                handle.write("\n")
                rows += 1
    return time.perf_counter() - started, int(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--measurements", type=int, default=None, help="scores in all")
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    url = args.url or f"sqlite:///bench/data/bulk-{args.patients}.db"
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    build(url, patients=args.patients, measurements=args.measurements, seed=11)
    print(f"population: {args.patients:,} patients ({time.perf_counter() - started:.0f} s)")
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    _, ids = _exporter(factory)
    with tempfile.TemporaryDirectory() as folder:
        seconds, count = _export(factory, ids, Path(folder), "http://127.0.0.1:8000")
        raw_seconds, raw_rows = _raw(engine, Path(folder) / "raw.ndjson")
    engine.dispose()
    print(f"engine: {engine.dialect.name}")
    print(f"$export Observation: {count:,} resources in {seconds:.1f} s ({count / seconds:,.0f}/s)")
    print(
        f"raw dump of the same table: {raw_rows:,} rows in {raw_seconds:.1f} s "
        f"({raw_rows / raw_seconds:,.0f}/s)"
    )
    print(
        f"ratio (export rows/s over raw rows/s): {(count / seconds) / (raw_rows / raw_seconds):.3f}"
    )


if __name__ == "__main__":
    main()

"""CMS159 over a population through the EHR import store, beside raw SQL reading the same rows:
`python -m bench.quality_store [--patients 2000] [--url sqlite:///bench/data/quality.db]`.

Builds the synthetic population (concord.synth) and gives each patient the synthetic EHR
record of bench/quality.py as imported rows (ehr_resource, written directly: the import's own
speed is docs/ehr-import.md's), then times:

- the store: concord.actions.quality.evaluate_measure as an integration client with the
  quality scope (organization_patients: access, one audit event a patient, the resources as
  FHIR JSON; then the measure), reportType=population;
- raw SQL reading: one SELECT of the same rows (the patients' resources of the types the
  measure reads), the floor any evaluation in Python pays, and the count of patients it read;
- raw SQL counting: CMS159's initial population, denominator and numerator computed in one SQL
  statement over the stored JSON (cms159_sql below, SQLite or PostgreSQL). It follows the
  measure's logic for the data this population holds (coded by their first coding; a
  diagnosis's prevalence from its onset) and does not compute the denominator exclusions
  (hospice, palliative care, death, the excluding diagnoses: this population has none of that
  data; the store's evaluation checks them all); so it is a floor for the same count, not a
  second implementation of the measure.

Prints both; a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from datetime import date

os.environ.setdefault("CONCORD_ENV", "development")

from sqlalchemy import insert, select, text  # noqa: E402

from bench.quality import synthetic_patient  # noqa: E402
from concord.accounts.tokens import create_client_token  # noqa: E402
from concord.actions import quality  # noqa: E402
from concord.db import make_engine, make_sessionmaker  # noqa: E402
from concord.ehr import service as ehr_service  # noqa: E402
from concord.ehr.models import EhrResource  # noqa: E402
from concord.ehr.service import category_of_resource  # noqa: E402
from concord.patients.models import Patient  # noqa: E402
from concord.quality import catalog  # noqa: E402
from concord.quality.fhirtime import add_months, shift  # noqa: E402
from concord.quality.terminology import terminology  # noqa: E402
from concord.synth import build  # noqa: E402


def _codes(*names: str) -> str:
    vs = terminology("2026")
    pairs = sorted({f"{system}|{code}" for name in names for system, code in vs[name].codes})
    return ", ".join("'" + p.replace("'", "''") + "'" for p in pairs)


def cms159_sql(dialect: str, period_start: date) -> str:
    """CMS159's initial population, denominator and numerator as one SQL statement (see the
    module's docstring for what it leaves out). Parameter :org, the organization. Each
    patient's rows are reached through the (patient_id, resource_type) index."""
    pg = dialect == "postgresql"

    def j(row: str, path: str) -> str:  # a JSON value of row.resource, as text
        if pg:
            return f"({row}.resource #>> '{{" + path.replace(".", ",") + "}')"
        parts = "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in path.split("."))
        return f"json_extract({row}.resource, '${parts}')"

    def coded(row: str, path: str) -> str:
        system, code = j(row, path + ".coding.0.system"), j(row, path + ".coding.0.code")
        return f"({system} || '|' || {code})"

    def day(expr: str) -> str:
        return f"CAST(substr({expr}, 1, 10) AS date)" if pg else f"date(substr({expr}, 1, 10))"

    def plus(expr: str, days: int) -> str:
        return f"({expr} + {days})" if pg else f"date({expr}, '{days:+d} days')"

    def year(expr: str) -> str:
        return f"(CAST(substr(CAST({expr} AS text), 1, 4) AS integer))"

    def md(expr: str) -> str:
        return f"substr(CAST({expr} AS text), 6, 5)"

    def score(row: str) -> str:
        return f"CAST({j(row, 'valueInteger')} AS integer)" if pg else j(row, "valueInteger")

    def phq(row: str) -> str:  # a PHQ-9/PHQ-9M done
        return (
            f"{row}.resource_type = 'Observation' "
            f"AND {coded(row, 'code')} IN ({_codes('PHQ 9 and PHQ 9M Tools')}) "
            f"AND {j(row, 'status')} IN ('final', 'amended', 'corrected')"
        )

    dip_low = add_months(period_start, -14)
    dip_high = shift(add_months(period_start, -2), -1)
    lit = (lambda d: f"DATE '{d.isoformat()}'") if pg else (lambda d: f"'{d.isoformat()}'")
    anniversary = (
        "CAST(ip.day + interval '12 months' AS date)" if pg else "date(ip.day, '+12 months')"
    )
    at = j("o", "effectiveDateTime")
    born = day(j("p", "birthDate"))
    end = day(j("e", "period.end"))
    return f"""
WITH idx AS MATERIALIZED (
  SELECT o.patient_id, MIN({at}) AS at
  FROM ehr_resource o
  WHERE o.organization_id = :org AND {phq("o")} AND {score("o")} > 9
    AND EXISTS (
      SELECT 1 FROM ehr_resource e
      WHERE e.patient_id = o.patient_id AND e.resource_type = 'Encounter'
        AND {j("e", "status")} = 'finished'
        AND {coded("e", "type.0")} IN ({_codes("Contact or Office Visit")})
        AND {end} BETWEEN {lit(dip_low)} AND {lit(dip_high)}
        AND {day(at)} BETWEEN {plus(day(j("e", "period.start")), -7)} AND {end}
        AND EXISTS (
          SELECT 1 FROM ehr_resource c
          WHERE c.patient_id = e.patient_id AND c.resource_type = 'Condition'
            AND {coded("c", "code")} IN
                ({_codes("Major Depression Including Remission", "Dysthymia")})
            AND {j("c", "clinicalStatus.coding.0.code")} = 'active'
            AND {j("c", "verificationStatus.coding.0.code")} = 'confirmed'
            AND {j("c", "category.0.coding.0.code")} IN
                ('problem-list-item', 'health-concern', 'encounter-diagnosis')
            AND {day(j("c", "onsetDateTime"))} <= {end}))
  GROUP BY o.patient_id
), ip AS MATERIALIZED (
  SELECT idx.patient_id, {day("idx.at")} AS day FROM idx
  JOIN ehr_resource p ON p.patient_id = idx.patient_id AND p.resource_type = 'Patient'
  WHERE {year(day("idx.at"))} - {year(born)}
        - CASE WHEN {md(day("idx.at"))} < {md(born)} THEN 1 ELSE 0 END >= 12
), final AS MATERIALIZED (
  SELECT ip.patient_id, (
    SELECT {score("o")} FROM ehr_resource o
    WHERE o.patient_id = ip.patient_id AND {phq("o")}
      AND {day(at)} BETWEEN {plus(anniversary, -60)} AND {plus(anniversary, 60)}
    ORDER BY {at} DESC LIMIT 1) AS score
  FROM ip
)
SELECT (SELECT COUNT(*) FROM ip) AS initial_population,
       (SELECT COUNT(*) FROM final WHERE score < 5) AS numerator
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    url = args.url or f"sqlite:///bench/data/quality-{args.patients}.db"
    population = build(url, patients=args.patients, measurements=args.patients, quiet=True)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    with factory() as session:
        org_id = population.organization_id
        client_id = None
        if not session.scalar(select(EhrResource.id).limit(1)):
            from concord.accounts.models import Organization

            organization = session.get(Organization, org_id)
            _, token = create_client_token(
                session, organization=organization, name="bench-feed", scopes=["quality"]
            )
            client_id = token.user_id
            rng = random.Random(7)
            rows = []
            ids = list(session.scalars(select(Patient.id).where(Patient.organization_id == org_id)))
            for i, pid in enumerate(ids):
                for k, resource in enumerate(synthetic_patient(i, rng)):
                    rows.append(
                        {
                            "id": uuid.uuid4(),
                            "organization_id": org_id,
                            "source_id": client_id,
                            "resource_type": resource["resourceType"],
                            "sender_id": resource.get("id") or f"r{i}-{k}",
                            "patient_id": pid,
                            "patient_ref": f"p{i}",
                            "category": str(category_of_resource(resource)),
                            "resource": resource,
                            "version": 1,
                        }
                    )
                if len(rows) > 5000:
                    session.execute(insert(EhrResource), rows)
                    rows = []
            if rows:
                session.execute(insert(EhrResource), rows)
            session.commit()
        if session.get_bind().dialect.name == "postgresql":
            # The planner's statistics after the bulk load, as autovacuum would gather them
            # in a running system (without them it plans for an empty table).
            session.execute(text("ANALYZE ehr_resource"))
            session.commit()
        from concord.accounts.models import User

        client = session.scalar(select(User).where(User.role == "client"))
        runs = []
        for _ in range(2):  # the first run also loads the value sets and warms the caches
            started, cpu = time.perf_counter(), time.process_time()
            report = quality.evaluate_measure(
                session,
                by=client,
                scopes=frozenset({"quality"}),
                measure_id="CMS159",
                pairs=[
                    ("periodStart", "2026-01-01"),
                    ("periodEnd", "2026-12-31"),
                    ("reportType", "population"),
                ],
            )
            runs.append((time.perf_counter() - started, time.process_time() - cpu))
            session.rollback()  # the audit events of the timed run are not kept
        counts = {
            p["code"]["coding"][0]["code"]: p["count"] for p in report["group"][0]["population"]
        }
        # The store's population read alone (no measure), in the same run.
        started, cpu = time.perf_counter(), time.process_time()
        now_patients = now_rows = 0
        for _, resources in ehr_service.population_resources(
            session,
            access=client,
            types=catalog.RESOURCE_TYPES,
            scopes=frozenset({"quality"}),
            having=catalog.required_types("CMS159"),
        ):
            now_patients += 1
            now_rows += len(resources)
        read_now = (time.perf_counter() - started, time.process_time() - cpu)
        session.rollback()
        types = ", ".join(f"'{t}'" for t in catalog.RESOURCE_TYPES)
        started = time.perf_counter()
        raw = session.execute(
            text(
                "SELECT patient_id, resource FROM ehr_resource WHERE organization_id = :org "
                f"AND resource_type IN ({types}) ORDER BY patient_id"
            ),
            {"org": org_id.hex if url.startswith("sqlite") else org_id},
        ).all()
        raw_seconds = time.perf_counter() - started
        dialect = session.get_bind().dialect.name
        started = time.perf_counter()
        initial, numerator = session.execute(
            text(cms159_sql(dialect, date(2026, 1, 1))),
            {"org": org_id.hex if dialect == "sqlite" else org_id},
        ).one()
        sql_seconds = time.perf_counter() - started
        print(f"patients: {args.patients} at {url}")
        print(
            "CMS159 through the store ($evaluate-measure, population): "
            + ", then ".join(f"{wall:.2f} s ({cpu:.2f} s CPU)" for wall, cpu in runs)
            + f" {counts}"
        )
        print(
            "the store's population read alone (population_resources, no measure): "
            f"{read_now[0]:.2f} s ({read_now[1]:.2f} s CPU), "
            f"{now_patients} patients, {now_rows} rows"
        )
        print(
            f"raw SQL reading the same rows: {raw_seconds:.2f} s "
            f"({len(raw)} rows, {len({r[0] for r in raw})} patients)"
        )
        print(
            f"raw SQL counting CMS159 (no exclusions): {sql_seconds:.2f} s "
            f"initial-population = denominator {initial}, numerator {numerator}"
        )


if __name__ == "__main__":
    main()

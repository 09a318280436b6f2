"""CMS159 over a population through the EHR import store, beside raw SQL reading the same rows:
`python -m bench.quality_store [--patients 2000] [--url sqlite:///bench/data/quality.db]`.

Builds the synthetic population (concord.synth) and gives each patient the synthetic EHR
record of bench/quality.py as imported rows (ehr_resource, written directly: the import's own
speed is docs/ehr-import.md's), then times:

- the store: concord.actions.quality.evaluate_measure as an integration client with the
  quality scope (organization_patients: access, one audit event a patient, the resources as
  FHIR JSON; then the measure), reportType=population;
- raw SQL: one SELECT of the same rows (the patients' resources of the types the measure
  reads), the floor any evaluation in Python pays, and the count of patients it read.

Prints both; a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid

os.environ.setdefault("CONCORD_ENV", "development")

from sqlalchemy import insert, select, text  # noqa: E402

from bench.quality import synthetic_patient  # noqa: E402
from concord.accounts.tokens import create_client_token  # noqa: E402
from concord.actions import quality  # noqa: E402
from concord.db import make_engine, make_sessionmaker  # noqa: E402
from concord.ehr.models import EhrResource  # noqa: E402
from concord.ehr.service import category_of_resource  # noqa: E402
from concord.patients.models import Patient  # noqa: E402
from concord.quality import catalog  # noqa: E402
from concord.synth import build  # noqa: E402


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
        from concord.accounts.models import User

        client = session.scalar(select(User).where(User.role == "client"))
        started = time.perf_counter()
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
        store = time.perf_counter() - started
        session.rollback()  # the audit events of the timed run are not kept
        counts = {
            p["code"]["coding"][0]["code"]: p["count"] for p in report["group"][0]["population"]
        }
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
        print(f"patients: {args.patients} at {url}")
        print(f"CMS159 through the store ($evaluate-measure, population): {store:.2f} s {counts}")
        print(
            f"raw SQL reading the same rows: {raw_seconds:.2f} s "
            f"({len(raw)} rows, {len({r[0] for r in raw})} patients)"
        )


if __name__ == "__main__":
    main()

"""A synthetic population for benchmarks: an organization with many care managers, each with
a caseload of enrolled patients, their care teams, plans, schedules, contacts and years of
PHQ-9 and GAD-7 scores. Everything is invented (names are "Bench 123", record numbers "B-123").

    python bench/population.py --url sqlite:///bench.db [--patients 100000] [--measurements 2000000]

Reused by the benchmarks in bench/ (the caseload now; the load benchmark later). Building is
idempotent: a database that already holds the population (same size) is left as it is.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

os.environ.setdefault("CONCORD_ENV", "development")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import Engine, func, insert, select  # noqa: E402

ORG_SLUG = "bench-health"
PASSWORD = "bench-password-2026"
CHUNK = 20_000


@dataclass
class Population:
    url: str
    organization_id: uuid.UUID
    care_manager_email: str  # the care manager whose caseload the benchmark opens
    caseload: int
    patients: int
    measurements: int


def _chunks(rows: Iterator[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert(engine: Engine, table: Any, rows: Iterator[dict[str, Any]]) -> int:
    count = 0
    with engine.begin() as connection:
        for batch in _chunks(rows):
            connection.execute(insert(table), batch)
            count += len(batch)
    return count


def build(
    url: str,
    *,
    patients: int = 100_000,
    measurements: int = 2_000_000,
    caseload: int = 150,
    seed: int = 5,
    today: date | None = None,
    quiet: bool = False,
) -> Population:
    """Create (or find) the population in the database at `url` (migrated first)."""
    from concord.accounts.models import Clinic, Organization, User
    from concord.accounts.service import hash_password
    from concord.careplans.models import CarePlan, PlanAgreement
    from concord.db import make_engine
    from concord.measures.models import MeasureObservation, MeasureResponse, MeasureSchedule
    from concord.migrate import upgrade
    from concord.patients.models import CareTeam, CareTeamMember, Patient
    from concord.registry.models import Contact, Episode
    from concord.safety.models import SafetyAlert

    engine = make_engine(url, sqlite_synchronous="OFF")
    upgrade(engine)
    with engine.connect() as connection:
        existing = connection.execute(
            select(Organization.id).where(Organization.slug == ORG_SLUG)
        ).scalar()
        if existing is not None:
            count = connection.execute(select(func.count()).select_from(Patient)).scalar()
            observations = connection.execute(
                select(func.count()).select_from(MeasureObservation)
            ).scalar()
            engine.dispose()
            return Population(
                url, existing, "cm0@bench.example.org", caseload, count or 0, observations or 0
            )

    rng = random.Random(seed)
    today = today or datetime.now(UTC).date()
    now = datetime.now(UTC)
    started = time.perf_counter()

    def say(what: str) -> None:
        if not quiet:
            print(f"  {time.perf_counter() - started:6.1f}s  {what}", flush=True)

    org_id = uuid.uuid4()
    _insert(
        engine,
        Organization.__table__,
        iter(
            [
                {
                    "id": org_id,
                    "name": "Bench Health (synthetic)",
                    "slug": ORG_SLUG,
                    "timezone": "America/Chicago",
                    "require_mfa_for_clinicians": False,
                    "created_at": now,
                }
            ]
        ),
    )
    clinics = [uuid.uuid4() for _ in range(10)]
    _insert(
        engine,
        Clinic.__table__,
        (
            {"id": c, "organization_id": org_id, "name": f"Bench clinic {i}", "created_at": now}
            for i, c in enumerate(clinics)
        ),
    )
    managers = [uuid.uuid4() for _ in range(-(-patients // caseload))]
    consultants = [uuid.uuid4() for _ in range(max(1, len(managers) // 30))]
    password_hash = hash_password(PASSWORD)

    def users() -> Iterator[dict[str, Any]]:
        for i, uid in enumerate(managers):
            yield {
                "id": uid,
                "organization_id": org_id,
                "clinic_id": clinics[i % len(clinics)],
                "email": f"cm{i}@bench.example.org",
                "name": f"Care Manager {i}",
                "role": "care_manager",
                "is_admin": False,
                "language": "en",
                "active": True,
                "password_hash": password_hash,
                "must_change_password": False,
                "mfa_enabled": False,
                "created_at": now,
            }
        for i, uid in enumerate(consultants):
            yield {
                "id": uid,
                "organization_id": org_id,
                "clinic_id": clinics[i % len(clinics)],
                "email": f"psy{i}@bench.example.org",
                "name": f"Dr Consultant {i}",
                "role": "psychiatric_consultant",
                "is_admin": False,
                "language": "en",
                "active": True,
                "password_hash": password_hash,
                "must_change_password": False,
                "mfa_enabled": False,
                "created_at": now,
            }

    _insert(engine, User.__table__, users())
    say(f"{len(managers)} care managers, {len(consultants)} consultants")

    patient_ids = [uuid.uuid4() for _ in range(patients)]
    manager_of = [managers[i // caseload] for i in range(patients)]
    consultant_of = [consultants[(i // caseload) % len(consultants)] for i in range(patients)]
    clinic_of = [clinics[(i // caseload) % len(clinics)] for i in range(patients)]
    # Weeks in treatment 0-40, so every flag and status appears somewhere.
    start_of = [today - timedelta(days=rng.randrange(0, 280)) for _ in range(patients)]

    _insert(
        engine,
        Patient.__table__,
        (
            {
                "id": pid,
                "organization_id": org_id,
                "clinic_id": clinic_of[i],
                "mrn": f"B-{i}",
                "given_name": "Bench",
                "family_name": str(i),
                "birth_date": date(1950 + i % 50, 1 + i % 12, 1 + i % 28),
                "language": "en",
                "created_at": now,
            }
            for i, pid in enumerate(patient_ids)
        ),
    )
    teams = [uuid.uuid4() for _ in range(patients)]
    _insert(
        engine,
        CareTeam.__table__,
        (
            {"id": t, "patient_id": patient_ids[i], "name": "Care team", "created_at": now}
            for i, t in enumerate(teams)
        ),
    )

    def members() -> Iterator[dict[str, Any]]:
        for i, team in enumerate(teams):
            yield {
                "id": uuid.uuid4(),
                "care_team_id": team,
                "user_id": manager_of[i],
                "role": "care_manager",
                "is_lead": True,
                "added_at": now,
            }
            yield {
                "id": uuid.uuid4(),
                "care_team_id": team,
                "user_id": consultant_of[i],
                "role": "psychiatric_consultant",
                "is_lead": False,
                "added_at": now,
            }

    _insert(engine, CareTeamMember.__table__, members())
    say(f"{patients} patients with care teams")

    plans = [uuid.uuid4() for _ in range(patients)]
    _insert(
        engine,
        CarePlan.__table__,
        (
            {
                "id": plan,
                "patient_id": patient_ids[i],
                "title": "Care plan",
                "status": "active",
                "version": 3,
                "revision_number": 2,
                "substantive_revision_number": 2,
                "activated_on": start_of[i],
                "next_review_on": start_of[i] + timedelta(days=90),
                "created_at": now,
                "created_by_id": manager_of[i],
            }
            for i, plan in enumerate(plans)
        ),
    )

    def agreements() -> Iterator[dict[str, Any]]:
        for i, plan in enumerate(plans):
            if i % 7 == 0:
                continue  # some plans wait for agreement
            yield {
                "id": uuid.uuid4(),
                "plan_id": plan,
                "revision_number": 2,
                "user_id": manager_of[i],
                "party": "lead_clinician",
                "agreed_at": now,
            }
            yield {
                "id": uuid.uuid4(),
                "plan_id": plan,
                "revision_number": 2,
                "user_id": manager_of[i],
                "party": "patient",
                "agreed_at": now,
            }

    _insert(engine, PlanAgreement.__table__, agreements())
    _insert(
        engine,
        MeasureSchedule.__table__,
        (
            {
                "id": uuid.uuid4(),
                "patient_id": patient_ids[i],
                "instrument": code,
                "every_days": days,
                "start_on": start_of[i],
                "created_by_id": manager_of[i],
                "created_at": now,
                "version": 1,
            }
            for i in range(patients)
            for code, days in (("PHQ-9", 14), ("GAD-7", 28))
        ),
    )
    say("plans, agreements, schedules")

    episodes = [uuid.uuid4() for _ in range(patients)]
    _insert(
        engine,
        Episode.__table__,
        (
            {
                "id": episodes[i],
                "organization_id": org_id,
                "patient_id": patient_ids[i],
                "clinic_id": clinic_of[i],
                "program": "depression" if i % 4 else "anxiety",
                "status": "active",
                "started_on": start_of[i],
                "care_manager_id": manager_of[i],
                "consultant_id": consultant_of[i],
                "created_at": now,
                "version": 1,
            }
            for i in range(patients)
        ),
    )

    def contacts() -> Iterator[dict[str, Any]]:
        for i in range(patients):
            days = (today - start_of[i]).days
            if i % 11 == 0:
                continue  # waiting for the initial assessment
            offsets = [0] + sorted(rng.randrange(1, days + 1) for _ in range(min(4, days // 20)))
            for n, offset in enumerate(offsets):
                yield {
                    "id": uuid.uuid4(),
                    "organization_id": org_id,
                    "patient_id": patient_ids[i],
                    "episode_id": episodes[i],
                    "occurred_on": start_of[i] + timedelta(days=offset),
                    "user_id": manager_of[i],
                    "role": "care_manager",
                    "mode": "phone",
                    "kind": "initial_assessment" if n == 0 else "follow_up",
                    "minutes": 20 + rng.randrange(40),
                    "created_at": now,
                    "created_by_id": manager_of[i],
                }

    n_contacts = _insert(engine, Contact.__table__, contacts())
    say(f"episodes, {n_contacts} contacts")

    per_patient = max(1, measurements // patients)
    answers_json = {"1": 1, "2": 1}

    def responses_and_scores() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for i in range(patients):
            baseline = 8 + rng.randrange(16)
            improving = rng.random() < 0.6
            for n in range(per_patient):
                code = "PHQ-9" if n % 3 else "GAD-7"
                when = (
                    datetime.combine(start_of[i], datetime.min.time(), UTC)
                    - timedelta(days=365)
                    + timedelta(days=n * (365 + (today - start_of[i]).days) // per_patient)
                    + timedelta(hours=15)
                )
                trend = max(0, baseline - (n * 2 if improving else n // 3))
                value = float(min(trend, 27 if code == "PHQ-9" else 21))
                response_id = uuid.uuid4()
                yield (
                    {
                        "id": response_id,
                        "patient_id": patient_ids[i],
                        "instrument": code,
                        "instrument_version": "1",
                        "language": "en",
                        "status": "completed",
                        "mode": "portal",
                        "answered_by": "patient",
                        "entered_by_id": manager_of[i],
                        "started_at": when,
                        "updated_at": when,
                        "completed_at": when,
                        "answers": answers_json,
                        "scores": {"total": {"value": value}},
                        "flags": {"items": []},
                        "version": 1,
                    },
                    {
                        "id": uuid.uuid4(),
                        "response_id": response_id,
                        "patient_id": patient_ids[i],
                        "instrument": code,
                        "score_id": "total",
                        "code": "44261-6" if code == "PHQ-9" else "70274-6",
                        "code_system": "http://loinc.org",
                        "value": value,
                        "band": None,
                        "effective_at": when,
                    },
                )

    written = 0
    with engine.begin() as connection:
        batch_r: list[dict[str, Any]] = []
        batch_o: list[dict[str, Any]] = []
        for response, observation in responses_and_scores():
            batch_r.append(response)
            batch_o.append(observation)
            if len(batch_r) >= CHUNK:
                connection.execute(insert(MeasureResponse.__table__), batch_r)
                connection.execute(insert(MeasureObservation.__table__), batch_o)
                written += len(batch_o)
                batch_r, batch_o = [], []
                if written % 200_000 == 0:
                    say(f"{written} measurements")
        if batch_r:
            connection.execute(insert(MeasureResponse.__table__), batch_r)
            connection.execute(insert(MeasureObservation.__table__), batch_o)
            written += len(batch_o)
    say(f"{written} measurements")

    _insert(
        engine,
        SafetyAlert.__table__,
        (
            {
                "id": uuid.uuid4(),
                "organization_id": org_id,
                "patient_id": patient_ids[i],
                "tier": "high",
                "source_kind": "manual",
                "rule_id": "manual-flag",
                "triggers": [],
                "rules_version": "bench",
                "created_at": now,
                "status": "open",
                "chain": ["care_manager"],
                "step": 0,
                "chain_position": 0,
                "owner_id": manager_of[i],
                "due_at": now + timedelta(hours=4),
            }
            for i in range(0, patients, 97)
        ),
    )
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")  # both engines: fresh statistics for the planner
    say("done")
    engine.dispose()
    return Population(url, org_id, "cm0@bench.example.org", caseload, patients, written)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="sqlite:///bench/bench.db")
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--measurements", type=int, default=2_000_000)
    parser.add_argument("--caseload", type=int, default=150)
    args = parser.parse_args()
    population = build(
        args.url, patients=args.patients, measurements=args.measurements, caseload=args.caseload
    )
    print(population)


if __name__ == "__main__":
    main()

"""A synthetic population at scale: `concord synth --patients N [--seed S]`.

One organization ("Synthetic Health") with clinics, care managers (150 patients each),
psychiatric consultants, and N patients in collaborative care: care teams, an active care plan
with a goal and action steps, agreements, check-in schedules, an episode of care, contacts with
minutes, PHQ-9 / GAD-7 / AUDIT-C histories whose shapes follow published collaborative-care
outcomes (OUTCOMES below, with sources), safety alerts with their outcomes, and psychiatric case
reviews with recommendations for those not improving. Everything is invented: names are
"Synthetic 123", record numbers "S-123".

Deterministic: the same seed and the same `today` give the same rows (ids included). Loads
through each engine's bulk path: on PostgreSQL, COPY in one transaction, each table's foreign
keys dropped first and added back (so checked in one pass) before the commit; on SQLite, one
transaction of executemany batches per table. A database that already holds the population is
left as it is. On PostgreSQL the tables being loaded are locked until the build commits.
"""

from __future__ import annotations

import random
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, func, insert, select

ORG_SLUG = "synthetic-health"
PASSWORD = "synthetic-password-2026"
CASE_MANAGER_EMAIL = "cm0@synthetic.example.org"
CHUNK = 20_000

# How PHQ-9 courses end, as shares of patients in collaborative care. Shapes the synthetic
# trajectories only (the figures are not used to judge anyone). Sources: docs/clinical-sources.md
# "Synthetic population".
OUTCOMES = (
    ("remission", 0.25),  # PHQ-9 falls below 5: 32.6% of the engaged (Penn), x 0.75 engaged
    ("response", 0.19),  # falls by half or more, not below 5: 58% improved (Blackmore) - 33%
    ("partial", 0.13),  # improves, by less than half
    ("not_improving", 0.18),  # stays near baseline: the rest of the engaged 42%
    ("dropped_out", 0.25),  # no follow-up after engaging: 25% (Blackmore 2022)
)
BASELINE_PHQ9 = (16.4, 4.6)  # mean, SD at the first visit, PHQ-9 >= 10 (Duffy/Chung 2011)
PROGRAMS = (("depression", 0.6), ("anxiety", 0.2), ("substance_use", 0.1), ("co_occurring", 0.1))
# The measures each program's patients answer: the main one every two weeks, the other every
# four (the demo uses the same, with PTSD's).
INSTRUMENTS = {
    "depression": ("PHQ-9", "GAD-7"),
    "anxiety": ("GAD-7", "PHQ-9"),
    "ptsd": ("PCL-5", "PHQ-9"),
    "substance_use": ("AUDIT-C", "PHQ-9"),
    "co_occurring": ("PHQ-9", "AUDIT-C"),
}
# Each instrument's top score: a course is drawn on the PHQ-9's 0-27 and scaled to it.
TOPS = {"PHQ-9": 27.0, "GAD-7": 21.0, "AUDIT-C": 12.0, "PCL-5": 80.0}


@dataclass
class Population:
    url: str
    organization_id: uuid.UUID
    care_manager_email: str  # the care manager whose caseload the benchmarks open
    caseload: int
    patients: int
    measurements: int
    rows: int = 0  # rows written by this build (0 when it found the population)
    seconds: float = 0.0
    timings: dict[str, list[float]] | None = None  # table -> [rows, seconds] of this build


class Progress:
    """One line on stderr, rewritten: what is being written, how far, how fast."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.perf_counter()
        self.rows = 0

    def __call__(self, what: str, done: int, total: int | None = None) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.started
        rate = self.rows / elapsed if elapsed else 0
        if total:
            width = 24
            filled = int(width * min(done, total) / total)
            bar = "#" * filled + "." * (width - filled)
            line = f"[{bar}] {what} {done:,}/{total:,}"
        else:
            line = f"{what} {done:,}"
        sys.stderr.write(f"\r{elapsed:6.1f}s {line}  ({rate:,.0f} rows/s)   ")
        sys.stderr.flush()

    def end(self) -> None:
        if not self.quiet:
            sys.stderr.write("\n")


class Writer:
    """Rows into tables through the engine's bulk path, counting them."""

    def __init__(self, engine: Engine, progress: Progress) -> None:
        self.engine = engine
        self.progress = progress
        self.postgres = engine.dialect.name == "postgresql"
        self.timings: dict[str, list[float]] = {}  # table -> [rows, seconds]
        # One connection and one transaction for the whole build, so a failed build leaves
        # nothing behind (a half-built population would pass for a built one next time). On
        # PostgreSQL each table's foreign keys are dropped before its first COPY and added back
        # (checked in one pass per key) at the end, as pg_restore does.
        self._raw: Any = None
        self._sqlite: Any = None
        self._dropped: dict[str, list[tuple[str, str]]] = {}

    def _connection(self) -> Any:
        if self._raw is None:
            self._raw = self.engine.raw_connection()
        return self._raw

    def _drop_foreign_keys(self, cursor: Any, table: str) -> None:
        if table in self._dropped:
            return
        keys = cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f'",
            (table,),
        ).fetchall()
        for name, _ in keys:
            cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
        self._dropped[table] = list(keys)

    def _sqlite_connection(self) -> Any:
        if self._sqlite is None:
            self._sqlite = self.engine.connect()
            self._sqlite.begin()
        return self._sqlite

    def abandon(self) -> None:
        """A failed build: roll back whatever this build's transaction holds."""
        if self._sqlite is not None:
            self._sqlite.rollback()
            self._sqlite.close()
            self._sqlite = None
        if self._raw is not None:
            self._raw.rollback()
            self._raw.close()
            self._raw = None

    def finish(self) -> None:
        """Commit everything at once; on PostgreSQL first put the foreign keys back (each
        checked over the whole table; the time counts towards its table's rate)."""
        if self._sqlite is not None:
            try:
                self._sqlite.commit()
            finally:
                self._sqlite.close()
                self._sqlite = None
        if self._raw is None:
            return
        try:
            cursor = self._raw.cursor()
            for table, keys in self._dropped.items():
                began = time.perf_counter()
                for name, definition in keys:
                    cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
                self.timings.setdefault(table, [0.0, 0.0])[1] += time.perf_counter() - began
            self._raw.commit()
        finally:
            self._raw.close()
            self._raw = None

    def write(
        self, table: Table, rows: Iterable[dict[str, Any]], label: str, total: int | None = None
    ) -> int:
        complete = _completer(table)
        count = 0
        began = time.perf_counter()
        try:
            return (count := self._write(table, rows, label, total, complete))
        finally:
            spent = self.timings.setdefault(table.name, [0.0, 0.0])
            spent[0] += count
            spent[1] += time.perf_counter() - began

    def _write(
        self,
        table: Table,
        rows: Iterable[dict[str, Any]],
        label: str,
        total: int | None,
        complete: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> int:
        count = 0
        if self.postgres:
            count = self._copy(table, (complete(r) for r in rows), label, total)
        else:
            count = self._executemany(table, (complete(r) for r in rows), label, total)
        self.progress(label, count, total)
        return count

    def _executemany(
        self, table: Table, rows: Iterator[dict[str, Any]], label: str, total: int | None
    ) -> int:
        """SQLite: Core executemany in chunks, in the build's one transaction (measured faster
        here than a hand-made tuple path: SQLAlchemy's compiled bind processors do the
        conversions)."""
        count = 0
        connection = self._sqlite_connection()
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= CHUNK:
                connection.execute(insert(table), batch)
                count += len(batch)
                self.progress.rows += len(batch)
                self.progress(label, count, total)
                batch = []
        if batch:
            connection.execute(insert(table), batch)
            count += len(batch)
            self.progress.rows += len(batch)
        return count

    def _copy(
        self, table: Table, rows: Iterator[dict[str, Any]], label: str, total: int | None
    ) -> int:
        """PostgreSQL: COPY in binary format, the column types named once, in the build's
        one transaction (see __init__)."""
        from psycopg.types.json import Jsonb

        columns = [c.name for c in table.columns]
        types = [_pg_type(c.type.compile(dialect=self.engine.dialect)) for c in table.columns]
        json_at = [n for n, t in enumerate(types) if t in ("jsonb", "json")]
        raw = self._connection()
        count = 0
        try:
            cursor = raw.cursor()
            self._drop_foreign_keys(cursor, table.name)
            quoted = ", ".join(f'"{c}"' for c in columns)
            sql = f'COPY "{table.name}" ({quoted}) FROM STDIN (FORMAT BINARY)'
            with cursor.copy(sql) as copy:
                copy.set_types(types)
                for row in rows:
                    values = [row[c] for c in columns]
                    for n in json_at:
                        if values[n] is not None:
                            values[n] = Jsonb(values[n])
                    copy.write_row(values)
                    count += 1
                    if count % CHUNK == 0:
                        self.progress.rows += CHUNK
                        self.progress(label, count, total)
            self.progress.rows += count % CHUNK
        except BaseException:
            self.abandon()
            raise
        return count


def _pg_type(compiled: str) -> str:
    name = compiled.lower().split("(")[0].strip()
    return {
        "timestamp with time zone": "timestamptz",
        "timestamp without time zone": "timestamp",
        "double precision": "float8",
        "character varying": "varchar",
    }.get(name, name)


def _completer(table: Table) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Fill the columns a row leaves out with their defaults (COPY applies none)."""
    defaults: dict[str, Callable[[], Any]] = {}
    for column in table.columns:
        default = column.default
        if default is None:
            if column.nullable:
                defaults[column.name] = lambda: None
            continue
        if default.is_scalar:
            value = default.arg
            defaults[column.name] = lambda value=value: value
        elif default.is_callable:
            fn = default.arg
            defaults[column.name] = lambda fn=fn: fn(None)

    missing: list[tuple[str, Callable[[], Any]]] | None = None

    def complete(row: dict[str, Any]) -> dict[str, Any]:
        # Every row of one table has the same keys here: find what to fill once.
        nonlocal missing
        if missing is None:
            missing = [(name, make) for name, make in defaults.items() if name not in row]
        for name, make in missing:
            row[name] = make()
        return row

    return complete


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for name, share in weighted:
        x -= share
        if x < 0:
            return name
    return weighted[-1][0]


def _course(kind: str, baseline: float, week: float, rng: random.Random) -> float:
    """PHQ-9 at `week` of treatment for an outcome class (noise included, 0-27)."""
    if week <= 0:
        value = baseline
    elif kind == "remission":
        value = 2.5 + (baseline - 2.5) * (0.82**week)
    elif kind == "response":
        value = baseline * (0.42 + 0.58 * 0.85**week)
    elif kind == "partial":
        value = baseline * (0.7 + 0.3 * 0.85**week)
    else:  # not improving, or dropped out (while they still answer)
        value = baseline * (0.97 + 0.03 * 0.9**week)
    value += rng.gauss(0, 1.2)
    return max(0.0, min(27.0, round(value)))


def course_score(
    kind: str, baseline: float, week: float, rng: random.Random, instrument: str = "PHQ-9"
) -> int:
    """An instrument's total at `week` for an outcome class: the PHQ-9 course scaled to the
    instrument's range, as the population's scores are."""
    top = TOPS[instrument]
    return int(min(top, round(_course(kind, baseline, week, rng) * top / 27.0)))


def existing(url: str) -> Population | None:
    from concord.accounts.models import Organization
    from concord.db import make_engine
    from concord.measures.models import MeasureObservation
    from concord.migrate import upgrade
    from concord.patients.models import Patient

    engine = make_engine(url)
    upgrade(engine)
    try:
        with engine.connect() as connection:
            org = connection.execute(
                select(Organization.id).where(Organization.slug == ORG_SLUG)
            ).scalar()
            if org is None:
                return None
            count = connection.execute(
                select(func.count()).select_from(Patient).where(Patient.organization_id == org)
            ).scalar()
            observations = connection.execute(
                select(func.count()).select_from(MeasureObservation)
            ).scalar()
            return Population(url, org, CASE_MANAGER_EMAIL, 150, count or 0, observations or 0)
    finally:
        engine.dispose()


def build(
    url: str,
    *,
    patients: int = 100_000,
    measurements: int | None = None,
    caseload: int = 150,
    seed: int = 1,
    today: date | None = None,
    quiet: bool = False,
) -> Population:
    """Create (or find) the population in the database at `url` (migrated first).
    `measurements`: about how many scores in all (default 20 per patient)."""
    found = existing(url)
    if found is not None:
        return found
    from concord.accounts.models import Clinic, Organization, User
    from concord.accounts.passwords import hash_password
    from concord.careplans.models import ActionStep, CarePlan, Goal, PlanAgreement
    from concord.db import make_engine
    from concord.measures.models import MeasureObservation, MeasureResponse, MeasureSchedule
    from concord.patients.models import CareTeam, CareTeamMember, Patient
    from concord.registry.models import CaseReview, Contact, Episode, Recommendation
    from concord.safety.models import SafetyAlert

    measurements = measurements if measurements is not None else patients * 20
    rng = random.Random(seed)

    def new_id() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    today = today or datetime.now(UTC).date()
    now = datetime.combine(today, datetime.min.time(), UTC) + timedelta(hours=9)
    progress = Progress(quiet)
    engine = make_engine(url, sqlite_synchronous="OFF")
    try:
        out = Writer(engine, progress)
        started = time.perf_counter()
        rows = 0

        org_id = new_id()
        rows += out.write(
            Organization.__table__,
            [
                {
                    "id": org_id,
                    "name": "Synthetic Health",
                    "slug": ORG_SLUG,
                    "timezone": "America/Chicago",
                    "created_at": now,
                }
            ],
            "organization",
        )
        clinics = [new_id() for _ in range(max(1, min(20, patients // 5000 + 2)))]
        rows += out.write(
            Clinic.__table__,
            [
                {
                    "id": c,
                    "organization_id": org_id,
                    "name": f"Synthetic clinic {i}",
                    "created_at": now,
                }
                for i, c in enumerate(clinics)
            ],
            "clinics",
        )
        managers = [new_id() for _ in range(-(-patients // caseload))]
        consultants = [new_id() for _ in range(max(1, len(managers) // 30))]
        password_hash = hash_password(PASSWORD)

        def staff() -> Iterator[dict[str, Any]]:
            for role, people, prefix, name in (
                ("care_manager", managers, "cm", "Care Manager"),
                ("psychiatric_consultant", consultants, "psy", "Dr Consultant"),
            ):
                for i, uid in enumerate(people):
                    yield {
                        "id": uid,
                        "organization_id": org_id,
                        "clinic_id": clinics[i % len(clinics)],
                        "email": f"{prefix}{i}@synthetic.example.org",
                        "name": f"{name} {i}",
                        "role": role,
                        "language": "en",
                        "active": True,
                        "password_hash": password_hash,
                        "must_change_password": False,
                        "created_at": now,
                    }

        rows += out.write(User.__table__, staff(), "staff")

        # Who each patient is: deterministic draws, made once.
        ids = [new_id() for _ in range(patients)]
        manager_of = [managers[i // caseload] for i in range(patients)]
        consultant_of = [consultants[(i // caseload) % len(consultants)] for i in range(patients)]
        clinic_of = [clinics[(i // caseload) % len(clinics)] for i in range(patients)]
        start_of = [today - timedelta(days=rng.randrange(0, 280)) for _ in range(patients)]
        program_of = [_pick(rng, PROGRAMS) for _ in range(patients)]
        outcome_of = [_pick(rng, OUTCOMES) for _ in range(patients)]
        baseline_of = [
            max(10.0, min(27.0, round(rng.gauss(*BASELINE_PHQ9)))) for _ in range(patients)
        ]
        dropout_week = [rng.randrange(3, 10) for _ in range(patients)]
        team_of = [new_id() for _ in range(patients)]
        plan_of = [new_id() for _ in range(patients)]
        goal_of = [new_id() for _ in range(patients)]
        episode_of = [new_id() for _ in range(patients)]

        def weeks(i: int) -> float:
            return (today - start_of[i]).days / 7

        rows += out.write(
            Patient.__table__,
            (
                {
                    "id": pid,
                    "organization_id": org_id,
                    "clinic_id": clinic_of[i],
                    "mrn": f"S-{i}",
                    "given_name": "Synthetic",
                    "family_name": str(i),
                    "birth_date": date(1950 + i % 50, 1 + i % 12, 1 + i % 28),
                    "language": "en" if i % 5 else "es",
                    "created_at": now,
                }
                for i, pid in enumerate(ids)
            ),
            "patients",
            patients,
        )
        rows += out.write(
            CareTeam.__table__,
            (
                {"id": team_of[i], "patient_id": ids[i], "name": "Care team", "created_at": now}
                for i in range(patients)
            ),
            "care teams",
            patients,
        )

        # Care-team rows are written here by COPY, not through patients.service.set_member
        # (the one writer everywhere else): a synthetic load writes tens of thousands of
        # fresh teams, none with an earlier membership to reopen, and a flush a row would
        # cost minutes. Nothing is audited here because nobody acted.
        def members() -> Iterator[dict[str, Any]]:
            for i in range(patients):
                yield {
                    "id": new_id(),
                    "care_team_id": team_of[i],
                    "user_id": manager_of[i],
                    "role": "care_manager",
                    "is_lead": True,
                    "added_at": now,
                }
                yield {
                    "id": new_id(),
                    "care_team_id": team_of[i],
                    "user_id": consultant_of[i],
                    "role": "psychiatric_consultant",
                    "is_lead": False,
                    "added_at": now,
                }

        rows += out.write(CareTeamMember.__table__, members(), "team members", patients * 2)
        rows += out.write(
            CarePlan.__table__,
            (
                {
                    "id": plan_of[i],
                    "patient_id": ids[i],
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
                for i in range(patients)
            ),
            "care plans",
            patients,
        )
        rows += out.write(
            Goal.__table__,
            (
                {
                    "id": goal_of[i],
                    "plan_id": plan_of[i],
                    "statement": "Feel like myself again and get back to work",
                    "category": "symptoms",
                    "measure": "PHQ-9",
                    "target": "under 5",
                    "measure_instrument": "PHQ-9",
                    "measure_op": "lt",
                    "measure_value": 5.0,
                    "due_on": start_of[i] + timedelta(days=168),
                    "proposed_by_id": manager_of[i],
                    "priority": "high",
                    "status": "in_progress",
                    "created_at": now,
                    "updated_at": now,
                    "updated_by_id": manager_of[i],
                }
                for i in range(patients)
            ),
            "goals",
            patients,
        )

        def steps() -> Iterator[dict[str, Any]]:
            for i in range(patients):
                for n, text in enumerate(
                    ("Walk 20 minutes three days a week", "Call a friend once a week")
                ):
                    yield {
                        "id": new_id(),
                        "plan_id": plan_of[i],
                        "goal_id": goal_of[i],
                        "description": text,
                        "owner_is_patient": True,
                        "due_on": start_of[i] + timedelta(days=14 * (n + 1)),
                        "status": "done"
                        if weeks(i) > 2 * (n + 1) and outcome_of[i] != "dropped_out"
                        else "to_do",
                        "created_at": now,
                        "updated_at": now,
                        "updated_by_id": manager_of[i],
                    }

        rows += out.write(ActionStep.__table__, steps(), "action steps", patients * 2)

        def agreements() -> Iterator[dict[str, Any]]:
            for i in range(patients):
                if i % 7 == 0:
                    continue  # some plans wait for agreement
                for party in ("lead_clinician", "patient"):
                    yield {
                        "id": new_id(),
                        "plan_id": plan_of[i],
                        "revision_number": 2,
                        "user_id": manager_of[i],
                        "party": party,
                        "agreed_at": now,
                    }

        rows += out.write(PlanAgreement.__table__, agreements(), "agreements")

        def instruments(i: int) -> tuple[str, ...]:
            return INSTRUMENTS[program_of[i]]

        rows += out.write(
            MeasureSchedule.__table__,
            (
                {
                    "id": new_id(),
                    "patient_id": ids[i],
                    "instrument": code,
                    "every_days": 14 if n == 0 else 28,
                    "start_on": start_of[i],
                    "created_by_id": manager_of[i],
                    "created_at": now,
                    "version": 1,
                }
                for i in range(patients)
                for n, code in enumerate(instruments(i))
            ),
            "schedules",
            patients * 2,
        )

        def ended(i: int) -> bool:
            return outcome_of[i] == "dropped_out" and weeks(i) > dropout_week[i] + 6

        rows += out.write(
            Episode.__table__,
            (
                {
                    "id": episode_of[i],
                    "organization_id": org_id,
                    "patient_id": ids[i],
                    "clinic_id": clinic_of[i],
                    "program": program_of[i],
                    "status": "disengaged" if ended(i) else "active",
                    "started_on": start_of[i],
                    "ended_on": start_of[i] + timedelta(days=7 * (dropout_week[i] + 6))
                    if ended(i)
                    else None,
                    "end_reason": "No contact for six weeks after repeated outreach"
                    if ended(i)
                    else None,
                    "care_manager_id": manager_of[i],
                    "consultant_id": consultant_of[i],
                    "created_at": now,
                    "version": 1,
                }
                for i in range(patients)
            ),
            "episodes",
            patients,
        )

        def contacts() -> Iterator[dict[str, Any]]:
            for i in range(patients):
                if i % 11 == 0:
                    continue  # waiting for the initial assessment
                last = (
                    min(weeks(i), dropout_week[i]) if outcome_of[i] == "dropped_out" else weeks(i)
                )
                week = 0.0
                n = 0
                while week <= last:
                    yield {
                        "id": new_id(),
                        "organization_id": org_id,
                        "patient_id": ids[i],
                        "episode_id": episode_of[i],
                        "occurred_on": start_of[i] + timedelta(days=int(week * 7)),
                        "user_id": manager_of[i],
                        "role": "care_manager",
                        "mode": "in_person" if n == 0 else ("phone" if n % 3 else "video"),
                        "kind": "initial_assessment" if n == 0 else "follow_up",
                        "minutes": 45 + rng.randrange(20) if n == 0 else 10 + rng.randrange(25),
                        "created_at": now,
                        "created_by_id": manager_of[i],
                    }
                    n += 1
                    week += 2 + rng.random() * 2

        rows += out.write(Contact.__table__, contacts(), "contacts")

        # Scores: one every two weeks for the program's main measure (four weeks for the other),
        # spread back before enrolment when the target asks for more than treatment produced.
        per_patient = max(1, measurements // patients)
        codes = {
            "PHQ-9": ("44261-6", TOPS["PHQ-9"]),
            "GAD-7": ("70274-6", TOPS["GAD-7"]),
            "AUDIT-C": ("75626-2", TOPS["AUDIT-C"]),
        }

        def scores() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
            for i in range(patients):
                main, other = instruments(i)
                span = max(14, (today - start_of[i]).days + 365)
                for n in range(per_patient):
                    code = other if n % 3 == 0 else main
                    day_offset = -365 + n * span // per_patient
                    when = datetime.combine(start_of[i], datetime.min.time(), UTC) + timedelta(
                        days=day_offset, hours=15
                    )
                    if when.date() > today:
                        break
                    week = day_offset / 7
                    if outcome_of[i] == "dropped_out" and week > dropout_week[i]:
                        break  # they stopped answering
                    phq = _course(outcome_of[i], baseline_of[i], week, rng)
                    top = codes[code][1]
                    value = float(min(top, round(phq * top / 27.0)))
                    response_id = new_id()
                    yield (
                        {
                            "id": response_id,
                            "patient_id": ids[i],
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
                            "answers": {},
                            "scores": {"total": {"value": value}},
                            "flags": {"items": []},
                            "version": 1,
                        },
                        {
                            "id": new_id(),
                            "response_id": response_id,
                            "patient_id": ids[i],
                            "instrument": code,
                            "score_id": "total",
                            "code": codes[code][0],
                            "code_system": "http://loinc.org",
                            "value": value,
                            "band": None,
                            "effective_at": when,
                        },
                    )

        pairs = list(scores()) if measurements <= 200_000 else None
        if pairs is not None:
            rows += out.write(
                MeasureResponse.__table__, (p[0] for p in pairs), "responses", len(pairs)
            )
            rows += out.write(
                MeasureObservation.__table__, (p[1] for p in pairs), "scores", len(pairs)
            )
            written = len(pairs)
        else:
            # Two passes over the same deterministic stream would need the draws twice: write
            # responses and scores in step, a chunk of each at a time.
            written = 0
            batch_r: list[dict[str, Any]] = []
            batch_o: list[dict[str, Any]] = []
            for response, observation in scores():
                batch_r.append(response)
                batch_o.append(observation)
                if len(batch_r) >= 100_000:
                    rows += out.write(MeasureResponse.__table__, batch_r, "responses")
                    rows += out.write(MeasureObservation.__table__, batch_o, "scores")
                    written += len(batch_o)
                    progress("measurements", written, measurements)
                    batch_r, batch_o = [], []
            if batch_r:
                rows += out.write(MeasureResponse.__table__, batch_r, "responses")
                rows += out.write(MeasureObservation.__table__, batch_o, "scores")
                written += len(batch_o)

        def alerts() -> Iterator[dict[str, Any]]:
            for i in range(0, patients, 53):
                created = now - timedelta(days=rng.randrange(1, 120))
                closed = i % 3 != 0
                yield {
                    "id": new_id(),
                    "organization_id": org_id,
                    "patient_id": ids[i],
                    "tier": "urgent",
                    "source_kind": "manual",
                    "rule_id": "manual-flag",
                    "triggers": [],
                    "rules_version": "synthetic",
                    "created_at": created,
                    "status": "closed" if closed else "open",
                    "chain": ["care_manager"],
                    "step": 0,
                    "chain_position": 0,
                    "owner_id": manager_of[i],
                    "due_at": created + timedelta(hours=1),
                    "acknowledged_by_id": manager_of[i] if closed else None,
                    "acknowledged_at": created + timedelta(minutes=20) if closed else None,
                    "closed_by_id": manager_of[i] if closed else None,
                    "closed_at": created + timedelta(hours=3) if closed else None,
                    "outcome": "safety_plan_reviewed" if closed else None,
                }

        rows += out.write(SafetyAlert.__table__, alerts(), "alerts")

        review_of: dict[int, uuid.UUID] = {}

        def reviews() -> Iterator[dict[str, Any]]:
            for i in range(patients):
                if outcome_of[i] not in ("not_improving", "partial") or weeks(i) < 9:
                    continue
                review_of[i] = new_id()
                on = start_of[i] + timedelta(days=63)
                yield {
                    "id": review_of[i],
                    "organization_id": org_id,
                    "patient_id": ids[i],
                    "episode_id": episode_of[i],
                    "reason": "not_improving",
                    "requested_at": datetime.combine(on, datetime.min.time(), UTC),
                    "consultant_id": consultant_of[i],
                    "status": "reviewed",
                    "reviewed_on": on,
                    "reviewed_at": datetime.combine(on, datetime.min.time(), UTC)
                    + timedelta(hours=14),
                    "reviewed_by_id": consultant_of[i],
                    "minutes": 10 + rng.randrange(10),
                    "summary": "Partial or no response at week 8; adjust treatment.",
                }

        rows += out.write(CaseReview.__table__, reviews(), "case reviews")
        rows += out.write(
            Recommendation.__table__,
            (
                {
                    "id": new_id(),
                    "review_id": review,
                    "patient_id": ids[i],
                    "kind": "increase_dose" if i % 2 else "add_psychotherapy",
                    "text": "Increase the antidepressant dose"
                    if i % 2
                    else "Add behavioural activation",
                    "status": "accepted" if i % 4 else "proposed",
                    "proposed_at": datetime.combine(
                        start_of[i] + timedelta(days=63), datetime.min.time(), UTC
                    ),
                    "version": 1,
                }
                for i, review in review_of.items()
            ),
            "recommendations",
        )
        out.finish()
        progress.end()
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")  # fresh statistics for the planner
    except BaseException:
        out.abandon()
        raise
    finally:
        engine.dispose()
    return Population(
        url,
        org_id,
        CASE_MANAGER_EMAIL,
        caseload,
        patients,
        written,
        rows,
        time.perf_counter() - started,
        out.timings,
    )


# A foreign-key clause in SQLite's stored CREATE TABLE, as SQLAlchemy writes it.
FOREIGN_KEY_CLAUSE = r",\s*CONSTRAINT \S+ FOREIGN KEY\s*\([^)]*\) REFERENCES [^,)]+\([^)]*\)"


def copy_same_rows(
    url: str,
    table: str = "measure_observation",
    limit: int = 500_000,
    *,
    foreign_keys: bool = True,
) -> float:
    """The baseline for the bulk load: rows per second for writing rows already in memory,
    the same rows the build wrote to `table`, into an empty table of the same shape (its
    indexes, and its foreign keys unless `foreign_keys` is false) through the engine's raw
    bulk path (COPY on PostgreSQL; executemany in one transaction on SQLite), with no
    generation, defaults or type handling of ours in the way."""
    from concord.db import make_engine

    engine = make_engine(url, sqlite_synchronous="OFF")
    scratch = f"{table}_copy_baseline"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(f"DROP TABLE IF EXISTS {scratch}")
        if engine.dialect.name == "postgresql":
            cursor.execute(f"CREATE TABLE {scratch} (LIKE {table} INCLUDING ALL)")  # same indexes
            if foreign_keys:  # LIKE copies no foreign keys; the load checks them, so must this
                keys = cursor.execute(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype = 'f'",
                    (table,),
                ).fetchall()
                for (definition,) in keys:
                    cursor.execute(f"ALTER TABLE {scratch} ADD {definition}")
            buffer = bytearray()
            with cursor.copy(f"COPY (SELECT * FROM {table} LIMIT {limit}) TO STDOUT") as copy:
                for chunk in copy:
                    buffer += chunk
            raw.commit()
            count = buffer.count(b"\n")
            started = time.perf_counter()
            with cursor.copy(f"COPY {scratch} FROM STDIN") as copy:
                copy.write(bytes(buffer))
            raw.commit()
        else:
            (create,) = cursor.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
            if not foreign_keys:
                create = re.sub(FOREIGN_KEY_CLAUSE, "", create)
            cursor.execute(create.replace(f"CREATE TABLE {table}", f"CREATE TABLE {scratch}", 1))
            indexes = cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND sql IS NOT NULL",
                (table,),
            ).fetchall()
            for name, sql in indexes:  # the same indexes, so the baseline does the same work
                cursor.execute(
                    sql.replace(f'"{name}"', f'"{name}_b"')
                    .replace(name, f"{name}_b")
                    .replace(f'"{table}"', f'"{scratch}"')
                    .replace(f" {table}(", f" {scratch}(")
                    .replace(f" {table} (", f" {scratch} (")
                )
            data = cursor.execute(f"SELECT * FROM {table} LIMIT {limit}").fetchall()
            count = len(data)
            marks = ", ".join("?" for _ in data[0]) if data else ""
            started = time.perf_counter()
            cursor.executemany(f"INSERT INTO {scratch} VALUES ({marks})", data)
            raw.commit()
        seconds = time.perf_counter() - started
        cursor.execute(f"DROP TABLE {scratch}")
        raw.commit()
        return count / seconds if seconds else 0.0
    finally:
        raw.close()
        engine.dispose()

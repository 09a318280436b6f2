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
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, func, insert, select

from concord.accounts.models import Clinic, Organization, User
from concord.accounts.passwords import hash_password
from concord.careplans.models import ActionStep, CarePlan, Goal, PlanAgreement
from concord.db import make_engine
from concord.measures.models import MeasureObservation, MeasureResponse, MeasureSchedule
from concord.migrate import upgrade
from concord.patients.models import CareTeam, CareTeamMember, Patient
from concord.registry.models import CaseReview, Contact, Episode, Recommendation
from concord.safety.models import SafetyAlert

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
    measurements = measurements if measurements is not None else patients * 20
    today = today or datetime.now(UTC).date()
    now = datetime.combine(today, datetime.min.time(), UTC) + timedelta(hours=9)
    b = _Build(random.Random(seed), today, now, patients, caseload)
    progress = Progress(quiet)
    engine = make_engine(url, sqlite_synchronous="OFF")
    try:
        out = Writer(engine, progress)
        started = time.perf_counter()
        # The order of the writes is the order of the random draws: keep it.
        rows = _write_organization(out, b)
        b.draw_patients()
        rows += _write_patients_and_plans(out, b)
        rows += _write_care(out, b)
        written, scored = _write_scores(out, b, measurements, progress)
        rows += scored + _write_alerts_and_reviews(out, b)
        out.finish()
        progress.end()
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")  # fresh statistics for the planner
    except BaseException:
        out.abandon()
        raise
    finally:
        engine.dispose()
    seconds = time.perf_counter() - started
    return Population(
        url, b.org_id, CASE_MANAGER_EMAIL, caseload, patients, written, rows, seconds, out.timings
    )


# What the synthetic records say (invented; the same for every patient).
GOAL = {
    "statement": "Feel like myself again and get back to work",
    "category": "symptoms",
    "measure": "PHQ-9",
    "target": "under 5",
    "measure_instrument": "PHQ-9",
    "measure_op": "lt",
    "measure_value": 5.0,
    "priority": "high",
    "status": "in_progress",
}
STEPS = ("Walk 20 minutes three days a week", "Call a friend once a week")
DROPPED_OUT = "No contact for six weeks after repeated outreach"
REVIEW_SUMMARY = "Partial or no response at week 8; adjust treatment."
RECOMMENDATIONS = {
    "increase_dose": "Increase the antidepressant dose",
    "add_psychotherapy": "Add behavioural activation",
}
LOINC = {"PHQ-9": "44261-6", "GAD-7": "70274-6", "AUDIT-C": "75626-2"}


@dataclass
class _Build:
    """One build's draws, shared by its tables: made once, in a fixed order (the seed's)."""

    rng: random.Random
    today: date
    now: datetime
    patients: int
    caseload: int
    org_id: uuid.UUID = field(init=False)
    clinics: list[uuid.UUID] = field(default_factory=list)
    managers: list[uuid.UUID] = field(default_factory=list)
    consultants: list[uuid.UUID] = field(default_factory=list)

    def new_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def draw_patients(self) -> None:
        """Who each patient is: deterministic draws, made once."""
        n, rng, caseload = range(self.patients), self.rng, self.caseload
        self.ids = [self.new_id() for _ in n]
        self.manager_of = [self.managers[i // caseload] for i in n]
        self.consultant_of = [self.consultants[(i // caseload) % len(self.consultants)] for i in n]
        self.clinic_of = [self.clinics[(i // caseload) % len(self.clinics)] for i in n]
        self.start_of = [self.today - timedelta(days=rng.randrange(0, 280)) for _ in n]
        self.program_of = [_pick(rng, PROGRAMS) for _ in n]
        self.outcome_of = [_pick(rng, OUTCOMES) for _ in n]
        self.baseline_of = [max(10.0, min(27.0, round(rng.gauss(*BASELINE_PHQ9)))) for _ in n]
        self.dropout_week = [rng.randrange(3, 10) for _ in n]
        self.team_of = [self.new_id() for _ in n]
        self.plan_of = [self.new_id() for _ in n]
        self.goal_of = [self.new_id() for _ in n]
        self.episode_of = [self.new_id() for _ in n]

    def weeks(self, i: int) -> float:
        return (self.today - self.start_of[i]).days / 7

    def instruments(self, i: int) -> tuple[str, ...]:
        return INSTRUMENTS[self.program_of[i]]

    def ended(self, i: int) -> bool:
        return self.outcome_of[i] == "dropped_out" and self.weeks(i) > self.dropout_week[i] + 6


def _write_organization(out: Writer, b: _Build) -> int:
    """The organization, its clinics and its staff (care managers and consultants)."""
    b.org_id = b.new_id()
    organization = {
        "id": b.org_id,
        "name": "Synthetic Health",
        "slug": ORG_SLUG,
        "timezone": "America/Chicago",
        "created_at": b.now,
    }
    rows = out.write(Organization.__table__, [organization], "organization")
    b.clinics = [b.new_id() for _ in range(max(1, min(20, b.patients // 5000 + 2)))]
    clinics = [
        {"id": c, "organization_id": b.org_id, "name": f"Synthetic clinic {i}", "created_at": b.now}
        for i, c in enumerate(b.clinics)
    ]
    rows += out.write(Clinic.__table__, clinics, "clinics")
    b.managers = [b.new_id() for _ in range(-(-b.patients // b.caseload))]
    b.consultants = [b.new_id() for _ in range(max(1, len(b.managers) // 30))]
    return rows + out.write(User.__table__, _staff(b, hash_password(PASSWORD)), "staff")


def _staff(b: _Build, password_hash: str) -> Iterator[dict[str, Any]]:
    for role, people, prefix, name in (
        ("care_manager", b.managers, "cm", "Care Manager"),
        ("psychiatric_consultant", b.consultants, "psy", "Dr Consultant"),
    ):
        for i, uid in enumerate(people):
            yield {
                "id": uid,
                "organization_id": b.org_id,
                "clinic_id": b.clinics[i % len(b.clinics)],
                "email": f"{prefix}{i}@synthetic.example.org",
                "name": f"{name} {i}",
                "role": role,
                "language": "en",
                "active": True,
                "password_hash": password_hash,
                "must_change_password": False,
                "created_at": b.now,
            }


def _write_patients_and_plans(out: Writer, b: _Build) -> int:
    """Patients, their care teams, and an active plan with a goal and two action steps."""
    n = b.patients
    rows = out.write(Patient.__table__, _patient_rows(b), "patients", n)
    teams = (
        {"id": b.team_of[i], "patient_id": b.ids[i], "name": "Care team", "created_at": b.now}
        for i in range(n)
    )
    rows += out.write(CareTeam.__table__, teams, "care teams", n)
    rows += out.write(CareTeamMember.__table__, _members(b), "team members", n * 2)
    rows += out.write(CarePlan.__table__, _plans(b), "care plans", n)
    goals = (
        {
            "id": b.goal_of[i],
            "plan_id": b.plan_of[i],
            **GOAL,
            "due_on": b.start_of[i] + timedelta(days=168),
            "proposed_by_id": b.manager_of[i],
            "created_at": b.now,
            "updated_at": b.now,
            "updated_by_id": b.manager_of[i],
            "author_id": b.manager_of[i],
        }
        for i in range(n)
    )
    rows += out.write(Goal.__table__, goals, "goals", n)
    rows += out.write(ActionStep.__table__, _steps(b), "action steps", n * 2)
    return rows + out.write(PlanAgreement.__table__, _agreements(b), "agreements")


def _patient_rows(b: _Build) -> Iterator[dict[str, Any]]:
    for i, pid in enumerate(b.ids):
        yield {
            "id": pid,
            "organization_id": b.org_id,
            "clinic_id": b.clinic_of[i],
            "mrn": f"S-{i}",
            "given_name": "Synthetic",
            "family_name": str(i),
            "birth_date": date(1950 + i % 50, 1 + i % 12, 1 + i % 28),
            "language": "en" if i % 5 else "es",
            "created_at": b.now,
        }


def _members(b: _Build) -> Iterator[dict[str, Any]]:
    # Care-team rows are written here by COPY, not through patients.service.set_member
    # (the one writer everywhere else): a synthetic load writes tens of thousands of
    # fresh teams, none with an earlier membership to reopen, and a flush a row would
    # cost minutes. Nothing is audited here because nobody acted.
    for i in range(b.patients):
        for user, role, lead in (
            (b.manager_of[i], "care_manager", True),
            (b.consultant_of[i], "psychiatric_consultant", False),
        ):
            yield {
                "id": b.new_id(),
                "care_team_id": b.team_of[i],
                "user_id": user,
                "role": role,
                "is_lead": lead,
                "added_at": b.now,
            }


def _plans(b: _Build) -> Iterator[dict[str, Any]]:
    for i in range(b.patients):
        yield {
            "id": b.plan_of[i],
            "patient_id": b.ids[i],
            "title": "Care plan",
            "status": "active",
            "version": 3,
            "revision_number": 2,
            "substantive_revision_number": 2,
            "activated_on": b.start_of[i],
            "next_review_on": b.start_of[i] + timedelta(days=90),
            "created_at": b.now,
            "created_by_id": b.manager_of[i],
        }


def _steps(b: _Build) -> Iterator[dict[str, Any]]:
    for i in range(b.patients):
        for n, text in enumerate(STEPS):
            done = b.weeks(i) > 2 * (n + 1) and b.outcome_of[i] != "dropped_out"
            yield {
                "id": b.new_id(),
                "plan_id": b.plan_of[i],
                "goal_id": b.goal_of[i],
                "description": text,
                "owner_is_patient": True,
                "due_on": b.start_of[i] + timedelta(days=14 * (n + 1)),
                "status": "done" if done else "to_do",
                "created_at": b.now,
                "updated_at": b.now,
                "updated_by_id": b.manager_of[i],
                "author_id": b.manager_of[i],
            }


def _agreements(b: _Build) -> Iterator[dict[str, Any]]:
    for i in range(b.patients):
        if i % 7 == 0:
            continue  # some plans wait for agreement
        for party in ("lead_clinician", "patient"):
            yield {
                "id": b.new_id(),
                "plan_id": b.plan_of[i],
                "revision_number": 2,
                "user_id": b.manager_of[i],
                "party": party,
                "agreed_at": b.now,
            }


def _write_care(out: Writer, b: _Build) -> int:
    """Check-in schedules, episodes of care and their contacts."""
    n = b.patients
    schedules = (
        {
            "id": b.new_id(),
            "patient_id": b.ids[i],
            "instrument": code,
            "every_days": 14 if k == 0 else 28,
            "start_on": b.start_of[i],
            "created_by_id": b.manager_of[i],
            "created_at": b.now,
            "version": 1,
        }
        for i in range(n)
        for k, code in enumerate(b.instruments(i))
    )
    rows = out.write(MeasureSchedule.__table__, schedules, "schedules", n * 2)
    rows += out.write(Episode.__table__, _episodes(b), "episodes", n)
    return rows + out.write(Contact.__table__, _contacts(b), "contacts")


def _episodes(b: _Build) -> Iterator[dict[str, Any]]:
    for i in range(b.patients):
        ended = b.ended(i)
        yield {
            "id": b.episode_of[i],
            "organization_id": b.org_id,
            "patient_id": b.ids[i],
            "clinic_id": b.clinic_of[i],
            "program": b.program_of[i],
            "status": "disengaged" if ended else "active",
            "started_on": b.start_of[i],
            "ended_on": b.start_of[i] + timedelta(days=7 * (b.dropout_week[i] + 6))
            if ended
            else None,
            "end_reason": DROPPED_OUT if ended else None,
            "care_manager_id": b.manager_of[i],
            "consultant_id": b.consultant_of[i],
            "created_at": b.now,
            "version": 1,
        }


def _contacts(b: _Build) -> Iterator[dict[str, Any]]:
    rng = b.rng
    for i in range(b.patients):
        if i % 11 == 0:
            continue  # waiting for the initial assessment
        weeks = b.weeks(i)
        last = min(weeks, b.dropout_week[i]) if b.outcome_of[i] == "dropped_out" else weeks
        week = 0.0
        n = 0
        while week <= last:
            yield {
                "id": b.new_id(),
                "organization_id": b.org_id,
                "patient_id": b.ids[i],
                "episode_id": b.episode_of[i],
                "occurred_on": b.start_of[i] + timedelta(days=int(week * 7)),
                "user_id": b.manager_of[i],
                "role": "care_manager",
                "mode": "in_person" if n == 0 else ("phone" if n % 3 else "video"),
                "kind": "initial_assessment" if n == 0 else "follow_up",
                "minutes": 45 + rng.randrange(20) if n == 0 else 10 + rng.randrange(25),
                "created_at": b.now,
                "created_by_id": b.manager_of[i],
            }
            n += 1
            week += 2 + rng.random() * 2


def _write_scores(out: Writer, b: _Build, measurements: int, progress: Progress) -> tuple[int, int]:
    """Responses and their scores: (scores written, rows written)."""
    per_patient = max(1, measurements // b.patients)
    responses, observations = MeasureResponse.__table__, MeasureObservation.__table__
    if measurements <= 200_000:
        pairs = list(_scores(b, per_patient))
        rows = out.write(responses, (p[0] for p in pairs), "responses", len(pairs))
        rows += out.write(observations, (p[1] for p in pairs), "scores", len(pairs))
        return len(pairs), rows
    # Two passes over the same deterministic stream would need the draws twice: write
    # responses and scores in step, a chunk of each at a time.
    written = rows = 0
    batch_r: list[dict[str, Any]] = []
    batch_o: list[dict[str, Any]] = []
    for response, observation in _scores(b, per_patient):
        batch_r.append(response)
        batch_o.append(observation)
        if len(batch_r) >= 100_000:
            rows += out.write(responses, batch_r, "responses")
            rows += out.write(observations, batch_o, "scores")
            written += len(batch_o)
            progress("measurements", written, measurements)
            batch_r, batch_o = [], []
    if batch_r:
        rows += out.write(responses, batch_r, "responses")
        rows += out.write(observations, batch_o, "scores")
        written += len(batch_o)
    return written, rows


def _scores(b: _Build, per_patient: int) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """One every two weeks for the program's main measure (four weeks for the other), spread
    back before enrolment when the target asks for more than treatment produced."""
    for i in range(b.patients):
        main, other = b.instruments(i)
        span = max(14, (b.today - b.start_of[i]).days + 365)
        for n in range(per_patient):
            code = other if n % 3 == 0 else main
            day_offset = -365 + n * span // per_patient
            when = datetime.combine(b.start_of[i], datetime.min.time(), UTC) + timedelta(
                days=day_offset, hours=15
            )
            if when.date() > b.today:
                break
            week = day_offset / 7
            if b.outcome_of[i] == "dropped_out" and week > b.dropout_week[i]:
                break  # they stopped answering
            phq = _course(b.outcome_of[i], b.baseline_of[i], week, b.rng)
            top = TOPS[code]
            value = float(min(top, round(phq * top / 27.0)))
            yield _score_rows(b, i, code, when, value)


def _score_rows(
    b: _Build, i: int, code: str, when: datetime, value: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    response_id = b.new_id()
    response = {
        "id": response_id,
        "patient_id": b.ids[i],
        "instrument": code,
        "instrument_version": "1",
        "language": "en",
        "status": "completed",
        "mode": "portal",
        "answered_by": "patient",
        "entered_by_id": b.manager_of[i],
        "started_at": when,
        "updated_at": when,
        "completed_at": when,
        "answers": {},
        "scores": {"total": {"value": value}},
        "flags": {"items": []},
        "version": 1,
    }
    observation = {
        "id": b.new_id(),
        "response_id": response_id,
        "patient_id": b.ids[i],
        "instrument": code,
        "score_id": "total",
        "code": LOINC[code],
        "code_system": "http://loinc.org",
        "value": value,
        "band": None,
        "effective_at": when,
    }
    return response, observation


def _write_alerts_and_reviews(out: Writer, b: _Build) -> int:
    """Safety alerts, and case reviews with recommendations for those not improving."""
    rows = out.write(SafetyAlert.__table__, _alerts(b), "alerts")
    review_of: dict[int, uuid.UUID] = {}
    rows += out.write(CaseReview.__table__, _reviews(b, review_of), "case reviews")
    recommendations = (
        {
            "id": b.new_id(),
            "review_id": review,
            "patient_id": b.ids[i],
            "kind": (kind := "increase_dose" if i % 2 else "add_psychotherapy"),
            "text": RECOMMENDATIONS[kind],
            "status": "accepted" if i % 4 else "proposed",
            "proposed_at": datetime.combine(
                b.start_of[i] + timedelta(days=63), datetime.min.time(), UTC
            ),
            "version": 1,
        }
        for i, review in review_of.items()
    )
    return rows + out.write(Recommendation.__table__, recommendations, "recommendations")


def _alerts(b: _Build) -> Iterator[dict[str, Any]]:
    for i in range(0, b.patients, 53):
        created = b.now - timedelta(days=b.rng.randrange(1, 120))
        closed = i % 3 != 0
        yield {
            "id": b.new_id(),
            "organization_id": b.org_id,
            "patient_id": b.ids[i],
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
            "owner_id": b.manager_of[i],
            "due_at": created + timedelta(hours=1),
            "acknowledged_by_id": b.manager_of[i] if closed else None,
            "acknowledged_at": created + timedelta(minutes=20) if closed else None,
            "closed_by_id": b.manager_of[i] if closed else None,
            "closed_at": created + timedelta(hours=3) if closed else None,
            "outcome": "safety_plan_reviewed" if closed else None,
        }


def _reviews(b: _Build, review_of: dict[int, uuid.UUID]) -> Iterator[dict[str, Any]]:
    for i in range(b.patients):
        if b.outcome_of[i] not in ("not_improving", "partial") or b.weeks(i) < 9:
            continue
        review_of[i] = b.new_id()
        on = b.start_of[i] + timedelta(days=63)
        at = datetime.combine(on, datetime.min.time(), UTC)
        yield {
            "id": review_of[i],
            "organization_id": b.org_id,
            "patient_id": b.ids[i],
            "episode_id": b.episode_of[i],
            "reason": "not_improving",
            "requested_at": at,
            "consultant_id": b.consultant_of[i],
            "status": "reviewed",
            "reviewed_on": on,
            "reviewed_at": at + timedelta(hours=14),
            "reviewed_by_id": b.consultant_of[i],
            "minutes": 10 + b.rng.randrange(10),
            "summary": REVIEW_SUMMARY,
        }


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

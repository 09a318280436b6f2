"""Which records are labelled 42 CFR Part 2, by the rules in rules.yaml (data a clinic reads).

`load_rules()` reads and checks the file once. `context(session, organization_id, patients)`
loads, once per request (cached on the session until its next flush), everything the rules
and the consent decision need for those patients: the Part 2 programs and their staff, the
patients' episodes, the label corrections, the consents and the emergency accesses. Then
`labels_of(row, ctx)` answers per row from memory (no query).

This module reads the registry's tables by name (`Base.metadata`), not through the registry's
models, so that the access layer can use it without importing a domain.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from concord.accounts.models import Clinic, User
from concord.categories import DataCategory
from concord.clock import now
from concord.consents.models import Consent, ConsentStatus
from concord.db import Base
from concord.part2.models import EmergencyAccess, LabelOverride

PART2 = "42CFRPart2"
RULES_FILE = Path(__file__).with_name("rules.yaml")
CONDITIONS = ("at_program", "by_program_staff", "patient_in_program")
# The columns that name who wrote a record, in the tables the rules may name. Never the last
# editor (`updated_by_id`): a record is its author's, so someone outside the program editing a
# program's record does not drop its label, nor does program staff editing another's add one.
AUTHOR_COLUMNS = (
    "created_by_id",
    "author_id",
    "user_id",
    "requested_by_id",
    "prescriber_id",
)
_CACHE = "concord.part2.context"


class RulesError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    id: str
    when: str
    records: frozenset[str]
    categories: frozenset[str]
    about: str = ""


def check_rules(data: Any) -> list[Rule]:
    """The rules in a parsed rules file; RulesError naming the first thing wrong."""
    if not isinstance(data, dict) or data.get("version") != 1:
        raise RulesError("rules file: version must be 1")
    rules = data.get("rules")
    if not isinstance(rules, list) or not rules:
        raise RulesError("rules file: rules must be a non-empty list")
    tables = set(Base.metadata.tables)
    found: list[Rule] = []
    for n, raw in enumerate(rules):
        where = f"rules[{n}]"
        if not isinstance(raw, dict):
            raise RulesError(f"{where}: must be a mapping")
        unknown = set(raw) - {"id", "about", "records", "categories", "when"}
        if unknown:
            raise RulesError(f"{where}: unknown key {sorted(unknown)[0]}")
        if not isinstance(raw.get("id"), str):
            raise RulesError(f"{where}.id: required")
        if raw.get("when") not in CONDITIONS:
            raise RulesError(f"{where}.when: must be one of {', '.join(CONDITIONS)}")
        records = raw.get("records") or []
        categories = raw.get("categories") or []
        if not records and not categories:
            raise RulesError(f"{where}: name records or categories")
        for table in records:
            if table not in tables:
                raise RulesError(f"{where}.records: unknown record type {table}")
        for cat in categories:
            if cat not in DataCategory.__members__:
                raise RulesError(f"{where}.categories: unknown category {cat}")
        found.append(
            Rule(
                raw["id"],
                raw["when"],
                frozenset(records),
                frozenset(categories),
                str(raw.get("about") or ""),
            )
        )
    return found


@functools.cache
def load_rules() -> tuple[Rule, ...]:
    return tuple(check_rules(yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))))


@dataclass(frozen=True)
class Label:
    """A record's Part 2 label and the program(s) whose record it is."""

    part2: bool
    programs: frozenset[uuid.UUID] = frozenset()
    corrected: bool = False


UNLABELLED = Label(False)


@dataclass
class Context:
    """What the rules and the consent decision read, loaded once for a set of patients."""

    at: datetime
    programs: frozenset[uuid.UUID]  # clinics that are Part 2 programs
    staff: dict[uuid.UUID, uuid.UUID]  # user id -> their Part 2 clinic
    episodes: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID | None]]  # id -> (clinic, created by)
    patient_programs: dict[uuid.UUID, frozenset[uuid.UUID]]
    overrides: dict[tuple[str, uuid.UUID], bool]
    consents: dict[uuid.UUID, list[Consent]] = field(default_factory=dict)
    emergencies: dict[tuple[uuid.UUID, uuid.UUID], EmergencyAccess] = field(default_factory=dict)
    patients: frozenset[uuid.UUID] = frozenset()

    def emergency(self, user_id: uuid.UUID, patient_id: uuid.UUID) -> EmergencyAccess | None:
        grant = self.emergencies.get((user_id, patient_id))
        return grant if grant is not None and grant.active(self.at) else None


def _clear(session: Session, *_: Any) -> None:
    session.info.pop(_CACHE, None)


@functools.cache
def _listen() -> None:
    # Anything written (an episode, a consent, a correction) is read afresh after it.
    event.listen(Session, "after_flush", _clear)
    event.listen(Session, "after_rollback", _clear)


def _org_part(session: Session, organization_id: uuid.UUID) -> tuple[frozenset, dict]:
    programs = frozenset(
        session.scalars(
            select(Clinic.id).where(
                Clinic.organization_id == organization_id, Clinic.part2_program.is_(True)
            )
        )
    )
    staff: dict[uuid.UUID, uuid.UUID] = {}
    if programs:
        for uid, cid in session.execute(
            select(User.id, User.clinic_id).where(User.clinic_id.in_(programs))
        ):
            staff[uid] = cid
    return programs, staff


def context(session: Session, organization_id: uuid.UUID, patients: Iterable[uuid.UUID]) -> Context:
    """The context for `patients` (cached on the session until it next flushes; a wider set
    of patients than the cached one is loaded afresh)."""
    _listen()
    wanted = frozenset(patients)
    cached: dict[uuid.UUID, Context] = session.info.setdefault(_CACHE, {})
    ctx = cached.get(organization_id)
    if ctx is not None and wanted <= ctx.patients:
        return ctx
    wanted = wanted | (ctx.patients if ctx is not None else frozenset())
    programs, staff = _org_part(session, organization_id)
    episode = Base.metadata.tables["episode"]
    episodes: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID | None]] = {}
    patient_programs: dict[uuid.UUID, set[uuid.UUID]] = {}
    overrides: dict[tuple[str, uuid.UUID], bool] = {}
    consents: dict[uuid.UUID, list[Consent]] = {}
    emergencies: dict[tuple[uuid.UUID, uuid.UUID], EmergencyAccess] = {}
    ids = sorted(wanted)
    if ids:
        for eid, pid, clinic, created_by, manager in session.execute(
            select(
                episode.c.id,
                episode.c.patient_id,
                episode.c.clinic_id,
                episode.c.created_by_id,
                episode.c.care_manager_id,
            ).where(episode.c.patient_id.in_(ids))
        ):
            episodes[eid] = (clinic, created_by)
            program = (
                clinic if clinic in programs else staff.get(created_by) or staff.get(manager)  # type: ignore[arg-type]
            )
            if program is not None:
                patient_programs.setdefault(pid, set()).add(program)
        for row in session.scalars(
            select(LabelOverride)
            .where(LabelOverride.patient_id.in_(ids))
            .order_by(LabelOverride.at, LabelOverride.id)
        ):
            overrides[(row.record_type, row.record_id)] = row.part2  # newest wins
        for consent in session.scalars(
            select(Consent).where(
                Consent.patient_id.in_(ids), Consent.status == ConsentStatus.active
            )
        ):
            consents.setdefault(consent.patient_id, []).append(consent)
        at = now()
        for grant in session.scalars(
            select(EmergencyAccess).where(
                EmergencyAccess.patient_id.in_(ids), EmergencyAccess.expires_at > at
            )
        ):
            emergencies[(grant.user_id, grant.patient_id)] = grant
    ctx = Context(
        at=now(),
        programs=programs,
        staff=staff,
        episodes=episodes,
        patient_programs={k: frozenset(v) for k, v in patient_programs.items()},
        overrides=overrides,
        consents=consents,
        emergencies=emergencies,
        patients=wanted,
    )
    # Stored afresh: a flush made by the queries above (autoflush) cleared the cache they
    # found, and what they read is already after it.
    session.info.setdefault(_CACHE, {})[organization_id] = ctx
    return ctx


def labels_of(row: Any, ctx: Context, patient_id: uuid.UUID | None = None) -> Label:
    """The Part 2 label of one record, from the rules and any correction (no query)."""
    table = getattr(row, "__tablename__", None)
    rid = getattr(row, "id", None)
    pid = getattr(row, "patient_id", None) or patient_id
    patient_programs = ctx.patient_programs.get(pid, frozenset()) if pid else frozenset()
    corrected = ctx.overrides.get((table, rid)) if table and rid else None
    if corrected is None and getattr(row, "response_id", None) is not None:
        # A score or an item of a response carries the response's correction.
        corrected = ctx.overrides.get(("measure_response", row.response_id))
    if corrected is not None:
        return Label(corrected, patient_programs if corrected else frozenset(), corrected=True)
    if not ctx.programs:
        return UNLABELLED
    category = getattr(row, "data_category", None)
    found: set[uuid.UUID] = set()
    for rule in load_rules():
        if rule.records and table not in rule.records:
            continue
        if rule.categories and (category is None or str(category) not in rule.categories):
            continue
        if rule.when == "patient_in_program":
            found |= patient_programs
        elif rule.when == "at_program":
            clinic = getattr(row, "clinic_id", None)
            if clinic is None and getattr(row, "episode_id", None) is not None:
                clinic = ctx.episodes.get(row.episode_id, (None, None))[0]
            if clinic in ctx.programs:
                found.add(clinic)
        elif rule.when == "by_program_staff":
            for column in AUTHOR_COLUMNS:
                program = ctx.staff.get(getattr(row, column, None))  # type: ignore[arg-type]
                if program is not None:
                    found.add(program)
    return Label(bool(found), frozenset(found)) if found else UNLABELLED


def category_label(ctx: Context, patient_id: uuid.UUID, category: Any) -> Label:
    """The label a record of `category` about `patient_id` carries by the category rules
    alone (a cross-patient search decides per patient and category with it)."""
    programs: set[uuid.UUID] = set()
    for rule in load_rules():
        if rule.records or str(category) not in rule.categories:
            continue
        if rule.when == "patient_in_program":
            programs |= ctx.patient_programs.get(patient_id, frozenset())
    return Label(bool(programs), frozenset(programs)) if programs else UNLABELLED

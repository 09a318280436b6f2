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
from sqlalchemy import (
    Boolean,
    CompoundSelect,
    String,
    bindparam,
    cast,
    event,
    exists,
    literal,
    null,
    select,
    union_all,
)
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
    # The consent decisions made from this context (concord.disclosure.consent_decision's
    # memo: a read of many records, or of many patients, decides each question once).
    decided: dict[tuple[Any, ...], Any] = field(default_factory=dict, compare=False, repr=False)

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


@functools.cache
def _probe() -> CompoundSelect:
    """Everything the context needs but the consents' and emergency accesses' own rows, in one
    statement (a UNION ALL, one branch a kind): the organization's Part 2 programs ("p"),
    their staff ("s"), the patients' episodes when there is a program to place them in
    ("ep"), the label corrections ("o"), and the ids of the active consents ("c") and
    unexpired emergency accesses ("e"). Most organizations have no Part 2 program and most
    patients no consent, correction or emergency access: then this is the only statement.
    Built once (bound `org`, `ids`, `at`): building it anew cost more than running it."""
    clinic = Clinic.__table__
    user = User.__table__
    episode = Base.metadata.tables["episode"]
    override = LabelOverride.__table__
    consent = Consent.__table__
    emergency = EmergencyAccess.__table__
    uid = clinic.c.id.type
    when = override.c.at.type

    def row(kind: str, id_: Any, *rest: Any) -> list[Any]:
        # kind, id, u1..u4 (ids), s (a name), flag, at: NULL where a branch has none, typed
        # so that both engines read the union's columns as the first branch's types.
        filled = list(rest) + [None] * (7 - len(rest))
        types = (uid, uid, uid, uid, String(), Boolean(), when)
        cols = [literal(kind, String()).label("kind"), id_.label("id")]
        for n, (value, type_) in enumerate(zip(filled, types, strict=True)):
            cols.append((cast(null(), type_) if value is None else value).label(f"c{n}"))
        return cols

    org = bindparam("org", type_=clinic.c.organization_id.type)
    ids = bindparam("ids", expanding=True, type_=clinic.c.id.type)
    at = bindparam("at", type_=emergency.c.expires_at.type)
    programs = (clinic.c.organization_id == org) & clinic.c.part2_program.is_(True)
    return union_all(
        select(*row("p", clinic.c.id)).where(programs),
        select(*row("s", user.c.id, user.c.clinic_id))
        .select_from(user.join(clinic, clinic.c.id == user.c.clinic_id))
        .where(programs),
        select(
            *row(
                "ep",
                episode.c.id,
                episode.c.patient_id,
                episode.c.clinic_id,
                episode.c.created_by_id,
                episode.c.care_manager_id,
            )
        ).where(
            episode.c.patient_id.in_(ids),
            exists(select(clinic.c.id).where(programs)),
        ),
        select(
            *row(
                "o",
                override.c.id,
                override.c.record_id,
                None,
                None,
                None,
                override.c.record_type,
                override.c.part2,
                override.c.at,
            )
        ).where(override.c.patient_id.in_(ids)),
        select(*row("c", consent.c.id)).where(
            consent.c.patient_id.in_(ids), consent.c.status == ConsentStatus.active
        ),
        select(*row("e", emergency.c.id)).where(
            emergency.c.patient_id.in_(ids), emergency.c.expires_at > at
        ),
    )


def context(session: Session, organization_id: uuid.UUID, patients: Iterable[uuid.UUID]) -> Context:
    """The context for `patients` (cached on the session until it next flushes; a wider set
    of patients than the cached one is loaded afresh). One statement (`_probe`), and one more
    each for the consents and the emergency accesses when there are any."""
    _listen()
    wanted = frozenset(patients)
    cached: dict[uuid.UUID, Context] = session.info.setdefault(_CACHE, {})
    ctx = cached.get(organization_id)
    if ctx is not None and wanted <= ctx.patients:
        return ctx
    wanted = wanted | (ctx.patients if ctx is not None else frozenset())
    ids = sorted(wanted)
    at = now()
    found: dict[str, list[Any]] = {}
    for row in session.execute(_probe(), {"org": organization_id, "ids": ids, "at": at}):
        found.setdefault(row.kind, []).append(row)
    programs = frozenset(r.id for r in found.get("p", ()))
    staff: dict[uuid.UUID, uuid.UUID] = {r.id: r.c0 for r in found.get("s", ())}
    episodes: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID | None]] = {}
    patient_programs: dict[uuid.UUID, set[uuid.UUID]] = {}
    for r in found.get("ep", ()):
        pid, clinic, created_by, manager = r.c0, r.c1, r.c2, r.c3
        episodes[r.id] = (clinic, created_by)
        program = clinic if clinic in programs else staff.get(created_by) or staff.get(manager)  # type: ignore[arg-type]
        if program is not None:
            patient_programs.setdefault(pid, set()).add(program)
    overrides: dict[tuple[str, uuid.UUID], bool] = {}
    for r in sorted(found.get("o", ()), key=lambda r: (r.c6, r.id)):
        overrides[(r.c4, r.c0)] = bool(r.c5)  # newest wins
    consents: dict[uuid.UUID, list[Consent]] = {}
    if found.get("c"):
        for consent in session.scalars(
            select(Consent).where(
                Consent.patient_id.in_(ids), Consent.status == ConsentStatus.active
            )
        ):
            consents.setdefault(consent.patient_id, []).append(consent)
    emergencies: dict[tuple[uuid.UUID, uuid.UUID], EmergencyAccess] = {}
    if found.get("e"):
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

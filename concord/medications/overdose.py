"""The overdose-risk rules (concord/medications/overdose-rules.yaml) and their evaluation: a
pure function of the patient's checked medication list and MOUD records. Which rule fired is
data; raising the alert is the action's (concord.actions.medications), through the safety
domain's escalation chain."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from concord.medications.models import RELEASE_FROM, MoudKind
from concord.medications.vocabulary import default_vocabulary

RULES_FILE = Path(__file__).with_name("overdose-rules.yaml")


class OverdoseRulesError(ValueError):
    pass


@dataclass(frozen=True)
class OverdoseRule:
    id: str
    name: Mapping[str, str]
    action: str
    citation: str
    url: str
    together: tuple[str, ...] = ()
    record: str | None = None
    detail: str | None = None
    within_days: int | None = None


@dataclass(frozen=True)
class RecordFact:
    """What a rule reads of a MOUD record."""

    id: str
    kind: str
    on: date
    detail: str | None = None


@dataclass(frozen=True)
class Hit:
    """A rule that fired, and why (`key`: one per rule and cause, so it raises one alert)."""

    rule: OverdoseRule
    key: str
    evidence: Mapping[str, Any]


def parse_rules(data: Any) -> tuple[str, list[OverdoseRule]]:
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise OverdoseRulesError("overdose rules: a version and a list of rules")
    classes = set(default_vocabulary().classes)
    seen: set[str] = set()
    out = []
    for n, raw in enumerate(data["rules"]):
        where = f"rules[{n}]"
        try:
            when = raw["when"]
            source = raw["source"]
            rule = OverdoseRule(
                id=str(raw["id"]),
                name={k: str(v) for k, v in raw["name"].items()},
                action=" ".join(str(raw["action"]).split()),
                citation=" ".join(str(source["citation"]).split()),
                url=str(source["url"]),
                together=tuple(when.get("together") or ()),
                record=when.get("record"),
                detail=when.get("detail"),
                within_days=when.get("within_days"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise OverdoseRulesError(f"{where}: missing or malformed {exc}") from exc
        if rule.id in seen:
            raise OverdoseRulesError(f"{where}: duplicate id {rule.id}")
        seen.add(rule.id)
        if bool(rule.together) == bool(rule.record):
            raise OverdoseRulesError(f"{where}: when needs either together or record")
        if rule.together and (len(rule.together) != 2 or set(rule.together) - classes):
            raise OverdoseRulesError(f"{where}: together names two classes of the vocabulary")
        if rule.record and rule.record not in tuple(MoudKind):
            raise OverdoseRulesError(f"{where}: unknown record kind {rule.record}")
        if rule.detail is not None and rule.detail not in RELEASE_FROM:
            raise OverdoseRulesError(f"{where}: detail must be one of {RELEASE_FROM}")
        if rule.within_days is not None and (
            not isinstance(rule.within_days, int) or rule.within_days < 1
        ):
            raise OverdoseRulesError(f"{where}: within_days must be a whole number of days")
        out.append(rule)
    return str(data.get("version") or ""), out


@functools.cache
def default_rules() -> tuple[str, tuple[OverdoseRule, ...]]:
    version, rules = parse_rules(yaml.safe_load(RULES_FILE.read_text(encoding="utf-8")))
    return version, tuple(rules)


def evaluate(
    rxcuis: Iterable[str | None],
    records: Iterable[RecordFact],
    *,
    today: date,
    rules: Iterable[OverdoseRule] | None = None,
) -> list[Hit]:
    """Every rule that fires on the checked list's ingredients and the MOUD records."""
    vocabulary = default_vocabulary()
    by_class: dict[str, set[str]] = {}
    for rxcui in rxcuis:
        entry = vocabulary.get(rxcui) if rxcui else None
        if entry is None:
            continue
        for cls in entry.classes:
            by_class.setdefault(cls, set()).add(entry.rxcui)
    facts = list(records)
    hits: list[Hit] = []
    for rule in rules if rules is not None else default_rules()[1]:
        if rule.together:
            a, b = (sorted(by_class.get(c, ())) for c in rule.together)
            if a and b:
                key = f"{rule.id}:{'+'.join(a)}:{'+'.join(b)}"
                hits.append(Hit(rule, key[:200], {"rxcuis": a + b}))
            continue
        for fact in facts:
            if fact.kind != rule.record or fact.on > today:
                continue
            if rule.detail is not None and fact.detail != rule.detail:
                continue
            if rule.within_days is not None and fact.on <= today - timedelta(days=rule.within_days):
                continue
            hits.append(
                Hit(rule, f"{rule.id}:{fact.id}", {"record": fact.id, "on": fact.on.isoformat()})
            )
    return hits

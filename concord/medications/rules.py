"""Medication-safety rules and the checker (issue 19). Pure data and pure functions: the rules
are `interaction-rules.yaml` (docs/medication-rules-format.md), each with its primary source;
`check` takes a patient's medications (RxNorm ingredient RxCUIs) and age and returns the
findings, most serious first, the same every time for the same input.

A rule is either a pair (a drug matching `a` and a different drug matching `b`) or a single
drug (optionally below an age). Matchers name classes and RxCUIs of the vocabulary; an
unverified ingredient matches nothing, so a rule whose members are all unverified cannot fire
(`dormant` lists those).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from concord.medications.vocabulary import (
    RXCUI_RE,
    Ingredient,
    MedicationFileError,
    Source,
    Text,
    Vocabulary,
    default_vocabulary,
    parse_source,
    parse_text,
    read_yaml,
)

DEFAULT_FILE = Path(__file__).parent / "interaction-rules.yaml"
KIND = "medication-rules"
SEVERITIES = ("contraindicated", "high", "moderate", "monitor")  # most serious first
ID_RE = re.compile(r"^[a-z0-9][a-z0-9\-]{0,59}$")
MATCHER_KEYS = {"classes", "rxcuis", "except_classes", "except_rxcuis"}
MAX_AGE = 130
# What a screen may offer beside a finding (CDS Hooks suggestions): "remove-order" offers to
# remove the new order that raised it. Never on a never_block rule.
SUGGESTIONS = ("remove-order",)


@dataclass(frozen=True)
class Matcher:
    classes: frozenset[str] = frozenset()
    rxcuis: frozenset[str] = frozenset()
    except_classes: frozenset[str] = frozenset()
    except_rxcuis: frozenset[str] = frozenset()

    def matches(self, ingredient: Ingredient) -> bool:
        if not ingredient.verified:
            return False
        if ingredient.rxcui in self.except_rxcuis or ingredient.classes & self.except_classes:
            return False
        return ingredient.rxcui in self.rxcuis or bool(ingredient.classes & self.classes)


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    title: Text
    reason: str
    action: str
    source: Source
    pair: tuple[Matcher, Matcher] | None = None
    single: Matcher | None = None
    age_under: int | None = None
    never_block: bool = False
    suggestion: str | None = None

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.severity)


@dataclass(frozen=True)
class RuleSet:
    version: str
    rules: tuple[Rule, ...]

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: str
    title: Text
    reason: str
    action: str
    source: Source
    rxcuis: tuple[str, ...]  # the ingredients involved, the `a` side first
    never_block: bool = False
    suggestion: str | None = None


# --- parsing -------------------------------------------------------------------------------


def _strings(value: Any, file: str, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not value:
        raise MedicationFileError(file, where, "must be a non-empty list")
    return frozenset(str(v) for v in value)


def _matcher(value: Any, file: str, where: str, vocabulary: Vocabulary) -> Matcher:
    if not isinstance(value, Mapping) or not value:
        raise MedicationFileError(file, where, "must be {classes: [...]} and/or {rxcuis: [...]}")
    unknown = set(value) - MATCHER_KEYS
    if unknown:
        raise MedicationFileError(
            file,
            f"{where}.{sorted(unknown)[0]}",
            f"is not one of {', '.join(sorted(MATCHER_KEYS))}",
        )
    if "classes" not in value and "rxcuis" not in value:
        raise MedicationFileError(file, where, "needs classes or rxcuis (what it matches)")
    parts: dict[str, frozenset[str]] = {}
    for key in sorted(MATCHER_KEYS & set(value)):
        items = _strings(value[key], file, f"{where}.{key}")
        for item in sorted(items):
            if key.endswith("classes") and item not in vocabulary.classes:
                raise MedicationFileError(
                    file, f"{where}.{key}", f"{item} is not a class of the vocabulary"
                )
            if key.endswith("rxcuis") and (
                not RXCUI_RE.match(item) or vocabulary.entry(item) is None
            ):
                raise MedicationFileError(
                    file, f"{where}.{key}", f"{item} is not an RxCUI of the vocabulary"
                )
        parts[key] = items
    return Matcher(**parts)


def parse_rules(
    text: str, *, name: str = "interaction-rules.yaml", vocabulary: Vocabulary | None = None
) -> RuleSet:
    vocabulary = vocabulary or default_vocabulary()
    data = read_yaml(text, name, KIND)
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise MedicationFileError(name, "rules", "must be a list with at least one rule")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules, start=1):
        where = f"rules[{index}]"
        if not isinstance(raw, Mapping):
            raise MedicationFileError(name, where, "must be a mapping")
        rule_id = str(raw.get("id") or "")
        if not ID_RE.match(rule_id):
            raise MedicationFileError(
                name, f"{where}.id", "is required: lower-case letters, digits and dashes"
            )
        where = f"rule {rule_id}"
        if rule_id in seen:
            raise MedicationFileError(name, f"{where}.id", "is used twice")
        seen.add(rule_id)
        severity = raw.get("severity")
        if severity not in SEVERITIES:
            raise MedicationFileError(
                name, f"{where}.severity", f"must be one of {', '.join(SEVERITIES)}"
            )
        has_pair, has_single = raw.get("pair") is not None, raw.get("single") is not None
        if has_pair == has_single:
            raise MedicationFileError(name, where, "needs exactly one of pair or single")
        pair = single = None
        age_under = None
        if has_pair:
            raw_pair = raw["pair"]
            if not isinstance(raw_pair, Mapping) or set(raw_pair) != {"a", "b"}:
                raise MedicationFileError(name, f"{where}.pair", "must be {a: ..., b: ...}")
            pair = (
                _matcher(raw_pair["a"], name, f"{where}.pair.a", vocabulary),
                _matcher(raw_pair["b"], name, f"{where}.pair.b", vocabulary),
            )
        else:
            raw_single = dict(raw["single"]) if isinstance(raw["single"], Mapping) else None
            if raw_single is None:
                raise MedicationFileError(name, f"{where}.single", "must be a mapping")
            if "age_under" in raw_single:
                age = raw_single.pop("age_under")
                if isinstance(age, bool) or not isinstance(age, int) or not 0 < age <= MAX_AGE:
                    raise MedicationFileError(
                        name, f"{where}.single.age_under", f"must be a whole number 1-{MAX_AGE}"
                    )
                age_under = age
            single = _matcher(raw_single, name, f"{where}.single", vocabulary)
        for key in ("reason", "action"):
            value = raw.get(key)
            if not isinstance(value, str) or len(value.strip()) < 10:
                raise MedicationFileError(name, f"{where}.{key}", "is required (a sentence)")
        never_block = raw.get("never_block", False)
        if not isinstance(never_block, bool):
            raise MedicationFileError(name, f"{where}.never_block", "must be true or false")
        suggestion = raw.get("suggestion")
        if suggestion is not None and suggestion not in SUGGESTIONS:
            raise MedicationFileError(
                name, f"{where}.suggestion", f"must be one of {', '.join(SUGGESTIONS)}"
            )
        if suggestion is not None and never_block:
            raise MedicationFileError(
                name, f"{where}.suggestion", "a never_block rule may not suggest removing an order"
            )
        rules.append(
            Rule(
                id=rule_id,
                severity=str(severity),
                title=parse_text(raw.get("title"), name, f"{where}.title"),
                reason=" ".join(str(raw["reason"]).split()),
                action=" ".join(str(raw["action"]).split()),
                source=parse_source(raw.get("source"), name, f"{where}.source"),
                pair=pair,
                single=single,
                age_under=age_under,
                never_block=never_block,
                suggestion=suggestion,
            )
        )
    return RuleSet(version=str(data["version"]).strip(), rules=tuple(rules))


@lru_cache(maxsize=1)
def default_rules() -> RuleSet:
    return parse_rules(DEFAULT_FILE.read_text(encoding="utf-8"), name=DEFAULT_FILE.name)


# --- checking ------------------------------------------------------------------------------


def _rxcui_of(item: Any) -> str:
    if isinstance(item, str | int) and not isinstance(item, bool):
        return str(item).strip()
    if isinstance(item, Mapping):
        return str(item.get("rxcui") or "").strip()
    return str(getattr(item, "rxcui", "") or "").strip()


def ingredients_of(medications: Iterable[Any], vocabulary: Vocabulary) -> list[Ingredient]:
    """The known, verified ingredients among `medications` (RxCUIs, or objects or mappings with
    an `rxcui`), each once, in RxCUI order."""
    found = {}
    for item in medications:
        ingredient = vocabulary.get(_rxcui_of(item))
        if ingredient is not None:
            found[ingredient.rxcui] = ingredient
    return [found[k] for k in sorted(found, key=lambda r: (len(r), r))]


def unrecognized(medications: Iterable[Any], vocabulary: Vocabulary | None = None) -> list[str]:
    """RxCUIs the checker cannot use (not in the vocabulary, or unverified there): shown to the
    team as unchecked, never guessed at."""
    vocabulary = vocabulary or default_vocabulary()
    out = {_rxcui_of(m) for m in medications} - {""}
    return sorted((r for r in out if vocabulary.get(r) is None), key=lambda r: (len(r), r))


def _finding(rule: Rule, rxcuis: tuple[str, ...]) -> Finding:
    return Finding(
        rule_id=rule.id,
        severity=rule.severity,
        title=rule.title,
        reason=rule.reason,
        action=rule.action,
        source=rule.source,
        rxcuis=rxcuis,
        never_block=rule.never_block,
        suggestion=rule.suggestion,
    )


def check(
    medications: Iterable[Any],
    *,
    age: int | None = None,
    vocabulary: Vocabulary | None = None,
    rules: RuleSet | None = None,
) -> list[Finding]:
    """Check a whole medication list. `age` in whole years (an age-dependent rule does not fire
    when it is None). Findings are ordered by severity (most serious first), then by rule id and
    the ingredients involved."""
    vocabulary = vocabulary or default_vocabulary()
    rules = rules or default_rules()
    present = ingredients_of(medications, vocabulary)
    findings: list[Finding] = []
    for rule in rules.rules:
        if rule.single is not None:
            if rule.age_under is not None and (age is None or age >= rule.age_under):
                continue
            findings += [_finding(rule, (i.rxcui,)) for i in present if rule.single.matches(i)]
            continue
        assert rule.pair is not None
        side_a, side_b = rule.pair
        done: set[frozenset[str]] = set()
        for x in present:
            if not side_a.matches(x):
                continue
            for y in present:
                key = frozenset((x.rxcui, y.rxcui))
                if x.rxcui == y.rxcui or key in done or not side_b.matches(y):
                    continue
                done.add(key)
                findings.append(_finding(rule, (x.rxcui, y.rxcui)))
    order = {rule.id: n for n, rule in enumerate(rules.rules)}
    findings.sort(
        key=lambda f: (SEVERITIES.index(f.severity), f.rule_id, order[f.rule_id], f.rxcuis)
    )
    return findings


def dormant(rules: RuleSet | None = None, vocabulary: Vocabulary | None = None) -> list[str]:
    """Rules that cannot fire with this vocabulary: a side of a pair (or the single drug) matches
    no verified ingredient, typically because its members' RxCUIs are unverified."""
    vocabulary = vocabulary or default_vocabulary()
    rules = rules or default_rules()
    usable = [i for i in vocabulary.ingredients if i.verified]
    out = []
    for rule in rules.rules:
        sides = rule.pair if rule.pair is not None else (rule.single,)
        if any(not any(side.matches(i) for i in usable) for side in sides if side is not None):
            out.append(rule.id)
    return out

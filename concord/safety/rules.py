"""Risk rules: which answer or event raises which tier of alert, how fast it must be
acknowledged, and who is asked first and next. Data, not code (docs/risk-rules-format.md).

An organization's rules are a YAML file, stored in the database when an administrator loads
it. A file that is malformed, or that leaves a trigger without an owner, or that would let a
critical answer of any loaded instrument pass without an alert, is refused with a message
naming the problem; the rules already in force stay in force.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from concord.accounts.models import CLINICAL_ROLES
from concord.measures.library import library

DEFAULT_FILE = Path(__file__).parent / "risk-rules.yaml"
ID_RE = re.compile(r"^[a-z0-9][a-z0-9\-]{0,59}$")
MAX_DURATION = timedelta(days=3650)
DURATION_RE = re.compile(r"^(\d+)\s*(m|h|d)$")
FHIR_PRIORITIES = ("routine", "urgent", "asap", "stat")
EVENTS = ("manual-flag", "missed-follow-up")
# Events a rule file may name but need not: without its rule, an organization's own file
# still loads, and the alert takes the fallback in `RuleSet.optional_event_rule`.
OPTIONAL_EVENTS = ("overdose-risk", "message-phrase")
# Who a step of an escalation chain names. A role means the patient's care-team member with
# that role (the team lead first); `lead` the team's lead; `on_call` the organization's
# on-call clinician (set by an administrator).
STEP_KINDS = frozenset({"lead", "on_call"} | {role.value for role in CLINICAL_ROLES})
TIER_CHOSEN = "chosen"  # for the manual flag: the clinician picks the tier


class RuleFileError(ValueError):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


Text = Mapping[str, str]


@dataclass(frozen=True)
class Tier:
    code: str
    name: Text
    rank: int  # higher is more serious; the file lists the most serious first
    acknowledge_within: timedelta
    fhir_priority: str
    source: str


@dataclass(frozen=True)
class Trigger:
    """What a rule listens for. Exactly one of the shapes in docs/risk-rules-format.md."""

    event: str | None = None
    instrument: str | None = None
    flag: str | None = None
    item: str | None = None
    at_least: float | None = None
    equals: int | None = None
    score: str | None = None
    rise_at_least: float | None = None

    @property
    def kind(self) -> str:
        if self.event:
            return "event"
        if self.flag:
            return "flag"
        if self.item:
            return "item"
        if self.rise_at_least is not None:
            return "rise"
        return "score"


@dataclass(frozen=True)
class RiskRule:
    id: str
    name: Text
    when: Trigger
    tier: str  # a tier code, or "chosen" for the manual flag
    chain: str
    source: str


@dataclass(frozen=True)
class RuleSet:
    code: str
    version: str
    name: str
    tiers: tuple[Tier, ...]
    chains: Mapping[str, tuple[str, ...]]
    rules: tuple[RiskRule, ...]
    follow_up_within: timedelta
    follow_up_source: str
    text: str = field(repr=False, default="")

    def tier(self, code: str) -> Tier:
        for tier in self.tiers:
            if tier.code == code:
                return tier
        raise KeyError(code)

    def has_tier(self, code: str) -> bool:
        return any(t.code == code for t in self.tiers)

    def rank(self, code: str | None) -> int:
        if code is None:
            return 0
        for tier in self.tiers:
            if tier.code == code:
                return tier.rank
        return 0

    def event_rule(self, event: str) -> RiskRule:
        for rule in self.rules:
            if rule.when.event == event:
                return rule
        raise KeyError(event)  # validation guarantees every event has a rule

    def optional_event_rule(self, event: str, name: dict[str, str], source: str) -> RiskRule:
        """The rule for an optional event; without one in the file, the tier `high` (or the
        most serious there is) along the first chain."""
        for rule in self.rules:
            if rule.when.event == event:
                return rule
        tier = "high" if self.has_tier("high") else self.highest.code
        chain = "standard" if "standard" in self.chains else next(iter(self.chains))
        return RiskRule(
            id=event, name=name, when=Trigger(event=event), tier=tier, chain=chain, source=source
        )

    def rules_for(self, instrument: str) -> list[RiskRule]:
        return [r for r in self.rules if r.when.instrument == instrument]

    @property
    def highest(self) -> Tier:
        return self.tiers[0]


def parse_duration(value: Any, where: str) -> timedelta:
    match = DURATION_RE.match(str(value).strip()) if value is not None else None
    if not match or int(match.group(1)) == 0:
        raise RuleFileError(where, "must be a time such as 15m, 4h or 3d (minutes, hours, days)")
    amount, unit = int(match.group(1)), match.group(2)
    try:
        duration = {"m": timedelta(minutes=amount), "h": timedelta(hours=amount)}.get(
            unit, timedelta(days=amount)
        )
    except OverflowError:
        duration = timedelta.max
    # A deadline is added to the time an alert is raised or escalated; one past year 9999
    # raised OverflowError there, in the middle of a safety alert.
    if duration > MAX_DURATION:
        raise RuleFileError(where, "must be at most 3650d (ten years)")
    return duration


def format_duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def _text(value: Any, where: str) -> Text:
    if isinstance(value, str) and value.strip():
        return {"en": value.strip()}
    if isinstance(value, Mapping) and isinstance(value.get("en"), str) and value["en"].strip():
        return {str(k): str(v) for k, v in value.items()}
    raise RuleFileError(where, "needs a name: text, or {en: ..., es: ...} with English")


def _source(raw: Mapping[str, Any], where: str) -> str:
    source = raw.get("source")
    if not isinstance(source, str) or len(source.strip()) < 10:
        raise RuleFileError(where, "needs a source: where its threshold or time comes from")
    return source.strip()


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleFileError(where, "must be a number")
    return float(value)


def parse_rules(
    text: str, *, name: str = "risk rules", library: Any = None, cover_critical: bool = True
) -> RuleSet:
    """Parse and check a rule file. `library` (the instrument library) lets the file's
    instruments, items, scores and flags be checked and, with `cover_critical`, every critical
    flag be required to have a rule (when a file is loaded or checked; rules already in force
    stay usable when an instrument is added later: see concord.safety.rulesets.rules_for)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RuleFileError(
            name, "is not valid YAML" + (f" at line {mark.line + 1}" if mark else "")
        ) from None
    if not isinstance(data, Mapping):
        raise RuleFileError(name, "must be a YAML mapping with kind: risk-rules")
    if data.get("kind") != "risk-rules":
        raise RuleFileError(name, "must say kind: risk-rules")
    code = str(data.get("code") or "").strip()
    if not code or not ID_RE.match(code):
        raise RuleFileError(name, "needs a code: lower-case letters, digits and dashes")
    version = str(data.get("version") or "").strip()
    if not version:
        raise RuleFileError(name, "needs a version")

    tiers = _parse_tiers(data.get("tiers"))
    tier_codes = {t.code for t in tiers}
    chains = _parse_chains(data.get("chains"))

    follow_up = data.get("follow_up")
    if not isinstance(follow_up, Mapping):
        raise RuleFileError("follow_up", "is required: {within: 3d, source: ...}")
    follow_up_within = parse_duration(follow_up.get("within"), "follow_up.within")
    follow_up_source = _source(follow_up, "follow_up")

    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RuleFileError("rules", "must be a list with at least one rule")
    rules: list[RiskRule] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules, start=1):
        where = f"rules[{index}]"
        if not isinstance(raw, Mapping):
            raise RuleFileError(where, "must be a mapping")
        rule_id = str(raw.get("id") or "")
        if not ID_RE.match(rule_id):
            raise RuleFileError(where, "needs an id: lower-case letters, digits and dashes")
        where = f"rule {rule_id}"
        if rule_id in seen:
            raise RuleFileError(where, "id is used twice")
        seen.add(rule_id)
        when = _parse_when(raw.get("when"), where, library)
        tier = str(raw.get("tier") or "")
        if tier == TIER_CHOSEN:
            if when.event != "manual-flag":
                raise RuleFileError(where, "only the manual-flag rule may take tier: chosen")
        elif tier not in tier_codes:
            raise RuleFileError(
                where, f"tier {tier or '(none)'} is not one of {', '.join(sorted(tier_codes))}"
            )
        # Every trigger must reach a person: its chain must exist and name at least one step.
        chain = str(raw.get("chain") or "")
        if not chain:
            raise RuleFileError(where, "has no owner: give it a chain (who is asked first, next)")
        if chain not in chains:
            raise RuleFileError(
                where, f"chain {chain} is not defined (chains: {', '.join(sorted(chains))})"
            )
        rules.append(
            RiskRule(
                id=rule_id,
                name=_text(raw.get("name"), where),
                when=when,
                tier=tier,
                chain=chain,
                source=_source(raw, where),
            )
        )
    for event in EVENTS:
        if not any(r.when.event == event for r in rules):
            raise RuleFileError("rules", f"needs a rule for the event {event}")
        if sum(1 for r in rules if r.when.event == event) > 1:
            raise RuleFileError("rules", f"has more than one rule for the event {event}")
    for event in OPTIONAL_EVENTS:
        if sum(1 for r in rules if r.when.event == event) > 1:
            raise RuleFileError("rules", f"has more than one rule for the event {event}")
    if library is not None and cover_critical:
        _check_critical_covered(rules, library)
    return RuleSet(
        code=code,
        version=version,
        name=str(data.get("name") or code),
        tiers=tuple(tiers),
        chains=chains,
        rules=tuple(rules),
        follow_up_within=follow_up_within,
        follow_up_source=follow_up_source,
        text=text,
    )


def _parse_tiers(raw: Any) -> list[Tier]:
    if not isinstance(raw, list) or not raw:
        raise RuleFileError("tiers", "must list the tiers, most serious first")
    tiers: list[Tier] = []
    for index, item in enumerate(raw):
        where = f"tiers[{index + 1}]"
        if not isinstance(item, Mapping):
            raise RuleFileError(where, "must be a mapping")
        code = str(item.get("code") or "")
        if not ID_RE.match(code) or code == TIER_CHOSEN:
            raise RuleFileError(where, "needs a code: lower-case letters, digits and dashes")
        where = f"tier {code}"
        if any(t.code == code for t in tiers):
            raise RuleFileError(where, "is listed twice")
        priority = str(item.get("fhir_priority") or "")
        if priority not in FHIR_PRIORITIES:
            raise RuleFileError(where, f"fhir_priority must be one of {', '.join(FHIR_PRIORITIES)}")
        within = parse_duration(item.get("acknowledge_within"), f"{where} acknowledge_within")
        if tiers and within < tiers[-1].acknowledge_within:
            raise RuleFileError(
                where,
                "gives more urgency than the tier above it: list tiers most serious first",
            )
        tiers.append(
            Tier(
                code=code,
                name=_text(item.get("name"), where),
                rank=len(raw) - index,
                acknowledge_within=within,
                fhir_priority=priority,
                source=_source(item, where),
            )
        )
    return tiers


def _parse_chains(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping) or not raw:
        raise RuleFileError("chains", "must name at least one escalation chain")
    chains: dict[str, tuple[str, ...]] = {}
    for name, steps in raw.items():
        where = f"chain {name}"
        if not isinstance(steps, list) or not steps:
            raise RuleFileError(where, "has no owner: list at least one step")
        for step in steps:
            if str(step) not in STEP_KINDS:
                raise RuleFileError(
                    where,
                    f"step {step} is not one of: {', '.join(sorted(STEP_KINDS))}",
                )
        if len(set(map(str, steps))) != len(steps):
            raise RuleFileError(where, "names a step twice")
        chains[str(name)] = tuple(str(s) for s in steps)
    return chains


def _parse_when(raw: Any, where: str, library: Any) -> Trigger:
    if not isinstance(raw, Mapping):
        raise RuleFileError(where, "needs when: what fires it")
    keys = set(raw)
    known = {"event", "instrument", "flag", "item", "at_least", "equals", "score", "rise_at_least"}
    unknown = keys - known
    if unknown:
        raise RuleFileError(where, f"when has unknown keys: {', '.join(sorted(map(str, unknown)))}")
    if "event" in raw:
        if keys != {"event"}:
            raise RuleFileError(where, "an event rule takes only when: {event: ...}")
        if raw["event"] not in EVENTS + OPTIONAL_EVENTS:
            raise RuleFileError(
                where, f"event must be one of {', '.join(EVENTS + OPTIONAL_EVENTS)}"
            )
        return Trigger(event=str(raw["event"]))
    code = str(raw.get("instrument") or "")
    if not code:
        raise RuleFileError(where, "when needs an instrument or an event")
    instrument = library.get(code) if library is not None else None
    if library is not None and instrument is None:
        raise RuleFileError(where, f"instrument {code} is not in the library")
    if "flag" in raw:
        if keys != {"instrument", "flag"}:
            raise RuleFileError(where, "a flag rule takes only instrument and flag")
        flag = str(raw["flag"])
        if instrument is not None and flag not in {f.id for f in instrument.flags}:
            raise RuleFileError(where, f"{code} has no flag {flag}")
        return Trigger(instrument=code, flag=flag)
    if "item" in raw:
        if keys - {"instrument", "item", "at_least", "equals"} or not (
            ("at_least" in raw) ^ ("equals" in raw)
        ):
            raise RuleFileError(where, "an item rule takes instrument, item and at_least or equals")
        item_id = str(raw["item"])
        value = _number(raw.get("at_least", raw.get("equals")), f"{where} value")
        if instrument is not None:
            item = instrument.item(item_id)
            if item is None:
                raise RuleFileError(where, f"{code} has no item {item_id}")
            if value not in item.values:
                allowed = ", ".join(str(v) for v in sorted(item.values))
                raise RuleFileError(where, f"{code} item {item_id} answers are {allowed}")
        if "equals" in raw:
            return Trigger(instrument=code, item=item_id, equals=int(value))
        return Trigger(instrument=code, item=item_id, at_least=value)
    if "score" in raw:
        if keys - {"instrument", "score", "at_least", "rise_at_least"} or not (
            ("at_least" in raw) ^ ("rise_at_least" in raw)
        ):
            raise RuleFileError(
                where, "a score rule takes instrument, score and at_least or rise_at_least"
            )
        score_id = str(raw["score"])
        if instrument is not None:
            score = instrument.score(score_id)
            if score is None:
                raise RuleFileError(where, f"{code} has no score {score_id}")
            value = _number(raw.get("at_least", raw.get("rise_at_least")), f"{where} value")
            if "at_least" in raw and not (score.min < value <= score.max):
                raise RuleFileError(
                    where, f"at_least must be above {score.min:g} and at most {score.max:g}"
                )
            if "rise_at_least" in raw and not (0 < value <= score.max - score.min):
                raise RuleFileError(where, "rise_at_least must be a positive number of points")
        if "at_least" in raw:
            return Trigger(
                instrument=code, score=score_id, at_least=_number(raw["at_least"], where)
            )
        return Trigger(
            instrument=code, score=score_id, rise_at_least=_number(raw["rise_at_least"], where)
        )
    raise RuleFileError(where, "when needs a flag, an item or a score")


def _check_critical_covered(rules: list[RiskRule], library: Any) -> None:
    """A critical answer is never silently stored: each must be some rule's trigger."""
    covered = {(r.when.instrument, r.when.flag) for r in rules if r.when.flag}
    for instrument in library.all():
        for flag in instrument.flags:
            if flag.kind == "critical" and (instrument.code, flag.id) not in covered:
                raise RuleFileError(
                    "rules",
                    f"{instrument.code}'s critical flag {flag.id} has no rule: every critical "
                    "answer must raise an alert",
                )


# --- evaluating a completed response ------------------------------------------------------------


@dataclass(frozen=True)
class Fired:
    rule: RiskRule
    tier: str
    evidence: dict[str, Any]


def evaluate_response(
    rules: RuleSet,
    *,
    instrument: Any,
    answers: Mapping[str, int],
    scores: Mapping[str, float | None],
    flag_ids: set[str],
    previous_scores: Mapping[str, float | None],
) -> list[Fired]:
    """Every rule a completed response meets, most serious first."""
    fired: list[Fired] = []
    for rule in rules.rules_for(instrument.code):
        when = rule.when
        evidence: dict[str, Any] | None = None
        if when.flag is not None:
            if when.flag in flag_ids:
                evidence = {"flag": when.flag, "items": flag_items(instrument, when.flag, answers)}
        elif when.item is not None:
            value = answers.get(when.item)
            if value is not None and (
                (when.equals is not None and value == when.equals)
                or (when.at_least is not None and value >= when.at_least)
            ):
                evidence = {"items": [{"item": when.item, "value": value}]}
        elif when.score is not None:
            value_now = scores.get(when.score)
            if value_now is not None and when.at_least is not None and value_now >= when.at_least:
                evidence = {"score": when.score, "value": value_now}
            elif value_now is not None and when.rise_at_least is not None:
                before = previous_scores.get(when.score)
                if before is not None and value_now - before >= when.rise_at_least:
                    evidence = {"score": when.score, "value": value_now, "previous": before}
        if evidence is not None:
            fired.append(Fired(rule, rule.tier, evidence))
    return sorted(fired, key=lambda f: -rules.rank(f.tier))


def flag_items(instrument: Any, flag_id: str, answers: Mapping[str, int]) -> list[dict[str, Any]]:
    """The answers a flag looks at, so the alert can show what the patient said."""
    flag = next(f for f in instrument.flags if f.id == flag_id)
    items = _items_in(flag.rule.spec)
    return [
        {"item": item, "value": answers.get(item)}
        for item in sorted(items, key=_item_order(instrument))
    ]


def _items_in(spec: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            if key in ("item",):
                found.add(str(value))
            elif key in ("any", "all", "unanswered", "items") and isinstance(value, list):
                found.update(str(v) for v in value if not isinstance(v, Mapping))
            found.update(_items_in(value))
    elif isinstance(spec, list):
        for value in spec:
            found.update(_items_in(value))
    return found


def _item_order(instrument: Any) -> Any:
    order = {item.id: index for index, item in enumerate(instrument.items)}
    return lambda item_id: order.get(item_id, len(order))


# --- the rules in force --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def default_rules_text() -> str:
    return DEFAULT_FILE.read_text(encoding="utf-8")


@lru_cache(maxsize=64)
def _compiled(text: str, library_id: int) -> RuleSet:
    return parse_rules(text, name="risk rules", library=library(), cover_critical=False)


def compile_rules(text: str) -> RuleSet:
    """Parse against the current instrument library (cached per text)."""
    return _compiled(text, id(library()))


def default_rules() -> RuleSet:
    return compile_rules(default_rules_text())

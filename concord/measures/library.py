"""The instrument library: questionnaires as data files, validated when they are loaded.

The file format is described in docs/instrument-format.md. A file that breaks a rule is
refused with a message naming the file and the problem; nothing half-loaded is ever used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from concord.categories import DataCategory
from concord.settings import get_settings

BUILT_IN = Path(__file__).parent / "instruments"
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-]{0,39}$")
FLAG_KINDS = ("critical", "positive", "note")
SEVERITIES = ("urgent", "acute")
SEXES = ("female", "male")


class InstrumentError(ValueError):
    """A content file that cannot be used, and why."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


Text = Mapping[str, str]


@dataclass(frozen=True)
class Answer:
    value: int
    code: str | None
    text: Text


@dataclass(frozen=True)
class Item:
    id: str
    text: Text
    answers: tuple[Answer, ...]
    loinc: str | None = None
    scored: bool = True
    reverse: bool = False
    required: bool = True
    show_if: Rule | None = None
    # The patient may explicitly decline this question (only where the instrument's source
    # says what a refusal means, e.g. the ASQ); a declined question stays unanswered.
    declinable: bool = False
    # "Check all that apply" (the AHC HRSN's question 2): each answer's value is a distinct
    # power of two, an optional value 0 is the exclusive "none of the above", and the stored
    # answer is the sum of the values checked (see docs/instrument-format.md).
    multiple: bool = False

    @property
    def values(self) -> frozenset[int]:
        # Asked for every answer checked; an item never changes, so worked out once.
        cached = self.__dict__.get("_values")
        if cached is None:
            if self.multiple:
                bits = [a.value for a in self.answers if a.value]
                sums = {0} if any(a.value == 0 for a in self.answers) else set()
                for mask in range(1, 1 << len(bits)):
                    sums.add(sum(b for n, b in enumerate(bits) if mask >> n & 1))
                cached = frozenset(sums)
            else:
                cached = frozenset(a.value for a in self.answers)
            object.__setattr__(self, "_values", cached)
        return cached

    @property
    def only_for_sex(self) -> str | None:
        """The sex this question is asked of, when its show_if is a bare {sex: ...}."""
        if self.show_if is not None and set(self.show_if.spec) == {"sex"}:
            return self.show_if.sex
        return None

    def chosen(self, value: int) -> tuple[Answer, ...]:
        """The answers a stored value stands for: one, or each box checked (`multiple`)."""
        if not self.multiple:
            answer = self.answer_for(value)
            return (answer,) if answer is not None else ()
        if value == 0:
            return tuple(a for a in self.answers if a.value == 0)
        return tuple(a for a in self.answers if a.value and value & a.value)

    @property
    def min_value(self) -> int:
        return min(a.value for a in self.answers)

    @property
    def max_value(self) -> int:
        return max(a.value for a in self.answers)

    def answer_for(self, value: int) -> Answer | None:
        for answer in self.answers:
            if answer.value == value:
                return answer
        return None


@dataclass(frozen=True)
class Band:
    min: float
    max: float
    code: str
    name: Text


@dataclass(frozen=True)
class MissingRule:
    rule: str  # incomplete or prorate
    max_missing: int
    rounding: str
    source: str


@dataclass(frozen=True)
class Score:
    id: str
    name: Text
    items: tuple[str, ...]
    min: float
    max: float
    multiply: float
    missing: MissingRule
    bands: tuple[Band, ...]
    loinc: str | None = None

    def band_for(self, value: float) -> Band | None:
        """The band a value falls in (a prorated value between two bands takes the lower)."""
        found = None
        for band in self.bands:
            if band.min <= value:
                found = band
        return found


@dataclass(frozen=True)
class Rule:
    """A condition on a response, compiled from the file into a function of the answers and
    the scores (see docs/instrument-format.md)."""

    spec: Mapping[str, Any]
    check: Callable[
        [Mapping[str, int], Mapping[str, float | None], str | None, frozenset[str] | None], bool
    ]
    sex: str | None = None  # set when the rule only applies to one sex


@dataclass(frozen=True)
class Flag:
    id: str
    kind: str
    name: Text
    rule: Rule
    source: str
    severity: str | None = None
    # The social-needs domain a positive screen is about (an SDOHCC category code such as
    # "food-insecurity"); only on instruments whose category is social_needs.
    domain: str | None = None


@dataclass(frozen=True)
class Target:
    score: str
    below: float | None = None
    drop_percent: float | None = None
    drop_points: float | None = None
    source: str = ""


@dataclass(frozen=True)
class Instrument:
    code: str
    version: str
    name: Text
    languages: tuple[str, ...]
    instructions: Text
    items: tuple[Item, ...]
    scores: tuple[Score, ...]
    flags: tuple[Flag, ...]
    recall_days: int | None
    loinc_panel: str | None
    source: Mapping[str, Any]
    licence: Mapping[str, Any]
    targets: Mapping[str, Target] = field(default_factory=dict)
    path: str = ""
    placeholder: bool = False
    # The kind of data a response to it is (concord.categories): what the disclosure rules
    # decide on for its responses, scores and schedules. Required in every file.
    category: DataCategory = DataCategory.mental_health

    def item(self, item_id: str) -> Item | None:
        return self.items_by_id.get(item_id)

    def score(self, score_id: str) -> Score | None:
        for score in self.scores:
            if score.id == score_id:
                return score
        return None

    @property
    def items_by_id(self) -> dict[str, Item]:
        cached = self.__dict__.get("_item_index")
        if cached is None:
            cached = {i.id: i for i in self.items}
            object.__setattr__(self, "_item_index", cached)
        return cached

    @property
    def main_score(self) -> Score | None:
        """The score charted and judged against targets: the first one, if any."""
        return self.scores[0] if self.scores else None

    @property
    def usable(self) -> bool:
        """False for a built-in placeholder whose wording a licensed clinic must supply."""
        return not self.placeholder

    @property
    def risk_items(self) -> tuple[str, ...]:
        """The items a critical flag reads (PHQ-9 item 9, the ASQ's questions): one of these
        left unanswered is never a negative answer."""
        cached = self.__dict__.get("_risk_items")
        if cached is None:
            found: set[str] = set()
            for flag in self.flags:
                if flag.kind == "critical":
                    _items_in(flag.rule.spec, found)
            cached = tuple(i.id for i in self.items if i.id in found)
            object.__setattr__(self, "_risk_items", cached)
        return cached

    def item_by_code(self, code: str) -> Item | None:
        """An item by its id or its LOINC code (EHRs send LOINC codes as linkId)."""
        found = self.items_by_id.get(code)
        if found is not None:
            return found
        by_loinc = self.__dict__.get("_loinc_index")
        if by_loinc is None:
            by_loinc = {i.loinc: i for i in reversed(self.items) if i.loinc}
            object.__setattr__(self, "_loinc_index", by_loinc)
        return by_loinc.get(code)


def _items_in(spec: Any, found: set[str]) -> None:
    """Every item id a rule's spec names, nested rules included."""
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            if key == "item":
                found.add(str(value))
            elif key in ("any", "all", "count", "unanswered") and isinstance(value, list):
                found.update(str(v) for v in value)
            elif key in ("all_of", "any_of") and isinstance(value, list):
                for sub in value:
                    _items_in(sub, found)
            elif key == "rule":
                _items_in(value, found)


def flag_items(instrument: Instrument, flag: Flag) -> set[str]:
    """The questions a flag reads: those its rule names, and those of the scores it reads."""
    found: set[str] = set()
    _items_in(flag.rule.spec, found)
    scores: set[str] = set()
    _scores_in(flag.rule.spec, scores)
    for score_id in scores:
        score = instrument.score(score_id)
        if score is not None:
            found.update(score.items)
    return found


def _scores_in(spec: Any, found: set[str]) -> None:
    if isinstance(spec, Mapping):
        if "score" in spec:
            found.add(str(spec["score"]))
        for key in ("all_of", "any_of"):
            for sub in spec.get(key) or []:
                _scores_in(sub, found)
        if "rule" in spec:
            _scores_in(spec["rule"], found)


# --- parsing --------------------------------------------------------------------------------


class _Reader:
    def __init__(self, path: Path, data: Any) -> None:
        self.path = path
        self.data = data
        self.languages: tuple[str, ...] = ()

    def fail(self, problem: str) -> InstrumentError:
        return InstrumentError(self.path, problem)

    def text(self, value: Any, where: str) -> Text:
        if not isinstance(value, dict):
            raise self.fail(f"{where} must give the text in each language: {self.languages}")
        missing = [lang for lang in self.languages if not str(value.get(lang) or "").strip()]
        if missing:
            raise self.fail(f"{where} has no text in: {', '.join(missing)}")
        return {lang: str(value[lang]) for lang in value if lang in self.languages}

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{where} must be a number")
        return value


def _compare(
    spec: Mapping[str, Any], where: str, fail: Callable[[str], Exception]
) -> Callable[[float], bool]:
    comparisons = {k: spec[k] for k in ("at_least", "at_most", "below", "equals") if k in spec}
    if len(comparisons) != 1:
        raise fail(f"{where} needs exactly one of at_least, at_most, below, equals")
    ((name, limit),) = comparisons.items()
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        raise fail(f"{where}: {name} must be a number")
    return {
        "at_least": lambda v: v >= limit,
        "at_most": lambda v: v <= limit,
        "below": lambda v: v < limit,
        "equals": lambda v: v == limit,
    }[name]


def compile_rule(
    spec: Any, where: str, item_ids: set[str], score_ids: set[str], fail: Callable[[str], Exception]
) -> Rule:
    if not isinstance(spec, dict):
        raise fail(f"{where} must be a rule (see docs/instrument-format.md)")

    def items_of(key: str) -> list[str]:
        ids = spec[key]
        if not isinstance(ids, list) or not ids:
            raise fail(f"{where}: {key} must be a list of item ids")
        ids = [str(i) for i in ids]
        unknown = [i for i in ids if i not in item_ids]
        if unknown:
            raise fail(f"{where} names items that do not exist: {', '.join(unknown)}")
        return ids

    if "sex" in spec:
        if spec["sex"] not in SEXES:
            raise fail(f"{where}: sex must be female or male")
        wanted = spec["sex"]
        if "rule" not in spec:
            # A bare {sex: female}: the patient's recorded sex is that one. Used by a show_if
            # for a question asked of one sex only (the TAPS-1 alcohol questions).
            return Rule(spec, lambda a, s, sex, asked=None: sex == wanted, wanted)
        inner = compile_rule(spec.get("rule"), f"{where}.rule", item_ids, score_ids, fail)
        return Rule(
            spec,
            lambda a, s, sex, asked=None: sex == wanted and inner.check(a, s, sex, asked),
            wanted,
        )
    if "all_of" in spec or "any_of" in spec:
        key = "all_of" if "all_of" in spec else "any_of"
        parts = spec[key]
        if not isinstance(parts, list) or not parts:
            raise fail(f"{where}: {key} must be a list of rules")
        rules = [
            compile_rule(p, f"{where}.{key}[{n}]", item_ids, score_ids, fail)
            for n, p in enumerate(parts)
        ]
        sexes = {r.sex for r in rules if r.sex}
        if len(sexes) > 1:
            raise fail(f"{where} mixes rules for different sexes")
        combine = all if key == "all_of" else any
        return Rule(
            spec,
            lambda a, s, sex, asked=None: combine(r.check(a, s, sex, asked) for r in rules),
            next(iter(sexes), None),
        )
    if "item" in spec:
        item = str(spec["item"])
        if item not in item_ids:
            raise fail(f"{where} names an item that does not exist: {item}")
        test = _compare(spec, where, fail)
        return Rule(spec, lambda a, s, sex, asked=None: item in a and test(a[item]))
    if "score" in spec:
        score = str(spec["score"])
        if score not in score_ids:
            raise fail(f"{where} names a score that does not exist: {score}")
        test = _compare(spec, where, fail)
        return Rule(spec, lambda a, s, sex, asked=None: s.get(score) is not None and test(s[score]))
    if "any" in spec:
        ids = items_of("any")
        test = _compare(spec, where, fail)
        return Rule(spec, lambda a, s, sex, asked=None: any(i in a and test(a[i]) for i in ids))
    if "all" in spec:
        ids = items_of("all")
        test = _compare(spec, where, fail)
        return Rule(spec, lambda a, s, sex, asked=None: all(i in a and test(a[i]) for i in ids))
    if "unanswered" in spec:
        ids = items_of("unanswered")
        # Holds when one of these questions applied to the response but was left unanswered
        # (e.g. the ASQ: a refusal to answer counts as a positive screen).
        return Rule(
            spec,
            lambda a, s, sex, asked=None: (
                asked is not None and any(i in asked and i not in a for i in ids)
            ),
        )
    if "count" in spec:
        ids = items_of("count")
        test = _compare(spec, where, fail)
        needed = spec.get("min_items")
        if isinstance(needed, bool) or not isinstance(needed, int) or needed < 1:
            raise fail(f"{where}: count needs min_items, a whole number of at least 1")

        def holds(a: Mapping[str, int], s: Any, sex: Any, asked: Any = None) -> bool:
            found = 0
            for i in ids:
                value = a.get(i)
                if value is not None and test(value):
                    found += 1
                    if found >= needed:
                        return True  # enough: the rest need not be looked at
            return False

        return Rule(spec, holds)
    raise fail(f"{where} is not a rule this version understands: {sorted(spec)}")


def parse_instrument(path: Path, data: Any) -> Instrument:
    r = _Reader(path, data)
    if not isinstance(data, dict):
        raise r.fail("is not a YAML mapping")
    if data.get("kind") != "instrument":
        raise r.fail("kind must be 'instrument'")
    code = str(data.get("code", ""))
    if not CODE_RE.match(code):
        raise r.fail("code must be 1-40 letters, digits or dashes, e.g. PHQ-9")
    version = str(data.get("version", "")).strip()
    if not version:
        raise r.fail("version is required")
    languages = data.get("languages")
    if not isinstance(languages, list) or not languages or "en" not in languages:
        raise r.fail("languages must be a list that includes en")
    r.languages = tuple(str(lang) for lang in languages)
    name = r.text(data.get("name"), "name")
    instructions = r.text(data.get("instructions"), "instructions")
    for key in ("source", "licence"):
        if not isinstance(data.get(key), dict) or not data[key]:
            raise r.fail(f"{key} is required: say where the content comes from and its terms")
    if not str(data["source"].get("citation", "")).strip():
        raise r.fail("source.citation is required")
    recall = data.get("recall_days")
    if recall is not None and (
        isinstance(recall, bool) or not isinstance(recall, int) or recall < 0
    ):
        raise r.fail("recall_days must be a whole number of days")
    category = _category(r, data.get("category"))

    answer_sets: dict[str, tuple[Answer, ...]] = {}
    raw_sets = data.get("answer_sets")
    if not isinstance(raw_sets, dict) or not raw_sets:
        raise r.fail("answer_sets must name at least one list of answers")
    for set_name, answers in raw_sets.items():
        if not isinstance(answers, list) or len(answers) < 2:
            raise r.fail(f"answer set {set_name} needs at least two answers")
        parsed = []
        for n, answer in enumerate(answers):
            where = f"answer set {set_name}[{n}]"
            if not isinstance(answer, dict):
                raise r.fail(f"{where} must be a mapping")
            value = answer.get("value")
            if isinstance(value, bool) or not isinstance(value, int):
                raise r.fail(f"{where}.value must be a whole number")
            parsed.append(
                Answer(
                    value,
                    str(answer["code"]) if answer.get("code") else None,
                    r.text(answer.get("text"), f"{where}.text"),
                )
            )
        values = [a.value for a in parsed]
        if len(set(values)) != len(values):
            raise r.fail(f"answer set {set_name} repeats a value")
        codes = [a.code for a in parsed if a.code]
        if len(set(codes)) != len(codes):
            raise r.fail(f"answer set {set_name} repeats a code")
        answer_sets[str(set_name)] = tuple(parsed)

    raw_items = data.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise r.fail("items must list the questions")
    item_ids = [str(i.get("id", "")) if isinstance(i, dict) else "" for i in raw_items]
    if any(not i for i in item_ids):
        raise r.fail("every item needs an id")
    if len(set(item_ids)) != len(item_ids):
        raise r.fail("item ids must be unique")
    id_set = set(item_ids)

    # Scores first (by id) so that show_if rules can be checked against known names.
    raw_scores = data.get("scores") or []
    if not isinstance(raw_scores, list):
        raise r.fail("scores must be a list (it may be empty: some screens have no score)")
    score_ids = {str(s.get("id", "")) for s in raw_scores if isinstance(s, dict)}

    items = []
    loincs: set[str] = set()
    for raw, item_id in zip(raw_items, item_ids, strict=True):
        where = f"item {item_id}"
        set_name = str(raw.get("answers", ""))
        if set_name not in answer_sets:
            raise r.fail(f"{where} uses an answer set that does not exist: {set_name!r}")
        loinc = str(raw["loinc"]) if raw.get("loinc") else None
        if loinc:
            if loinc in loincs:
                raise r.fail(f"{where} repeats LOINC code {loinc}")
            loincs.add(loinc)
        show_if = None
        if raw.get("show_if") is not None:
            show_if = compile_rule(raw["show_if"], f"{where}.show_if", id_set, score_ids, r.fail)
        multiple = bool(raw.get("multiple", False))
        if multiple:
            bits = [a.value for a in answer_sets[set_name] if a.value]
            if any(b & (b - 1) for b in bits) or len(set(bits)) != len(bits):
                raise r.fail(
                    f"{where} is multiple: its answers' values must be distinct powers of two "
                    "(and 0 for an exclusive 'none of the above')"
                )
            if bool(raw.get("scored", True)):
                raise r.fail(f"{where} is multiple, so it cannot be scored (scored: false)")
        items.append(
            Item(
                id=item_id,
                text=r.text(raw.get("text"), f"{where}.text"),
                answers=answer_sets[set_name],
                loinc=loinc,
                scored=bool(raw.get("scored", True)),
                reverse=bool(raw.get("reverse", False)),
                required=bool(raw.get("required", True)),
                show_if=show_if,
                declinable=bool(raw.get("declinable", False)),
                multiple=multiple,
            )
        )
    by_id = {i.id: i for i in items}

    scores = []
    for n, raw in enumerate(raw_scores):
        if not isinstance(raw, dict):
            raise r.fail(f"scores[{n}] must be a mapping")
        scores.append(_parse_score(r, raw, by_id))
    if len({s.id for s in scores}) != len(scores):
        raise r.fail("score ids must be unique")

    flags = []
    for n, raw in enumerate(data.get("flags") or []):
        where = f"flags[{n}]"
        if not isinstance(raw, dict) or not raw.get("id"):
            raise r.fail(f"{where} needs an id")
        kind = raw.get("kind")
        if kind not in FLAG_KINDS:
            raise r.fail(f"{where}.kind must be one of {', '.join(FLAG_KINDS)}")
        severity = raw.get("severity")
        if kind == "critical" and severity not in SEVERITIES:
            raise r.fail(f"{where} is critical, so it needs severity: urgent or acute")
        if not str(raw.get("source", "")).strip():
            raise r.fail(f"{where} needs a source")
        flags.append(
            Flag(
                id=str(raw["id"]),
                kind=str(kind),
                name=r.text(raw.get("name"), f"{where}.name"),
                rule=compile_rule(raw.get("rule"), f"{where}.rule", id_set, score_ids, r.fail),
                source=str(raw["source"]),
                severity=severity,
                domain=str(raw["domain"]) if raw.get("domain") else None,
            )
        )
    if len({f.id for f in flags}) != len(flags):
        raise r.fail("flag ids must be unique")

    targets: dict[str, Target] = {}
    kinds = {"remission": "below", "response": "drop_percent", "improvement": "drop_points"}
    for target_name, raw in (data.get("targets") or {}).items():
        where = f"targets.{target_name}"
        if target_name not in kinds:
            raise r.fail(f"{where}: only {', '.join(kinds)} targets are understood")
        if not isinstance(raw, dict) or str(raw.get("score")) not in {s.id for s in scores}:
            raise r.fail(f"{where} must name one of the scores")
        if not str(raw.get("source", "")).strip():
            raise r.fail(f"{where} needs a source")
        given = [k for k in ("below", "drop_percent", "drop_points") if raw.get(k) is not None]
        if given != [kinds[target_name]]:
            raise r.fail(f"{where} needs {kinds[target_name]} (and nothing else)")
        limit = r.number(raw[kinds[target_name]], f"{where}.{kinds[target_name]}")
        targets[target_name] = Target(
            str(raw["score"]), source=str(raw["source"]), **{kinds[target_name]: limit}
        )

    return Instrument(
        code=code,
        version=version,
        name=name,
        languages=r.languages,
        instructions=instructions,
        items=tuple(items),
        scores=tuple(scores),
        flags=tuple(flags),
        recall_days=recall,
        loinc_panel=str((data.get("loinc") or {}).get("panel") or "") or None,
        source=dict(data["source"]),
        licence=dict(data["licence"]),
        targets=targets,
        path=str(path),
        category=category,
    )


# A questionnaire holds data about the patient's health; the record-keeping categories
# (general) and the therapist's own notes are never what a questionnaire's answers are.
INSTRUMENT_CATEGORIES = tuple(
    c for c in DataCategory if c not in (DataCategory.general, DataCategory.psychotherapy_notes)
)


def _category(r: _Reader, raw: Any) -> DataCategory:
    """The instrument's data category: required, one of INSTRUMENT_CATEGORIES (an instrument
    the disclosure rules cannot place would be withheld from everyone)."""
    names = ", ".join(INSTRUMENT_CATEGORIES)
    if raw is None or not str(raw).strip():
        raise r.fail(f"category is required: one of {names}")
    try:
        category = DataCategory(str(raw))
    except ValueError:
        raise r.fail(f"category {raw} is not one of {names}") from None
    if category not in INSTRUMENT_CATEGORIES:
        raise r.fail(f"category {raw} is not one of {names}")
    return category


def _parse_score(r: _Reader, raw: Mapping[str, Any], by_id: Mapping[str, Item]) -> Score:
    score_id = str(raw.get("id", ""))
    where = f"score {score_id or '?'}"
    if not score_id:
        raise r.fail("every score needs an id")
    items = raw.get("items")
    if not isinstance(items, list) or not items:
        raise r.fail(f"{where}.items must list the items it adds up")
    items = [str(i) for i in items]
    for item_id in items:
        item = by_id.get(item_id)
        if item is None:
            raise r.fail(f"{where} names an item that does not exist: {item_id}")
        if not item.scored:
            raise r.fail(f"{where} adds item {item_id}, which is marked scored: false")
    if raw.get("method", "sum") != "sum":
        raise r.fail(f"{where}.method must be sum")
    multiply = r.number(raw.get("multiply", 1), f"{where}.multiply")
    low = r.number(raw.get("min"), f"{where}.min")
    high = r.number(raw.get("max"), f"{where}.max")
    # The range must be what the items can actually add up to: this catches a wrong value.
    expected_low = sum(by_id[i].min_value for i in items) * multiply
    expected_high = sum(by_id[i].max_value for i in items) * multiply
    if (low, high) != (expected_low, expected_high):
        raise r.fail(
            f"{where} says {low:g}-{high:g} but its items add up to "
            f"{expected_low:g}-{expected_high:g}"
        )
    missing = raw.get("missing")
    if not isinstance(missing, dict) or missing.get("rule") not in ("incomplete", "prorate"):
        raise r.fail(f"{where}.missing.rule must be incomplete or prorate")
    if not str(missing.get("source", "")).strip():
        raise r.fail(f"{where}.missing needs a source for its rule")
    max_missing = missing.get("max_missing", 0)
    if isinstance(max_missing, bool) or not isinstance(max_missing, int) or max_missing < 0:
        raise r.fail(f"{where}.missing.max_missing must be a whole number")
    if missing["rule"] == "prorate" and not 0 < max_missing < len(items):
        raise r.fail(f"{where}.missing: prorating needs max_missing between 1 and {len(items) - 1}")
    rounding = str(missing.get("rounding", "half_up"))
    if rounding not in ("half_up", "none"):
        raise r.fail(f"{where}.missing.rounding must be half_up or none")
    bands = []
    for n, band in enumerate(raw.get("bands") or []):
        bw = f"{where}.bands[{n}]"
        if not isinstance(band, dict) or not band.get("code"):
            raise r.fail(f"{bw} needs a code")
        bands.append(
            Band(
                r.number(band.get("min"), f"{bw}.min"),
                r.number(band.get("max"), f"{bw}.max"),
                str(band["code"]),
                r.text(band.get("name"), f"{bw}.name"),
            )
        )
    if bands:
        bands.sort(key=lambda b: b.min)
        if bands[0].min != low or bands[-1].max != high:
            raise r.fail(
                f"{where}: the bands must cover {low:g}-{high:g}; they cover "
                f"{bands[0].min:g}-{bands[-1].max:g}"
            )
        step = multiply if float(multiply).is_integer() else 0
        for before, after in zip(bands, bands[1:], strict=False):
            if after.min <= before.max:
                raise r.fail(f"{where}: bands {before.code} and {after.code} overlap")
            if step and after.min - before.max > step:
                raise r.fail(
                    f"{where}: there is a gap between bands {before.code} and {after.code}"
                )
            if not step and after.min != before.max:
                raise r.fail(f"{where}: bands {before.code} and {after.code} must meet")
    return Score(
        id=score_id,
        name=r.text(raw.get("name"), f"{where}.name"),
        items=tuple(items),
        min=low,
        max=high,
        multiply=multiply,
        missing=MissingRule(str(missing["rule"]), max_missing, rounding, str(missing["source"])),
        bands=tuple(bands),
        loinc=str(raw["loinc"]) if raw.get("loinc") else None,
    )


def load_file(path: Path) -> Instrument:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InstrumentError(path, f"cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise InstrumentError(path, f"is not valid YAML{where}") from None
    return parse_instrument(path, data)


@dataclass
class Library:
    instruments: dict[str, Instrument]

    def get(self, code: str) -> Instrument | None:
        return self.instruments.get(code) or self.instruments.get(code.upper())

    def all(self) -> list[Instrument]:
        return sorted(self.instruments.values(), key=lambda i: i.code)

    def by_loinc_panel(self, panel: str) -> Instrument | None:
        for instrument in self.instruments.values():
            if instrument.loinc_panel == panel:
                return instrument
        return None


def files_in(folders: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            found.extend(sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")))
    return found


def load_library(paths: Iterable[Path]) -> Library:
    """Load every file; refuse the whole set at the first broken file or repeated code."""
    instruments: dict[str, Instrument] = {}
    for path in paths:
        instrument = load_file(path)
        if instrument.code in instruments:
            raise InstrumentError(
                path,
                f"code {instrument.code} is already used by {instruments[instrument.code].path}",
            )
        instruments[instrument.code] = instrument
    return Library(instruments)


@lru_cache(maxsize=4)
def _library(extra: str | None) -> Library:
    built_in = load_library(files_in([BUILT_IN]))
    for code, instrument in built_in.instruments.items():
        if not instrument.licence.get("ships_text", True):
            # Concord ships only the structure of this one: its wording is licensed.
            built_in.instruments[code] = _replace(instrument, placeholder=True)
    if not extra:
        return built_in
    # A clinic's own files: new instruments, or its licensed copy of a built-in one (same code).
    own = load_library(files_in([Path(extra)]))
    return Library({**built_in.instruments, **own.instruments})


def _replace(instrument: Instrument, **changes: Any) -> Instrument:
    from dataclasses import replace

    return replace(instrument, **changes)


def library() -> Library:
    """The instruments this installation offers (built in, plus CONCORD_INSTRUMENTS_DIR)."""
    extra = get_settings().instruments_dir
    return _library(str(extra) if extra else None)

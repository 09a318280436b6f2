"""Scoring a response exactly as its instrument's file says: pure functions, no database.

`score_response()` takes the instrument, the answers (item id -> value) and the patient's
recorded sex (for sex-specific rules), and returns every score with its band, or why it could
not be computed, and every flag that holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from concord.measures.library import Flag, Instrument, Item, Score


@dataclass(slots=True)
class ScoreResult:
    id: str
    value: float | None  # None when the response is incomplete for this score
    band: str | None
    prorated: bool = False
    missing: tuple[str, ...] = ()
    reason: str | None = None  # why there is no value

    @property
    def complete(self) -> bool:
        return self.value is not None


@dataclass(slots=True)
class FlagResult:
    id: str
    kind: str
    severity: str | None
    # Set when the patient's sex is not recorded as female or male and the flag holds only
    # under the threshold for this sex.
    only_if_sex: str | None = None


@dataclass(slots=True)
class Scored:
    scores: dict[str, ScoreResult]
    flags: tuple[FlagResult, ...]
    asked: tuple[str, ...]  # the items that apply to this response (show_if)
    unanswered: tuple[str, ...] = field(default=())  # required items asked but not answered

    @property
    def critical(self) -> tuple[FlagResult, ...]:
        return tuple(f for f in self.flags if f.kind == "critical")

    def value(self, score_id: str) -> float | None:
        result = self.scores.get(score_id)
        return result.value if result else None


def validate_answers(instrument: Instrument, answers: Mapping[str, object]) -> dict[str, str]:
    """Problems with the answers themselves, by item id: unknown items, values not allowed."""
    problems: dict[str, str] = {}
    for item_id, value in answers.items():
        item = instrument.item(item_id)
        if item is None:
            problems[item_id] = f"is not a question of {instrument.code}"
            continue
        allowed = sorted(item.values)
        if isinstance(value, bool) or not isinstance(value, int):
            problems[item_id] = (
                f"must be a whole number, one of {', '.join(str(v) for v in allowed)}"
            )
        elif value not in item.values:
            problems[item_id] = (
                f"{value} is not an answer to this question; allowed: "
                f"{', '.join(str(v) for v in allowed)}"
            )
    return problems


@dataclass(slots=True)
class _Plan:
    """What scoring an instrument needs, worked out once: per score, each item with the base
    for reversing it (None when not reversed); which items are conditional."""

    scores: list[tuple[Score, list[tuple[str, int | None]]]]
    conditional: bool
    all_ids: frozenset[str]
    all_asked: tuple[str, ...]
    required: list[str]


def _plan(instrument: Instrument) -> _Plan:
    plan = instrument.__dict__.get("_scoring_plan")
    if plan is None:
        by_id = instrument.items_by_id
        plan = _Plan(
            scores=[
                (
                    score,
                    [
                        (i, by_id[i].max_value + by_id[i].min_value if by_id[i].reverse else None)
                        for i in score.items
                    ],
                )
                for score in instrument.scores
            ],
            conditional=any(i.show_if is not None for i in instrument.items),
            all_ids=frozenset(by_id),
            all_asked=tuple(i.id for i in instrument.items),
            required=[i.id for i in instrument.items if i.required],
        )
        object.__setattr__(instrument, "_scoring_plan", plan)
    return plan


def asked_items(
    instrument: Instrument, answers: Mapping[str, int], sex: str | None = None
) -> list[Item]:
    """The items that apply, given the answers so far (a show_if sees earlier answers) and the
    patient's recorded sex. A question asked of one sex only applies when the sex is not
    recorded as female or male: it is asked rather than left out, as sex-specific flags are
    shown with the sex they belong to."""
    known = sex if sex in ("female", "male") else None
    asked = []
    for item in instrument.items:
        rule = item.show_if
        if rule is None:
            asked.append(item)
            continue
        as_sex = known if (rule.sex is None or known is not None) else rule.sex
        if rule.check(answers, {}, as_sex, None):
            asked.append(item)
    return asked


def _round(value: float, rounding: str) -> float:
    if rounding == "half_up":
        return float(Decimal(str(value)).quantize(Decimal("1"), rounding=ROUND_HALF_UP))
    return value


def compute_score(
    score: Score,
    items: list[tuple[str, int | None]],
    answers: Mapping[str, int],
    asked: frozenset[str],
) -> ScoreResult:
    total = 0
    answered = 0
    missing: list[str] = []
    for item_id, reverse_base in items:
        value = answers.get(item_id)
        if value is None:
            if item_id in asked:
                missing.append(item_id)
            continue
        total += value if reverse_base is None else reverse_base - value
        answered += 1
    if not missing:
        value = total * score.multiply
        band = score.band_for(value)
        return ScoreResult(score.id, value, band.code if band else None)
    count = answered + len(missing)  # items that applied to this response
    rule = score.missing
    if rule.rule == "prorate" and len(missing) <= rule.max_missing and answered:
        value = _round(total * count / answered, rule.rounding) * score.multiply
        band = score.band_for(value)
        return ScoreResult(
            score.id, value, band.code if band else None, prorated=True, missing=tuple(missing)
        )
    if rule.rule == "prorate":
        reason = (
            f"{len(missing)} of {count} questions unanswered; the scoring rule allows "
            f"at most {rule.max_missing}"
        )
    else:
        reason = (
            f"{len(missing)} of {count} questions unanswered; this instrument is not "
            f"scored with missing answers"
        )
    return ScoreResult(score.id, None, None, missing=tuple(missing), reason=reason)


def _flags(
    flags: tuple[Flag, ...],
    answers: Mapping[str, int],
    values: Mapping[str, float | None],
    sex: str | None,
    asked: frozenset[str],
) -> list[FlagResult]:
    known_sex = sex if sex in ("female", "male") else None
    results = []
    for flag in flags:
        if flag.rule.sex is None or known_sex is not None:
            if flag.rule.check(answers, values, known_sex, asked):
                results.append(FlagResult(flag.id, flag.kind, flag.severity))
        elif flag.rule.check(answers, values, flag.rule.sex, asked):
            # Sex not recorded: show what the threshold for this sex would say.
            results.append(FlagResult(flag.id, flag.kind, flag.severity, flag.rule.sex))
    return results


def score_response(
    instrument: Instrument, answers: Mapping[str, int], sex: str | None = None
) -> Scored:
    plan = _plan(instrument)
    if plan.conditional:
        asked_ids = frozenset(i.id for i in asked_items(instrument, answers, sex))
        # Answers to questions that do not apply (a follow-up whose condition is unmet)
        # are not counted.
        answers = {k: v for k, v in answers.items() if k in asked_ids}
        asked = tuple(i.id for i in instrument.items if i.id in asked_ids)
    else:
        asked_ids = plan.all_ids
        asked = plan.all_asked
    scores = {
        score.id: compute_score(score, items, answers, asked_ids) for score, items in plan.scores
    }
    values = {k: r.value for k, r in scores.items()}
    unanswered = tuple(i for i in plan.required if i not in answers and i in asked_ids)
    return Scored(
        scores, tuple(_flags(instrument.flags, answers, values, sex, asked_ids)), asked, unanswered
    )

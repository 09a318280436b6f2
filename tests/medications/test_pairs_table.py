"""The rule set against a table of pairs that must and must not fire
(tests/fixtures/medications/pairs.csv, one row a case, each with why). Drugs are named as in
the vocabulary; every rule has at least two rows that fire and two that must not."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from concord.medications.rules import check, default_rules
from concord.medications.vocabulary import default_vocabulary

TABLE = Path(__file__).resolve().parents[1] / "fixtures" / "medications" / "pairs.csv"


def _rows() -> list[dict[str, str]]:
    with TABLE.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _rxcui(name: str) -> str:
    by_name = {i.name["en"]: i.rxcui for i in default_vocabulary().ingredients}
    assert name in by_name, f"{name} is not in the vocabulary"
    return by_name[name]


def test_the_table_covers_every_rule_both_ways():
    rows = _rows()
    assert {r["rule"] for r in rows} == {rule.id for rule in default_rules().rules}
    counts = Counter((r["rule"], r["fires"]) for r in rows)
    for rule in default_rules().rules:
        assert counts[(rule.id, "yes")] >= 2, rule.id
        assert counts[(rule.id, "no")] >= 2, rule.id
    assert all(r["fires"] in ("yes", "no") and r["why"] for r in rows)


@pytest.mark.parametrize(
    "row", _rows(), ids=lambda r: f"{r['rule']}:{r['drug_a']}+{r['drug_b'] or '-'}@{r['age']}"
)
def test_the_pair(row):
    drugs = [_rxcui(row["drug_a"])] + ([_rxcui(row["drug_b"])] if row["drug_b"] else [])
    age = int(row["age"]) if row["age"] else None
    found = check(drugs, age=age)
    fired = [f for f in found if f.rule_id == row["rule"]]
    assert bool(fired) is (row["fires"] == "yes"), f"{row['why']}: {[f.rule_id for f in found]}"
    if fired:
        assert set(fired[0].rxcuis) == set(drugs)
    # The order of the list changes nothing.
    assert check(drugs[::-1], age=age) == found

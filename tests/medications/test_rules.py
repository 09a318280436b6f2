"""The medication-safety rules and the checker (issue 19): every rule fires on its pair and not on
an unrelated one (a table of pairs that must and must not fire), the age rule at its boundary,
findings ordered by severity and deterministic, every rule sourced and cited in
docs/clinical-sources.md, and a realistic list gives the expected findings."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from concord.medications.rules import (
    DEFAULT_FILE,
    SEVERITIES,
    check,
    default_rules,
    dormant,
    parse_rules,
    unrecognized,
)
from concord.medications.vocabulary import (
    MedicationFileError,
    default_vocabulary,
    load_clinic_vocabulary,
)

ROOT = Path(__file__).resolve().parents[2]

# Ingredient RxCUIs from the shipped vocabulary (see vocabulary.yaml for their sources).
BUPRENORPHINE, METHADONE, NALTREXONE, NALOXONE = "1819", "6813", "7243", "7242"
OXYCODONE, TRAMADOL, FENTANYL = "7804", "10689", "4337"
CLONAZEPAM, DIAZEPAM, CARISOPRODOL, OLANZAPINE = "2598", "3322", "2101", "61381"
SERTRALINE, FLUOXETINE, VENLAFAXINE, AMITRIPTYLINE, MIRTAZAPINE = (
    "36437", "4493", "39786", "704", "15996",
)  # fmt: skip
BUPROPION, CITALOPRAM, ONDANSETRON, METHYLENE_BLUE = "42347", "2556", "26225", "6878"
CLOZAPINE, RISPERIDONE = "2626", "35636"
IBUPROFEN, LISINOPRIL, LOSARTAN, HCTZ, CAPTOPRIL = "5640", "29046", "52175", "5487", "1998"
CARBAMAZEPINE, VORICONAZOLE = "2002", "121243"
LITHIUM, GABAPENTIN, PREGABALIN = "6448", "25480", "187832"  # corroborated (2026-12-07)
VALSARTAN = "69749"  # unverified in the shipped vocabulary

# A clinic file that confirms valsartan (as a clinic would after checking RxNav): an ARB for
# the lithium rule once it is confirmed.
CLINIC = """
kind: medication-vocabulary
version: test
code_sources:
  test-check:
    citation: Test fixture standing for a clinic's own RxNav check
    url: https://mor.nlm.nih.gov/RxNav/
ingredients:
  - rxcui: "69749"
    name: {en: valsartan, es: valsartán}
    classes: [arb]
    class_sources: [lithium-label]
    code_check: confirmed
    code_sources: [test-check]
"""

# rule id: (a pair that must fire, a pair that must not fire). The must-not pair is unrelated,
# or the boundary the rule draws (e.g. MOUD is not "opioid + benzodiazepine").
TABLE = {
    "maoi-antidepressant": ((METHYLENE_BLUE, SERTRALINE), (METHYLENE_BLUE, BUPROPION)),
    "naltrexone-opioid-agonist": ((NALTREXONE, BUPRENORPHINE), (NALTREXONE, NALOXONE)),
    "opioid-benzodiazepine": ((OXYCODONE, CLONAZEPAM), (BUPRENORPHINE, CLONAZEPAM)),
    "opioid-cns-depressant": ((OXYCODONE, CARISOPRODOL), (OXYCODONE, CLONAZEPAM)),
    "moud-benzodiazepine-or-cns-depressant": ((BUPRENORPHINE, DIAZEPAM), (NALTREXONE, DIAZEPAM)),
    "methadone-qt-prolonging": ((METHADONE, CITALOPRAM), (METHADONE, SERTRALINE)),
    "maoi-opioid": ((METHYLENE_BLUE, FENTANYL), (METHYLENE_BLUE, LISINOPRIL)),
    "lithium-nsaid-acei-arb-thiazide": ((LITHIUM, IBUPROFEN), (LITHIUM, SERTRALINE)),
    "opioid-gabapentinoid": ((OXYCODONE, GABAPENTIN), (SERTRALINE, GABAPENTIN)),
    "opioid-cyp3a4-inhibitor": ((OXYCODONE, VORICONAZOLE), (TRAMADOL, VORICONAZOLE)),
    "opioid-serotonergic": ((TRAMADOL, SERTRALINE), (TRAMADOL, BUPROPION)),
    "serotonergic-combination": ((SERTRALINE, MIRTAZAPINE), (SERTRALINE, BUPROPION)),
    "moud-cyp3a4-inducer": ((METHADONE, CARBAMAZEPINE), (OXYCODONE, CARBAMAZEPINE)),
    "clozapine-monitoring": ((CLOZAPINE,), (RISPERIDONE,)),
    "antidepressant-under-25": ((SERTRALINE,), (CLOZAPINE,)),
}


@pytest.fixture(scope="module")
def vocabulary():
    return load_clinic_vocabulary(CLINIC, name="test-clinic.yaml")


@pytest.fixture(scope="module")
def rules(vocabulary):
    return parse_rules(DEFAULT_FILE.read_text(encoding="utf-8"), vocabulary=vocabulary)


def test_the_table_covers_every_rule():
    assert set(TABLE) == {rule.id for rule in default_rules().rules}


@pytest.mark.parametrize("rule_id", sorted(TABLE))
def test_every_rule_fires_on_its_pair_and_not_on_an_unrelated_one(rule_id, vocabulary, rules):
    fires, quiet = TABLE[rule_id]
    found = check(fires, age=20, vocabulary=vocabulary, rules=rules)
    assert rule_id in [f.rule_id for f in found], found
    hit = next(f for f in found if f.rule_id == rule_id)
    assert set(hit.rxcuis) == set(fires)
    # Either order of the list gives the same findings.
    assert check(fires[::-1], age=20, vocabulary=vocabulary, rules=rules) == found
    assert rule_id not in [
        f.rule_id for f in check(quiet, age=20, vocabulary=vocabulary, rules=rules)
    ]


def test_the_same_drug_twice_is_not_a_pair(vocabulary, rules):
    assert not [
        f for f in check([SERTRALINE, SERTRALINE], age=40, vocabulary=vocabulary, rules=rules)
    ]


def test_no_rule_is_dormant_in_the_shipped_vocabulary(vocabulary, rules):
    """Lithium, gabapentin and pregabalin are corroborated (docs/clinical-sources.md), so the
    lithium and gabapentinoid rules fire with the shipped vocabulary."""
    assert dormant() == []
    found = {f.rule_id for f in check([LITHIUM, IBUPROFEN, OXYCODONE, GABAPENTIN])}
    assert {"lithium-nsaid-acei-arb-thiazide", "opioid-gabapentinoid"} <= found
    assert dormant(rules, vocabulary) == []


def test_an_unverified_partner_fires_only_once_a_clinic_confirms_it(vocabulary, rules):
    assert not check([LITHIUM, VALSARTAN])
    found = check([LITHIUM, VALSARTAN], vocabulary=vocabulary, rules=rules)
    assert [f.rule_id for f in found] == ["lithium-nsaid-acei-arb-thiazide"]


def test_moud_with_a_gabapentinoid_is_the_never_block_finding():
    """Buprenorphine or methadone with gabapentin or pregabalin is the FDA 2017 MOUD finding
    (caution, do not withhold), not the opioid-gabapentinoid one, as for benzodiazepines."""
    for moud in (BUPRENORPHINE, METHADONE):
        for gabapentinoid in (GABAPENTIN, PREGABALIN):
            found = [f.rule_id for f in check([moud, gabapentinoid])]
            assert found == ["moud-benzodiazepine-or-cns-depressant"], (moud, gabapentinoid)
    assert [f.rule_id for f in check([TRAMADOL, PREGABALIN])] == ["opioid-gabapentinoid"]


@pytest.mark.parametrize(("age", "fires"), [(17, True), (24, True), (25, False), (60, False)])
def test_the_antidepressant_rule_fires_below_25_only(age, fires):
    found = [f.rule_id for f in check([FLUOXETINE], age=age)]
    assert ("antidepressant-under-25" in found) is fires


def test_without_an_age_the_age_rule_does_not_fire():
    assert check([FLUOXETINE]) == []


def test_a_realistic_list_gives_the_expected_findings():
    """Buprenorphine from the addiction prescriber, clonazepam newly reported, sertraline from
    the psychiatrist, tramadol from primary care."""
    found = check([BUPRENORPHINE, CLONAZEPAM, SERTRALINE, TRAMADOL], age=34)
    assert [(f.severity, f.rule_id, f.rxcuis) for f in found] == [
        ("high", "moud-benzodiazepine-or-cns-depressant", (BUPRENORPHINE, CLONAZEPAM)),
        ("high", "opioid-benzodiazepine", (TRAMADOL, CLONAZEPAM)),
        ("moderate", "opioid-serotonergic", (TRAMADOL, SERTRALINE)),
        ("moderate", "opioid-serotonergic", (BUPRENORPHINE, SERTRALINE)),
    ]
    moud = found[0]
    assert moud.never_block and "do not withhold" in moud.title["en"].lower()
    assert "2017-09-20" in moud.source.citation
    assert not found[1].never_block
    # The same list at 22 adds the monitoring finding, last.
    young = check([BUPRENORPHINE, CLONAZEPAM, SERTRALINE, TRAMADOL], age=22)
    assert young[:-1] == found and young[-1].rule_id == "antidepressant-under-25"


def test_findings_are_ordered_by_severity_and_deterministic(vocabulary, rules):
    everything = sorted({code for pairs in TABLE.values() for pair in pairs for code in pair})
    found = check(everything, age=20, vocabulary=vocabulary, rules=rules)
    ranks = [SEVERITIES.index(f.severity) for f in found]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(SEVERITIES)
    assert check(everything[::-1], age=20, vocabulary=vocabulary, rules=rules) == found
    assert len({(f.rule_id, f.rxcuis) for f in found}) == len(found)


def test_medications_may_be_codes_mappings_or_objects():
    class Med:
        rxcui = OXYCODONE

    found = check([Med(), {"rxcui": CLONAZEPAM}])
    assert [f.rule_id for f in found] == ["opioid-benzodiazepine"]


def test_unknown_and_unverified_codes_are_reported_not_guessed():
    assert unrecognized([SERTRALINE, "999999", VALSARTAN, {"rxcui": ""}]) == [VALSARTAN, "999999"]
    assert check(["999999", SERTRALINE], age=40) == []


def test_every_rule_has_a_primary_source_cited_in_the_docs():
    sources = (ROOT / "docs" / "clinical-sources.md").read_text(encoding="utf-8")
    for rule in default_rules().rules:
        assert rule.source.url.startswith("https://"), rule.id
        assert len(rule.source.citation) > 20, rule.id
        assert rule.title.get("es"), rule.id
        assert f"`{rule.id}`" in sources, f"{rule.id} is not cited in docs/clinical-sources.md"


def _rules_with(change) -> str:
    data = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    change(data["rules"][0])
    return yaml.safe_dump(data, allow_unicode=True)


MAOI = "rule maoi-antidepressant"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.update(severity="severe"), "rule maoi-antidepressant.severity"),
        (lambda r: r.pop("source"), "rule maoi-antidepressant.source"),
        (lambda r: r["source"].update(url="www.fda.gov"), f"{MAOI}.source.url"),
        (lambda r: r.pop("action"), "rule maoi-antidepressant.action"),
        (lambda r: r["pair"]["a"].update(classes=["happy_pill"]), f"{MAOI}.pair.a.classes"),
        (lambda r: r["pair"]["b"].update(rxcuis=["123456789"]), f"{MAOI}.pair.b.rxcuis"),
        (lambda r: r["pair"]["b"].update(unless=["x"]), f"{MAOI}.pair.b.unless"),
        (lambda r: r.update(single={"classes": ["maoi"]}), "rule maoi-antidepressant"),
        (lambda r: r.update(id="MAOI"), "rules[1].id"),
        (lambda r: r.update(never_block="yes"), f"{MAOI}.never_block"),
    ],
)
def test_a_bad_rule_file_is_refused_naming_the_field(change, field):
    with pytest.raises(MedicationFileError) as caught:
        parse_rules(_rules_with(change), name="rules.yaml")
    assert (caught.value.file, caught.value.where) == ("rules.yaml", field), str(caught.value)


def test_a_bad_age_is_refused():
    data = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    data["rules"][-1]["single"]["age_under"] = "young"
    with pytest.raises(MedicationFileError) as caught:
        parse_rules(yaml.safe_dump(data), name="rules.yaml")
    assert caught.value.where == "rule antidepressant-under-25.single.age_under"


def test_checking_30_medications_takes_under_50_ms():
    codes = [i.rxcui for i in default_vocabulary().ingredients if i.verified][:30]
    assert len(codes) == 30
    check(codes, age=20)  # warm the caches
    runs = 20
    started = time.perf_counter()
    for _ in range(runs):
        check(codes, age=20)
    assert (time.perf_counter() - started) / runs < 0.050

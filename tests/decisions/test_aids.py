"""Decision aids as content: every shipped file loads, states no figure without a source, and
reads plainly; a broken file is refused with the place named; a clinic's own file is offered."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from concord.decisions import aids as da
from concord.decisions.readability import english, spanish, spanish_syllables

SHIPPED = da.load_aids(da.files_in([da.BUILT_IN]))


def test_the_four_decisions_of_the_issue_are_shipped():
    assert set(SHIPPED) >= {
        "depression-treatment",
        "anxiety-treatment",
        "opioid-use-medications",
        "alcohol-use",
    }
    opioid = SHIPPED["opioid-use-medications"]
    assert {o.id for o in opioid.options} == {
        "buprenorphine",
        "methadone",
        "naltrexone_er",
        "no_medication",
    }


@pytest.mark.parametrize("aid_id", sorted(SHIPPED))
def test_every_figure_names_a_source_that_is_listed(aid_id):
    aid = SHIPPED[aid_id]
    for option in aid.options:
        for name, text in option.attributes.items():
            if any(ch.isdigit() for t in text.values() for ch in t):
                assert option.sources.get(name), f"{option.id}.{name} states a figure"
                for sid in option.sources[name]:
                    assert aid.sources[sid].url.startswith("http")


@pytest.mark.parametrize("aid_id", sorted(SHIPPED))
def test_patient_facing_english_reads_at_about_grade_8(aid_id):
    """Flesch-Kincaid on every text long enough to measure (10 words or more): at most grade
    9 each, and grade 8 or below for the aid as a whole. Short labels are not measured alone:
    the formula is unreliable on a few words."""
    aid = SHIPPED[aid_id]
    for where, text in aid.texts():
        reading = english(text["en"])
        if reading.words >= 10:
            assert reading.score <= 9.0, f"{aid_id} {where}: grade {reading.score}"
    whole = english(" ".join(t["en"] for _, t in aid.texts()))
    assert whole.score <= 8.0


@pytest.mark.parametrize("aid_id", sorted(SHIPPED))
def test_patient_facing_spanish_reads_easily(aid_id):
    """Fernandez-Huerta reading ease: 55 or more for each text of 10 words or more, 65 or more
    for the whole aid (60-70 is 'normal'; higher is easier)."""
    aid = SHIPPED[aid_id]
    for where, text in aid.texts():
        reading = spanish(text["es"])
        if reading.words >= 10:
            assert reading.score >= 55.0, f"{aid_id} {where}: ease {reading.score}"
    assert spanish(" ".join(t["es"] for _, t in aid.texts())).score >= 65.0


def test_the_readability_formulas_tell_plain_from_hard_text():
    plain = english("You take a pill each day. It can help in a few weeks.")
    hard = english(
        "Pharmacological augmentation demonstrates considerable heterogeneity in "
        "tolerability across randomized populations."
    )
    assert plain.score < 4 < 14 < hard.score
    assert spanish_syllables("medicamento") == 5
    assert spanish_syllables("país") == 2  # an accented weak vowel breaks the diphthong
    assert spanish_syllables("bueno") == 2
    assert (
        spanish("Usted toma una pastilla cada día.").score
        > spanish(
            "Los medicamentos antidepresivos demuestran heterogeneidad farmacológica considerable."
        ).score
    )


def _write(tmp_path: Path, data: dict, name: str = "aid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _raw() -> dict:
    with open(SHIPPED["depression-treatment"].path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["options"][0]["attributes"].pop("if_stop"), "options[0].attributes.if_stop"),
        (lambda d: d["options"][1]["name"].pop("es"), "options[1].name.es"),
        (lambda d: d["values"][0]["fits"].pop("therapy"), "values[0].fits.therapy"),
        (lambda d: d["values"][0]["fits"]["therapy"].update(fit="best"), "fit: must be good"),
        (lambda d: d["options"][0].update(sources={}), "states a figure but names no source"),
        (
            lambda d: d["options"][0]["sources"].update(works=["nowhere"]),
            "nowhere is not under sources",
        ),
        (lambda d: d["options"][0]["intervention"].update(category="x"), "intervention.category"),
        (lambda d: d.update(last_reviewed="soon"), "last_reviewed"),
        (lambda d: d.update(options=d["options"][:1]), "options: must be a list of 2 to 6"),
        (lambda d: d["sources"][0].pop("url"), "sources[0].url"),
    ],
)
def test_a_broken_file_is_refused_naming_the_place(tmp_path, change, where):
    data = _raw()
    change(data)
    with pytest.raises(da.AidError) as caught:
        da.load_file(_write(tmp_path, data))
    assert where in caught.value.problem


def test_a_file_that_is_not_yaml_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: decision_aid\noptions: [\n", encoding="utf-8")
    with pytest.raises(da.AidError, match="not valid YAML"):
        da.load_file(path)


def test_a_clinics_own_aid_is_offered_and_a_broken_one_refuses_the_set(tmp_path):
    data = copy.deepcopy(_raw())
    data["id"] = "clinic-own-aid"
    data["title"] = {"en": "Our clinic's aid", "es": "La guía de nuestra clínica"}
    _write(tmp_path, data, "own.yaml")
    aids = da._aids.__wrapped__(str(tmp_path))
    assert "clinic-own-aid" in aids and "depression-treatment" in aids
    data["options"][0]["attributes"].pop("works")
    _write(tmp_path, data, "own.yaml")
    with pytest.raises(da.AidError, match="own.yaml"):
        da._aids.__wrapped__(str(tmp_path))

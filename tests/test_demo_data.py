"""The demo's content is data (concord/demo_data/*.yaml, issue 17): a file that does not fit is
refused with its name and the field, and the files ship in the wheel. The synthetic population
builds the same rows as before its builder was split (tests/fixtures/synth_summary.json, written
from main); the demo's own comparison is in tests/test_demo.py, on the demo built there."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from concord import demo_content
from concord.demo_content import DATA_DIR, DemoDataError
from tests import demo_summary
from tests.conftest import fresh_database

FIXTURES = Path(__file__).parent / "fixtures"


def _expected(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def same_summary(built: dict, expected: dict) -> None:
    # Part by part, so a failure says which part moved.
    for part in ("patients", "counts", "plan_items", "scores"):
        assert built[part] == expected[part], part


def test_the_synthetic_population_builds_the_same_data_as_before(database_url, tmp_path):
    with fresh_database(database_url, tmp_path, "synth_data") as url:
        demo_summary.build_synth(url)
        built = demo_summary.summary(url)
    expected = _expected("synth_summary.json")
    assert len(expected["patients"]) == demo_summary.SYNTH_PATIENTS
    same_summary(built, expected)


def test_every_demo_file_loads_and_every_patient_has_a_plan_story():
    content = demo_content.content()
    assert len(content.patients) == 26
    assert {p[7] for p in content.patients} == set(content.profiles)
    assert set(content.staff) == set(content.clinics)
    assert {e.do for e in content.safety_events} == set(demo_content.SAFETY_STEPS)


@pytest.fixture
def data_copy(tmp_path) -> Path:
    copy = tmp_path / "demo_data"
    shutil.copytree(DATA_DIR, copy)
    return copy


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            "plans/depression.yaml",
            "  priority: high",
            "  priority: urgent",
            "demo_data/plans/depression.yaml: goals.0.priority:",
        ),
        (
            "plans/anxiety.yaml",
            "  responsible: therapist",
            "  responsible: wizard",
            "demo_data/plans/anxiety.yaml: interventions.0.responsible:",
        ),
        (
            "patients.yaml",
            "  birth_date: 1984-03-14",
            "  birth_date: someday",
            "demo_data/patients.yaml: patients.0.birth_date:",
        ),
        (
            "patients.yaml",
            "  stage: active",
            "  stage: finished",
            "demo_data/patients.yaml: patients.0.stage:",
        ),
        (
            "patients.yaml",
            "  clinic: north",
            "  clinic: east",
            "demo_data/patients.yaml: patients.0.clinic: no clinic 'east'",
        ),
        (
            "patients.yaml",
            "  plan: depression\n",
            "  plan: grief\n",
            "demo_data/patients.yaml: patients.0.plan: no plans/grief.yaml",
        ),
        (
            "patients.yaml",
            "  gender: male\n",
            "  gender: male\n  shoe_size: 9\n",
            "demo_data/patients.yaml: patients.0.shoe_size: Extra inputs",
        ),
        (
            "clinic.yaml",
            "  - role: nurse\n    name: Erin Walsh\n",
            "  - role: nurse\n    name: Erin Walsh\n  - role: nurse\n    name: Erin Again\n",
            "demo_data/clinic.yaml: clinics.0.staff: Value error, each role is held once",
        ),
        ("team_words.yaml", "spanish:", "spanish: [", "demo_data/team_words.yaml: cannot be read"),
        (
            "safety.yaml",
            "- {do: escalate, minutes_ago: 29}",
            "- {do: escalate}",
            "demo_data/safety.yaml: events.7: Value error, give either `day` and `hour`",
        ),
        (
            "safety.yaml",
            "  reason: Seeing the ocean with Jade this summer\n",
            "",
            "demo_data/safety.yaml: events.3: Value error, `add_reason_to_safety_plan` needs "
            "`reason`",
        ),
        (
            "safety.yaml",
            "- {do: acknowledge, patient: Marcus Lee,",
            "- {do: acknowledge, patient: Marcus Leigh,",
            "demo_data/safety.yaml: events.0.patient: no patient 'Marcus Leigh'",
        ),
        (
            "safety.yaml",
            "  by: north.nurse\n",
            "  by: north.surgeon\n",
            "demo_data/safety.yaml: events.6.by: no 'north.surgeon' in clinic.yaml",
        ),
        (
            "safety.yaml",
            "- {do: escalate, minutes_ago: 29}",
            "- {do: panic, minutes_ago: 29}",
            "demo_data/safety.yaml: events.7.do:",
        ),
        (
            "ehr.yaml",
            "- patient: Jamal Carter\n",
            "- patient: Jamal Carver\n",
            "demo_data/ehr.yaml: records.0.patient: no patient 'Jamal Carver'",
        ),
        (
            "ehr.yaml",
            "  depression_visit_day: -300\n",
            "  depression_visit_day: -30\n",
            "demo_data/ehr.yaml: records.0.depression_visit_day:",
        ),
        (
            "ehr.yaml",
            "[60, 4]]",
            "[60, 31]]",
            "demo_data/ehr.yaml: records.0: Value error, phq9: a total is 0 to 27",
        ),
        (
            "ehr.yaml",
            "  screening_visit_day: 20\n  screen: negative\n",
            "  screening_visit_day: 20\n",
            "demo_data/ehr.yaml: records.0: Value error, give `screening_visit_day` and `screen`",
        ),
    ],
)
def test_a_demo_file_that_does_not_fit_is_refused_naming_the_file_and_field(
    data_copy, file, old, new, message
):
    _edit(data_copy / file, old, new)
    with pytest.raises(DemoDataError) as refused:
        demo_content.content(data_copy)
    assert str(refused.value).startswith(message), str(refused.value)


def test_the_wheel_takes_every_demo_file():
    """pyproject.toml's package data names every file in demo_data/ (a wheel or a fresh clone
    installed without them would fail at `concord demo`)."""
    import tomllib
    from fnmatch import fnmatch

    root = DATA_DIR.parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["concord"]
    files = [p for p in DATA_DIR.rglob("*") if p.is_file()]
    assert len(files) >= 5
    for path in files:
        inside = path.relative_to(DATA_DIR.parent).as_posix()
        assert any(fnmatch(inside, p) for p in patterns), inside


def test_the_unchanged_copy_loads(data_copy):
    """The refusals above come from the edit, not from loading a copy."""
    assert demo_content.content(data_copy).patients == demo_content.content().patients

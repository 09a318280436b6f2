"""Wording Concord does not ship: a clinic's installed SURE text replaces the item names on the
decision pages; with a licensed CollaboRATE copy the patient is asked after the visit and the
clinic's top-score rate appears only from 25 complete answers."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from concord.decisions import reports
from concord.decisions import service as ds
from concord.measures import library as library_module
from concord.measures import service as measures
from concord.settings import get_settings
from tests.conftest import NOW, commit
from tests.factories import acc_for, create_plan

SURE_FILE = """
kind: instrument
code: SURE
category: decisions
version: "test"
name: {en: "SURE (clinic's licensed copy, test wording)"}
languages: [en]
instructions: {en: "Test wording only."}
source: {citation: "Test fixture", url: "https://example.org/sure", text: "test"}
licence: {holder: "Test", terms: "test", url: "https://example.org", ships_text: true}
answer_sets:
  yn:
    - {value: 1, text: {en: "Yes"}}
    - {value: 0, text: {en: "No"}}
items:
  - {id: sure, answers: yn, text: {en: "Installed wording one?"}}
  - {id: understand, answers: yn, text: {en: "Installed wording two?"}}
  - {id: risk_benefit, answers: yn, text: {en: "Installed wording three?"}}
  - {id: encouragement, answers: yn, text: {en: "Installed wording four?"}}
scores:
  - {id: total, name: {en: "Total"}, items: [sure, understand, risk_benefit, encouragement],
     method: sum, min: 0, max: 4, missing: {rule: incomplete, source: "test"}}
"""


@pytest.fixture
def installed(tmp_path, monkeypatch):
    own = tmp_path / "instruments"
    own.mkdir()
    (own / "sure.yaml").write_text(SURE_FILE)
    built_in = Path(library_module.__file__).parent / "instruments" / "collaborate.yaml"
    (own / "collaborate.yaml").write_text(
        built_in.read_text().replace("ships_text: false", "ships_text: true")
    )
    monkeypatch.setenv("CONCORD_INSTRUMENTS_DIR", str(own))
    get_settings.cache_clear()
    library_module._library.cache_clear()
    yield
    get_settings.cache_clear()
    library_module._library.cache_clear()


def test_without_the_licensed_files_only_the_item_names_show(client, people, sign_in, session):
    acc = acc_for(session, people.patient_user, people.patient)
    decision = ds.start(session, access=acc, aid_id="depression-treatment")
    commit(session)
    sign_in("pat@patients.example.org")
    page = client.get(f"/my/decisions/{decision.id}")
    assert "Sure of myself" in page.text and "Installed wording one?" not in page.text
    assert reports.collaborate_ready() is False


def test_an_installed_sure_wording_is_shown(installed, client, people, sign_in, session):
    library_module.library()
    acc = acc_for(session, people.patient_user, people.patient)
    decision = ds.start(session, access=acc, aid_id="depression-treatment")
    commit(session)
    sign_in("pat@patients.example.org")
    page = client.get(f"/my/decisions/{decision.id}")
    assert "Installed wording one?" in page.text and "Sure of myself" not in page.text


def _decided(session, people, cm):
    acc = acc_for(session, people.patient_user, people.patient)
    decision = ds.start(session, access=acc, aid_id="anxiety-treatment")
    ds.record_outcome(
        session,
        access=acc_for(session, cm, people.patient),
        decision_id=decision.id,
        outcome=ds.Outcome(None, None, ["medication", "therapy"], NOW.date(), []),
    )
    commit(session)
    return decision


def _answer(session, people, decision, values):
    acc = acc_for(session, people.patient_user, people.patient)
    target = reports.start_collaborate(session, access=acc, decision_id=decision.id)
    response_id = uuid.UUID(target.rsplit("/", 1)[1])
    response = measures.get_response(session, access=acc, response_id=response_id)
    measures.submit(
        session,
        access=acc,
        response_id=response_id,
        answers={"1": values[0], "2": values[1], "3": values[2]},
        version=response.version,
    )
    commit(session)


def test_collaborate_is_offered_after_the_visit_and_reported_from_25(
    installed, client, people, sign_in, session
):
    create_plan(session, people, activate=True)
    decision = _decided(session, people, people.care_manager)
    assert reports.collaborate_state(session, decision) == "offer"
    sign_in("pat@patients.example.org")
    page = client.get(f"/my/decisions/{decision.id}")
    assert "Answer three questions" in page.text
    _answer(session, people, decision, (4, 4, 4))
    assert reports.collaborate_state(session, decision) == "done"
    report = reports.collaborate_report(session, by=people.care_manager)
    (clinician,) = report.clinicians
    assert (clinician.encounters, clinician.top, clinician.percent) == (1, 1, None)  # too few
    for n in range(24):
        d = _decided(session, people, people.care_manager)
        _answer(session, people, d, (4, 4, 4) if n % 2 else (4, 3, 4))
    report = reports.collaborate_report(session, by=people.care_manager)
    (clinician,) = report.clinicians
    assert clinician.encounters == 25 and clinician.top == 13
    assert clinician.percent == 52.0
    (clinic,) = report.clinics
    assert clinic.name == "North Clinic" and clinic.percent == 52.0
    sign_in("cara@test.example.org")
    assert "52.0%" in client.get("/decisions/collaborate").text

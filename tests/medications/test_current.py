"""The seam for the current medication list (concord.medications.current): its promise to the
checks (the CDS Hooks service today), whatever fills it."""

from __future__ import annotations

import pytest

from concord.actions import medications as act
from concord.medications.current import CurrentMedication, current_medications
from concord.medications.schemas import MedicationIn, ReportedIn
from tests.factories import acc_for


def test_it_answers_for_the_access_it_is_given(session, people):
    access = acc_for(session, people.care_manager, people.patient)
    listed = current_medications(session, access=access, patient_id=people.patient.id)
    assert isinstance(listed, list)
    assert all(isinstance(m, CurrentMedication) and m.rxcui for m in listed)
    assert all(m.status in ("active", "on-hold") for m in listed)
    assert listed == sorted(listed, key=lambda m: (m.rxcui, m.record))


def test_it_refuses_a_patient_other_than_the_accesss(session, people):
    access = acc_for(session, people.care_manager, people.patient)
    with pytest.raises(ValueError):
        current_medications(session, access=access, patient_id=people.other_patient.id)


def test_it_lists_the_stored_active_and_on_hold_medications(session, people):
    """The CDS Hooks check sees what the team entered and what the patient reported; a
    stopped medication is not current."""
    team = acc_for(session, people.care_manager, people.patient)
    me = acc_for(session, people.patient_user, people.patient)
    act.add(session, access=team, data=MedicationIn(rxcui="1819", dose="8 mg"))
    act.report_new(session, access=me, data=ReportedIn(rxcui="2598"))
    listed = current_medications(session, access=team, patient_id=people.patient.id)
    assert [(m.rxcui, m.kind, m.status) for m in listed] == [
        ("1819", "MedicationRequest", "active"),
        ("2598", "MedicationStatement", "active"),
    ]

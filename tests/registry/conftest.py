"""Helpers for the registry tests: enrolled patients with contacts and scores."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from concord.measures import service as measures
from concord.registry import service as reg
from tests.conftest import commit
from tests.factories import acc_for, create_patient, create_plan


@pytest.fixture
def plan(session, people):
    created = create_plan(session, people, activate=True)
    commit(session)
    return created


def enroll(session, people, patient=None, *, program="depression", started_on=None, by=None):
    episode = reg.enroll(
        session,
        access=acc_for(session, by or people.care_manager, patient or people.patient),
        data=reg.Enrolment(program=program, started_on=started_on),
    )
    commit(session)
    return episode


def contact(session, people, kind, on: date, minutes=20, *, patient=None, by=None, mode="phone"):
    made = reg.log_contact(
        session,
        access=acc_for(session, by or people.care_manager, patient or people.patient),
        data=reg.ContactIn(kind=kind, mode=mode, minutes=minutes, occurred_on=on),
    )
    commit(session)
    return made


def phq9(session, people, total: int, *, patient=None):
    answers = {}
    rest = total
    for i in range(1, 10):
        value = min(3, rest) if i < 9 else 0
        answers[str(i)] = value
        rest -= value
    assert rest == 0
    if total:
        answers["difficulty"] = 1
    done = measures.record_response(
        session,
        access=acc_for(session, people.care_manager, patient or people.patient),
        instrument_code="PHQ-9",
        submission=measures.Submission(answers=answers, mode=measures.Mode.phone),
    )
    commit(session)
    return done


def more_patients(session, people, count: int, start: int = 0):
    made = []
    for n in range(start, start + count):
        patient = create_patient(
            session,
            people.org,
            people.north,
            by=people.care_manager,
            given=f"Test{n}",
            family=f"Person{n}",
            mrn=f"R-{n}",
            email=None,
        )
        made.append(patient)
    commit(session)
    return made


TODAY = date(2026, 11, 22)  # the test clock's date in the personas' time zone (Chicago)


def days_ago(n: int) -> date:
    return TODAY - timedelta(days=n)

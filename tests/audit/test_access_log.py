"""The patient's access log ("who has looked at my record") in the patient's words: who (name
and role), what (plain words, never an internal name), when (the clinic's local day), with
repeated views grouped and the system named as "Concord (automatic)"."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from concord.audit.labels import ACTION_LABELS, OBJECT_LABELS
from concord.audit.service import record
from tests.conftest import commit

PATIENT = "pat@patients.example.org"
ROOT = Path(__file__).resolve().parents[2] / "concord"

# Dec 6, 6:40 PM in Chicago (the test organization's zone) is already Dec 7 in UTC.
EVENING = datetime(2026, 12, 7, 0, 40, tzinfo=UTC)


def _recorded_names() -> tuple[set[str], set[str]]:
    """The object types and actions the code writes to the trail, read from the source: a
    literal passed as `object_type`/`action` (or a parameter's default), the care plan's item
    specs, the decisions' OBJECT, the FHIR kinds recorded through a variable."""
    objects: set[str] = set()
    actions: set[str] = set()
    for path in ROOT.rglob("*.py"):
        text = path.read_text()
        objects.update(re.findall(r'object_type(?:: str)?\s*=\s*"([A-Za-z]+)"', text))
        objects.update(re.findall(r'ItemSpec\(\s*"\w+",\s*\w+,\s*"([A-Za-z]+)"', text))
        objects.update(re.findall(r'^OBJECT\s*=\s*"([A-Za-z]+)"', text, re.M))
        actions.update(re.findall(r'\baction(?:: str)?\s*=\s*"([a-z_]+)"', text))
    # Read by FHIR kind (concord/fhir/service.py records `object_type=kind`).
    objects.update({"Patient", "Practitioner", "CareTeam", "CarePlan", "Goal", "Task", "Flag"})
    return objects, actions


def test_every_object_type_and_action_the_code_records_has_plain_words():
    objects, actions = _recorded_names()
    assert len(objects) > 25 and len(actions) > 30  # the scan finds them
    assert sorted(objects - set(OBJECT_LABELS)) == []
    assert sorted(actions - set(ACTION_LABELS)) == []


def _every_kind_of_event(session, people):
    """One event per object type, by the care manager; a view repeated three times; an action
    by the system (no person); one by the patient."""
    pid = people.patient.id
    for object_type in OBJECT_LABELS:
        record(
            session, by=people.care_manager, action="read", object_type=object_type, patient_id=pid
        )
    for action in ACTION_LABELS:
        record(session, by=people.consultant, action=action, object_type="CarePlan", patient_id=pid)
    for _ in range(3):
        record(
            session, by=people.therapist, action="read", object_type="SafetyPlan", patient_id=pid
        )
    record(
        session,
        by=None,
        action="create",
        object_type="Task",
        patient_id=pid,
        organization_id=people.org.id,
    )
    commit(session)


@pytest.fixture
def evening(clock):
    clock.set(EVENING)
    return clock


def _text(html: str) -> str:
    body = html.split("<main", 1)[-1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


class TestAccessLogPage:
    def test_every_event_reads_in_plain_english(self, client, session, people, sign_in, evening):
        _every_kind_of_event(session, people)
        sign_in(PATIENT)
        page = client.get("/my/access-log")
        assert page.status_code == 200
        text = _text(page.text)
        # No internal name reaches the patient.
        for name in list(OBJECT_LABELS) + ["Task", "CaseReview", "QuestionnaireResponse"]:
            assert not re.search(rf"\b{name}\b", text), name
        for words in (
            "your check-in answers",
            "your care plan",
            "a specialist's review of your care",
            "a to-do for your care team",
            "Saw your care plan in a list",
        ):
            assert words in text, words
        # Who: name and role; the system by name.
        assert "Cara Manager , care manager" in text or "Cara Manager, care manager" in text
        assert "Concord (automatic)" in text
        assert "Unknown person" not in text
        # Repeated views are one line.
        assert "Looked at your safety plan · 3 times" in text
        # When: the clinic's day (Dec 6 in Chicago), not UTC's Dec 7.
        assert "Sunday, December 6, 2026" in text
        assert "December 7" not in text
        assert "6:40 PM" in text

    def test_every_event_reads_in_plain_spanish(self, client, session, people, sign_in, evening):
        people.patient_user.language = "es"
        commit(session)
        _every_kind_of_event(session, people)
        sign_in(PATIENT)
        page = client.get("/my/access-log")
        text = _text(page.text)
        for name in OBJECT_LABELS:
            assert not re.search(rf"\b{name}\b", text), name
        assert "sus respuestas del cuestionario" in text
        assert "Concord (automático)" in text
        assert "3 veces" in text
        assert "domingo, 6 de diciembre de 2026" in text
        assert "Persona desconocida" not in text
        # Every English wording has a Spanish one (no line left in English).
        for words in ("Looked at", "Saw ", "your ", "Changed ", "Made changes", "Se cambió ("):
            assert words not in text, words

    def test_the_log_fits_a_phone(self, client, session, people, sign_in, evening):
        """No table to scroll sideways: each entry is lines of words."""
        _every_kind_of_event(session, people)
        sign_in(PATIENT)
        html = client.get("/my/access-log").text
        main = html.split("<main", 1)[-1]
        assert "<table" not in main
        assert 'class="access-log"' in main

"""Internal keys reach no person: a response's flags by their names, a score that could not be
computed with a translated reason, notice, alert-event and message kinds in words, an
escalation chain by its steps (issue 16 follow-up, item 3)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from concord.measures.models import MeasureResponse
from tests.conftest import commit
from tests.factories import create_plan
from tests.safety.conftest import phq9, respond

CM = "cara@test.example.org"
TEMPLATES = Path(__file__).resolve().parent.parent / "concord"


def test_the_measures_page_names_a_flag_rather_than_its_id(client, session, people, sign_in):
    create_plan(session, people, activate=True)
    respond(session, people, "PHQ-9", phq9([1, 1, 1, 1, 1, 1, 1, 1, 2]))
    commit(session)
    sign_in(CM)
    page = client.get(f"/patients/{people.patient.id}/measures").text
    badges = re.findall(r'<span class="badge[^"]*" data-flag="([^"]+)">([^<]+)<', page)
    assert badges, "no flag shown"
    for ident, words in badges:
        assert words.strip() != ident
    assert any("item 9" in words for _, words in badges)
    assert ">self-harm-thoughts<" not in page


def test_an_unscored_response_says_why_in_the_readers_language(client, session, people, sign_in):
    create_plan(session, people, activate=True)
    stored_reason = (
        "3 of 9 questions unanswered; the scoring rule allows at most 1"  # English, as stored
    )
    row = MeasureResponse(
        patient_id=people.patient.id,
        instrument="PHQ-9",
        instrument_version="1",
        status="completed",
        mode="in_person",
        entered_by_id=people.care_manager.id,
        completed_at=datetime(2026, 11, 20, tzinfo=UTC),
        answers={str(i): 1 for i in range(1, 7)},
        scores={
            "total": {
                "value": None,
                "band": None,
                "missing": ["7", "8", "9"],
                "reason": stored_reason,
            }
        },
        flags={},
    )
    session.add(row)
    people.care_manager.language = "es"
    commit(session)
    sign_in(CM)
    page = client.get(f"/patients/{people.patient.id}/measures/responses/{row.id}").text
    assert stored_reason not in page
    assert "3 preguntas sin responder" in page


def test_no_template_prints_a_kind_or_an_id_as_words():
    """The fallbacks that printed a raw key when no words matched ("patient_decision" on
    /alerts, a chain's name as a list, a flag's id)."""
    raw = re.compile(
        r"(?<!=\")\{\{ ?(n\.kind|e\.kind|m\.kind|f\.id|sc\.reason|r\.chain"
        r"|kinds\.get\(m\.kind, m\.kind\)) ?\}\}|else f\.id|else sid \}\}"
    )
    found = [
        f"{p.relative_to(TEMPLATES)}: {m.group(0)}"
        for p in TEMPLATES.rglob("*.html")
        for m in raw.finditer(p.read_text())
    ]
    assert found == []


def test_every_notice_kind_has_words(client, session, people, sign_in):
    """Each kind a notice can have (concord.safety.notices.KINDS and the alerts' own) is said in
    words on /alerts."""
    from concord.safety.notices import KINDS

    source = (TEMPLATES / "safety" / "templates" / "safety" / "alerts.html").read_text()
    for kind in [*KINDS, "raised", "escalated", "passed_on", "reminder", "no_owner"]:
        assert f"n.kind == '{kind}'" in source, kind

"""Doors call the action, not the domain service it wraps: a door that stored a check-in with
measures.record_response would raise no alert and leave the tasks behind (issue 17). A new door
(a JSON route, a CLI command) that does so fails here."""

from __future__ import annotations

import re

from tests.conftest import ROOT

PACKAGE = ROOT / "concord"
# The wrapped services, and where they may be called from: the action that wraps them and the
# domain that defines them.
CHECK_IN = r"\bmeasures\.(record_response|submit)\(|\bimport\b.*\b(record_response|submit)\b"
WRAPPED = {
    re.compile(CHECK_IN): {
        "concord/actions/checkin.py",
        "concord/measures/service.py",
    },
    re.compile(r"\bsync_patient_tasks\b"): {
        "concord/actions/checkin.py",
        "concord/actions/registry.py",
        "concord/actions/careplan.py",
        "concord/actions/recommendation.py",
        "concord/registry/jobs.py",
    },
}


def test_only_actions_call_the_services_they_wrap():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        for pattern, allowed in WRAPPED.items():
            if name not in allowed and pattern.search(text):
                found.append((name, pattern.pattern))
    assert found == []

"""One patient header (issue 17): every page about one patient shows it through the one
partial (patients/_header.html, filled by concord/web/patient_header.py), and it shows only
what the viewer may see: a family member gets the name, never the MRN or the date of birth."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import commit
from tests.db_reads import routes_of
from tests.factories import create_plan

CM = "cara@test.example.org"
FAMILY = "fay@family.example.org"
ROOT = Path(__file__).resolve().parent.parent
TEAM_MARK = 'data-patient-header="team"'
LIMITED_MARK = 'data-patient-header="limited"'

# The team's pages about one patient, opened with the patient's id alone (pages that need a
# second id, e.g. one alert, build the same header_context: see test_no_route_builds_a_header).
TEAM_PAGES = (
    "",
    "/team",
    "/plan",
    "/plan/history",
    "/measures",
    "/measures/record/PHQ-9",
    "/registry",
    "/relapse-plan",
    "/decisions",
    "/social",
    "/safety",
    "/safety-plan",
    "/consents",
    "/medications",
    "/messages",
    "/visits",
    "/timeline",
    "/substance-use",
)
# Pages under /patients/{patient_id} that are not HTML pages about the patient, or that need a
# record made first; each named with why it is left to the static check below.
NOT_OPENED = {
    "/patients/{patient_id}/safety-plan.pdf": "a PDF, not a page (tests/test_export_read_path)",
    "/patients/{patient_id}/plans/{plan_id}": "needs an ended plan",
    "/patients/{patient_id}/measures/record/{code}": "opened above as /measures/record/PHQ-9",
    "/patients/{patient_id}/decisions/{decision_id}": "needs a decision",
    "/patients/{patient_id}/measures/responses/{response_id}": "needs a response",
    "/patients/{patient_id}/alerts/{alert_id}": "needs an alert",
    "/patients/{patient_id}/safety-plan/versions/{number}": "needs a saved plan",
    "/patients/{patient_id}/consents/{consent_id}/revoke": "needs a consent",
    "/patients/{patient_id}/consent-forms/{template_id}.pdf": "a PDF, not a page",
    "/patients/{patient_id}/messages/{thread_id}": "needs a thread (tests/messaging)",
    "/patients/{patient_id}/visits/{visit_id}": "needs a visit (tests/appointments)",
}


@pytest.fixture
def plan(session, people):
    plan = create_plan(session, people, activate=True)
    commit(session)
    return plan


def test_every_team_page_about_a_patient_is_listed(app) -> None:
    paths = {
        route.path
        for route in routes_of(app)
        if route.path.startswith("/patients/{patient_id}") and "GET" in route.methods
    }
    listed = {f"/patients/{{patient_id}}{p}" for p in TEAM_PAGES} | set(NOT_OPENED)
    assert sorted(paths - listed) == []
    assert sorted(set(NOT_OPENED) - paths) == []


@pytest.mark.parametrize("page", TEAM_PAGES)
def test_each_team_page_shows_the_one_header(client, people, plan, sign_in, page) -> None:
    sign_in(CM)
    response = client.get(f"/patients/{people.patient.id}{page}")
    assert response.status_code == 200, response.text[:300]
    assert response.text.count(TEAM_MARK) == 1
    assert LIMITED_MARK not in response.text
    header = response.context["header"]
    assert header.full and header.mrn == "N-1"
    assert "N-1" in response.text  # the MRN, for the care team


def test_the_family_view_has_the_name_and_no_identifiers(client, people, plan, sign_in) -> None:
    sign_in(FAMILY)
    response = client.get(f"/shared/{people.patient.id}")
    assert response.status_code == 200
    assert response.text.count(LIMITED_MARK) == 1
    assert TEAM_MARK not in response.text
    header = response.context["header"]
    assert not header.full
    assert (header.mrn, header.birth_date, header.age, header.alerts) == (None, None, None, ())
    assert "N-1" not in response.text
    assert "1985" not in response.text
    assert "MRN" not in response.text


def test_no_route_builds_a_header() -> None:
    """Routes get the header from concord.web.patient_header only: none imports another
    route's helper for it, and no template but the partial draws one."""
    offenders = []
    for path in sorted((ROOT / "concord").glob("*/routes.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith(".routes"):
                names = {a.name for a in node.names}
                if names & {"age_on", "safety_context", "header_context", "patient_header"}:
                    offenders.append(f"{path.relative_to(ROOT)}: {node.module}")
    templates = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "concord").glob("*/templates/**/*.html")
        if "patient-head" in p.read_text() and p.name != "_header.html"
    ]
    assert offenders == [] and templates == []

"""FHIR search and 42 CFR Part 2 (issue 18): a primary care provider on the patient's care team,
outside the addiction service (a Part 2 program), searching Observations and
QuestionnaireResponses. Without the patient's consent: the depression scores (PHQ-9) and none
of the AUDIT-C the program recorded, and Bundle.total counts only what is shown. With the
consent the patient signs in the portal (through its API twin): both. After the patient revokes
it: the PHQ-9 only, at once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from concord.accounts.models import Clinic, Role
from concord.accounts.organizations import create_clinic
from concord.measures import service as measures
from concord.measures.models import MeasureObservation
from concord.patients.service import add_team_member
from concord.registry import service as reg
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for, create_staff

pytestmark = pytest.mark.skipif(
    not hasattr(Clinic, "part2_program"), reason="needs Part 2 programs (Clinic.part2_program)"
)

PHQ9 = {**{str(i): 1 for i in range(1, 10)}, "difficulty": 1}
AUDIT_C = {"1": 2, "2": 1, "3": 1}


@pytest.fixture
def story(session, people):
    """The patient's counsellor at the addiction service enrolled them and recorded two
    AUDIT-Cs; their primary care provider, at the patient's own clinic, recorded two PHQ-9s."""
    org = people.org
    program = create_clinic(session, organization=org, name="Bayview Recovery")
    program.part2_program = True
    counsellor = create_staff(
        session, org, program, Role.addiction_counsellor, "Cass Counsellor", "cass@bay.example"
    )
    pcp = create_staff(
        session, org, people.north, Role.primary_care_provider, "Dr. Pia Care", "pia@n.example"
    )
    for user in (counsellor, pcp):
        add_team_member(session, by=people.care_manager, patient=people.patient, user_id=user.id)
    session.flush()
    by_counsellor = acc_for(session, counsellor, people.patient)
    reg.enroll(session, access=by_counsellor, data=reg.Enrolment(program="co_occurring"))
    ids: dict[str, set[str]] = {"PHQ-9": set(), "AUDIT-C": set()}
    responses: dict[str, set[str]] = {"PHQ-9": set(), "AUDIT-C": set()}
    for code, answers, by in (
        ("PHQ-9", PHQ9, pcp),
        ("AUDIT-C", AUDIT_C, counsellor),
        ("PHQ-9", PHQ9, pcp),
        ("AUDIT-C", AUDIT_C, counsellor),
    ):
        checked = measures.record_response(
            session,
            access=acc_for(session, by, people.patient),
            instrument_code=code,
            submission=measures.Submission(answers=answers, mode=measures.Mode.in_person),
        )
        responses[code].add(str(checked.response.id))
        ids[code] |= {
            str(i)
            for i in session.scalars(
                select(MeasureObservation.id).where(
                    MeasureObservation.response_id == checked.response.id
                )
            )
        }
    commit(session)
    return {
        "pcp": bearer(session, pcp),
        "counsellor": bearer(session, counsellor),
        "patient": bearer(session, people.patient_user),
        "pcp_id": str(pcp.id),
        "observations": ids,
        "responses": responses,
    }


def _search(client, headers, url):
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    bundle = response.json()
    found = {e["resource"]["id"] for e in bundle.get("entry", [])}
    assert bundle["total"] == len(found), "Bundle.total counts what is not shown"
    return found


def _codes(client, story, people):
    """For each search the PCP can make, which instruments' records it returns; every search
    must give whole instruments (all of a kind or none)."""
    pid = people.patient.id
    result = {}
    for kind, key in (("Observation", "observations"), ("QuestionnaireResponse", "responses")):
        for url in (f"/fhir/{kind}?patient={pid}", f"/fhir/{kind}"):
            found = _search(client, story["pcp"], url)
            shown = set()
            for code, wanted in story[key].items():
                if wanted <= found:
                    shown.add(code)
                else:
                    assert not (wanted & found), f"{url}: part of the {code} records"
            result[url] = shown
    return result


def _consent(client, story, people):
    """The patient signs, in the portal, a consent naming their PCP: substance-use and
    mental-health records, for treatment."""
    response = client.post(
        f"/api/v1/patients/{people.patient.id}/consents",
        json={
            "grantee_kind": "user",
            "grantee_id": story["pcp_id"],
            "discloser": "Bayview Recovery",
            "scope": "categories",
            "categories": ["substance_use", "mental_health"],
            "purposes": ["treatment"],
            "method": "portal_signature",
            "signed_name": "Pat Ient",
        },
        headers=story["patient"],
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_the_pcp_sees_the_audit_c_only_while_the_patient_consents(client, story, people):
    without = {"PHQ-9"}
    assert all(v == without for v in _codes(client, story, people).values())
    consent_id = _consent(client, story, people)
    assert all(v == {"PHQ-9", "AUDIT-C"} for v in _codes(client, story, people).values())
    revoked = client.post(
        f"/api/v1/patients/{people.patient.id}/consents/{consent_id}/revoke",
        json={"reason": "Not any more"},
        headers=story["patient"],
    )
    assert revoked.status_code == 200, revoked.text
    assert all(v == without for v in _codes(client, story, people).values())


def test_the_program_and_the_patient_see_the_audit_c_without_a_consent(client, story, people):
    pid = people.patient.id
    every = set().union(*story["observations"].values())
    for who in ("counsellor", "patient"):
        assert _search(client, story[who], f"/fhir/Observation?patient={pid}") >= every, who


def test_an_audit_c_read_by_its_id_is_not_found_without_consent(client, story, people):
    audit_c = sorted(story["observations"]["AUDIT-C"])[0]
    response = client.get(f"/fhir/Observation/{audit_c}", headers=story["pcp"])
    assert response.status_code == 404
    phq9 = sorted(story["observations"]["PHQ-9"])[0]
    assert client.get(f"/fhir/Observation/{phq9}", headers=story["pcp"]).status_code == 200

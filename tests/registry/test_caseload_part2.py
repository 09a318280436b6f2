"""The caseload decides per patient (consent, 42 CFR Part 2: ADR 0021), on both engines.

North Clinic is the addiction service, a Part 2 program, and the patient's co-occurring episode
is there (tests/part2/test_part2.py's world). Dr Pat Lee, a primary care provider at South Clinic,
is on the patient's care team. Without consent the PCP's caseload (page, CSV, JSON) has no row
for that episode and says a record was withheld; under a permit it has the row, the disclosure
log has one row per patient and category, and the CSV carries the § 2.32 notice. A caseload of
many such patients costs the same number of reads as a small one.
"""

from __future__ import annotations

import csv
import io

from sqlalchemy import func, select

from concord.accounts.models import Role
from concord.actions import part2 as part2_actions
from concord.consents import service as consents
from concord.consents.labels import sentence
from concord.consents.schemas import ConsentIn
from concord.disclosures.models import DisclosureLog
from concord.disclosures.notice import STATEMENT
from concord.measures import service as measures
from concord.patients.models import CareTeam, CareTeamMember
from concord.patients.service import add_team_member
from concord.registry import caseload as cl
from concord.registry import reviews as rv
from concord.safety import alerts as safety_alerts
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for, create_staff
from tests.part2.test_part2 import AUDIT_C, make_world
from tests.registry.conftest import days_ago, enroll, more_patients
from tests.registry.test_caseload import count_queries

WORD = "correct horse battery"


def _consent(session, people, patient, *, grantee_kind="care_team", **kw):
    """The patient's consent, recorded through the portal's service (a signed TPO consent for
    the care team by default: the whole record, for treatment)."""
    portal = patient.id == people.patient.id  # the others have no portal account
    data = ConsentIn(
        grantee_kind=grantee_kind,
        discloser="North Clinic addiction service",
        scope=kw.pop("scope", "all"),
        purposes=["treatment"],
        method="portal_signature" if portal else "paper_scanned",
        signed_name="Sam Rivera" if portal else "Test Person",
        signed_on=None if portal else days_ago(1),
        **kw,
    )
    by = people.patient_user if portal else people.care_manager
    made = consents.record(session, access=acc_for(session, by, patient), data=data)
    commit(session)
    return made


def _rows(client, session, user, url="/registry/caseload.csv?scope=teams&flags="):
    got = client.get(url, headers=bearer(session, user))
    assert got.status_code == 200, got.text
    return got


def test_without_consent_the_pcp_gets_no_row_and_a_withheld_line(client, session, people, sign_in):
    pcp, _ = make_world(session, people)
    name = people.patient.display_name
    # The program's own staff see the row with its AUDIT-C (communications within the program).
    sign_in("cara@test.example.org")
    own = client.get("/registry?scope=teams&flags=").text
    assert name in own and "AUDIT-C" in own and "withheld" not in own
    # The PCP, outside the program: no row, no AUDIT-C, and the line the team may see.
    sign_in("pcp@x.test", WORD)
    page = client.get("/registry?scope=teams&flags=").text
    assert name not in page and str(people.patient.id) not in page
    assert "1 record withheld by the patients&#39; consent." in page or (
        "1 record withheld by the patients' consent." in page
    )
    assert STATEMENT not in page
    client.cookies.clear()
    sheet = _rows(client, session, pcp).text
    assert name not in sheet and not sheet.startswith(STATEMENT)
    api = _rows(client, session, pcp, "/api/v1/registry/caseload?scope=teams")
    assert api.json() == [] and api.headers["X-Concord-Withheld-By-Consent"] == "1"
    # Nothing left the program: nothing logged.
    assert session.scalar(select(func.count()).select_from(DisclosureLog)) == 0


def test_under_a_permit_the_row_is_shown_logged_and_the_csv_carries_the_notice(
    client, session, people
):
    pcp, _ = make_world(session, people)
    consent = _consent(session, people, people.patient)
    got = _rows(client, session, pcp)
    first, explained, rest = got.text.split("\n", 2)
    assert STATEMENT in first
    # § 2.32(b): the consent it was disclosed under, explained on the next line (ADR 0022).
    assert "42 CFR 2.32(b)" in explained and f"/patients/{people.patient.id}/consents" in explained
    assert sentence(consent, "en") in next(csv.reader(io.StringIO(explained)))[0]
    rows = list(csv.DictReader(io.StringIO(rest)))
    assert [r["patient"] for r in rows] == [people.patient.display_name]
    assert rows[0]["auditc_latest"] != ""  # the AUDIT-C, disclosed under the consent
    logged = session.scalars(
        select(DisclosureLog).where(DisclosureLog.recipient_id == pcp.id)
    ).all()
    # One row per request x patient x category (ADR 0022): the episode (mental health, Part 2)
    # and the AUDIT-C (substance use), each under the consent.
    assert sorted(r.category for r in logged) == ["mental_health", "substance_use"]
    assert {r.consent_id for r in logged} == {consent.id}
    assert {r.patient_id for r in logged} == {people.patient.id}
    assert all(r.door == "export" for r in logged)
    assert logged[0].request_id == logged[1].request_id
    api = _rows(client, session, pcp, "/api/v1/registry/caseload?scope=teams")
    assert [r["patient_id"] for r in api.json()] == [str(people.patient.id)]
    assert "AUDIT-C" in api.json()[0]["measures"]
    assert api.headers["X-Concord-Withheld-By-Consent"] == "0"


def test_a_deny_for_safety_hides_the_open_alerts_count(client, session, people):
    """A deny naming the PCP reaches the caseload's alert count (the patient's record is not a
    Part 2 one here: North is not a program)."""
    enroll(session, people, program="depression")
    pcp = create_staff(
        session, people.org, people.south, Role.primary_care_provider, "Pat Lee", "pcp@x.test"
    )
    team = session.scalar(select(CareTeam).where(CareTeam.patient_id == people.patient.id))
    session.add(CareTeamMember(care_team_id=team.id, user_id=pcp.id, role="primary_care_provider"))
    commit(session)
    safety_alerts.raise_manual_flag(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        tier="urgent",
        reason="Synthetic concern for the test",
    )
    commit(session)

    def alerts():
        got = _rows(client, session, pcp, "/api/v1/registry/caseload?scope=teams").json()
        return [r["open_alerts"] for r in got]

    assert alerts() == [1]
    _consent(
        session,
        people,
        people.patient,
        grantee_kind="user",
        grantee_id=pcp.id,
        scope="categories",
        categories=["safety"],
        provision="deny",
    )
    assert alerts() == [0]
    # The rest of the team still sees it.
    got = _rows(client, session, people.care_manager, "/api/v1/registry/caseload?scope=teams")
    assert [r["open_alerts"] for r in got.json()] == [1]


def test_the_decision_adds_a_fixed_number_of_reads_however_many_part2_patients(
    client, session, people, connection
):
    """The labels and consents of every page patient are loaded once: a caseload of many
    patients under consent costs the same reads as one of a few. Each patient writes its own
    audit lines and disclosure-log rows (one per patient and category: ADR 0022)."""
    pcp, _ = make_world(session, people)
    _consent(session, people, people.patient)

    def add(count, start):
        for patient in more_patients(session, people, count, start=start):
            enroll(session, people, patient, program="co_occurring")
            measures.record_response(
                session,
                access=acc_for(session, people.care_manager, patient),
                instrument_code="AUDIT-C",
                submission=measures.Submission(answers=AUDIT_C, mode=measures.Mode.in_person),
            )
            team = session.scalar(select(CareTeam).where(CareTeam.patient_id == patient.id))
            session.add(
                CareTeamMember(care_team_id=team.id, user_id=pcp.id, role="primary_care_provider")
            )
            commit(session)
            _consent(session, people, patient)

    url = "/api/v1/registry/caseload?scope=teams"
    token = bearer(session, pcp)
    add(2, 300)
    client.get(url, headers=token)
    small = count_queries(connection, lambda: client.get(url, headers=token))
    add(8, 400)
    large = count_queries(connection, lambda: client.get(url, headers=token))
    assert len(client.get(url, headers=token).json()) == 11

    def reads(statements):
        return [q for q in statements if not q.lstrip().upper().startswith("INSERT")]

    assert len(reads(large)) == len(reads(small)), (len(reads(small)), len(reads(large)))
    # The decision's own reads: programs, staff, episodes, corrections and which consents and
    # emergency accesses there are in one statement, then the consents' rows (there are
    # some); at most one load a request.
    probes = [q for q in large if "FROM part2_label_override" in q]
    assert len(probes) == 1, probes
    loads = [q for q in large if "FROM consent" in q and q not in probes]
    assert len(loads) == 1, loads


def test_the_review_queue_decides_as_the_caseload(session, people):
    """The consultant's queue is built from the same rows: a withheld episode is not in it."""
    pcp, _ = make_world(session, people)
    assert cl.list_caseload(session, by=pcp, scope="teams", view=cl.View())[0] == []
    assert all(i.patient.id != people.patient.id for i in rv.queue(session, by=pcp))


def test_a_review_request_by_a_program_s_staff_is_decided_in_the_queue(session, people):
    """South is the Part 2 program here; its care manager (on the patient's team) asks the
    consultant about the patient's episode at North. The request is the program's record:
    without consent it is not in the consultant's queue; under the team's permit it is."""
    part2_actions.set_part2_program(session, people.admin, people.south.id, True)
    enroll(session, people)
    add_team_member(
        session, by=people.care_manager, patient=people.patient, user_id=people.outsider.id
    )
    commit(session)
    asked = rv.request_review(
        session,
        access=acc_for(session, people.outsider, people.patient),
        question="Is the dose right?",
    )
    commit(session)

    def queued():
        return {i.review.id for i in rv.queue(session, by=people.consultant) if i.review}

    assert asked.id not in queued()
    # Under the team's permit (treatment, the whole record) the consultant sees it.
    _consent(session, people, people.patient)
    assert asked.id in queued()

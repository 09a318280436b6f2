"""42 CFR Part 2 and the consent decision (issue 18, ADR 0021), on both engines.

North Clinic is the addiction service, a Part 2 program; the patient has an episode there. Dr
Pat Lee, a primary care provider at South Clinic (not a Part 2 program), joins the patient's
care team. Without consent the PCP sees the depression care (PHQ-9) and not the substance-use
screen (AUDIT-C); with a TPO consent naming them they see it; after revoke it is gone again;
break the glass opens it for the window, logged.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from concord import disclosure
from concord.accounts.models import Role
from concord.actions import checkin
from concord.actions import part2 as part2_actions
from concord.audit.models import AuditEvent
from concord.consents import service as consents
from concord.consents.schemas import ConsentIn
from concord.errors import InvalidInput, NotFound, PermissionDenied
from concord.measures import service as measures
from concord.part2 import labels
from concord.part2.models import EmergencyAccess, LabelOverride
from concord.patients.models import CareTeam, CareTeamMember
from concord.registry.service import Enrolment, enroll
from concord.safety.models import Notification
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for, create_staff

PHQ9 = {**{str(i): 1 for i in range(1, 10)}, "difficulty": 1}
AUDIT_C = {"1": 2, "2": 1, "3": 1}
AUDIT_C_TOTAL = "75626-2"


@pytest.fixture
def world(session, people):
    """North a Part 2 program with the patient's episode; a PCP at South on the team."""
    return make_world(session, people)


def make_world(session, people):
    """North a Part 2 program with the patient's episode; a PCP at South on the team."""
    part2_actions.set_part2_program(session, people.admin, people.north.id, True)
    team_acc = acc_for(session, people.care_manager, people.patient)
    enroll(session, access=team_acc, data=Enrolment(program="co_occurring"))
    pcp = create_staff(
        session, people.org, people.south, Role.primary_care_provider, "Pat Lee", "pcp@x.test"
    )
    team = session.scalar(select(CareTeam).where(CareTeam.patient_id == people.patient.id))
    session.add(CareTeamMember(care_team_id=team.id, user_id=pcp.id, role="primary_care_provider"))
    made = {}
    for code, answers in (("PHQ-9", PHQ9), ("AUDIT-C", AUDIT_C)):
        done = checkin.record_response(
            session,
            access=team_acc,
            instrument_code=code,
            submission=measures.Submission(answers=answers, mode=measures.Mode.in_person),
        )
        made[code] = done.response.id
    commit(session)
    return pcp, made


def _observations(client, session, user, pid=None):
    url = "/fhir/Observation" + (f"?patient={pid}" if pid else "")
    got = client.get(url, headers=bearer(session, user))
    assert got.status_code == 200, got.text
    body = got.json()
    codes = {c["code"] for e in body.get("entry", []) for c in e["resource"]["code"]["coding"]}
    return body, codes


def _tpo(session, people, pcp, **kw):
    discloser = kw.pop("discloser", "North Clinic addiction service")
    data = ConsentIn(
        grantee_kind=kw.pop("grantee_kind", "user"),
        grantee_id=kw.pop("grantee_id", pcp.id),
        scope=kw.pop("scope", "categories"),
        categories=kw.pop("categories", ["substance_use"]),
        purposes=kw.pop("purposes", ["treatment", "payment", "operations"]),
        provision=kw.pop("provision", "permit"),
        method="portal_signature",
        signed_name="Sam Rivera",
        discloser=discloser,
        **kw,
    )
    own = acc_for(session, people.patient_user, people.patient)
    made = consents.record(session, access=own, data=data)
    commit(session)
    return made


def test_the_pcp_without_consent_sees_the_phq9_not_the_audit_c_and_the_total_agrees(
    client, session, people, world
):
    """42 CFR 2.31(a): a Part 2 record leaves the program only with written consent."""
    pcp, made = world
    for pid in (people.patient.id, None):  # one patient, and across the PCP's patients
        body, codes = _observations(client, session, pcp, pid)
        assert AUDIT_C_TOTAL not in codes
        assert body["total"] == len(body.get("entry", [])) >= 1
        assert all(
            e["resource"]["subject"]["reference"].endswith(str(people.patient.id))
            for e in body.get("entry", [])
        )
    # The program's own staff see them, labelled (communications within the program, ADR 0021).
    body, codes = _observations(client, session, people.care_manager, people.patient.id)
    assert AUDIT_C_TOTAL in codes
    labelled = [
        e["resource"]
        for e in body["entry"]
        if AUDIT_C_TOTAL in {c["code"] for c in e["resource"]["code"]["coding"]}
    ]
    assert {c["code"] for c in labelled[0]["meta"]["security"]} == {"42CFRPart2", "NORDSCLCD", "R"}
    read = client.get(
        f"/fhir/QuestionnaireResponse/{made['AUDIT-C']}", headers=bearer(session, pcp)
    )
    assert read.status_code == 404


def test_a_tpo_consent_naming_the_pcp_shows_them_and_revoking_hides_them_again(
    client, session, people, world
):
    """42 CFR 2.31(a)(4)(i): one consent for treatment, payment and operations; revocable."""
    pcp, made = world
    consent = _tpo(session, people, pcp)
    body, codes = _observations(client, session, pcp)
    assert AUDIT_C_TOTAL in codes and body["total"] == len(body["entry"])
    acc = acc_for(session, pcp, people.patient)
    decision = disclosure.decide(
        acc,
        "substance_use",
        label=labels.Label(True, frozenset({people.north.id})),
        session=session,
    )
    assert decision.permit and decision.part2 and decision.consent_id == consent.id
    consents.revoke(
        session, access=acc_for(session, people.patient_user, people.patient), consent_id=consent.id
    )
    commit(session)
    body, codes = _observations(client, session, pcp)
    assert AUDIT_C_TOTAL not in codes and body["total"] == len(body.get("entry", []))


def test_break_the_glass_opens_them_for_the_window_and_is_logged(
    client, session, people, world, monkeypatch
):
    """42 CFR 2.51: disclosure to medical personnel in a bona fide medical emergency."""
    pcp, _ = world
    acc = acc_for(session, pcp, people.patient)
    with pytest.raises(InvalidInput):
        part2_actions.break_glass(session, acc, "")
    grant = part2_actions.break_glass(session, acc, "Unresponsive in clinic, need history")
    commit(session)
    body, codes = _observations(client, session, pcp, people.patient.id)
    assert AUDIT_C_TOTAL in codes
    events = session.scalars(
        select(AuditEvent.action).where(AuditEvent.patient_id == people.patient.id)
    ).all()
    assert "emergency_access" in events and "emergency_disclosure" in events
    notices = session.scalars(select(Notification).where(Notification.kind == "emergency_access"))
    assert [n.patient_id for n in notices] and all(n.patient_id is None for n in notices)
    own = acc_for(session, people.patient_user, people.patient)
    assert [g.id for g in part2_actions.emergency_accesses(session, own)] == [grant.id]
    # After the window, gone again.
    grant = session.get(EmergencyAccess, grant.id)
    grant.expires_at = grant.started_at + timedelta(seconds=1)
    grant.started_at = grant.started_at - timedelta(hours=2)
    grant.expires_at = grant.started_at + timedelta(minutes=60)
    commit(session)
    body, codes = _observations(client, session, pcp, people.patient.id)
    assert AUDIT_C_TOTAL not in codes


def test_label_correction_needs_a_lead_and_a_reason_and_is_audited(session, people, world):
    pcp, made = world
    with pytest.raises(PermissionDenied):
        part2_actions.correct_label(
            session,
            acc_for(session, pcp, people.patient),
            record_type="measure_response",
            record_id=made["PHQ-9"],
            part2=True,
            reason="Taken at the addiction service",
        )
    lead = acc_for(session, people.care_manager, people.patient)
    row = part2_actions.correct_label(
        session,
        lead,
        record_type="measure_response",
        record_id=made["PHQ-9"],
        part2=True,
        reason="Taken at the addiction service",
    )
    commit(session)
    assert session.get(LabelOverride, row.id).by_id == people.care_manager.id
    assert (
        session.scalar(select(AuditEvent).where(AuditEvent.action == "label_correct")).patient_id
        == people.patient.id
    )
    # The PHQ-9 is now a Part 2 record: the PCP without consent no longer reads it.
    acc = acc_for(session, pcp, people.patient)
    with pytest.raises(NotFound):
        measures.get_response(session, access=acc, response_id=made["PHQ-9"])


# Fixture cases modelled on the LEAP consent decision service's (opt-in, opt-out, expired,
# inactive, deny one actor, deny a label, purpose of use); decided on a Part 2 label.
P2 = None


def _decide(session, people, pcp, category="substance_use", purpose=None, part2=True):
    acc = acc_for(session, pcp, people.patient)
    label = labels.Label(part2, frozenset({people.north.id}) if part2 else frozenset())
    return disclosure.decide(acc, category, purpose, label=label, session=session)


def test_no_consent_no_part2_disclosure(session, people, world):
    """42 CFR 2.31(a) (written consent required); LEAP's NO_CONSENT."""
    pcp, _ = world
    assert _decide(session, people, pcp).reason == "part2_no_consent"


def test_opt_in_permits(session, people, world):
    """42 CFR 2.31(a)(4)(i): a consent naming the recipient; LEAP's opt-in."""
    pcp, _ = world
    _tpo(session, people, pcp)
    assert _decide(session, people, pcp).permit


def test_opt_out_denies_even_mental_health(session, people, world):
    """Deny overrides permit (ADR 0021); LEAP's opt-out."""
    pcp, _ = world
    _tpo(session, people, pcp, scope="all", categories=[], provision="deny", discloser=None)
    assert _decide(session, people, pcp, "mental_health", part2=False).reason == "consent_denies"


def test_an_expired_consent_does_not_count(session, people, world):
    """42 CFR 2.31(a): a consent states when it expires; LEAP's expired fixture."""
    pcp, _ = world
    consent = _tpo(session, people, pcp)
    consent.period_start = date(2020, 1, 1)
    consent.period_end = date(2020, 12, 31)
    commit(session)
    assert not _decide(session, people, pcp).permit


def test_an_inactive_consent_does_not_count(session, people, world):
    """A consent entered in error is not a consent; LEAP's inactive fixture."""
    pcp, _ = world
    consent = _tpo(session, people, pcp)
    consent.status = "entered_in_error"
    commit(session)
    assert not _decide(session, people, pcp).permit


def test_a_deny_for_one_actor_withholds_only_from_them(session, people, world):
    """Most specific wins (ADR 0021); LEAP's deny-one-practitioner fixture."""
    pcp, _ = world
    _tpo(session, people, pcp, grantee_kind="care_team", grantee_id=None)
    _tpo(session, people, pcp, provision="deny", discloser=None)
    assert _decide(session, people, pcp).reason == "consent_denies"
    assert _decide(session, people, people.consultant).permit  # program staff, and the team


def test_a_deny_for_a_label_withholds_that_category(session, people, world):
    """Deny a category; LEAP's deny-a-label fixture."""
    pcp, _ = world
    _tpo(session, people, pcp, scope="all", categories=[], discloser="North")
    _tpo(session, people, pcp, categories=["mental_health"], provision="deny", discloser=None)
    assert _decide(session, people, pcp).permit
    assert not _decide(session, people, pcp, "mental_health", part2=False).permit


def test_purpose_of_use_must_match(session, people, world):
    """42 CFR 2.31(a): the consent names the purpose; LEAP's purpose-of-use fixture."""
    pcp, _ = world
    _tpo(session, people, pcp, purposes=["payment"])
    assert not _decide(session, people, pcp).permit
    assert _decide(session, people, pcp, purpose="payment").permit is False  # table: no SUD


def test_the_pages_say_what_was_withheld_and_break_the_glass_with_csrf(
    client, session, people, world, sign_in
):
    """The care team may know a record is withheld (ADR 0021); 42 CFR 2.51 for the form."""
    pcp, _ = world
    pid = people.patient.id
    token = sign_in("pcp@x.test")
    page = client.get(f"/patients/{pid}/measures")
    assert page.status_code == 200
    assert "data-withheld" in page.text and "AUDIT-C" not in page.text.split("h-responses", 1)[1]
    refused = client.post(f"/patients/{pid}/emergency-access", data={"reason": "Overdose, ED"})
    assert refused.status_code in (400, 403)  # no CSRF token: nothing written
    assert session.scalars(select(EmergencyAccess)).all() == []
    opened = client.post(
        f"/patients/{pid}/emergency-access",
        data={"reason": "Overdose in the ED, need history", "csrf_token": token},
    )
    assert opened.status_code == 303
    page = client.get(f"/patients/{pid}/measures")
    assert "AUDIT-C" in page.text.split("h-responses", 1)[1] and "data-part2" in page.text
    sign_in(people.patient_user.email)
    mine = client.get("/my/consents")
    assert "data-emergencies" in mine.text and "Overdose in the ED" in mine.text


def test_the_pcp_without_consent_sees_the_plan_without_the_programs_items(
    client, session, people, world
):
    """Items written by the program's staff are withheld from the plan and its revisions
    (a goal's statement too, where the PCP's own step names it); the program sees them."""
    from concord.careplans import service as plans
    from concord.careplans.schemas import ActionStepIn, GoalIn, PlanStart

    pcp, _ = world
    by_program = acc_for(session, people.care_manager, people.patient)
    plans.start_plan(session, access=by_program, data=PlanStart())
    goal = plans.add_item(
        session,
        access=by_program,
        section="goals",
        data=GoalIn(statement="Two alcohol-free days a week", category="symptoms"),
    )
    plans.add_item(
        session,
        access=acc_for(session, pcp, people.patient),
        section="action_steps",
        data=ActionStepIn(description="Walk after lunch", goal_id=goal.id),
    )
    commit(session)
    pid = people.patient.id
    for path in ("careplan", "careplan/revisions"):
        url = f"/api/v1/patients/{pid}/{path}"
        got = client.get(url, headers=bearer(session, pcp))
        assert got.status_code == 200, got.text
        assert "Walk after lunch" in got.text
        assert "alcohol-free" not in got.text
        mine = client.get(url, headers=bearer(session, people.care_manager))
        assert "Walk after lunch" in mine.text and "alcohol-free" in mine.text
    # The withholding is in the trail.
    assert session.scalar(
        select(AuditEvent).where(
            AuditEvent.actor_id == pcp.id,
            AuditEvent.object_type == "Goal",
            AuditEvent.outcome == "denied",
        )
    )


def test_the_pcp_without_consent_cannot_read_the_programs_goal_by_fhir(
    client, session, people, world
):
    from concord.careplans import service as plans
    from concord.careplans.schemas import GoalIn, PlanStart

    pcp, _ = world
    by_program = acc_for(session, people.care_manager, people.patient)
    plans.start_plan(session, access=by_program, data=PlanStart())
    goal = plans.add_item(
        session,
        access=by_program,
        section="goals",
        data=GoalIn(statement="Two alcohol-free days a week", category="symptoms"),
    )
    commit(session)
    assert client.get(f"/fhir/Goal/{goal.id}", headers=bearer(session, pcp)).status_code == 404
    mine = client.get(f"/fhir/Goal/{goal.id}", headers=bearer(session, people.care_manager))
    assert mine.status_code == 200 and "alcohol-free" in mine.text

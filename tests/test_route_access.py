"""Every /api/v1 and /fhir route, for every persona, against the rule of its page.

The routes come from the app itself: a route missing from RULES fails the test, so a new route
is covered the day it is written. Each route names who may use it (the same people its page
lets in, or fewer); everyone else gets 404 (a FHIR search: an empty Bundle), or 403 for a
change they may not make to a record they can see, and nothing of the record in the body.
The data is built once for the module; each request runs in a savepoint rolled back after it,
so a write by one persona does not change what the next one meets.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from concord import access
from concord.accounts.sessions import start_session
from concord.accounts.tokens import create_api_token, create_client_token
from concord.actions import appointments as appointment_actions
from concord.actions import medications as med_actions
from concord.actions import messaging as messaging_actions
from concord.app import create_app
from concord.appointments.schemas import VisitIn
from concord.audit.models import AuditEvent
from concord.audit.service import set_context
from concord.careplans import service as plans
from concord.careplans.schemas import GoalProposal, StrengthIn
from concord.clock import FakeClock, now, set_clock
from concord.consents.models import Consent
from concord.decisions import service as ds
from concord.ehr import service as ehr
from concord.ehr.models import EhrImport, EhrMatch, EhrResource
from concord.measures import service as measures
from concord.measures.models import MeasureObservation
from concord.medications.models import MedicationFinding
from concord.medications.schemas import MedicationIn, MoudIn, ProtocolIn, ReportedIn, ReportIn
from concord.messaging.service import Upload
from concord.patients.models import CareTeam, CareTeamMember, RelatedPerson
from concord.registry import reviews as rv
from concord.registry import service as reg
from concord.registry.models import Recommendation, WorkTask
from concord.safety import plans as safety_plans
from concord.safety.models import RiskStatus
from concord.settings import Settings, get_settings
from concord.smart import service as smart
from concord.smart.models import SmartGrant
from concord.social import service as social
from concord.social.models import SocialConcern
from tests.conftest import NOW, commit
from tests.factories import acc_for, build_personas, create_plan

PERSONAS = (
    "care_manager",
    "consultant",
    "therapist",
    "outsider",
    "patient",
    "other_patient",
    "family",
    "family_no_consent",
    "admin",
)
ALL = frozenset(PERSONAS)
TEAM = frozenset({"care_manager", "consultant", "therapist"})
RECORD = TEAM | {"patient"}  # the whole record: the team's pages and the patient's portal
PLAN = RECORD | {"family"}  # the care plan as it stands: /shared/{patient} for family
# The patient's threads with the team: family too, while the patient's consent names them.
MESSAGES = RECORD | {"family"}
CLINICIANS = TEAM | {"outsider"}
LEAD = frozenset({"care_manager", "admin"})  # who may change the care team
NOBODY: frozenset[str] = frozenset()

# What would show that a body carries the patient's record. The family name is on the
# shared-plan page (family) too; the rest is the team's and the patient's.
NAME = "Ient"
RECORD_SECRETS = (
    "N-1",  # the MRN
    "1985-05-17",  # the birth date
    "Patient asked to keep this from his sister",  # a removed item's reason
    "my private why",  # the patient's reason for a goal they suggested
    "Hold on to my fishing",  # the removed item itself
    "Worried about the weekend",  # a flag raised by the team
    "Called about sleep",  # a contact's note
)
PLAN_SECRETS = ("I want to feel better",)


@dataclass(frozen=True)
class Case:
    """One request, and who may make it."""

    url: str
    allowed: frozenset[str]
    body: Any = None
    # "record": about the patient, so 404 for anyone else. "list": the caller's own list;
    # anyone may ask, and it must hold nothing of the patient for those not allowed.
    # "search": a FHIR search; an empty Bundle for those not allowed.
    kind: str = "record"
    names_ok: frozenset[str] = NOBODY  # may see the patient's name only (family, /patients)
    form: bool = False
    denied: frozenset[int] = frozenset({404})
    headers: dict[str, str] | None = None  # beyond the token (e.g. a $export kick-off's)


@dataclass
class World:
    client: TestClient
    connection: Any
    tokens: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    items: dict[str, str] = field(default_factory=dict)  # one item per plan section


@pytest.fixture(scope="module")
def world(engine, database_url) -> Iterator[World]:
    previous = set_clock(FakeClock(NOW))
    connection = engine.connect()
    outer = connection.begin()
    factory = sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    get_settings.cache_clear()
    settings = Settings(env="test", database_url=database_url, base_url="http://testserver")
    app = create_app(settings, session_factory=factory)
    try:
        with factory() as session:
            set_context(session, channel="system")
            ids, tokens, cookies, users = _build(session)
        with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
            yield World(client, connection, tokens, ids, cookies, users)
    finally:
        outer.rollback()
        connection.close()
        set_clock(previous)


def _build(session: Any) -> tuple[dict[str, str], ...]:
    people = build_personas(session)
    users = {
        "care_manager": people.care_manager,
        "consultant": people.consultant,
        "therapist": people.therapist,
        "outsider": people.outsider,
        "patient": people.patient_user,
        "other_patient": people.other_patient_user,
        "family": people.family,
        "family_no_consent": people.family_no_consent,
        "admin": people.admin,
    }
    # Only the patient's record carries the birth date the test looks for.
    people.other_patient.birth_date = date(1990, 2, 3)
    plan = create_plan(session, people, activate=True)
    cm = acc_for(session, people.care_manager, people.patient)
    me = acc_for(session, people.patient_user, people.patient)
    # History with something to leak: an item removed for a reason, a goal with a private why.
    kept = plans.add_item(
        session,
        access=cm,
        section="strengths",
        data=StrengthIn(description="Hold on to my fishing"),
    )
    plans.remove_item(
        session,
        access=cm,
        section="strengths",
        item_id=kept.id,
        version=kept.version,
        reason="Patient asked to keep this from his sister",
    )
    plans.propose_goal(
        session, access=me, data=GoalProposal(statement="Sleep through", why="my private why")
    )
    contents = plans.load_contents(session, plan)
    checked = measures.record_response(
        session,
        access=cm,
        instrument_code="PHQ-9",
        submission=measures.Submission(
            answers={**{str(i): 1 for i in range(1, 10)}, "difficulty": 1},
            mode=measures.Mode.in_person,
        ),
    )
    schedule = measures.active_schedules(session, people.patient.id)[0]
    from concord.safety.alerts import raise_manual_flag

    flagged = raise_manual_flag(session, access=cm, tier="high", reason="Worried about the weekend")
    episode = reg.enroll(session, access=cm, data=reg.Enrolment(program="depression"))
    contact = reg.log_contact(
        session,
        access=cm,
        data=reg.ContactIn(
            kind="follow_up", mode="phone", minutes=10, occurred_on=None, note="Called about sleep"
        ),
    )
    rv.request_review(session, access=cm, question="Next step?")
    review = rv.record_review(
        session,
        access=acc_for(session, people.consultant, people.patient),
        data=rv.ReviewIn(
            minutes="15",
            summary="Partial effect",
            recommendations=[rv.RecommendationIn("add_psychotherapy", "Add activation")],
        ),
    )
    decision = ds.start(session, access=cm, aid_id="depression-treatment")
    safety_plans.save(
        session,
        access=cm,
        content={"warning_signs": ["Not sleeping"]},
        reason="First plan",
        base_version=0,
    )
    # The patient shares the safety plan with their sister (her page: /shared/{id}/safety-plan).
    sister = session.scalar(select(RelatedPerson).where(RelatedPerson.user_id == people.family.id))
    safety_plans.set_share(session, access=me, related_person_id=sister.id, share=True)
    # The medication list: buprenorphine prescribed, clonazepam reported by the patient (a
    # finding), and "I stopped this" about the buprenorphine (a difference for the team).
    bup = med_actions.add(session, access=cm, data=MedicationIn(rxcui="1819")).medication
    reported = med_actions.report_new(session, access=me, data=ReportedIn(rxcui="2598"))
    told = med_actions.report(
        session, access=me, medication_id=bup.id, data=ReportIn(kind="stopped")
    )
    entry = med_actions.add_protocol(
        session,
        access=cm,
        data=ProtocolIn(medication_id=bup.id, monitoring="Urine drug test", every_days=28),
    )
    # A PDMP check (FHIR Procedure/concord-pdmp-{id}).
    pdmp = med_actions.record_moud(
        session,
        access=cm,
        data=MoudIn(kind="pdmp_check", on=now().date() - timedelta(days=1), result="None found"),
    )
    session.flush()
    task = session.scalar(
        select(WorkTask)
        .where(WorkTask.patient_id == people.patient.id)
        .order_by(WorkTask.created_at, WorkTask.source)
    )
    team = session.scalar(select(CareTeam).where(CareTeam.patient_id == people.patient.id))
    observation = session.scalar(
        select(MeasureObservation).where(MeasureObservation.response_id == checked.response.id)
    )
    risk = session.scalar(select(RiskStatus).where(RiskStatus.patient_id == people.patient.id))
    assert task is not None and risk is not None and observation is not None
    ids = {
        "patient_id": str(people.patient.id),
        "plan_id": str(plan.id),
        "plan_version": str(plan.version),
        "revision": str(plan.revision_number),
        "goal_id": str(contents.goals[0].id),
        "step_id": str(contents.action_steps[0].id),
        "alert_id": str(flagged.id),
        "episode_id": str(episode.id),
        "rec_id": str(
            session.scalar(select(Recommendation.id).where(Recommendation.review_id == review.id))
        ),
        "task_id": str(task.id),
        "decision_id": str(decision.id),
        "team_id": str(team.id),
        "response_id": str(checked.response.id),
        "observation_id": str(observation.id),
        "flag_id": str(risk.id),
        "practitioner_id": str(people.care_manager.id),
        "clinic_id": str(people.north.id),
        "member_id": str(
            session.scalar(
                select(CareTeamMember.id).where(
                    CareTeamMember.care_team_id == team.id,
                    CareTeamMember.user_id == people.therapist.id,
                )
            )
        ),
        "related_id": str(sister.id),
        "consent_id": str(
            session.scalar(select(Consent.id).where(Consent.grantee_related_person_id == sister.id))
        ),
        "schedule_id": str(schedule.id),
        "contact_id": str(contact.id),
        "medication_id": str(bup.id),
        "pdmp_id": str(pdmp.id),
        "reported_id": str(reported.medication.id),
        "report_id": str(told.id),
        "entry_id": str(entry.id),
        "finding_id": str(
            session.scalar(
                select(MedicationFinding.id).where(
                    MedicationFinding.patient_id == people.patient.id
                )
            )
        ),
    }
    # An EHR's import (issue 20): a diagnosis for the patient, matched by MRN, and an imported
    # patient with the patient's name and birth date but another MRN, held for the team.
    _, client_token = create_client_token(
        session, organization=people.org, name="ehr-feed", scopes=["import"], clinic=people.north
    )
    mrn = "https://concord-care.org/fhir/sid/mrn/test-health"
    imported = {
        "resourceType": "Condition",
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F32.1"}]},
        "subject": {"reference": "Patient/ehr-p1"},
    }
    ehr.import_bundle(
        session,
        by=client_token.user,
        scopes=frozenset({"import"}),
        mrn_system=mrn,
        bundle={
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Patient",
                        "identifier": [{"system": mrn, "value": "N-1"}],
                    },
                    "request": {"method": "PUT", "url": "Patient/ehr-p1"},
                },
                {"resource": imported, "request": {"method": "PUT", "url": "Condition/ehr-c1"}},
                {
                    "resource": {
                        "resourceType": "Patient",
                        "identifier": [{"system": mrn, "value": "X-1"}],
                        "name": [{"family": "Ient", "given": ["Pat"]}],
                        "birthDate": "1985-05-17",
                    },
                    "request": {"method": "PUT", "url": "Patient/ehr-p2"},
                },
            ],
        },
    )
    ids["condition_id"] = "ehr-c1"
    ids["condition_ref"] = str(
        session.scalar(select(EhrResource.id).where(EhrResource.sender_id == "ehr-c1"))
    )
    # A visit (issue 22), booked by the care manager, two days from now.
    visit = appointment_actions.book(
        session,
        access=access.patient_for(session, people.care_manager, people.patient.id),
        data=VisitIn(kind="phone", start=now() + timedelta(days=2), reason="Follow-up call"),
    )
    ids["visit_id"] = str(visit.id)
    ids["match_id"] = str(session.scalar(select(EhrMatch.id)))
    ids["import_id"] = str(session.scalar(select(EhrImport.id)))
    # A message from the patient to the team, with a file (issue 22).
    sent = messaging_actions.start(
        session,
        access=acc_for(session, people.patient_user, people.patient),
        kind="patient",
        subject="About my visit",
        body="Please call me about my visit",
        files=[Upload("diary.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 8)],
    )
    ids["thread_id"] = str(sent.thread.id)
    ids["file_id"] = str(sent.message.attachments[0].id)
    # A SMART app (issue 21), and the patient's leave for it to read their record.
    smart_app, _ = smart.register_client(
        session,
        by=people.admin,
        name="Mood app",
        redirect_uris=["https://app.example/cb"],
        scopes="patient/*.rs",
    )
    grant = SmartGrant(
        client_id=smart_app.id,
        user_id=people.patient_user.id,
        patient_id=people.patient.id,
        scopes="patient/*.rs",
    )
    session.add(grant)
    session.flush()
    ids["smart_app_id"] = str(smart_app.id)
    ids["grant_id"] = str(grant.id)
    ids["mrn_system"] = mrn
    # Social needs: a directory service, a concern from a screen and a referral to the service.
    service = social.add_service(
        session,
        by=people.care_manager,
        data={"provider_name": "Food Bank", "name": "Groceries", "categories": ["food-insecurity"]},
    )
    concern = SocialConcern(
        organization_id=people.patient.organization_id,
        patient_id=people.patient.id,
        domain="food-insecurity",
        status="proposed",
    )
    session.add(concern)
    session.flush()
    referral, _ = social.create_referral(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        new=social.NewReferral(
            service=service,
            domain="food-insecurity",
            shared_summary="Groceries",
            contact=None,
            concern=concern,
            consent_id=None,
        ),
        secret="route-access-secret",
    )
    ids["service_id"] = str(service.id)
    ids["concern_id"] = str(concern.id)
    ids["referral_id"] = str(referral.id)
    tokens = {
        name: create_api_token(session, user=user, by=None)[0] for name, user in users.items()
    }
    cookies = {
        name: start_session(session, user=user, ip=None, user_agent=None, mfa_verified=True)[0]
        for name, user in users.items()
    }
    commit(session)
    return ids, tokens, cookies, {name: str(user.id) for name, user in users.items()}


P = "/api/v1/patients/{patient_id}"
MRN_SYSTEM = "https://concord-care.org/fhir/sid/mrn/test-health"
SECTION_BODIES = {
    "concerns": {"description": "Low mood"},
    "goals": {"statement": "Walk the dog", "category": "wellbeing"},
    "milestones": {"goal_id": "{goal_id}", "description": "Twice a week"},
    "interventions": {"kind": "psychotherapy", "description": "Eight sessions"},
    "action_steps": {"description": "Call a friend", "owner": "patient"},
    "strengths": {"description": "Good friends"},
    "barriers": {"kind": "transport", "description": "No car"},
    "contingencies": {"if_this": "Bad week", "then_we": "Call the team"},
}
# Each section's change and removal routes are asked about an item of that section, made
# once through the API (_section_items): the allowed must not meet "no such item".
QR = {
    "resourceType": "QuestionnaireResponse",
    "questionnaire": "http://loinc.org/q/44249-1",
    "status": "completed",
    "subject": {"reference": "Patient/{patient_id}"},
    "authored": "2026-11-21T10:00:00Z",
    "item": [
        {"linkId": f"/{code}", "answer": [{"valueInteger": 0}]}
        for code in (
            "44250-9",
            "44255-8",
            "44259-0",
            "44254-1",
            "44251-7",
            "44258-2",
            "44252-5",
            "44253-3",
            "44260-8",
        )
    ],
}
SEARCHABLE_BY_PATIENT = {
    "CareTeam": RECORD,
    "CarePlan": RECORD,  # FHIR gives whole records: not to family (who have /shared)
    "Goal": RECORD,
    "QuestionnaireResponse": RECORD,
    "Observation": RECORD,
    # Safety alerts and the registry's tasks: the team's; a referral's Task (issue 23): the
    # patient's too.
    "Task": RECORD,
    "Flag": TEAM,
    "Consent": RECORD,  # whole records; family read theirs through /api/v1
    "MedicationRequest": RECORD,
    "MedicationStatement": RECORD,
    "Condition": RECORD,  # imported from the EHR (issue 20), and social-needs concerns
    "ServiceRequest": RECORD,  # social-needs referrals (issue 23)
    "Communication": RECORD,  # secure messages (issue 22): the team's and the patient's
    "Appointment": RECORD,  # visits (issue 22)
    "Procedure": RECORD,  # imported from the EHR, and PDMP checks (issue 19)
}
READS = {
    "Patient/{patient_id}": RECORD,
    "CareTeam/{team_id}": RECORD,
    "CarePlan/{plan_id}": RECORD,
    "Goal/{goal_id}": RECORD,
    "QuestionnaireResponse/{response_id}": RECORD,
    "QuestionnaireResponse/decision-{decision_id}": RECORD,
    "Observation/{observation_id}": RECORD,
    "Task/{alert_id}": TEAM,
    "Flag/{flag_id}": TEAM,
    "Consent/{consent_id}": RECORD,
    "MedicationRequest/{medication_id}": RECORD,
    "MedicationStatement/{reported_id}": RECORD,
    "Condition/{condition_id}": RECORD,
    "Condition/concord-sdoh-{concern_id}": RECORD,
    "ServiceRequest/concord-referral-{referral_id}": RECORD,
    "Task/concord-referral-{referral_id}": RECORD,
    "Communication/{thread_id}": RECORD,
    "Appointment/{visit_id}": RECORD,
    "Procedure/concord-pdmp-{pdmp_id}": RECORD,
}


def _section_cases() -> dict[tuple[str, str], list[Case]]:
    cases: dict[tuple[str, str], list[Case]] = {}
    for section, body in SECTION_BODIES.items():
        base = f"{P}/careplan/{section}"
        item = "{%s_item}" % section
        cases[("POST", f"/api/v1/patients/{{patient_id}}/careplan/{section}")] = [
            Case(base, TEAM, body)
        ]
        cases[("PUT", f"/api/v1/patients/{{patient_id}}/careplan/{section}/{{item_id}}")] = [
            Case(f"{base}/{item}", TEAM, {**body, "version": 1, "reason": "Changed"})
        ]
        cases[
            ("POST", f"/api/v1/patients/{{patient_id}}/careplan/{section}/{{item_id}}/remove")
        ] = [Case(f"{base}/{item}/remove", TEAM, {"version": 1, "reason": "Done"})]
    return cases


KICK = {"Accept": "application/fhir+json", "Prefer": "respond-async"}
KICK_BODY = {"resourceType": "Parameters", "parameter": []}
ZERO = "00000000-0000-0000-0000-000000000000"
RULES: dict[tuple[str, str], list[Case]] = {
    # --- FHIR -----------------------------------------------------------------------------
    ("GET", "/fhir/metadata"): [Case("/fhir/metadata", ALL, kind="list")],
    # --- SMART App Launch (issue 21) --------------------------------------------------------
    ("GET", "/fhir/.well-known/smart-configuration"): [
        Case("/fhir/.well-known/smart-configuration", ALL, kind="list")
    ],
    ("GET", "/api/v1/smart/clients"): [
        Case("/api/v1/smart/clients", frozenset({"admin"}), kind="list")
    ],
    ("POST", "/api/v1/smart/clients"): [
        Case(
            "/api/v1/smart/clients",
            frozenset({"admin"}),
            {"name": "Chart", "redirect_uris": ["https://c.example/cb"], "scopes": "user/*.rs"},
            denied=frozenset({403}),
        )
    ],
    # Whom a backend service acts for (an administrator's; this app is a browser app, so the
    # administrator's change is refused 422, naming the field).
    ("PUT", "/api/v1/smart/clients/{app_id}/acts-for"): [
        Case(
            "/api/v1/smart/clients/{smart_app_id}/acts-for",
            frozenset({"admin"}),
            {"acts_for": ""},
            denied=frozenset({403}),
        )
    ],
    ("POST", "/api/v1/smart/clients/{app_id}/disable"): [
        Case(
            "/api/v1/smart/clients/{smart_app_id}/disable",
            frozenset({"admin"}),
            {},
            denied=frozenset({403}),
        )
    ],
    # An EHR's launch context: the patient's team (and the organization's EHR client).
    ("POST", "/api/v1/smart/launches"): [
        Case("/api/v1/smart/launches", TEAM, {"system": "{mrn_system}", "value": "N-1"})
    ],
    ("GET", "/api/v1/my/apps"): [Case("/api/v1/my/apps", frozenset({"patient"}), kind="list")],
    ("POST", "/api/v1/my/apps/{grant_id}/revoke"): [
        Case("/api/v1/my/apps/{grant_id}/revoke", frozenset({"patient"}), {})
    ],
    # Bulk Data export (issue 21): a clinician or a patient may start one (it reads what
    # they may read); a Group is a care team (its record's readers) or a program.
    **{
        (method, path): [
            Case(path, CLINICIANS | {"patient", "other_patient"}, KICK_BODY, "list", headers=KICK)
        ]
        for method in ("GET", "POST")
        for path in ("/fhir/$export", "/fhir/Patient/$export")
    },
    **{
        (method, "/fhir/Group/{group_id}/$export"): [
            Case("/fhir/Group/{team_id}/$export", RECORD, KICK_BODY, headers=KICK)
        ]
        for method in ("GET", "POST")
    },
    ("GET", "/fhir/Group"): [Case("/fhir/Group", RECORD, kind="list")],
    ("POST", "/fhir/Group/_search"): [Case("/fhir/Group/_search", RECORD, {}, "list", form=True)],
    ("GET", "/fhir/Group/{group_id}"): [Case("/fhir/Group/{team_id}", RECORD)],
    # Another token's export (or none): not found, for everyone.
    ("GET", "/fhir/bulk-status/{export_id}"): [Case(f"/fhir/bulk-status/{ZERO}", NOBODY)],
    ("DELETE", "/fhir/bulk-status/{export_id}"): [Case(f"/fhir/bulk-status/{ZERO}", NOBODY)],
    ("GET", "/fhir/bulk-files/{file_id}"): [Case(f"/fhir/bulk-files/{ZERO}", NOBODY)],
    # CDS Hooks: discovery holds no patient data. A call needs a clinician's token with the
    # cds scope (tests/cds/test_cds_hooks.py asks it as each persona with one): these tokens
    # are refused, audited, whatever the patient.
    ("GET", "/cds-services"): [Case("/cds-services", ALL, kind="list")],
    ("POST", "/cds-services/{service_id}/feedback"): [
        Case(
            "/cds-services/concord-medication-safety-sign/feedback",
            NOBODY,
            {
                "feedback": [
                    {
                        "card": "route-access",
                        "outcome": "accepted",
                        "outcomeTimestamp": "2026-11-22T15:00:00Z",
                    }
                ]
            },
            denied=frozenset({403}),
        )
    ],
    ("POST", "/cds-services/{service_id}"): [
        Case(
            "/cds-services/concord-medication-safety-sign",
            NOBODY,
            {
                "hook": "order-sign",
                "hookInstance": "route-access",
                "context": {
                    "userId": "Practitioner/x",
                    "patientId": "{patient_id}",
                    "draftOrders": {"resourceType": "Bundle", "entry": []},
                },
            },
            denied=frozenset({403}),
        )
    ],
    ("GET", "/fhir/{kind}"): [
        *(
            Case(f"/fhir/{kind}?patient={{patient_id}}", allowed, kind="search")
            for kind, allowed in SEARCHABLE_BY_PATIENT.items()
        ),
        Case("/fhir/Patient", RECORD, kind="search"),
        Case("/fhir/Questionnaire", ALL, kind="list"),
        Case("/fhir/Measure", ALL, kind="list"),
        # Flag and Consent need a patient (a 4xx without one).
        *(
            Case(f"/fhir/{kind}", allowed, kind="search")
            for kind, allowed in SEARCHABLE_BY_PATIENT.items()
            if kind
            not in (
                "Flag",
                "Consent",
                "MedicationRequest",
                "MedicationStatement",
                "Communication",
                "Appointment",
            )
        ),
    ],
    ("POST", "/fhir/{kind}/_search"): [
        Case(f"/fhir/{kind}/_search", allowed, {"patient": "{patient_id}"}, "search", form=True)
        for kind, allowed in SEARCHABLE_BY_PATIENT.items()
    ],
    # The subject is in the body: outside one's scope it is a field one may not name (422),
    # the same answer as for a patient who does not exist.
    ("POST", "/fhir/QuestionnaireResponse"): [
        Case("/fhir/QuestionnaireResponse", RECORD, QR, denied=frozenset({404, 422}))
    ],
    # An EHR's import: the care team's token (the patient's: 404, as for a stranger).
    **{
        ("POST", f"/fhir/{kind}"): [
            Case(
                f"/fhir/{kind}",
                TEAM,
                {
                    "resourceType": kind,
                    "status": "active",
                    **({"intent": "order"} if kind == "MedicationRequest" else {}),
                    "medicationCodeableConcept": {"text": "Melatonin"},
                    "subject": {"reference": "Patient/{patient_id}"},
                },
            )
        ]
        for kind in ("MedicationRequest", "MedicationStatement")
    },
    ("GET", "/fhir/{kind}/{ident}"): [
        *(Case(f"/fhir/{path}", allowed) for path, allowed in READS.items()),
        Case("/fhir/Questionnaire/PHQ-9", ALL, kind="list"),
        Case("/fhir/Measure/CMS159", ALL, kind="list"),
        # Staff of the organization, to those who read clinical records.
        Case(
            "/fhir/Practitioner/{practitioner_id}",
            CLINICIANS | {"patient", "other_patient"},
            kind="list",
        ),
    ],
    # An EHR enrolling a patient (issue 21): as registering, clinicians and administrators.
    ("POST", "/fhir/Patient"): [
        Case(
            "/fhir/Patient",
            CLINICIANS | {"admin"},
            {
                "resourceType": "Patient",
                "identifier": [{"system": MRN_SYSTEM, "value": "N-901"}],
                "name": [{"family": "Nueva", "given": ["Ana"]}],
                "birthDate": "1991-03-04",
            },
            kind="list",
        )
    ],
    # An EHR updating the demographics: the care team's clinicians.
    ("PUT", "/fhir/Patient/{ident}"): [
        Case(
            "/fhir/Patient/{patient_id}",
            TEAM,
            {
                "resourceType": "Patient",
                "id": "{patient_id}",
                "identifier": [{"system": MRN_SYSTEM, "value": "N-1"}],
                "name": [{"family": "Ient", "given": ["Pat"]}],
                "birthDate": "1985-05-17",
            },
        )
    ],
    # The whole record (issue 21): whoever reads the record (the patient their own).
    ("GET", "/fhir/Patient/{ident}/$everything"): [
        Case("/fhir/Patient/{patient_id}/$everything", RECORD)
    ],
    # A care plan's versions (issue 21): the team's, as the plan's history page.
    ("GET", "/fhir/{kind}/{ident}/_history"): [Case("/fhir/CarePlan/{plan_id}/_history", TEAM)],
    ("GET", "/fhir/{kind}/{ident}/_history/{version}"): [
        Case("/fhir/Patient/{patient_id}/_history/1", RECORD)
    ],
    # --- patients -------------------------------------------------------------------------
    ("GET", "/api/v1/patients"): [
        Case("/api/v1/patients", RECORD, kind="list", names_ok=frozenset({"family"}))
    ],
    ("GET", "/api/v1/patients/{patient_id}"): [Case(P, RECORD)],
    ("GET", "/api/v1/patients/{patient_id}/care-team"): [Case(f"{P}/care-team", RECORD)],
    # Registering (/patients/new): clinicians and administrators; for others a 403.
    ("POST", "/api/v1/patients"): [
        Case(
            "/api/v1/patients",
            CLINICIANS | {"admin"},
            {
                "given_name": "Ana",
                "family_name": "Nueva",
                "birth_date": "1991-03-04",
                "mrn": "N-900",
                "clinic_id": "{clinic_id}",
            },
            kind="list",
        )
    ],
    # The demographics (issue 21): the care team's clinicians, as FHIR's PUT.
    ("PUT", "/api/v1/patients/{patient_id}"): [
        Case(
            P,
            TEAM,
            {
                "given_name": "Pat",
                "family_name": "Ient",
                "birth_date": "1985-05-17",
                "version": 1,
            },
        )
    ],
    # The team page (its lead) and the administrator's page of the patient's team.
    ("POST", "/api/v1/patients/{patient_id}/care-team/members"): [
        Case(f"{P}/care-team/members", LEAD, {"user_id": "{practitioner_id}"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/care-team/members/{member_id}/lead"): [
        Case(f"{P}/care-team/members/{{member_id}}/lead", LEAD)
    ],
    ("POST", "/api/v1/patients/{patient_id}/care-team/members/{member_id}/remove"): [
        Case(f"{P}/care-team/members/{{member_id}}/remove", LEAD)
    ],
    # The family section of the overview (the team) and /my/people (the patient).
    ("GET", "/api/v1/patients/{patient_id}/related-persons"): [
        Case(f"{P}/related-persons", RECORD)
    ],
    ("POST", "/api/v1/patients/{patient_id}/related-persons"): [
        Case(
            f"{P}/related-persons",
            TEAM,
            {"name": "Rosa", "email": "rosa@example.org", "relationship": "aunt"},
        )
    ],
    ("POST", "/api/v1/patients/{patient_id}/related-persons/{related_id}/consent"): [
        Case(f"{P}/related-persons/{{related_id}}/consent", RECORD, {"consented": False})
    ],
    # --- consents: the team's page and the patient's "Who can see my record"; a family member
    # reads the consents naming them (the sister's family-sharing consent is one).
    ("GET", "/api/v1/patients/{patient_id}/consents"): [Case(f"{P}/consents", RECORD | {"family"})],
    ("GET", "/api/v1/patients/{patient_id}/consents/{consent_id}"): [
        Case(f"{P}/consents/{{consent_id}}", RECORD | {"family"})
    ],
    # The team records paper; the patient may ask too (and signs in the portal: this paper
    # body is a 422 for them, a refusal of the rules, not of access).
    ("POST", "/api/v1/patients/{patient_id}/consents"): [
        Case(
            f"{P}/consents",
            RECORD,
            {
                "grantee_kind": "organization",
                "grantee_name": "Riverside Primary Care",
                "discloser": "The Addiction Service",
                "categories": ["substance_use"],
                "purposes": ["treatment"],
                "method": "paper_scanned",
                "signed_name": "Pat Ient",
                "signed_on": "2026-11-20",
            },
        )
    ],
    # The consents the patient may sign in the portal, with their elements: the patient only.
    ("GET", "/api/v1/patients/{patient_id}/consent-templates"): [
        Case(f"{P}/consent-templates", frozenset({"patient"}))
    ],
    # The patient signs a portal template; the team may not sign for them (403, audited).
    ("POST", "/api/v1/patients/{patient_id}/consents/signed"): [
        Case(
            f"{P}/consents/signed",
            frozenset({"patient"}),
            {
                "template": "treating-providers",
                "period_end": "2027-06-01",
                "signed_name": "Pat Ient",
                "signed_on": "2026-11-22",  # the tests' today (NOW)
            },
        )
    ],
    ("POST", "/api/v1/patients/{patient_id}/consents/{consent_id}/revoke"): [
        Case(f"{P}/consents/{{consent_id}}/revoke", RECORD, {"reason": "Changed my mind"})
    ],
    # --- the disclosure log (42 CFR Part 2): the patient and the team, nobody else -----------
    ("GET", "/api/v1/patients/{patient_id}/disclosures"): [Case(f"{P}/disclosures", RECORD)],
    # --- 42 CFR Part 2 ----------------------------------------------------------------------
    ("GET", "/api/v1/patients/{patient_id}/emergency-access"): [
        Case(f"{P}/emergency-access", RECORD, kind="list")
    ],
    ("POST", "/api/v1/patients/{patient_id}/emergency-access"): [
        Case(f"{P}/emergency-access", TEAM, {"reason": "Unresponsive, need the history"})
    ],
    # A label is corrected by the team lead (the care manager) or the privacy officer.
    ("POST", "/api/v1/patients/{patient_id}/part2-labels"): [
        # 403 for the rest of the team, who see the record but may not correct its label.
        Case(
            f"{P}/part2-labels",
            frozenset({"care_manager"}),
            {
                "record_type": "measure_response",
                "record_id": "{response_id}",
                "part2": True,
                "reason": "Taken at the addiction service",
            },
        )
    ],
    # --- secure messages (issue 22) ------------------------------------------------------
    ("GET", "/api/v1/patients/{patient_id}/messages"): [Case(f"{P}/messages", MESSAGES)],
    ("POST", "/api/v1/patients/{patient_id}/messages"): [
        Case(f"{P}/messages", MESSAGES, {"subject": "Hello", "body": "A question"})
    ],
    ("GET", "/api/v1/patients/{patient_id}/messages/{thread_id}"): [
        Case(f"{P}/messages/{{thread_id}}", MESSAGES)
    ],
    ("POST", "/api/v1/patients/{patient_id}/messages/{thread_id}"): [
        Case(f"{P}/messages/{{thread_id}}", MESSAGES, {"body": "An answer"})
    ],
    # Closing or reopening a thread: the team's clinicians; 403 for the patient and family.
    ("POST", "/api/v1/patients/{patient_id}/messages/{thread_id}/status"): [
        Case(f"{P}/messages/{{thread_id}}/status", TEAM, {"status": "closed"})
    ],
    ("GET", "/api/v1/messages/unread"): [Case("/api/v1/messages/unread", ALL, kind="list")],
    ("GET", "/api/v1/messages"): [Case("/api/v1/messages", ALL, kind="list")],
    ("GET", "/api/v1/message-files/{file_id}"): [Case("/api/v1/message-files/{file_id}", MESSAGES)],
    ("PUT", "/api/v1/organization/messaging-settings"): [
        Case(
            "/api/v1/organization/messaging-settings",
            frozenset({"admin"}),
            {"reply_within_hours": 24},
            denied=frozenset({403}),
        )
    ],
    ("PUT", "/api/v1/clinics/{clinic_id}/part2-program"): [
        # An administrator's setting: 403 for everyone else, as for every administrative act.
        Case(
            "/api/v1/clinics/{clinic_id}/part2-program",
            frozenset({"admin"}),
            {"part2_program": True},
            denied=frozenset({403}),
        )
    ],
    ("PUT", "/api/v1/clinics/{clinic_id}/privacy-officer"): [
        Case(
            "/api/v1/clinics/{clinic_id}/privacy-officer",
            frozenset({"admin"}),
            {"user_id": None},
            denied=frozenset({403}),
        )
    ],
    # The emergency openings told to a privacy officer (none named here: the administrators,
    # who read who and when); everyone else gets 404.
    ("GET", "/api/v1/privacy/notices"): [
        Case("/api/v1/privacy/notices", frozenset({"admin"}), kind="list")
    ],
    # --- care plans -----------------------------------------------------------------------
    ("GET", "/api/v1/patients/{patient_id}/careplan"): [Case(f"{P}/careplan", PLAN)],
    ("POST", "/api/v1/patients/{patient_id}/careplan"): [
        Case(f"{P}/careplan", TEAM, {"title": "Another"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/careplan/activate"): [
        Case(f"{P}/careplan/activate", TEAM, {"version": "{plan_version}"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/careplan/review"): [
        Case(f"{P}/careplan/review", TEAM, {"version": "{plan_version}"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/careplan/end"): [
        Case(f"{P}/careplan/end", TEAM, {"status": "completed", "reason": "Done"})
    ],
    ("PUT", "/api/v1/patients/{patient_id}/careplan/preferences"): [
        Case(f"{P}/careplan/preferences", TEAM, {"version": "{plan_version}"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/careplan/agree"): [
        Case(f"{P}/careplan/agree", frozenset({"patient", "care_manager"}), {"revision": 1})
    ],
    ("POST", "/api/v1/patients/{patient_id}/careplan/comments"): [
        Case(f"{P}/careplan/comments", RECORD, {"body": "A comment"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/careplan/goals/propose"): [
        Case(f"{P}/careplan/goals/propose", RECORD, {"statement": "Sleep more"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/careplan/action_steps/{step_id}/status"): [
        Case(
            f"{P}/careplan/action_steps/{{step_id}}/status",
            RECORD,
            {"version": 1, "status": "done"},
        )
    ],
    ("GET", "/api/v1/patients/{patient_id}/careplan/revisions"): [
        Case(f"{P}/careplan/revisions", TEAM)
    ],
    ("GET", "/api/v1/patients/{patient_id}/careplan/compare"): [
        Case(f"{P}/careplan/compare?from=1&to={{revision}}", TEAM)
    ],
    ("GET", "/api/v1/me/action-steps"): [Case("/api/v1/me/action-steps", RECORD, kind="list")],
    **_section_cases(),
    # --- measures (the team's measures tab) ------------------------------------------------
    ("GET", "/api/v1/patients/{patient_id}/measures/schedules"): [
        Case(f"{P}/measures/schedules", TEAM)
    ],
    ("POST", "/api/v1/patients/{patient_id}/measures/schedules"): [
        Case(f"{P}/measures/schedules", TEAM, {"instrument": "PHQ-9", "every_days": 14})
    ],
    ("POST", "/api/v1/patients/{patient_id}/measures/schedules/{schedule_id}"): [
        Case(f"{P}/measures/schedules/{{schedule_id}}", TEAM, {"every_days": 7, "version": 1})
    ],
    ("POST", "/api/v1/patients/{patient_id}/measures/ask-now"): [
        Case(f"{P}/measures/ask-now", TEAM, {"instrument": "PHQ-9"})
    ],
    ("GET", "/api/v1/patients/{patient_id}/measures/responses"): [
        Case(f"{P}/measures/responses", TEAM)
    ],
    ("POST", "/api/v1/patients/{patient_id}/measures/{code}/responses"): [
        Case(
            f"{P}/measures/PHQ-9/responses",
            TEAM,
            {"mode": "phone", "answers": {**{str(i): 0 for i in range(1, 10)}, "difficulty": 0}},
        )
    ],
    # The patient's own check-ins (/my/check-ins): the patient only.
    ("GET", "/api/v1/patients/{patient_id}/check-ins"): [
        Case(f"{P}/check-ins", frozenset({"patient"}))
    ],
    ("POST", "/api/v1/patients/{patient_id}/check-ins"): [
        Case(f"{P}/check-ins", frozenset({"patient"}), {"instrument": "PHQ-9"})
    ],
    ("PUT", "/api/v1/patients/{patient_id}/check-ins/{response_id}"): [
        Case(
            f"{P}/check-ins/{{response_id}}",
            frozenset({"patient"}),
            {"answers": {}, "version": 1, "submit": False},
        )
    ],
    # --- safety ---------------------------------------------------------------------------
    ("GET", "/api/v1/patients/{patient_id}/alerts"): [Case(f"{P}/alerts", TEAM)],
    ("POST", "/api/v1/patients/{patient_id}/alerts"): [
        Case(f"{P}/alerts", TEAM, {"tier": "high", "reason": "Worried"})
    ],
    ("GET", "/api/v1/alerts"): [Case("/api/v1/alerts", TEAM, kind="list")],
    ("GET", "/api/v1/alerts/{alert_id}"): [Case("/api/v1/alerts/{alert_id}", TEAM)],
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): [
        Case("/api/v1/alerts/{alert_id}/acknowledge", TEAM, {})
    ],
    ("POST", "/api/v1/alerts/{alert_id}/close"): [
        Case(
            "/api/v1/alerts/{alert_id}/close",
            TEAM,
            {"outcome": "assessed", "note": "Seen", "risk_after": "moderate", "no_follow_up": True},
        )
    ],
    ("POST", "/api/v1/alerts/{alert_id}/follow-up"): [
        Case("/api/v1/alerts/{alert_id}/follow-up", TEAM, {"note": "Called"})
    ],
    ("GET", "/api/v1/patients/{patient_id}/risk-status"): [Case(f"{P}/risk-status", TEAM)],
    ("GET", "/api/v1/patients/{patient_id}/safety-plan"): [Case(f"{P}/safety-plan", RECORD)],
    ("PUT", "/api/v1/patients/{patient_id}/safety-plan"): [
        Case(
            f"{P}/safety-plan",
            RECORD,
            {"base_version": 1, "content": {"warning_signs": ["Pacing"]}, "reason": "More"},
        )
    ],
    # The team's safety page (its "people" section) and the patient's /my/safety-plan/people.
    ("GET", "/api/v1/patients/{patient_id}/safety-plan/people"): [
        Case(f"{P}/safety-plan/people", RECORD)
    ],
    ("POST", "/api/v1/patients/{patient_id}/safety-plan/people/{related_id}"): [
        Case(f"{P}/safety-plan/people/{{related_id}}", RECORD, {"share": False})
    ],
    # The caller's own notifications: anyone may ask; it changes only their own.
    ("POST", "/api/v1/alerts/notifications/read"): [
        Case("/api/v1/alerts/notifications/read", ALL, kind="list")
    ],
    ("GET", "/api/v1/safety/figures"): [
        Case("/api/v1/safety/figures", CLINICIANS | {"admin"}, kind="list")
    ],
    # --- registry -------------------------------------------------------------------------
    ("GET", "/api/v1/registry/caseload"): [
        Case("/api/v1/registry/caseload?scope=teams", TEAM, kind="list")
    ],
    ("GET", "/api/v1/patients/{patient_id}/episodes"): [Case(f"{P}/episodes", TEAM)],
    ("POST", "/api/v1/patients/{patient_id}/episodes"): [
        Case(f"{P}/episodes", TEAM, {"program": "anxiety"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/episodes/{episode_id}/status"): [
        Case(f"{P}/episodes/{{episode_id}}/status", TEAM, {"status": "active"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/episodes/{episode_id}/diagnosis"): [
        Case(f"{P}/episodes/{{episode_id}}/diagnosis", TEAM, {"diagnosis": "{condition_ref}"})
    ],
    ("GET", "/api/v1/patients/{patient_id}/contacts"): [Case(f"{P}/contacts", TEAM)],
    ("POST", "/api/v1/patients/{patient_id}/contacts"): [
        Case(f"{P}/contacts", TEAM, {"kind": "follow_up", "mode": "phone", "minutes": 5})
    ],
    ("POST", "/api/v1/patients/{patient_id}/reviews"): [
        Case(f"{P}/reviews", TEAM, {"question": "What next?"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/reviews/record"): [
        Case(f"{P}/reviews/record", TEAM, {"minutes": 5, "summary": "Seen"})
    ],
    ("GET", "/api/v1/patients/{patient_id}/recommendations"): [Case(f"{P}/recommendations", TEAM)],
    ("POST", "/api/v1/patients/{patient_id}/recommendations/{rec_id}/decision"): [
        Case(
            f"{P}/recommendations/{{rec_id}}/decision",
            TEAM,
            {"accept": False, "reason": "Not now"},
        )
    ],
    ("GET", "/api/v1/tasks"): [Case("/api/v1/tasks", TEAM, kind="list")],
    ("POST", "/api/v1/tasks/{task_id}/done"): [
        Case("/api/v1/tasks/{task_id}/done", TEAM, {"note": "Done"})
    ],
    ("GET", "/api/v1/patients/{patient_id}/tasks"): [Case(f"{P}/tasks", TEAM)],
    ("POST", "/api/v1/patients/{patient_id}/tasks"): [
        Case(f"{P}/tasks", TEAM, {"title": "Call the pharmacy"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/contacts/{contact_id}/void"): [
        Case(f"{P}/contacts/{{contact_id}}/void", TEAM, {"reason": "Wrong patient"})
    ],
    # The team's relapse-plan page and the patient's /my/relapse-plan.
    ("GET", "/api/v1/patients/{patient_id}/relapse-plan"): [Case(f"{P}/relapse-plan", RECORD)],
    ("PUT", "/api/v1/patients/{patient_id}/relapse-plan"): [
        Case(
            f"{P}/relapse-plan",
            RECORD,
            {"base_version": 0, "content": {"warning_signs": ["Pacing"]}, "reason": "First"},
        )
    ],
    # The patient's own view (/my/recommendations/{id}); the team may not give it (403).
    ("POST", "/api/v1/patients/{patient_id}/recommendations/{rec_id}/patient-view"): [
        Case(
            f"{P}/recommendations/{{rec_id}}/patient-view",
            frozenset({"patient"}),
            {"agree": True},
        )
    ],
    # The registry's own pages: clinicians (and administrators for program and minutes).
    ("GET", "/api/v1/registry/program"): [
        Case("/api/v1/registry/program", CLINICIANS | {"admin"}, kind="list")
    ],
    ("GET", "/api/v1/registry/minutes"): [
        Case("/api/v1/registry/minutes?month=2026-11", CLINICIANS | {"admin"}, kind="list")
    ],
    ("GET", "/api/v1/registry/reviews"): [
        Case("/api/v1/registry/reviews", CLINICIANS, kind="list")
    ],
    # --- visits (issue 22): the patient's and the team's; the clinician's own calendar -----
    ("GET", "/api/v1/patients/{patient_id}/visits"): [Case(f"{P}/visits", RECORD)],
    ("GET", "/api/v1/patients/{patient_id}/timeline"): [Case(f"{P}/timeline", TEAM)],
    ("GET", "/api/v1/patients/{patient_id}/visits/{visit_id}"): [
        Case(f"{P}/visits/{{visit_id}}", RECORD)
    ],
    ("POST", "/api/v1/patients/{patient_id}/visits"): [
        Case(f"{P}/visits", TEAM, {"kind": "phone", "start": "2026-12-01T10:00:00+00:00"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/visit-requests"): [
        Case(
            f"{P}/visit-requests",
            frozenset({"patient"}),
            {"kind": "phone", "start": "2026-12-01T10:00:00+00:00"},
        )
    ],
    ("POST", "/api/v1/patients/{patient_id}/visits/{visit_id}/book"): [
        Case(f"{P}/visits/{{visit_id}}/book", TEAM, {"version": 1})
    ],
    ("POST", "/api/v1/patients/{patient_id}/visits/{visit_id}/accept"): [
        Case(f"{P}/visits/{{visit_id}}/accept", frozenset({"patient"}), {"version": 1})
    ],
    ("POST", "/api/v1/patients/{patient_id}/visits/{visit_id}/cancel"): [
        Case(f"{P}/visits/{{visit_id}}/cancel", RECORD, {"version": 1, "reason": "Away"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/visits/{visit_id}/attendance"): [
        Case(f"{P}/visits/{{visit_id}}/attendance", TEAM, {"version": 1, "status": "fulfilled"})
    ],
    ("GET", "/api/v1/visits"): [Case("/api/v1/visits", CLINICIANS, kind="list")],
    ("GET", "/api/v1/visits/attendance"): [
        Case("/api/v1/visits/attendance", CLINICIANS, kind="list")
    ],
    # --- notices and how each person is told: one's own ---------------------------------
    ("GET", "/api/v1/notices"): [Case("/api/v1/notices", ALL, kind="list")],
    ("POST", "/api/v1/notices/read"): [Case("/api/v1/notices/read", ALL, {}, kind="list")],
    ("GET", "/api/v1/notification-preferences"): [
        Case("/api/v1/notification-preferences", ALL, kind="list")
    ],
    ("PUT", "/api/v1/notification-preferences"): [
        Case("/api/v1/notification-preferences", ALL, {"channels": ["email"]}, kind="list")
    ],
    # --- medications: the team's Medications tab and the patient's My medications ----------
    ("GET", "/api/v1/patients/{patient_id}/medications"): [Case(f"{P}/medications", RECORD)],
    ("POST", "/api/v1/patients/{patient_id}/medications"): [
        Case(f"{P}/medications", TEAM, {"rxcui": "36437", "dose": "50 mg"})
    ],
    ("PUT", "/api/v1/patients/{patient_id}/medications/{medication_id}"): [
        Case(f"{P}/medications/{{medication_id}}", TEAM, {"rxcui": "1819", "version": 1})
    ],
    ("POST", "/api/v1/patients/{patient_id}/medications/{medication_id}/status"): [
        Case(
            f"{P}/medications/{{medication_id}}/status",
            TEAM,
            {"status": "on_hold", "reason": "Waiting for the ECG", "version": 1},
        )
    ],
    ("POST", "/api/v1/patients/{patient_id}/medications/{medication_id}/review"): [
        Case(f"{P}/medications/{{reported_id}}/review", TEAM, {"note": "Talked it over"})
    ],
    # Only the patient says what they take (the team's answer: 403).
    ("POST", "/api/v1/patients/{patient_id}/medications/reported"): [
        Case(f"{P}/medications/reported", frozenset({"patient"}), {"name": "Ibuprofen"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/medications/{medication_id}/reports"): [
        Case(
            f"{P}/medications/{{medication_id}}/reports",
            frozenset({"patient"}),
            {"kind": "taking"},
        )
    ],
    ("POST", "/api/v1/patients/{patient_id}/medication-reports/{report_id}/resolve"): [
        Case(f"{P}/medication-reports/{{report_id}}/resolve", TEAM, {"note": "Restarted"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/medication-protocol"): [
        Case(
            f"{P}/medication-protocol",
            TEAM,
            {"medication_id": "{medication_id}", "monitoring": "Urine drug test", "every_days": 28},
        )
    ],
    ("POST", "/api/v1/patients/{patient_id}/medication-protocol/{entry_id}/done"): [
        Case(f"{P}/medication-protocol/{{entry_id}}/done", TEAM, {"done_on": "2026-11-20"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/moud-records"): [
        Case(
            f"{P}/moud-records",
            TEAM,
            {"kind": "pdmp_check", "on": "2026-11-19", "result": "No other prescriber"},
        )
    ],
    # --- the days-of-use calendar (issue 19): the team's page and the patient's portal ------
    ("GET", "/api/v1/patients/{patient_id}/substance-use"): [Case(f"{P}/substance-use", RECORD)],
    ("POST", "/api/v1/patients/{patient_id}/substance-use/days"): [
        Case(
            f"{P}/substance-use/days",
            RECORD,
            {"substance": "alcohol", "days": [{"on": "2026-11-19", "used": False}]},
        )
    ],
    ("POST", "/api/v1/patients/{patient_id}/medications/{medication_id}/checkin"): [
        Case(
            f"{P}/medications/{{medication_id}}/checkin",
            frozenset({"patient"}),
            {"missed_doses": 1, "missed_why": "Forgot"},
        )
    ],
    ("POST", "/api/v1/patients/{patient_id}/medication-findings/{finding_id}/override"): [
        Case(
            f"{P}/medication-findings/{{finding_id}}/override",
            TEAM,
            {"reason": "Taper agreed with both prescribers"},
        )
    ],
    # --- social needs (issue 23) ----------------------------------------------------------
    ("GET", "/api/v1/patients/{patient_id}/social"): [Case(f"{P}/social", RECORD)],
    ("POST", "/api/v1/patients/{patient_id}/referrals"): [
        Case(
            f"{P}/referrals",
            RECORD,
            {
                "service_id": "{service_id}",
                "shared_summary": "Groceries, please",
                "signed_name": "Pat Ient",
                "signed_on": "2026-01-01",
            },
        )
    ],
    ("POST", "/api/v1/patients/{patient_id}/referrals/{referral_id}/status"): [
        Case(
            f"{P}/referrals/{{referral_id}}/status",
            TEAM,
            {"status": "cancelled", "reason": "No longer needed"},
        )
    ],
    # A fresh link for the partner: the team's, as the referral's other changes.
    ("POST", "/api/v1/patients/{patient_id}/referrals/{referral_id}/link"): [
        Case(f"{P}/referrals/{{referral_id}}/link", TEAM)
    ],
    ("POST", "/api/v1/patients/{patient_id}/referrals/{referral_id}/report"): [
        Case(
            f"{P}/referrals/{{referral_id}}/report", frozenset({"patient"}), {"report": "got_help"}
        )
    ],
    ("POST", "/api/v1/patients/{patient_id}/social-concerns/{concern_id}"): [
        Case(f"{P}/social-concerns/{{concern_id}}", RECORD, {"decision": "confirm"})
    ],
    ("POST", "/api/v1/patients/{patient_id}/social-concerns/{concern_id}/plan"): [
        Case(
            f"{P}/social-concerns/{{concern_id}}/plan",
            TEAM,
            {"barrier": "No bus on Sundays", "way_around": "Volunteer driver"},
        )
    ],
    # The directory holds no patient data: the clinic's staff and its patients search it.
    ("GET", "/api/v1/directory/services"): [
        Case(
            "/api/v1/directory/services",
            ALL - {"family", "family_no_consent"},
            kind="list",
        )
    ],
    ("POST", "/api/v1/directory/services"): [
        Case(
            "/api/v1/directory/services",
            CLINICIANS | {"admin"},
            {"provider_name": "Pantry", "name": "Food", "categories": ["food-insecurity"]},
            kind="list",
        )
    ],
    ("POST", "/api/v1/directory/import"): [
        Case(
            "/api/v1/directory/import",
            CLINICIANS | {"admin"},
            {"kind": "json", "content": "[]"},
            kind="list",
        )
    ],
    # The partner's link: no account; a made-up token is not found for everyone.
    ("GET", "/api/v1/referral-link/{token}"): [
        Case("/api/v1/referral-link/made.up", NOBODY, kind="list")
    ],
    ("POST", "/api/v1/referral-link/{token}"): [
        Case("/api/v1/referral-link/made.up", NOBODY, {"status": "accepted"}, kind="list")
    ],
    # --- decisions ------------------------------------------------------------------------
    ("GET", "/api/v1/decision-aids"): [Case("/api/v1/decision-aids", ALL, kind="list")],
    # --- EHR import (issue 20): only an integration client imports; a held match is the
    # team's to decide.
    ("POST", "/fhir"): [
        Case(
            "/fhir",
            NOBODY,
            {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [
                    {
                        "resource": {"resourceType": "Patient", "birthDate": "1985-05-17"},
                        "request": {"method": "PUT", "url": "Patient/x"},
                    }
                ],
            },
            denied=frozenset({403}),
        )
    ],
    # Quality measures over the imported data (issue 20): a clinician evaluates over their care
    # teams' patients (one patient: the team only); an integration client over the
    # organization's; nobody else.
    ("GET", "/fhir/Measure/{measure_id}/$evaluate-measure"): [
        Case(
            "/fhir/Measure/CMS159/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-12-31"
            "&reportType=subject-list",
            CLINICIANS,
            kind="list",
        ),
        Case(
            "/fhir/Measure/CMS2/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-12-31"
            "&subject=Patient/{patient_id}",
            TEAM,
        ),
    ],
    ("POST", "/fhir/Measure/{measure_id}/$evaluate-measure"): [
        Case(
            "/fhir/Measure/CMS159/$evaluate-measure",
            TEAM,
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "periodStart", "valueDate": "2026-01-01"},
                    {"name": "periodEnd", "valueDate": "2026-12-31"},
                    {"name": "subject", "valueReference": {"reference": "Patient/{patient_id}"}},
                ],
            },
        )
    ],
    ("GET", "/api/v1/quality"): [
        Case("/api/v1/quality?start=2026-01-01&end=2026-12-31", CLINICIANS, kind="list")
    ],
    ("GET", "/api/v1/ehr/matches"): [Case("/api/v1/ehr/matches", TEAM, kind="list")],
    # The organization's imports (counts, no patient data) and undoing one: an administrator,
    # or the integration client that sent it (no persona here).
    ("GET", "/api/v1/ehr/imports"): [
        Case("/api/v1/ehr/imports", frozenset({"admin"}), kind="list")
    ],
    ("POST", "/api/v1/ehr/imports/{import_id}/undo"): [
        Case("/api/v1/ehr/imports/{import_id}/undo", frozenset({"admin"}), {"reason": "Wrong feed"})
    ],
    ("POST", "/api/v1/ehr/matches/{match_id}"): [
        Case("/api/v1/ehr/matches/{match_id}", TEAM, {"decision": "same"})
    ],
    ("GET", "/api/v1/patients/{patient_id}/decisions"): [Case(f"{P}/decisions", RECORD)],
    ("POST", "/api/v1/patients/{patient_id}/decisions"): [
        Case(f"{P}/decisions", RECORD, {"aid": "depression-treatment"})
    ],
    ("GET", "/api/v1/patients/{patient_id}/decisions/{decision_id}"): [
        Case(f"{P}/decisions/{{decision_id}}", RECORD)
    ],
    ("PUT", "/api/v1/patients/{patient_id}/decisions/{decision_id}/values"): [
        Case(f"{P}/decisions/{{decision_id}}/values", RECORD, {"values": []})
    ],
    ("POST", "/api/v1/patients/{patient_id}/decisions/{decision_id}/questions"): [
        Case(f"{P}/decisions/{{decision_id}}/questions", RECORD, {"text": "Side effects?"})
    ],
    ("PUT", "/api/v1/patients/{patient_id}/decisions/{decision_id}/sure"): [
        Case(
            f"{P}/decisions/{{decision_id}}/sure",
            RECORD,
            {"sure": True, "understand": True, "risk_benefit": True, "encouragement": True},
        )
    ],
    ("POST", "/api/v1/patients/{patient_id}/decisions/{decision_id}/questions/{index}/answered"): [
        Case(f"{P}/decisions/{{decision_id}}/questions/0/answered", TEAM)
    ],
    ("POST", "/api/v1/patients/{patient_id}/decisions/{decision_id}/collaborate"): [
        Case(f"{P}/decisions/{{decision_id}}/collaborate", frozenset({"patient"}))
    ],
    ("POST", "/api/v1/patients/{patient_id}/decisions/{decision_id}/outcome"): [
        Case(
            f"{P}/decisions/{{decision_id}}/outcome",
            TEAM,
            {"considered": [], "decided_on": "2026-11-20"},
        )
    ],
}


# The doors programs use: the JSON API, FHIR and CDS Hooks.
PROGRAM_PREFIXES = ("/api/v1/", "/fhir/", "/cds-services")


def _program_routes(app: Any) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        router = getattr(route, "original_router", None)
        for r in router.routes if router is not None else [route]:
            if isinstance(r, APIRoute) and (
                r.path.startswith(PROGRAM_PREFIXES) or r.path == "/fhir"
            ):
                found |= {(m, r.path) for m in r.methods if m != "HEAD"}
    return found


def test_every_program_route_has_a_rule(world):
    routes = _program_routes(world.client.app)
    assert len(routes) > 70
    missing = sorted(routes - set(RULES))
    assert missing == [], f"give these routes a rule in RULES: {missing}"
    assert sorted(set(RULES) - routes) == [], "RULES names routes the app does not have"


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        filled = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], value)
        return int(filled) if value in ("{plan_version}",) else filled
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def _cases() -> list[tuple[str, str, int, str]]:
    return [
        (method, path, n, persona)
        for (method, path), cases in RULES.items()
        for n in range(len(cases))
        for persona in PERSONAS
    ]


def _id(case: tuple[str, str, int, str]) -> str:
    method, path, n, persona = case
    return f"{method} {path} #{n} {persona}"


@pytest.mark.parametrize("case", _cases(), ids=_id)
def test_the_route_answers_as_its_page(world, case):
    method, path, n, persona = case
    rule = RULES[(method, path)][n]
    ids = {**world.ids, **_section_items(world)}
    url = _fill(rule.url, ids)
    headers = {"Authorization": f"Bearer {world.tokens[persona]}", **(rule.headers or {})}
    kwargs: dict[str, Any] = {"headers": headers}
    if rule.body is not None:
        body = _fill(rule.body, ids)
        kwargs["data" if rule.form else "json"] = body
    savepoint = world.connection.begin_nested()
    try:
        before = _denials(world, persona)
        response = world.client.request(method, url, **kwargs)
        audited = _denials(world, persona) > before
    finally:
        savepoint.rollback()
    text = response.text
    allowed = persona in rule.allowed
    where = f"{method} {url} as {persona}: {response.status_code} {text[:300]}"
    assert response.status_code < 500, where
    if rule.kind == "search":
        assert response.status_code == 200, where
        entries = response.json().get("entry", [])
        if allowed:
            assert entries, where
        else:
            assert entries == [] or all(
                NAME not in str(e) and world.ids["patient_id"] not in str(e) for e in entries
            ), where
    elif rule.kind == "list":
        if allowed:
            assert 200 <= response.status_code < 300, where
        if not allowed:
            assert response.status_code in (200, 403, 404), where
            _nothing_of_the_record(text, where, name_ok=persona in rule.names_ok)
        return
    elif allowed:
        if method == "GET":
            assert 200 <= response.status_code < 300, where
        else:
            # A change the rules of the record refuse (a stale version, a plan already
            # there) is still a change this persona may ask for.
            assert response.status_code not in (401, 403, 404), where
    else:
        # 403 only for a change to a record the persona can see (a family member's comment).
        refused = rule.denied | ({403} if persona in PLAN and method != "GET" else set())
        assert response.status_code in refused, where
        assert audited or response.status_code == 422, f"{where}: the refusal is not audited"
    if not allowed:
        _nothing_of_the_record(text, where, name_ok=False)


def _denials(world: World, persona: str) -> int:
    return world.connection.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.actor_id == uuid.UUID(world.users[persona]),
            AuditEvent.outcome == "denied",
        )
    )


def _nothing_of_the_record(text: str, where: str, *, name_ok: bool) -> None:
    secrets = RECORD_SECRETS + PLAN_SECRETS + (() if name_ok else (NAME,))
    leaked = [s for s in secrets if s in text]
    assert leaked == [], f"{where}: shows {leaked}"


def _section_items(world: World) -> dict[str, str]:
    """An item of each section, made once (as the care manager, through the API)."""
    if world.items:
        return world.items
    headers = {"Authorization": f"Bearer {world.tokens['care_manager']}"}
    for section, body in SECTION_BODIES.items():
        response = world.client.post(
            _fill(f"{P}/careplan/{section}", world.ids),
            json=_fill(body, world.ids),
            headers=headers,
        )
        assert response.status_code == 201, response.text
        world.items[f"{section}_item"] = response.json()["id"]
    return world.items


# --- exports: every CSV and PDF the app serves, as a signed-in person asks for it -----------

EXPORTS: dict[str, Case] = {
    "/patients/{patient_id}/safety-plan.pdf": Case("/patients/{patient_id}/safety-plan.pdf", TEAM),
    # The signed-in patient's own plan: the other patient has none (404); nobody else is a
    # patient (404).
    "/my/safety-plan.pdf": Case("/my/safety-plan.pdf", frozenset({"patient"})),
    "/shared/{patient_id}/safety-plan.pdf": Case(
        "/shared/{patient_id}/safety-plan.pdf", frozenset({"family"})
    ),
    # A blank consent form with the patient's name, for the team (and the patient) to print.
    "/patients/{patient_id}/consent-forms/{template_id}.pdf": Case(
        "/patients/{patient_id}/consent-forms/part2-tpo.pdf", RECORD
    ),
    "/safety/figures.csv": Case("/safety/figures.csv", CLINICIANS | {"admin"}, kind="list"),
    "/registry/caseload.csv": Case("/registry/caseload.csv?scope=teams", TEAM, kind="list"),
    # The program view's social-needs figures (issue 23): counts, no patient.
    "/registry/program/social-figures.csv": Case(
        "/registry/program/social-figures.csv", CLINICIANS | {"admin"}, kind="list"
    ),
    # The month's minutes, for billing: the team's patients, or the organization's for an
    # administrator (the page /registry/minutes shows the same rows).
    "/registry/minutes.csv": Case(
        "/registry/minutes.csv?month=2026-11", TEAM | {"admin"}, kind="list"
    ),
    # The Quality page's patients (issue 20): a clinician's care teams' patients only.
    "/quality.csv": Case("/quality.csv?start=2026-01-01&end=2026-12-31", CLINICIANS, kind="list"),
}


def _export_routes(app: Any) -> set[str]:
    found = set()
    for route in app.routes:
        router = getattr(route, "original_router", None)
        for r in router.routes if router is not None else [route]:
            if isinstance(r, APIRoute) and r.path.endswith((".csv", ".pdf")):
                found.add(r.path)
    return found


def test_every_export_has_a_rule(world):
    routes = _export_routes(world.client.app)
    assert sorted(routes - set(EXPORTS)) == [], "give these exports a rule in EXPORTS"
    assert sorted(set(EXPORTS) - routes) == []


@pytest.mark.parametrize(
    "path,persona", [(p, persona) for p in EXPORTS for persona in PERSONAS], ids=str
)
def test_the_export_answers_as_its_page(world, path, persona):
    rule = EXPORTS[path]
    url = _fill(rule.url, world.ids)
    world.client.cookies.clear()
    world.client.cookies.set("concord_session", world.cookies[persona])
    savepoint = world.connection.begin_nested()
    try:
        response = world.client.get(url)
    finally:
        savepoint.rollback()
        world.client.cookies.clear()
    allowed = persona in rule.allowed
    where = f"GET {url} as {persona}: {response.status_code} {response.text[:200]}"
    assert response.status_code < 500, where
    if allowed:
        assert response.status_code == 200, where
        # The quality CSV lists patients with EHR data; this world has none imported
        # (tests/quality/test_quality_page.py checks its rows).
        if (
            path.endswith(".csv")
            and persona in TEAM
            and not any(word in path for word in ("figures", "quality"))
        ):
            assert NAME in response.text, where  # the rows are there to be hidden from others
        return
    if rule.kind == "list":
        assert response.status_code in (200, 403, 404), where
        # A refusal page names the person signed in: the patient sees their own name.
        _nothing_of_the_record(response.text, where, name_ok=persona == "patient")
    else:
        # A PDF's text is compressed: nothing of it may be served at all.
        assert response.status_code in (303, 404), where
        assert not response.content.startswith(b"%PDF"), where


# --- a write about a patient out of the caller's scope, as about one that does not exist ----


def _write_cases() -> list[tuple[str, str, int, str]]:
    return [
        (method, path, n, persona)
        for (method, path), cases in RULES.items()
        for n, case in enumerate(cases)
        if method != "GET" and case.kind == "record" and "{patient_id}" in case.url + str(case.body)
        for persona in ("outsider", "other_patient")
        if persona not in case.allowed
    ]


@pytest.mark.parametrize("case", _write_cases(), ids=_id)
def test_an_off_scope_write_answers_as_for_a_missing_patient(world, case):
    """Every create and update door (the FHIR QuestionnaireResponse's subject in the body as
    much as a patient in the path): the answer for a patient out of scope is the answer for a
    patient that does not exist, ids aside, and the attempt is audited as a denial."""
    method, path, n, persona = case
    rule = RULES[(method, path)][n]
    headers = {"Authorization": f"Bearer {world.tokens[persona]}"}
    answers = []
    for patient_id in (world.ids["patient_id"], str(uuid.uuid4())):
        ids = {**world.ids, **_section_items(world), "patient_id": patient_id}
        kwargs: dict[str, Any] = {"headers": headers}
        if rule.body is not None:
            kwargs["data" if rule.form else "json"] = _fill(rule.body, ids)
        savepoint = world.connection.begin_nested()
        try:
            before = _denials(world, persona)
            response = world.client.request(method, _fill(rule.url, ids), **kwargs)
            audited = _denials(world, persona) > before
        finally:
            savepoint.rollback()
        where = f"{method} {path} as {persona}: {response.status_code} {response.text[:200]}"
        assert audited, f"{where}: the refusal is not audited"
        answers.append(
            (response.status_code, re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "ID", response.text))
        )
    assert answers[0] == answers[1], f"{method} {path} as {persona}: {answers}"

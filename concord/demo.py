"""The demo organization: two clinics, each with a care team holding every clinical role, and
25 synthetic patients whose plans are at different stages.

Everything is synthetic: names, dates of birth and record numbers are invented. The history is
built by replaying a timeline through the real services with the clock set to each moment, so
revisions, agreements and the audit trail carry plausible dates in order. Each patient's check-in
scores follow their own course from the synthetic population's trajectory model (course_of).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord import access, demo_content, synth
from concord.accounts.models import Clinic, Organization, Role, User
from concord.accounts.organizations import create_clinic, create_organization
from concord.accounts.passwords import hash_password
from concord.accounts.tokens import create_client_token
from concord.accounts.users import create_user
from concord.actions import appointments as visit_actions
from concord.actions import careplan as plan_actions
from concord.actions import checkin, ehr_import, messaging, recommendation
from concord.actions import decisions as decision_actions
from concord.actions import medications as med_actions
from concord.actions import social as social_actions
from concord.appointments.schemas import AttendanceIn, VisitIn, VisitRequestIn
from concord.careplans import service as plans
from concord.careplans.history import PlanContents
from concord.careplans.models import PlanStatus, StepStatus
from concord.careplans.schemas import (
    ActionStepIn,
    BarrierIn,
    ConcernIn,
    ContingencyIn,
    GoalIn,
    GoalProposal,
    InterventionIn,
    MilestoneIn,
    PlanStart,
    PreferencesIn,
    ReviewIn,
    StrengthIn,
)
from concord.clock import FakeClock, get_clock, set_clock
from concord.consents.schemas import ConsentIn
from concord.dates import local_date
from concord.decisions import service as ds
from concord.demo_content import SafetyEventIn, StoryProtocolIn
from concord.ehr import service as ehr
from concord.measures import service as measures
from concord.medications import service as med_service
from concord.medications.schemas import MedicationIn, MoudIn, ProtocolIn, ReportedIn
from concord.patients.models import Patient, RelatedPerson
from concord.patients.service import (
    NewPatient,
    add_related_person,
    add_team_member,
    members_of_patient,
    register_patient,
)
from concord.registry import reviews as rv
from concord.registry import service as reg
from concord.registry.jobs import sync_all_tasks
from concord.registry.models import Episode, Recommendation
from concord.registry.service import org_today
from concord.safety import alerts as safety_alerts
from concord.safety import plans as safety_plans
from concord.safety.escalation import escalate_due, raise_missed_follow_ups
from concord.safety.models import SafetyAlert
from concord.settings import get_settings
from concord.social import service as social

DEMO_SLUG = "riverside-demo"
DEMO_PASSWORD = "concord-demo-2026"
TIMEZONE = "America/Chicago"

# The content (clinics and staff, patients, their plan stories, what the team writes in
# Spanish) is in concord/demo_data/*.yaml, checked on load by concord.demo_content.
_CONTENT = demo_content.content()
CLINICS = _CONTENT.clinics
STAFF = _CONTENT.staff
# (given, family, preferred, birth date, gender, language, clinic, profile, stage)
PATIENTS = _CONTENT.patients
PROFILES: dict[str, dict[str, Any]] = _CONTENT.profiles


# Check-in scores come from the synthetic population's trajectory model (concord.synth, shaped
# by published collaborative-care outcomes: docs/clinical-sources.md, "Synthetic population"):
# each patient has their own seed, baseline and outcome class, answers the measures of their
# program (synth.INSTRUMENTS: the main one every two weeks, the other every four) and has their
# own check-in days. A plan's stage decides the outcome class: an active plan is responding or
# in remission, an overdue review is not improving, a plan changed at review has partly
# responded, a completed plan ended in remission.
STAGE_OUTCOMES: dict[str, tuple[tuple[str, float], ...]] = {
    "active": (("remission", 0.25), ("response", 0.19)),  # synth.OUTCOMES' shares
    "review_overdue": (("not_improving", 1.0),),
    "awaiting_agreement": (("partial", 1.0),),
    "completed": (("remission", 1.0),),
}
# Stories that need another course: Emily's evening check-in that raised an alert comes after a
# partial response; Kevin's drinking has not changed much before his high AUDIT-C in clinic.
# (In patients.yaml: `outcome`.)
STORY_OUTCOMES = _CONTENT.story_outcomes
# The day (relative to today) of a patient's last portal check-in when a story needs it: Marcus's
# answered question 9 eleven days ago; Emily's next one (five days ago) is in _schedule_safety.
# (In patients.yaml: `last_check_in_day`.)
STORY_LAST_CHECK_IN = _CONTENT.story_last_check_in
# When each stage's plan was started (days before today); enrolment and the first check-in
# are three days later. An active plan's episode is 11 weeks old, inside the 10-24 weeks at which
# the Program page judges response and remission.
STAGE_BEGIN = {
    "new": -3,
    "draft": -9,
    "active": -84,
    "review_overdue": -50,
    "awaiting_agreement": -60,
    "completed": -230,
}
COMPLETED_AFTER = 200  # days from a completed plan's start to its end


@dataclass(frozen=True)
class Course:
    """One patient's measures: which, on which days, and the totals."""

    outcome: str
    baseline: float  # PHQ-9 at enrolment (synth.BASELINE_PHQ9)
    instruments: tuple[str, str]  # main, other
    # (day relative to today, instrument, total), in time order
    scores: tuple[tuple[int, str, int], ...]
    seed: str

    def totals(self, instrument: str) -> list[int]:
        return [total for _, code, total in self.scores if code == instrument]

    def total_on(self, instrument: str, day: int) -> int:
        """The course's total for `instrument` on another day (a story's check-in)."""
        enrolled = self.scores[0][0]
        rng = random.Random(f"{self.seed}|{instrument}|{day}")
        return synth.course_score(
            self.outcome, self.baseline, (day - enrolled) / 7, rng, instrument
        )


def _spec(who: tuple[str, str]) -> tuple[Any, ...]:
    return next(p for p in PATIENTS if (p[0], p[1]) == who)


def program_of(profile_name: str) -> str:
    return PROGRAMS.get(profile_name, "depression")


def _quiet(scores: list[tuple[int, str, int]]) -> bool:
    """No alert the story does not tell: the default risk rules (AUDIT-C 8 or more, a PHQ-9 rise
    of 5, a PCL-5 rise of 10) stay quiet, and a PHQ-9 fits in its first eight questions. A
    course measured by the PHQ-9 or GAD-7 starts at 10 or more."""
    if scores[0][1] in ("PHQ-9", "GAD-7") and scores[0][2] < 10:
        return False  # enrolled at 10 or more (docs/clinical-sources.md: "Synthetic population")
    last: dict[str, int] = {}
    for _, code, total in scores:
        if code == "AUDIT-C" and total >= 8:
            return False
        if code == "PHQ-9" and (total > 24 or total - last.get(code, 99) >= 5):
            return False
        if code == "PCL-5" and total - last.get(code, 999) >= 10:
            return False
        last[code] = total
    return True


def _tells(outcome: str, totals: list[int]) -> bool:
    """Whether the main measure's course shows its outcome class (noise can blur one): at its
    latest, response and remission are half the baseline or less, a partial response is better
    by less than half, not improving stays within a fifth of the baseline."""
    first, latest = totals[0], totals[-1]
    if outcome in ("response", "remission"):
        return latest <= first * 0.5
    if outcome == "partial":
        return first * 0.5 < latest < first * 0.9
    if outcome == "not_improving":
        return latest >= first * 0.8
    return True


@functools.cache
def course_of(who: tuple[str, str]) -> Course | None:
    """The patient's course, or None for a patient just referred (nothing answered yet).
    Deterministic: the first of the patient's seeds whose course raises no unplanned alert and
    shows its outcome class."""
    given, family, *_rest, profile_name, stage = _spec(who)
    if stage not in STAGE_OUTCOMES and stage != "draft":
        return None
    instruments = synth.INSTRUMENTS[program_of(profile_name)]
    # A draft plan's patient has answered once, in clinic at the first visit (the baseline).
    enrolled = STAGE_BEGIN[stage] + (1 if stage == "draft" else 3)
    end = STAGE_BEGIN[stage] + COMPLETED_AFTER if stage == "completed" else 0
    for attempt in range(1000):
        seed = f"demo|{given} {family}|{attempt}"
        rng = random.Random(seed)
        outcome = STORY_OUTCOMES.get(who) or synth._pick(
            rng, STAGE_OUTCOMES.get(stage, (("baseline", 1.0),))
        )
        baseline = max(10.0, min(27.0, round(rng.gauss(*synth.BASELINE_PHQ9))))
        # Check-in days, from the last one back to the first, every two weeks give or take a day.
        day = STORY_LAST_CHECK_IN.get(who, min(end, 0) - rng.randrange(1, 9))
        if stage == "draft":
            day = enrolled - 10  # the baseline alone
        days = []
        while day - enrolled >= 10:
            days.append(day)
            day -= 14 + rng.choice((-1, 0, 0, 1))
        days.append(enrolled)
        days.reverse()
        scores = []
        for n, d in enumerate(days):
            for code in instruments if n % 2 == 0 else instruments[:1]:
                point = random.Random(f"{seed}|{code}|{d}")
                total = synth.course_score(outcome, baseline, (d - enrolled) / 7, point, code)
                scores.append((d, code, total))
        course = Course(outcome, baseline, instruments, tuple(scores), seed)
        if _quiet(scores) and _tells(outcome, course.totals(instruments[0])):
            return course
    raise AssertionError(f"no quiet course for {who}")  # pragma: no cover


def answers_for(instrument_code: str, total: int, item9: int = 0) -> dict[str, int]:
    """Answers adding up to `total` for an instrument's scored questions, spread evenly (PHQ-9
    question 9 as given); unscored questions always asked are answered with their second
    choice."""
    if instrument_code == "PHQ-9":
        return phq9_answers(total, item9)
    instrument = measures.get_instrument(instrument_code)
    scored = [i for i in instrument.items if i.scored]
    answers: dict[str, int] = {}
    remaining = total
    for n, item in enumerate(scored):
        top = max(a.value for a in item.answers)
        share = min(top, -(-remaining // (len(scored) - n)))
        answers[item.id] = share
        remaining -= share
    if remaining:
        raise ValueError(f"cannot spread {total} over the {instrument_code}")
    for item in instrument.items:
        if not item.scored and item.show_if is None:
            answers[item.id] = sorted(a.value for a in item.answers)[min(1, len(item.answers) - 1)]
    return answers


# One patient's last portal check-in answers question 9 above zero (see _schedule_safety for
# what the team did about it, and the other safety stories).
ALERT_PATIENT = ("Marcus", "Lee")


def phq9_answers(total: int, item9: int = 0) -> dict[str, int]:
    """Nine answers adding up to `total`, spread evenly (question 9 as given)."""
    answers = {"9": item9}
    remaining = total - item9
    for n, item in enumerate(["1", "2", "3", "4", "5", "6", "7", "8"]):
        share = min(3, -(-remaining // (8 - n)))
        answers[item] = share
        remaining -= share
    if remaining:
        raise ValueError(f"cannot spread {total} over the PHQ-9")
    if total:
        answers["difficulty"] = 1  # asked only when a question was answered above zero
    return answers


# Family members: one the patient agreed to share the plan with, one without that consent.
RELATED = _CONTENT.related  # (in patients.yaml: `family_member`)


@dataclass
class SignIn:
    email: str
    name: str
    role: str
    clinic: str


@dataclass
class DemoSummary:
    organization: str
    created: bool
    patients: int
    sign_ins: list[SignIn] = field(default_factory=list)


# What the team writes on a Spanish speaker's plan and decisions, in Spanish (synthetic).
SPANISH = _CONTENT.spanish  # (in team_words.yaml)


def _measure_link(measure: str | None, target: str | None) -> dict[str, Any]:
    """A goal "PHQ-9 score under 10" linked to the PHQ-9, so its progress shows beside it."""
    for code in ("PHQ-9", "GAD-7"):
        if measure in (f"{code} score", f"Puntuación del {code}") and target:
            number = target.removeprefix("under ").removeprefix("menos de ")
            if number.isdigit():
                return {
                    "measure_instrument": code,
                    "measure_op": "below",
                    "measure_value": float(number),
                }
    return {}


def _email(name: str, domain: str) -> str:
    cleaned = name.replace("Dr. ", "").replace("'", "").lower()
    return ".".join(cleaned.split()) + "@" + domain


def _sign_ins(session: Session, org: Organization) -> list[SignIn]:
    clinics = {
        c.id: c.name
        for c in session.scalars(select(Clinic).where(Clinic.organization_id == org.id))
    }
    order = {r.value: i for i, r in enumerate(Role)}
    users = session.scalars(select(User).where(User.organization_id == org.id)).all()
    rows = [
        SignIn(u.email, u.name, u.role.replace("_", " "), clinics.get(u.clinic_id, ""))
        for u in users
    ]
    return sorted(rows, key=lambda r: (order.get(r.role.replace(" ", "_"), 99), r.clinic, r.name))


def load_demo(session: Session) -> DemoSummary:
    """Create the demo organization unless it exists; either way, list its sign-ins."""
    org = session.scalar(select(Organization).where(Organization.slug == DEMO_SLUG))
    created = False
    if org is None:
        org = _build(session)
        created = True
    count = len(session.scalars(select(Patient.id).where(Patient.organization_id == org.id)).all())
    return DemoSummary(org.name, created, count, _sign_ins(session, org))


@dataclass(order=True)
class _Event:
    at: datetime
    order: int
    run: Callable[[], None] = field(compare=False)


def _build(session: Session) -> Organization:
    real_clock = get_clock()
    start = real_clock.now()
    clock = FakeClock(start - timedelta(days=400))
    set_clock(clock)
    try:
        return _replay(session, start, clock)
    finally:
        set_clock(real_clock)


def _replay(session: Session, start: datetime, clock: FakeClock) -> Organization:
    org = create_organization(
        session, name="Riverside Health (demo)", slug=DEMO_SLUG, timezone=TIMEZONE
    )
    clinics = {
        key: create_clinic(session, organization=org, name=name) for key, name in CLINICS.items()
    }
    for key in _CONTENT.part2_programs:
        # A 42 CFR Part 2 program (the addiction service): set where the model has the column.
        if hasattr(Clinic, "part2_program"):
            clinics[key].part2_program = True
    create_user(
        session,
        by=None,
        organization=org,
        email="admin@riverside.example.org",
        name="Avery Admin",
        role=Role.admin,
        password=DEMO_PASSWORD,
        must_change_password=False,
    )
    staff: dict[str, dict[Role, User]] = {}
    for key, members in STAFF.items():
        staff[key] = {}
        for role, name in members:
            user, _ = create_user(
                session,
                by=None,
                organization=org,
                email=_email(name, f"{key}.riverside.example.org"),
                name=name,
                role=role,
                password=DEMO_PASSWORD,
                clinic=clinics[key],
                must_change_password=False,
            )
            staff[key][role] = user
    session.flush()

    # The north psychiatrist is on call for safety alerts nobody else acknowledged in time.
    org.on_call_user_id = staff["north"][Role.psychiatrist].id
    events: list[_Event] = []
    for index, spec in enumerate(PATIENTS):
        _schedule_patient(session, events, index, spec, org, clinics, staff, start)
    _schedule_safety(session, events, staff, start)
    _schedule_part2_story(session, events, staff, start)
    _schedule_messages(session, events, staff, start)
    for event in sorted(events):
        clock.set(event.at)
        event.run()
        session.flush()
    _load_visits(session, org, start, clock)
    clock.set(start)
    sync_all_tasks(session)  # the tasks the registry's flags ask for today
    _load_ehr(session, org, clinics["north"], start)
    _load_social(session, org, staff, start, clock)
    clock.set(start)
    return org


# --- visits (issue 22): booked, attended, cancelled, missed, asked for, and a video visit -------

DEMO_VIDEO = "https://meet.jit.si/{room}"


def _demo_patient(session: Session, org: Organization, given: str, family: str) -> Patient:
    found = session.scalar(
        select(Patient).where(
            Patient.organization_id == org.id,
            Patient.given_name == given,
            Patient.family_name == family,
        )
    )
    assert found is not None, f"no demo patient {given} {family}"
    return found


def _local(start: datetime, days: int, hour: int, minute: int = 0) -> datetime:
    day = local_date(start, TIMEZONE) + timedelta(days=days)
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(TIMEZONE))


def _load_visits(session: Session, org: Organization, start: datetime, clock: FakeClock) -> None:
    """Jamal Carter: a visit attended last week (its minutes in the registry) and a video visit
    starting five minutes after the demo was made (its Join button shows at once); Olivia
    Brennan: a visit she missed three days ago (an outreach task, a caseload flag); Rosa
    Delgado: a visit she cancelled, and a time her team suggested that waits for her answer;
    Grace Whitfield: a visit she asked for, waiting for the team to book it."""
    org.video_url_template = DEMO_VIDEO
    jamal = _demo_patient(session, org, "Jamal", "Carter")
    olivia = _demo_patient(session, org, "Olivia", "Brennan")
    rosa = _demo_patient(session, org, "Rosa", "Delgado")
    grace = _demo_patient(session, org, "Grace", "Whitfield")

    def team(patient: Patient) -> access.PatientAccess:
        lead = next(
            m.user
            for m in members_of_patient(session, patient_id=patient.id)
            if m.user.is_clinician
        )
        return access.patient_for(session, lead, patient.id)

    def own(patient: Patient) -> access.PatientAccess:
        assert patient.user_id is not None
        user = session.get(User, patient.user_id)
        assert user is not None
        return access.patient_for(session, user, patient.id)

    def booked(patient: Patient, kind: str, at: datetime, minutes: int = 45) -> Any:
        clock.set(at - timedelta(days=10))
        return visit_actions.book(
            session, access=team(patient), data=VisitIn(kind=kind, start=at, minutes=minutes)
        )

    attended = booked(jamal, "in_person", _local(start, -7, 10))
    clock.set(attended.start + timedelta(minutes=50))
    visit_actions.set_attendance(
        session,
        access=team(jamal),
        visit_id=attended.id,
        data=AttendanceIn(version=attended.version, status="fulfilled", contact_minutes=40)
        if reg.open_episode(session, jamal.id) is not None
        else AttendanceIn(version=attended.version, status="fulfilled"),
    )
    missed = booked(olivia, "in_person", _local(start, -3, 14))
    clock.set(missed.start + timedelta(minutes=30))
    visit_actions.set_attendance(
        session,
        access=team(olivia),
        visit_id=missed.id,
        data=AttendanceIn(version=missed.version, status="noshow"),
    )
    cancelled = booked(rosa, "phone", _local(start, 2, 11), minutes=30)
    clock.set(start - timedelta(days=1))
    visit_actions.cancel(
        session,
        access=own(rosa),
        visit_id=cancelled.id,
        version=cancelled.version,
        reason="Tengo que trabajar ese día",
    )
    visit_actions.book(
        session,
        access=team(rosa),
        data=VisitIn(kind="phone", start=_local(start, 4, 11), minutes=30, propose=True),
    )
    visit_actions.request_visit(
        session,
        access=own(grace),
        data=VisitRequestIn(kind="in_person", start=_local(start, 6, 9), minutes=45),
    )
    clock.set(start - timedelta(hours=1))
    visit_actions.book(
        session,
        access=team(jamal),
        data=VisitIn(kind="video", start=start + timedelta(minutes=5), minutes=60),
    )
    visit_actions.book(
        session,
        access=team(jamal),
        data=VisitIn(kind="in_person", start=_local(start, 14, 10), minutes=45),
    )


# --- what the clinics' EHR sends (ehr.yaml): the Quality page's CMS159 and CMS2 ---------------

DEMO_CLIENT = "demo-ehr"
_LOINC, _SNOMED, _CPT = (
    "http://loinc.org",
    "http://snomed.info/sct",
    "http://www.ama-assn.org/go/cpt",
)
_TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
_SCREEN = {"negative": "428171000124102", "positive": "428181000124104"}


def _coded(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _ehr_bundle(rec: Any, patient: Patient, system: str, year_start: date) -> dict[str, Any]:
    """One patient's EHR record as a transaction Bundle, as an EHR feed sends it."""
    ref = f"urn:uuid:{patient.id}"

    def at(day: int, hour: int = 10) -> str:
        return f"{(year_start + timedelta(days=day)).isoformat()}T{hour:02d}:00:00+00:00"

    def visit(day: int) -> dict[str, Any]:
        return {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [_coded(_CPT, "99213")],
            "subject": {"reference": ref},
            "period": {"start": at(day), "end": at(day, 11)},
        }

    resources: list[dict[str, Any]] = []
    if rec.depression_visit_day is not None:
        resources.append(
            {
                "resourceType": "Condition",
                "clinicalStatus": _coded(_TERMINOLOGY + "condition-clinical", "active"),
                "verificationStatus": _coded(_TERMINOLOGY + "condition-ver-status", "confirmed"),
                "category": [_coded(_TERMINOLOGY + "condition-category", "problem-list-item")],
                "code": _coded(_SNOMED, "370143000"),
                "subject": {"reference": ref},
                "onsetDateTime": at(rec.depression_visit_day - 30),
            }
        )
        resources.append(visit(rec.depression_visit_day))
    for day, total in rec.phq9:
        resources.append(
            {
                "resourceType": "Observation",
                "status": "final",
                "category": [_coded(_TERMINOLOGY + "observation-category", "survey")],
                "code": _coded(_LOINC, "44261-6"),
                "subject": {"reference": ref},
                "effectiveDateTime": at(day),
                "valueInteger": total,
            }
        )
    if rec.screening_visit_day is not None:
        resources.append(visit(rec.screening_visit_day))
        resources.append(
            {
                "resourceType": "Observation",
                "status": "final",
                "category": [_coded(_TERMINOLOGY + "observation-category", "survey")],
                "code": _coded(_LOINC, "73832-8"),
                "subject": {"reference": ref},
                "effectiveDateTime": at(rec.screening_visit_day, 9),
                "valueCodeableConcept": _coded(_SNOMED, _SCREEN[rec.screen]),
            }
        )
    person = {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": patient.mrn}],
        "name": [{"family": patient.family_name, "given": [patient.given_name]}],
        "birthDate": patient.birth_date.isoformat(),
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": ref, "resource": person, "request": {"method": "POST", "url": "Patient"}}
        ]
        + [
            {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
            for r in resources
        ],
    }


def _load_ehr(session: Session, org: Organization, clinic: Clinic, start: datetime) -> None:
    """The demo's integration client sends each patient's EHR record in ehr.yaml through the
    EHR import (the action POST /fhir calls), matched to the demo's patients by MRN."""
    records = _CONTENT.ehr_records
    if not records:
        return
    _, token = create_client_token(
        session, organization=org, name=DEMO_CLIENT, scopes=["import", "quality"], clinic=clinic
    )
    client = session.get(User, token.user_id)
    assert client is not None
    template = get_settings().fhir_mrn_system
    system = ehr.mrn_system_for(template, org)
    year_start = date(start.astimezone(ZoneInfo(TIMEZONE)).year, 1, 1)
    patients = {
        (p.given_name, p.family_name): p
        for p in session.scalars(select(Patient).where(Patient.organization_id == org.id))
    }
    for rec in records:
        patient = patients[_who(rec.patient)]
        # The action POST /fhir calls (an order in the Bundle goes onto the medication list).
        ehr_import.import_bundle(
            session,
            by=client,
            scopes=frozenset({"import"}),
            bundle=_ehr_bundle(rec, patient, system, year_start),
            mrn_system=template,
        )
        session.flush()


def _days(start: datetime, offset: float, hour: int = 10) -> datetime:
    """`hour` o'clock in the organization's zone, `offset` days from today there (as UTC)."""
    local = start.astimezone(ZoneInfo(TIMEZONE)) + timedelta(days=offset)
    return local.replace(hour=hour, minute=0, second=0, microsecond=0).astimezone(UTC)


def _date(start: datetime, offset: int) -> date:
    """The organization's date `offset` days from today."""
    return (start.astimezone(ZoneInfo(TIMEZONE)) + timedelta(days=offset)).date()


@dataclass
class _Story:
    """One patient's story being scheduled: who they are, their team, and the events so far."""

    session: Session
    events: list[_Event]
    index: int
    spec: tuple[Any, ...]
    org: Organization
    clinics: dict[str, Clinic]
    team: dict[Role, User]
    start: datetime
    holder: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.given, self.family, self.preferred, self.born, self.gender, self.language) = (
            self.spec[:6]
        )
        self.clinic_key, self.profile_name, self.stage = self.spec[6:]
        self.profile = PROFILES[self.profile_name]
        self.lead = self.team[Role.care_manager]
        self.begin = STAGE_BEGIN[self.stage]
        self.seq = iter(range(self.index * 1000, self.index * 1000 + 1000))

    @property
    def who(self) -> tuple[str, str]:
        return (self.given, self.family)

    def said(self, text: str) -> str:
        """What the team wrote on the plan, in the patient's language."""
        return SPANISH[text] if self.language == "es" else text

    def at(self, offset: float, fn: Callable[[], None], hour: int = 10) -> None:
        when = _days(self.start, offset, hour) + timedelta(minutes=self.index)
        self.events.append(_Event(when, next(self.seq), fn))

    def acc(self, user: User) -> access.PatientAccess:
        return access.patient_for(self.session, user, self.holder["patient"].id)

    def plan(self) -> Any:
        plan = plans.current_plan(self.session, self.holder["patient"].id)
        assert plan is not None
        return plan

    def contents(self) -> PlanContents:
        return plans.load_contents(self.session, self.plan())


def _schedule_patient(
    session: Session,
    events: list[_Event],
    index: int,
    spec: tuple[Any, ...],
    org: Organization,
    clinics: dict[str, Clinic],
    staff: dict[str, dict[Role, User]],
    start: datetime,
) -> None:
    """Schedule one patient's story, from registration to where their stage leaves them."""
    team = dict(staff[spec[6]])
    for member in _CONTENT.also_on_team.get((spec[0], spec[1]), []):
        # Staff of another clinic on the patient's team (Megan Doyle's primary care provider).
        clinic, role = member.split(".")
        team.setdefault(Role(role), staff[clinic][Role(role)])
    st = _Story(session, events, index, spec, org, clinics, team, start)
    _schedule_registration(st)
    if st.stage == "new":
        return
    course = course_of(st.who)
    st.at(st.begin + 1, functools.partial(_build_plan, st))
    st.at(st.begin + 2, functools.partial(_milestones_and_steps, st), hour=14)
    if st.stage == "draft":
        assert course is not None
        _schedule_draft(st, course)
        return
    _schedule_agreement(st)
    _schedule_registry(st)
    _schedule_decisions(st)
    if course is not None:
        _schedule_check_ins(st, course)
    _schedule_review_and_end(st)


def _schedule_registration(st: _Story) -> None:
    """Registered with a portal account and the clinic's team; enrolled if new; family."""
    session, lead = st.session, st.lead

    def register() -> None:
        patient, _ = register_patient(
            session,
            by=lead,
            organization=st.org,
            data=NewPatient(
                given_name=st.given,
                family_name=st.family,
                preferred_name=st.preferred,
                birth_date=st.born,
                gender=st.gender,
                language=st.language,
                mrn=f"{st.clinic_key[0].upper()}-{1001 + st.index}",
                clinic_id=st.clinics[st.clinic_key].id,
                phone=f"555-01{st.index:02d}",
            ),
            portal_email=_email(f"{st.given} {st.family}", "patients.example.org"),
            portal_password=DEMO_PASSWORD,
        )
        user = session.get(User, patient.user_id)
        assert user is not None
        user.must_change_password = False
        for _role, member in st.team.items():
            if member.id != lead.id:
                add_team_member(session, by=lead, patient=patient, user_id=member.id)
        st.holder["patient"] = patient
        st.holder["patient_user"] = user

    st.at(st.begin, register, hour=9)
    if st.stage == "new" and st.index % 2 == 0:
        # Referred to the care manager two days ago; nobody has reached them yet.
        def enrol_new() -> None:
            reg.enroll(
                session,
                access=st.acc(lead),
                data=reg.Enrolment(program=PROGRAMS.get(st.profile_name, "depression")),
            )

        st.at(-2, enrol_new, hour=16)
    relative = RELATED.get(st.who)
    if relative is not None:
        st.at(st.begin, functools.partial(_add_family, st, relative), hour=11)


def _add_family(st: _Story, relative: tuple[str, str, bool]) -> None:
    name, relationship, consented = relative
    link, _ = add_related_person(
        st.session,
        access=st.acc(st.lead),
        name=name,
        email=_email(name, "family.example.org"),
        relationship=relationship,
        patient_consented=consented,
        consent_note="Agreed in clinic: care plan only" if consented else None,
    )
    st.session.flush()
    link_user = st.session.get(User, link.user_id)
    assert link_user is not None
    link_user.password_hash = hash_password(DEMO_PASSWORD)
    link_user.must_change_password = False


def _build_plan(st: _Story) -> None:
    """The lead starts the plan from the patient's plan story (plans/<name>.yaml)."""
    session, profile, a = st.session, st.profile, st.acc(st.lead)
    plans.start_plan(session, access=a, data=PlanStart(title="Care plan"))
    for description, system, code in profile["concerns"]:
        data: Any = ConcernIn(description=description, code_system=system, code=code)
        plans.add_item(session, access=a, section="concerns", data=data)
    goal_ids = []
    for statement, category, measure, target, due, priority, _ in profile["goals"]:
        goal = plans.add_item(
            session,
            access=a,
            section="goals",
            data=GoalIn(
                statement=statement,
                category=category,
                measure=measure,
                target=target,
                due_on=_date(st.start, st.begin + due),
                priority=priority,
                status="accepted",
                **_measure_link(measure, target),
            ),
            reason=st.said("Written together at the first visit"),
        )
        goal_ids.append(goal.id)
    st.holder["goal_ids"] = goal_ids
    for kind, description, role, frequency, _status in profile["interventions"]:
        data = InterventionIn(
            kind=kind,
            description=description,
            responsible_id=st.team[role].id,
            frequency=frequency,
            status="not_started",
            goal_id=goal_ids[0],
        )
        plans.add_item(session, access=a, section="interventions", data=data)
    for description in profile["strengths"]:
        data = StrengthIn(description=description)
        plans.add_item(session, access=a, section="strengths", data=data)
    for kind, description, way in profile["barriers"]:
        data = BarrierIn(kind=kind, description=description, way_around=way)
        plans.add_item(session, access=a, section="barriers", data=data)
    for if_this, then_we in profile["contingencies"]:
        data = ContingencyIn(if_this=if_this, then_we=then_we)
        plans.add_item(session, access=a, section="contingencies", data=data)
    data = PreferencesIn(version=st.plan().version, **profile["preferences"])
    plans.update_preferences(session, access=a, data=data)


def _milestones_and_steps(st: _Story) -> None:
    a = st.acc(st.team.get(Role.therapist, st.lead))
    for goal_id, (_, _, _, _, due, _, milestones) in zip(
        st.holder["goal_ids"], st.profile["goals"], strict=True
    ):
        for n, description in enumerate(milestones, start=1):
            data: Any = MilestoneIn(
                goal_id=goal_id,
                description=description,
                target_on=_date(st.start, st.begin + 2 + n * due // 3),
            )
            plans.add_item(st.session, access=a, section="milestones", data=data)
    for description, role, due in st.profile["steps"]:
        data = ActionStepIn(
            description=description,
            owner="patient" if role is None else str(st.team[role].id),
            goal_id=st.holder["goal_ids"][0],
            due_on=_date(st.start, st.begin + 2 + due),
        )
        plans.add_item(st.session, access=a, section="action_steps", data=data)


def _schedule_draft(st: _Story, course: Course) -> None:
    """A draft plan: baseline scores taken in clinic, and a goal the patient proposed."""

    def baseline() -> None:
        for _day, code, total in course.scores:
            checkin.record_response(
                st.session,
                access=st.acc(st.lead),
                instrument_code=code,
                submission=measures.Submission(
                    answers=answers_for(code, total), mode=measures.Mode.in_person
                ),
            )

    st.at(st.begin + 1, baseline, hour=9)

    def patient_proposes() -> None:
        plan_actions.propose_goal(
            st.session,
            access=st.acc(st.holder["patient_user"]),
            data=GoalProposal(
                statement="I would like to get back to swimming",
                category="physical_health",
                priority="medium",
                why="It used to help me feel calm",
            ),
        )

    st.at(st.begin + 4, patient_proposes, hour=19)


def _schedule_agreement(st: _Story) -> None:
    """The plan is activated and agreed; treatment starts; the patient does a first step."""

    def activate() -> None:
        plans.activate_plan(st.session, access=st.acc(st.lead), version=st.plan().version)

    def both_agree() -> None:
        number = st.plan().revision_number
        plans.agree(st.session, access=st.acc(st.holder["patient_user"]), revision=number)
        plans.agree(st.session, access=st.acc(st.lead), revision=number)

    def first_step_done() -> None:
        mine = [s for s in st.contents().action_steps if s.owner_is_patient]
        if mine:
            plans.set_step_status(
                st.session,
                access=st.acc(st.holder["patient_user"]),
                step_id=mine[0].id,
                status=StepStatus.done,
                version=mine[0].version,
            )

    st.at(st.begin + 3, activate)
    st.at(st.begin + 3, both_agree, hour=15)
    st.at(st.begin + 10, functools.partial(_start_treatment, st))
    st.at(st.begin + 12, first_step_done, hour=20)


def _start_treatment(st: _Story) -> None:
    a = st.acc(st.lead)
    # The profile's own interventions (a decision made together may have added one).
    own = st.contents().interventions[: len(st.profile["interventions"])]
    for item, (_, _, _, _, status) in zip(own, st.profile["interventions"], strict=True):
        if status != item.status:
            plans.update_item(
                st.session,
                access=a,
                section="interventions",
                item_id=item.id,
                data=InterventionIn(
                    kind=item.kind,
                    description=item.description,
                    responsible_id=item.responsible_id,
                    frequency=item.frequency,
                    status=status,
                    goal_id=item.goal_id,
                ),
                version=item.version,
                reason=st.said("Treatment started"),
            )


def _schedule_check_ins(st: _Story, course: Course) -> None:
    """Check-ins answered through the portal on the patient's own course (course_of), on the
    schedules of their program's measures (set when the plan became active)."""

    def schedules() -> None:
        a = st.acc(st.lead)
        wanted = dict(zip(course.instruments, (14, 28), strict=True))
        for schedule in measures.active_schedules(st.session, st.holder["patient"].id):
            if wanted.get(schedule.instrument) == schedule.every_days:
                del wanted[schedule.instrument]
            else:
                measures.stop_schedule(st.session, access=a, schedule_id=schedule.id)
        for code, every in wanted.items():
            measures.add_schedule(
                st.session,
                access=a,
                instrument_code=code,
                every_days=every,
                start_on=_date(st.start, st.begin + 3),
                reason="The measures of this patient's program",
            )

    st.at(st.begin + 3, schedules, hour=16)
    last_day = course.scores[-1][0]
    for day, code, total in course.scores:
        urgent = st.who == ALERT_PATIENT and code == "PHQ-9" and day == last_day
        check_in = functools.partial(_check_in, st, code, total, 1 if urgent else 0)
        st.at(day, check_in, hour=17 + st.index % 5)


def _check_in(st: _Story, code: str, total: int, item9: int) -> None:
    patient_access = st.acc(st.holder["patient_user"])
    response = measures.start_or_resume(st.session, access=patient_access, instrument_code=code)
    checkin.submit(
        st.session,
        access=patient_access,
        response_id=response.id,
        answers=answers_for(code, total, item9=item9),
        version=response.version,
    )


def _schedule_review_and_end(st: _Story) -> None:
    """The last review; a goal changed at review (awaiting agreement); a completed plan ends."""
    stage = st.stage
    if stage in ("active", "awaiting_agreement", "completed"):

        def review() -> None:
            note = st.said("Reviewed with the psychiatric consultant")
            data = ReviewIn(version=st.plan().version, note=note)
            plans.record_review(st.session, access=st.acc(st.lead), data=data)

        # Active plans were last reviewed 20 or 24 days ago: some are due within the week.
        last_review = -24 if stage == "active" and st.index % 2 else -20
        st.at({"active": last_review, "awaiting_agreement": -10}.get(stage, st.begin + 31), review)
    if stage == "awaiting_agreement":
        st.at(-2, functools.partial(_change_goal, st))
    if stage == "completed":

        def complete() -> None:
            plans.end_plan(
                st.session,
                access=st.acc(st.lead),
                status=PlanStatus.completed,
                reason="Goals met; moving to relapse prevention with primary care",
            )

        st.at(st.begin + COMPLETED_AFTER, complete)


def _change_goal(st: _Story) -> None:
    a = st.acc(st.team[Role.psychiatrist] if Role.psychiatrist in st.team else st.lead)
    goal = st.contents().goals[0]
    plans.update_item(
        st.session,
        access=a,
        section="goals",
        item_id=goal.id,
        data=GoalIn(
            statement=goal.statement,
            category=goal.category,
            measure=goal.measure,
            target=goal.target,
            due_on=goal.due_on + timedelta(days=28) if goal.due_on else None,
            priority=goal.priority,
            status=goal.status,
        ),
        version=goal.version,
        reason="Slower progress than hoped; more time agreed at review",
    )


# --- safety: alerts in every state, a safety plan, a missed follow-up (all synthetic) ---------


def _schedule_safety(
    session: Session, events: list[_Event], staff: dict[str, dict[Role, User]], start: datetime
) -> None:
    """The safety stories in safety.yaml, in the file's order."""
    seq = iter(range(900_000, 901_000))
    now_ish = start.replace(second=0, microsecond=0)
    for step in demo_content.content().safety_events:
        if step.minutes_ago is not None:
            when = now_ish - timedelta(minutes=step.minutes_ago)
        else:
            assert step.day is not None and step.hour is not None
            when = _days(start, step.day, step.hour) + timedelta(minutes=step.minute)
        run = functools.partial(_SAFETY_STEPS[step.do], _SafetyStep(session, staff, step))
        events.append(_Event(when, next(seq), run))


@dataclass
class _SafetyStep:
    """One step of a safety story, with the people it names found."""

    session: Session
    staff: dict[str, dict[Role, User]]
    step: SafetyEventIn

    def patient(self) -> Any:
        given, family = _who(self.step.patient or "")
        found = self.session.scalar(
            select(Patient).where(Patient.given_name == given, Patient.family_name == family)
        )
        assert found is not None
        return found

    def by(self) -> User:
        if self.step.by == "patient":
            return _patient_user(self.session, _who(self.step.patient or ""))
        clinic, role = (self.step.by or "").split(".")
        return self.staff[clinic][Role(role)]

    def acc(self) -> access.PatientAccess:
        return access.patient_for(self.session, self.by(), self.patient().id)

    def alert_id(self) -> Any:
        found = self.session.scalar(
            select(SafetyAlert)
            .where(SafetyAlert.patient_id == self.patient().id)
            .order_by(SafetyAlert.created_at.desc())
            .limit(1)
        )
        assert found is not None
        return found.id


def _who(name: str) -> tuple[str, str]:
    """A patient named "Given Family" in safety.yaml, as (given, family)."""
    return next((p[0], p[1]) for p in PATIENTS if f"{p[0]} {p[1]}" == name)


def _acknowledge(s: _SafetyStep) -> None:
    safety_alerts.acknowledge(s.session, access=s.acc(), alert_id=s.alert_id())


def _close(s: _SafetyStep) -> None:
    step = s.step
    closing = safety_alerts.Closing(
        outcome=step.outcome or "",
        risk_after=step.risk_after,
        note=step.note or "",
        no_follow_up=step.no_follow_up,
    )
    safety_alerts.close(s.session, access=s.acc(), alert_id=s.alert_id(), closing=closing)


def _write_safety_plan(s: _SafetyStep) -> None:
    content = dict(s.step.content or {})
    safety_plans.save(
        s.session, access=s.acc(), base_version=0, reason=s.step.reason, content=content
    )


def _add_reason_to_safety_plan(s: _SafetyStep) -> None:
    a = s.acc()
    plan = safety_plans.plan_for(s.session, a)
    assert plan is not None
    content = dict(plan.content)
    content["reasons"] = [*content["reasons"], s.step.reason]
    safety_plans.save(
        s.session, access=s.acc(), base_version=plan.version, reason="", content=content
    )


def _share_safety_plan(s: _SafetyStep) -> None:
    family = s.session.scalar(
        select(RelatedPerson).where(RelatedPerson.patient_id == s.patient().id)
    )
    assert family is not None
    safety_plans.set_share(s.session, access=s.acc(), related_person_id=family.id, share=True)


def _follow_up(s: _SafetyStep) -> None:
    note = s.step.note or ""
    safety_alerts.record_follow_up(s.session, access=s.acc(), alert_id=s.alert_id(), note=note)


def _record_in_clinic(s: _SafetyStep) -> None:
    checkin.record_response(
        s.session,
        access=s.acc(),
        instrument_code=s.step.instrument or "",
        submission=measures.Submission(
            answers=dict(s.step.answers or {}), mode=measures.Mode.in_person
        ),
    )


def _flag(s: _SafetyStep) -> None:
    safety_alerts.raise_manual_flag(
        s.session, access=s.acc(), tier=s.step.tier or "", reason=s.step.reason or ""
    )


def _portal_phq9(s: _SafetyStep) -> None:
    """A PHQ-9 through the portal on the patient's course for that day (at least 2)."""
    course = course_of(_who(s.step.patient or ""))
    assert course is not None and s.step.day is not None
    patient_access = s.acc()
    response = measures.start_or_resume(s.session, access=patient_access, instrument_code="PHQ-9")
    checkin.submit(
        s.session,
        access=patient_access,
        response_id=response.id,
        answers=phq9_answers(max(2, course.total_on("PHQ-9", s.step.day)), item9=s.step.item9 or 0),
        version=response.version,
    )


_SAFETY_STEPS: dict[str, Callable[[_SafetyStep], Any]] = {
    "acknowledge": _acknowledge,
    "close": _close,
    "write_safety_plan": _write_safety_plan,
    "add_reason_to_safety_plan": _add_reason_to_safety_plan,
    "share_safety_plan": _share_safety_plan,
    "follow_up": _follow_up,
    "record_in_clinic": _record_in_clinic,
    "flag": _flag,
    "portal_phq9": _portal_phq9,
    "escalate": lambda s: escalate_due(s.session),
    "raise_missed_follow_ups": lambda s: raise_missed_follow_ups(s.session),
}


def _patient_user(session: Session, who: tuple[str, str]) -> User:
    found = session.scalar(
        select(Patient).where(Patient.given_name == who[0], Patient.family_name == who[1])
    )
    assert found is not None and found.user_id is not None
    user = session.get(User, found.user_id)
    assert user is not None
    return user


# --- the co-occurring story: a patient of a 42 CFR Part 2 program (part2.yaml) ---------------


def _schedule_part2_story(
    session: Session, events: list[_Event], staff: dict[str, dict[Role, User]], start: datetime
) -> None:
    """What the addiction service and primary care write about Megan Doyle (part2.yaml)."""
    seq = iter(range(901_000, 902_000))
    for step in _CONTENT.story_events:
        when = _days(start, step.day, step.hour) + timedelta(minutes=step.minute)
        if step.by == "patient":
            author = None
        else:
            clinic, role = step.by.split(".")
            author = staff[clinic][Role(role)]
        run = functools.partial(_STORY_STEPS[step.do], session, author, step)
        events.append(_Event(when, next(seq), run))


def _schedule_messages(
    session: Session, events: list[_Event], staff: dict[str, dict[Role, User]], start: datetime
) -> None:
    """The message threads in messages.yaml, each message through the messaging action."""
    seq = iter(range(903_000, 904_000))
    for thread in _CONTENT.message_threads:
        made: dict[str, Any] = {}
        for n, step in enumerate(thread.messages):
            when = _days(start, step.day, step.hour) + timedelta(minutes=step.minute)
            run = functools.partial(_send_message, session, staff, thread, step, n, made)
            events.append(_Event(when, next(seq), run))
        if thread.closed is not None:
            close = thread.closed
            when = _days(start, close.day, close.hour) + timedelta(minutes=close.minute)
            run = functools.partial(_close_thread, session, staff, close, made)
            events.append(_Event(when, next(seq), run))


def _close_thread(
    session: Session, staff: dict[str, dict[Role, User]], close: Any, made: dict[str, Any]
) -> None:
    clinic, role = close.by.split(".")
    messaging.set_closed(
        session, by=staff[clinic][Role(role)], thread_id=made["thread"], closed=True
    )


def _send_message(
    session: Session,
    staff: dict[str, dict[Role, User]],
    thread: Any,
    step: Any,
    n: int,
    made: dict[str, Any],
) -> None:
    given, family = _who(thread.patient)
    patient = session.scalar(
        select(Patient).where(Patient.given_name == given, Patient.family_name == family)
    )
    assert patient is not None
    if step.by == "patient":
        author = session.get(User, patient.user_id)
    else:
        clinic, role = step.by.split(".")
        author = staff[clinic][Role(role)]
    assert author is not None
    if n == 0:
        sent = messaging.start(
            session,
            access=access.patient_for(session, author, patient.id),
            kind=thread.kind,
            subject=thread.subject,
            body=step.body,
        )
        made["thread"] = str(sent.thread.id)
    else:
        messaging.answer(session, by=author, thread_id=made["thread"], body=step.body)


def _story_access(session: Session, author: User, step: Any) -> access.PatientAccess:
    given, family = _who(step.patient)
    patient = session.scalar(
        select(Patient).where(Patient.given_name == given, Patient.family_name == family)
    )
    assert patient is not None
    return access.patient_for(session, author, patient.id)


def _story_plan_item(session: Session, author: User, step: Any) -> None:
    a = _story_access(session, author, step)
    item = step.plan_item()
    data: Any
    if step.section == "concerns":
        data = ConcernIn(description=item.description, code_system=item.code_system, code=item.code)
    elif step.section == "goals":
        data = GoalIn(
            statement=item.statement,
            category=item.category,
            measure=item.measure,
            target=item.target,
            due_on=_date(get_clock().now(), item.due_in_days),
            priority=item.priority,
            status="accepted",
            **_measure_link(item.measure, item.target),
        )
    elif step.section == "interventions":
        data = InterventionIn(
            kind=item.kind,
            description=item.description,
            responsible_id=author.id,
            frequency=item.frequency,
            status=item.status,
        )
    else:
        data = StrengthIn(description=item.description)
    plans.add_item(session, access=a, section=step.section, data=data)


def _story_contact(session: Session, author: User, step: Any) -> None:
    a = _story_access(session, author, step)
    data = reg.ContactIn(kind=step.kind, mode=step.mode, minutes=step.minutes, note=step.note)
    reg.log_contact(session, access=a, data=data)


def _story_medication(session: Session, author: User, step: Any) -> None:
    """A medication prescribed by the author (checked with the rest of the list)."""
    a = _story_access(session, author, step)
    today = org_today(session, a.patient.organization_id)
    data = MedicationIn.model_validate({"started_on": today, **(step.item or {})})
    med_actions.add(session, access=a, data=data)


def _story_medication_report(session: Session, author: User | None, step: Any) -> None:
    """Something the patient says they take that is not on their list ("I take this")."""
    user = _patient_user(session, _who(step.patient))
    a = _story_access(session, user, step)
    med_actions.report_new(session, access=a, data=ReportedIn.model_validate(step.item))


def _staff_user(session: Session, member: str) -> User:
    """A demo staff member by `<clinic>.<role>` (their name in clinic.yaml)."""
    clinic, role = member.split(".")
    name = next(n for r, n in _CONTENT.staff[clinic] if r == Role(role))
    found = session.scalar(select(User).where(User.name == name))
    assert found is not None
    return found


def _story_protocol(session: Session, author: User, step: Any) -> None:
    """A line of the joint prescribing protocol about a medication on the patient's list."""
    a = _story_access(session, author, step)
    line = StoryProtocolIn.model_validate(step.item)
    med = next(m for m in med_service.list_medications(session, access=a) if m.rxcui == line.rxcui)
    data = ProtocolIn(
        medication_id=med.id,
        monitoring=line.monitoring,
        monitor_owner_id=_staff_user(session, line.monitor).id if line.monitor else None,
        tell=[_staff_user(session, t).id for t in line.tell],
    )
    med_actions.add_protocol(session, access=a, data=data)


def _story_moud(session: Session, author: User, step: Any) -> None:
    """A MOUD record (a PDMP check, a urine drug test, naloxone...) dated the step's day."""
    a = _story_access(session, author, step)
    fields = dict(step.item or {})
    rxcui = fields.pop("rxcui", None)
    if rxcui is not None:
        med = next(m for m in med_service.list_medications(session, access=a) if m.rxcui == rxcui)
        fields["medication_id"] = med.id
    on = org_today(session, a.patient.organization_id)  # the events run at their own time
    med_actions.record_moud(session, access=a, data=MoudIn.model_validate({**fields, "on": on}))


_STORY_STEPS: dict[str, Callable[[Session, Any, Any], None]] = {
    "plan_item": _story_plan_item,
    "contact": _story_contact,
    "medication": _story_medication,
    "medication_report": _story_medication_report,
    "protocol": _story_protocol,
    "moud": _story_moud,
}


# --- collaborative care: episodes, contacts and minutes, case reviews (all synthetic) ---------

PROGRAMS = _CONTENT.programs  # a plan story's program (in team_words.yaml)


AIDS = _CONTENT.aids  # a program's decision aid (in team_words.yaml)


def _schedule_decisions(st: _Story) -> None:
    """Decisions made together: some patients chose their treatment with a decision aid the
    day their plan became active (the choice is in the plan they agreed to); others are working
    through one at home now, with a question and a SURE answer waiting for the visit."""
    aid_id = AIDS.get(PROGRAMS.get(st.profile_name, "depression"))
    if aid_id is None or st.stage not in ("active", "awaiting_agreement", "completed"):
        return
    if st.clinic_key in _CONTENT.part2_programs:
        # The addiction service's patients choose their medication in its own visits (their
        # plan says so); a decision record would be a Part 2 record, not a demo of a choice.
        return
    st.holder.setdefault("decision", None)
    start = functools.partial(_decision_start, st, aid_id)
    if st.index % 3 == 1 and st.stage in ("active", "completed"):
        st.at(st.begin + 1, start, hour=19)
        st.at(st.begin + 1, functools.partial(_decision_sure, st, True), hour=20)
        # In the visit; both agree to the plan that afternoon.
        st.at(st.begin + 3, functools.partial(_decision_record, st), hour=12)
    elif st.index % 3 == 2 and st.stage in ("active", "awaiting_agreement"):
        st.at(-4, start, hour=19)
        st.at(-4, functools.partial(_decision_ask, st), hour=20)
        st.at(-3, functools.partial(_decision_sure, st, False), hour=9)


def _patient_said(st: _Story, text: str) -> str:
    return SPANISH[text] if st.holder["patient"].language == "es" else text


def _decision_start(st: _Story, aid_id: str) -> None:
    decision = ds.start(st.session, access=st.acc(st.holder["patient_user"]), aid_id=aid_id)
    aid = ds.aid_of(decision)
    assert aid is not None
    ds.save_values(
        st.session,
        access=st.acc(st.holder["patient_user"]),
        decision_id=decision.id,
        values=[aid.values[st.index % len(aid.values)].id, aid.values[-1].id],
        leaning=aid.options[st.index % len(aid.options)].id,
    )
    st.holder["decision"] = decision.id


def _decision_sure(st: _Story, all_yes: bool) -> None:
    answers = dict.fromkeys(ds.SURE_ITEMS, True)
    if not all_yes:
        answers["sure"] = False
    ds.save_sure(
        st.session,
        access=st.acc(st.holder["patient_user"]),
        decision_id=st.holder["decision"],
        answers=answers,
    )


def _decision_ask(st: _Story) -> None:
    decision_actions.add_question(
        st.session,
        access=st.acc(st.holder["patient_user"]),
        decision_id=st.holder["decision"],
        text=_patient_said(st, "How long would I need to keep going with it?"),
    )


def _decision_record(st: _Story) -> None:
    a = st.acc(st.lead)
    decision = ds.get_decision(st.session, access=a, decision_id=st.holder["decision"], audit=False)
    aid = ds.aid_of(decision)
    assert aid is not None
    ds.record_outcome(
        st.session,
        access=st.acc(st.lead),
        decision_id=decision.id,
        outcome=ds.Outcome(
            choice=decision.leaning or aid.options[0].id,
            reasons=_patient_said(st, "It fits my work and what matters most to me right now."),
            considered=[o.id for o in aid.options],
            decided_on=now_local_date(st.session, st.holder["patient"]),
            clinician_ids=[],
        ),
    )


def now_local_date(session: Session, patient: Any) -> Any:
    return org_today(session, patient.organization_id)


# What a care manager asks the psychiatric consultant about a patient not improving, by program
# (the scores before it come from the patient's course).
QUESTIONS = _CONTENT.questions  # a program's decision question (in team_words.yaml)


def _so_far(patient: Any, day: int) -> tuple[str, int, int, int]:
    """The patient's main measure at enrolment and its latest total before `day` (check-ins
    come in the evening, after a question asked that day), and the weeks from enrolment."""
    course = course_of((patient.given_name, patient.family_name))
    assert course is not None
    main = course.instruments[0]
    totals = [(d, t) for d, code, t in course.scores if code == main and d < day]
    return main, totals[0][1], totals[-1][1], round((day - totals[0][0]) / 7)


def _schedule_registry(st: _Story) -> None:
    """Patients with an active or finished plan are in collaborative care: enrolled when the
    plan became active, assessed that day, and followed up every two weeks (a patient whose
    review is overdue has had no contact for six weeks). A plan that ended completes the
    episode, with a relapse-prevention plan. Two patients not improving at week 8 show the
    psychiatric case review: one reviewed, with a recommendation accepted into the plan and one
    still waiting; one asked about and waiting in the consultant's queue."""
    stage, begin, index = st.stage, st.begin, st.index
    if stage not in ("active", "review_overdue", "awaiting_agreement", "completed"):
        return
    program = PROGRAMS.get(st.profile_name, "depression")
    end = begin + COMPLETED_AFTER if stage == "completed" else 0

    def talk(kind: str, minutes: int, mode: str = "phone") -> Callable[[], None]:
        return functools.partial(_talk, st, kind, minutes, mode)

    st.at(begin + 3, functools.partial(_enrol, st, program), hour=11)
    st.at(begin + 3, talk("initial_assessment", 50, "in_person"), hour=12)
    last = -42 if stage == "review_overdue" else end
    day = begin + 17
    while day < last:
        st.at(day, talk("follow_up", 15 + (index * 7 + day) % 30), hour=14)
        day += 14
    if index % 3 == 0 and stage == "active":
        st.at(begin + 24, talk("outreach_attempt", 5), hour=17)
    if stage == "awaiting_agreement" and index % 2 == 0:
        st.at(-20, functools.partial(_case_reviewed, st), hour=13)
        st.at(-18, functools.partial(_accept_dose, st), hour=10)
    elif stage == "awaiting_agreement":
        st.at(-2, functools.partial(_ask_for_review, st, program), hour=15)
    if stage == "completed":
        st.at(end, functools.partial(_complete_episode, st), hour=11)


def _enrol(st: _Story, program: str) -> None:
    manager = st.team[Role.care_manager]
    reg.enroll(st.session, access=st.acc(manager), data=reg.Enrolment(program=program))


def _talk(st: _Story, kind: str, minutes: int, mode: str) -> None:
    manager = st.team[Role.care_manager]
    data = reg.ContactIn(kind=kind, mode=mode, minutes=minutes)
    reg.log_contact(st.session, access=st.acc(manager), data=data)


def _case_reviewed(st: _Story) -> None:
    main, first, latest, weeks = _so_far(st.holder["patient"], -20)
    rv.record_review(
        st.session,
        access=st.acc(st.team[Role.psychiatric_consultant]),
        data=rv.ReviewIn(
            minutes=15,
            summary=f"{main} {first} at enrolment, {latest} at {weeks} weeks: a partial "
            "response. Sertraline 50 mg, well tolerated. Increase the dose; start the "
            "trauma-focused therapy now rather than after the waiting list.",
            recommendations=[
                rv.RecommendationIn("increase_dose", "Increase sertraline to 100 mg daily"),
                rv.RecommendationIn(
                    "add_psychotherapy",
                    "Cognitive processing therapy, 12 weekly sessions",
                ),
            ],
        ),
    )


def _accept_dose(st: _Story) -> None:
    rec = st.session.scalar(
        select(Recommendation).where(
            Recommendation.patient_id == st.holder["patient"].id,
            Recommendation.kind == "increase_dose",
        )
    )
    assert rec is not None
    recommendation.decide(
        st.session,
        access=st.acc(st.team[Role.care_manager]),
        rec_id=rec.id,
        accept=True,
        reason="Agreed at the visit",
    )


def _ask_for_review(st: _Story, program: str) -> None:
    main, first, latest, weeks = _so_far(st.holder["patient"], -2)
    rv.request_review(
        st.session,
        access=st.acc(st.team[Role.care_manager]),
        question=f"{main} {first} at enrolment, still {latest} after {weeks} weeks. "
        + QUESTIONS[program],
    )


def _complete_episode(st: _Story) -> None:
    a = st.acc(st.team[Role.care_manager])
    episode = st.session.scalar(
        select(Episode).where(
            Episode.patient_id == st.holder["patient"].id, Episode.ended_on.is_(None)
        )
    )
    assert episode is not None
    reg.change_status(
        st.session,
        access=a,
        episode_id=episode.id,
        status="completed",
        reason="Remission sustained; back to primary care with a relapse-prevention plan",
        version=episode.version,
    )
    reg.save_relapse_plan(
        st.session,
        access=a,
        base_version=0,
        reason="Written together at the last visit",
        content={
            "warning_signs": ["Sleeping badly for more than a week", "Skipping meals"],
            "keeps_me_well": ["Morning walks", "Keeping the Tuesday call with my sister"],
            "what_to_do": ["Restart the check-ins", "Call the clinic for an appointment"],
            "whom_to_call": [{"name": "The clinic", "contact": "555-0100"}],
        },
    )


# --- social needs (issue 23): Jamal Carter's food and housing needs and their referrals --------

DEMO_SERVICES = (
    # (organization, service, needs, languages, postcode, takes electronic referrals)
    ("Riverside Food Bank", "Weekly groceries", ["food-insecurity"], ["en", "es"], "RV101", True),
    ("Northside Pantry", "Emergency food boxes", ["food-insecurity"], ["en"], "RV102", True),
    (
        "Eastside Housing Help",
        "Rent and deposit help",
        ["housing-instability", "homelessness"],
        ["en"],
        "RV103",
        True,
    ),
    (
        "Riverside Tenant Support",
        "Help keeping your home",
        ["housing-instability"],
        ["en", "es"],
        "RV101",
        True,
    ),
    (
        "Ride to Care",
        "Rides to appointments",
        ["transportation-insecurity"],
        ["en", "es"],
        "RV104",
        False,
    ),
)
# Synthetic postcode centres for the demo town (made up; no real place).
DEMO_POSTCODES = (
    ("RV101", 45.500, -122.680),
    ("RV102", 45.540, -122.660),
    ("RV103", 45.480, -122.620),
    ("RV104", 45.520, -122.700),
)


def _load_social(
    session: Session, org: Organization, staff: Any, start: datetime, clock: FakeClock
) -> None:
    secret = get_settings().effective_secret_key()
    cm = staff["north"][Role.care_manager]
    patient = session.scalar(
        select(Patient).where(Patient.organization_id == org.id, Patient.given_name == "Jamal")
    )
    if patient is None:
        return
    social.load_postcodes(session, DEMO_POSTCODES)
    services = {}
    for provider, name, needs, languages, postcode, electronic in DEMO_SERVICES:
        services[provider] = social.add_service(
            session,
            by=cm,
            data={
                "provider_name": provider,
                "name": name,
                "categories": needs,
                "languages": languages,
                "postcode": postcode,
                "electronic_referrals": electronic,
                "hours": "Mon-Fri 9:00-17:00",
                "phone": "555-0100",
            },
        )
    clock.set(start - timedelta(days=30))
    acc = access.patient_for(session, cm, patient.id)
    answers = {"1": 1, "2": 0, "3": 2, "4": 1, "5": 0, "6": 0, "7": 1, "8": 1, "9": 1, "10": 1}
    checkin.record_response(
        session,
        access=acc,
        instrument_code="AHC-HRSN",
        submission=measures.Submission(answers=answers, mode=measures.Mode.in_person),
    )
    concerns = {c.domain: c for c in social.list_concerns(session, access=acc)}
    social.decide_concern(
        session,
        access=acc,
        concern_id=concerns["food-insecurity"].id,
        decision="confirm",
        words="I want to stop worrying about food at the end of the month",
    )

    def consent() -> ConsentIn:
        return ConsentIn(
            grantee_kind="organization",
            method="paper_scanned",
            signed_name="Jamal Carter",
            signed_on=org_today(session, org.id),
        )

    def send(provider: str, domain: str, summary: str, days: int = 5, replaces: Any = None):
        return social_actions.send_referral(
            session,
            access=acc,
            service_id=services[provider].id,
            concern_id=concerns[domain].id,
            shared_summary=summary,
            contact="Jamal, 555-0142, afternoons",
            consent=consent(),
            respond_days=days,
            replaces_id=replaces.id if replaces is not None else None,
            secret=secret,
        )

    # Food: the food bank accepts, works and completes it through its link.
    clock.set(start - timedelta(days=28))
    _food, food_link = send(
        "Riverside Food Bank", "food-insecurity", "Jamal would like help with groceries."
    )
    for days, status, extra in (
        (27, "accepted", {}),
        (26, "in-progress", {}),
        (20, "completed", {"outcome": "Registered for weekly groceries; first box collected."}),
    ):
        clock.set(start - timedelta(days=days))
        social.partner_transition(session, token=food_link, secret=secret, to=status, **extra)
    # Housing: declined with a reason, re-sent elsewhere, and that one is not answered in time.
    clock.set(start - timedelta(days=15))
    housing, housing_link = send(
        "Eastside Housing Help", "housing-instability", "Jamal is worried about losing his flat."
    )
    clock.set(start - timedelta(days=14))
    social.partner_transition(
        session, token=housing_link, secret=secret, to="rejected", reason="No openings this month."
    )
    clock.set(start - timedelta(days=13))
    send(
        "Riverside Tenant Support",
        "housing-instability",
        "Jamal is worried about losing his flat.",
        days=3,
        replaces=housing,
    )
    clock.set(start)
    social_actions.overdue_tasks(session)

"""The demo as a new user meets it: each patient's scores are their own, every episode has
the measures of its program, the Program page has outcomes to count, and a plan speaks its
patient's language. Built once (through `concord demo --no-serve`) for the module."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date

import pytest
from sqlalchemy import select

from concord.accounts.models import User as Person
from concord.actions import quality
from concord.clock import FakeClock, set_clock
from concord.db import make_engine, make_sessionmaker
from tests.conftest import NOW, fresh_database


@pytest.fixture(scope="module")
def demo_session(tmp_path_factory, database_url, demo_database):
    """A copy of the worker's demo (tests/conftest.py `demo_database`, built by `concord demo
    --no-serve` on the tests' today), for the module."""
    with fresh_database(
        database_url, tmp_path_factory.mktemp("demo"), "demo", like=demo_database
    ) as url:
        engine = make_engine(url)
        with make_sessionmaker(engine)() as session:
            yield session
        engine.dispose()


def test_the_demo_builds_the_same_data_as_before(demo_session):
    """The demo's content moved to concord/demo_data/*.yaml (issue 17): the rows per table,
    the patients, their plan items and their check-in scores are what main built before the
    move (tests/fixtures/demo_summary.json, written by tests/demo_summary.py from main)."""
    import json

    from tests.demo_summary import summary
    from tests.test_demo_data import FIXTURES, same_summary

    url = demo_session.get_bind().url.render_as_string(hide_password=False)
    expected = json.loads((FIXTURES / "demo_summary.json").read_text())
    assert len(expected["patients"]) == 26 and expected["scores"]  # the fixture is no stub
    same_summary(summary(url), expected)


def _patients(session):
    from concord.patients.models import Patient

    return session.scalars(select(Patient).order_by(Patient.family_name)).all()


def test_no_two_patients_share_a_score_history(demo_session):
    from concord.measures.models import MeasureObservation

    histories = defaultdict(list)
    for o in demo_session.scalars(
        select(MeasureObservation).order_by(MeasureObservation.effective_at)
    ):
        histories[o.patient_id].append((o.effective_at, o.instrument, o.value))
    assert len(histories) >= 15
    # Neither the same scores on the same days, nor (over three or more check-ins) the same
    # sequence of scores or the same days.
    days = [tuple((d.date(), i, v) for d, i, v in h) for h in histories.values()]
    assert len(set(days)) == len(days)
    phq9 = [tuple(v for _, i, v in h if i == "PHQ-9") for h in histories.values()]
    phq9 = [p for p in phq9 if len(p) >= 3]
    assert len(set(phq9)) == len(phq9)
    dates = [tuple(sorted({d.date() for d, _, _ in h})) for h in histories.values()]
    dates = [d for d in dates if len(d) >= 3]
    assert len(set(dates)) == len(dates)


def test_every_episode_has_scores_on_its_programs_measure(demo_session):
    from concord.careplans.service import current_plan
    from concord.measures.models import MeasureObservation, MeasureSchedule
    from concord.registry.models import Episode

    main = {
        "depression": "PHQ-9",
        "anxiety": "GAD-7",
        "ptsd": "PCL-5",
        "substance_use": "AUDIT-C",
        "co_occurring": "PHQ-9",
    }
    episodes = demo_session.scalars(select(Episode)).all()
    programs = {e.program for e in episodes}
    assert {"depression", "anxiety", "ptsd", "substance_use", "co_occurring"} <= programs
    for episode in episodes:
        scored = set(
            demo_session.scalars(
                select(MeasureObservation.instrument).where(
                    MeasureObservation.patient_id == episode.patient_id
                )
            )
        )
        if current_plan(demo_session, episode.patient_id) is None:
            continue  # referred in the last days, waiting for the first assessment
        wanted = {main[episode.program]}
        if episode.program == "co_occurring":
            wanted.add("AUDIT-C")
        assert wanted <= scored, (episode.program, scored)
        if episode.ended_on is None:
            scheduled = set(
                demo_session.scalars(
                    select(MeasureSchedule.instrument).where(
                        MeasureSchedule.patient_id == episode.patient_id,
                        MeasureSchedule.stopped_at.is_(None),
                    )
                )
            )
            assert main[episode.program] in scheduled, (episode.program, scheduled)


def test_the_program_page_counts_outcomes_at_10_to_24_weeks(demo_session):
    from concord.accounts.models import User
    from concord.registry.reports import program_view

    maya = demo_session.scalar(select(User).where(User.name == "Maya Okafor"))
    view = program_view(demo_session, by=maya)
    assert view.band_10_24 >= 3
    assert view.responded + view.remitted > 0
    assert view.with_follow_up_measure > 0
    demo_session.rollback()  # the view's audit events


def test_no_alert_the_stories_do_not_tell(demo_session):
    """Only the safety stories (Marcus, Olivia, Emily, Kevin) and Megan's co-occurring story (the
    benzodiazepine she reports beside her buprenorphine: the overdose-risk rule, issue 19)
    raise alerts: a course drawn from the model never crosses a risk rule by accident."""
    from concord.patients.models import Patient
    from concord.safety.models import SafetyAlert

    named = {
        (p.given_name, p.family_name)
        for p in demo_session.scalars(
            select(Patient).join(SafetyAlert, SafetyAlert.patient_id == Patient.id)
        )
    }
    assert named == {
        ("Marcus", "Lee"),
        ("Olivia", "Brennan"),
        ("Emily", "Sorensen"),
        ("Kevin", "O'Brien"),
        ("Megan", "Doyle"),
    }


SPANISH = re.compile(r"[áéíóúñ¿¡]|\b(quiero|mis?|de|la|el|los|las|por|para|con|que|una?)\b", re.I)
ENGLISH = re.compile(r"\b(the|and|I|my|with|to|of|for|want|when|is)\b")


def _plan_text(session, patient) -> list[str]:
    from concord.careplans.service import current_plan, load_contents

    plan = current_plan(session, patient.id)
    if plan is None:
        return []
    contents = load_contents(session, plan)
    texts = []
    for section in (
        "concerns",
        "goals",
        "milestones",
        "interventions",
        "action_steps",
        "strengths",
        "barriers",
        "contingencies",
    ):
        for item in getattr(contents, section):
            for name in (
                "description",
                "statement",
                "measure",
                "target",
                "frequency",
                "way_around",
                "if_this",
                "then_we",
                "why",
            ):
                value = getattr(item, name, None)
                if isinstance(value, str) and value:
                    texts.append(value)
    for name in (
        "what_matters_most",
        "treatment_preferences",
        "appointment_frequency",
        "cultural_considerations",
        "others_involved",
    ):
        value = getattr(plan, name)
        if value:
            texts.append(value)
    return texts


def test_a_plan_is_in_its_patients_language(demo_session):
    seen = {"en": 0, "es": 0}
    for patient in _patients(demo_session):
        texts = _plan_text(demo_session, patient)
        if not texts:
            continue
        seen[patient.language] += 1
        wrong = SPANISH if patient.language == "en" else ENGLISH
        # Names of instruments ("PHQ-9") are the same in both.
        stray = [t for t in texts if wrong.search(t)]
        assert not stray, (patient.given_name, stray)
    assert seen["en"] >= 15 and seen["es"] >= 3


def test_the_named_stories_are_told_with_their_own_scores(demo_session):
    from concord.measures.models import MeasureObservation
    from concord.patients.models import Patient
    from concord.registry.models import CaseReview

    reviews = demo_session.scalars(select(CaseReview)).all()
    by_patient = {r.patient_id: r for r in reviews}
    ethan = demo_session.scalar(select(Patient).where(Patient.given_name == "Ethan"))
    question = by_patient[ethan.id].question
    # Ethan's program is substance use: the question is about his AUDIT-C, not a PHQ-9, and
    # quotes his own first and latest scores.
    assert question.startswith("AUDIT-C ")
    audit_c = demo_session.scalars(
        select(MeasureObservation.value)
        .where(
            MeasureObservation.patient_id == ethan.id,
            MeasureObservation.instrument == "AUDIT-C",
            MeasureObservation.effective_at < by_patient[ethan.id].requested_at,
        )
        .order_by(MeasureObservation.effective_at)
    ).all()
    first, latest = (int(n) for n in re.findall(r"\d+", question.split(" after ")[0])[:2])
    assert (first, latest) == (audit_c[0], audit_c[-1])
    questions = [r.question for r in reviews if r.question]
    assert len(set(questions)) == len(questions)


def test_what_happened_happened_at_local_hours(demo_session):
    """The stories' times are the clinic's (America/Chicago): a counselling visit is not at
    5 AM, an evening check-in is in the evening."""
    from zoneinfo import ZoneInfo

    from concord.measures.models import MeasureResponse
    from concord.patients.models import Patient
    from concord.safety.models import SafetyAlert

    zone = ZoneInfo("America/Chicago")

    def local_hour(when):
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(zone).hour

    hours = [local_hour(r.completed_at) for r in demo_session.scalars(select(MeasureResponse))]
    assert hours and all(7 <= h <= 23 for h in hours), sorted(set(hours))
    kevin = demo_session.scalar(select(Patient).where(Patient.family_name == "O'Brien"))
    alert = demo_session.scalar(select(SafetyAlert).where(SafetyAlert.patient_id == kevin.id))
    assert 8 <= local_hour(alert.created_at) <= 17


def test_every_patient_with_a_plan_has_scores(demo_session):
    """A plan is written after a first visit, and the first visit measures (a draft plan's
    patient has their baseline)."""
    from concord.careplans.service import current_plan
    from concord.measures.models import MeasureObservation

    scored = set(demo_session.scalars(select(MeasureObservation.patient_id)))
    with_plan = [p for p in _patients(demo_session) if current_plan(demo_session, p.id)]
    assert len(with_plan) >= 18
    assert [p.given_name for p in with_plan if p.id not in scored] == []


def test_the_readmes_places_to_start_hold(demo_session):
    """What README.md's "Good places to start" promises is in the data."""
    from concord.accounts.models import User
    from concord.careplans.service import agreement_state, current_plan
    from concord.patients.models import Patient, RelatedPerson
    from concord.registry.models import CaseReview, Recommendation
    from concord.safety.models import SafetyAlert, SafetyPlanShare

    def patient(given):
        return demo_session.scalar(select(Patient).where(Patient.given_name == given))

    def user(name):
        return demo_session.scalar(select(User).where(User.name == name))

    # Grace's plan changed since she agreed; Jamal's is agreed.
    assert agreement_state(demo_session, current_plan(demo_session, patient("Grace").id)).awaiting
    assert agreement_state(demo_session, current_plan(demo_session, patient("Jamal").id)).agreed
    assert patient("Rosa").language == "es"
    # Marcus's ASQ today: open, passed on once, now Dr. Reyes's.
    asq = demo_session.scalar(
        select(SafetyAlert).where(
            SafetyAlert.patient_id == patient("Marcus").id, SafetyAlert.instrument == "ASQ"
        )
    )
    assert asq.status == "open" and asq.step > 0 and asq.owner_id == user("Dr. Daniel Reyes").id
    # Jordan Blake holds the alert for Emily's missed follow-up.
    missed = demo_session.scalar(select(SafetyAlert).where(SafetyAlert.source_kind == "follow_up"))
    assert missed.owner_id == user("Jordan Blake").id and missed.patient_id == patient("Emily").id
    # Ethan waits in the queue with Maya's question.
    ethan = demo_session.scalar(
        select(CaseReview).where(CaseReview.patient_id == patient("Ethan").id)
    )
    assert ethan.status == "queued" and ethan.requested_by_id == user("Maya Okafor").id
    # Grace: the dose recommendation accepted, the therapy one waiting more than two weeks.
    recs = {
        r.kind: r
        for r in demo_session.scalars(
            select(Recommendation).where(Recommendation.patient_id == patient("Grace").id)
        )
    }
    assert recs["increase_dose"].status == "accepted"
    waiting = recs["add_psychotherapy"]
    assert waiting.status == "proposed"
    proposed = waiting.proposed_at
    assert (NOW - (proposed if proposed.tzinfo else proposed.replace(tzinfo=UTC))).days > 14
    # Marcus shares his safety plan with Andre.
    share = demo_session.scalar(select(SafetyPlanShare))
    andre = demo_session.get(RelatedPerson, share.related_person_id)
    assert andre.user_id == user("Andre Lee").id


def test_megan_doyles_records_reach_her_pcp_only_while_she_consents(demo_session):
    """README's Part 2 walk-through: Megan Doyle's addiction service is a Part 2 program, her
    primary care provider (at Northside, on her team) sees her PHQ-9 and not her AUDIT-C until
    she consents, and not after she revokes; the demo itself holds no such consent."""
    from concord import access
    from concord.accounts.models import Clinic, User
    from concord.actions import consents as consent_actions
    from concord.consents import service as consents
    from concord.consents.models import Consent
    from concord.consents.schemas import SignedConsentIn
    from concord.measures.service import list_responses
    from concord.patients.models import Patient

    if not hasattr(Clinic, "part2_program"):
        pytest.skip("needs Part 2 programs (Clinic.part2_program)")
    name = "Riverside Recovery Services"
    recovery = demo_session.scalar(select(Clinic).where(Clinic.name == name))
    assert recovery.part2_program
    megan = demo_session.scalar(select(Patient).where(Patient.given_name == "Megan"))
    assert megan.clinic_id == recovery.id
    assert demo_session.scalars(select(Consent).where(Consent.patient_id == megan.id)).all() == []
    pcp = demo_session.scalar(select(User).where(User.name == "Dr. Hannah Lindqvist"))
    counsellor = demo_session.scalar(select(User).where(User.name == "Victor Osei"))
    lead = demo_session.scalar(select(User).where(User.name == "Renee Castillo"))
    # The sign-ins README names.
    assert pcp.email == "hannah.lindqvist@north.riverside.example.org"
    assert lead.email == "renee.castillo@recovery.riverside.example.org"
    assert counsellor.email == "victor.osei@recovery.riverside.example.org"
    assert demo_session.get(User, megan.user_id).email == "megan.doyle@patients.example.org"
    assert lead.clinic_id == counsellor.clinic_id == recovery.id != pcp.clinic_id

    def codes(user):
        acc = access.patient_for(demo_session, user, megan.id)
        return {r.instrument for r in list_responses(demo_session, access=acc)}

    try:
        assert codes(counsellor) == {"PHQ-9", "AUDIT-C"}
        assert codes(pcp) == {"PHQ-9"}
        mine = access.patient_for(demo_session, demo_session.get(User, megan.user_id), megan.id)
        # Step 2: Megan signs "one clinician who treats me" in the portal, naming her PCP (the
        # page /my/consents/share and its JSON twin call this action).
        offered = consent_actions.sharing_form(
            demo_session, access=mine, template_id="named-clinician"
        )
        assert offered.discloser == name
        assert pcp.id in {c.id for c in offered.choices}
        assert counsellor.id not in {c.id for c in offered.choices}  # inside the program
        consent = consent_actions.sign(
            demo_session,
            access=mine,
            data=SignedConsentIn(
                template="named-clinician",
                grantee_id=pcp.id,
                period_end=offered.default_end,
                signed_name="megan doyle",
                signed_on=offered.today,
            ),
        )
        assert codes(pcp) == {"PHQ-9", "AUDIT-C"}
        consents.revoke(demo_session, access=mine, consent_id=consent.id)
        assert codes(pcp) == {"PHQ-9"}
    finally:
        demo_session.rollback()


# What each labelled kind of record shows on a page (the text a person reads there), for the
# badge test below: a record whose text a page shows must have the badge beside it.
_SHOWN_AS = {
    "concern": "description",
    "goal": "statement",
    "milestone": "description",
    "intervention": "description",
    "action_step": "description",
    "strength": "description",
    "barrier": "description",
    "contingency": "then_we",
    "plan_comment": "body",
    "registry_contact": "note",
}
_PLAN_PAGES = ("/plan", "/measures", "/decisions", "/steps")
_SHOWN_ON = {"registry_contact": ("/registry",)}


def test_the_part2_badge_stands_beside_each_labelled_record_of_megan_doyle(demo_session):
    """Issue 18: "Protected by 42 CFR Part 2" beside every labelled record a page shows, and
    never beside one that is not. Signed in as Victor Osei, the addiction counsellor of
    Riverside Recovery Services (a Part 2 program: he sees its records), every page of Megan
    Doyle's record is opened; each badge names its record (data-part2), which must be one the
    rules label, and every labelled record whose text (or response link) a page shows has its
    badge there. The plan's history lists changes, not records: it is held to the second rule
    only. The schedules and episodes are held to it too (they show no text of their own)."""
    import html
    import re

    from fastapi.routing import APIRoute
    from fastapi.testclient import TestClient
    from sqlalchemy.orm import sessionmaker

    from concord.accounts.models import Clinic, User
    from concord.accounts.sessions import start_session
    from concord.app import create_app
    from concord.audit.service import set_context
    from concord.careplans import models as cp
    from concord.decisions.models import Decision
    from concord.measures.models import MeasureResponse, MeasureSchedule
    from concord.part2 import labels
    from concord.patients.models import Patient
    from concord.registry.models import CaseReview, Contact, Episode
    from concord.safety.models import SafetyAlert
    from concord.settings import Settings, get_settings

    if not hasattr(Clinic, "part2_program"):
        pytest.skip("needs Part 2 programs (Clinic.part2_program)")
    demo_session.rollback()
    url = demo_session.get_bind().url.render_as_string(hide_password=False)
    engine = make_engine(url)
    connection = engine.connect()
    outer = connection.begin()
    factory = sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    previous = set_clock(FakeClock(NOW))
    get_settings.cache_clear()
    app = create_app(
        Settings(env="test", database_url=url, base_url="http://testserver"),
        session_factory=factory,
    )
    try:
        with factory() as session:
            set_context(session, channel="system")
            megan = session.scalar(select(Patient).where(Patient.given_name == "Megan"))
            victor = session.scalar(select(User).where(User.name == "Victor Osei"))
            cookie = start_session(
                session, user=victor, ip=None, user_agent=None, mfa_verified=True
            )[0]
            session.commit()
            pid = megan.id
            ctx = labels.context(session, megan.organization_id, [pid])
            plans = session.scalars(select(cp.CarePlan.id).where(cp.CarePlan.patient_id == pid))
            plan_ids = list(plans)
            rows: list = []
            for model in (
                cp.Concern,
                cp.Goal,
                cp.Intervention,
                cp.ActionStep,
                cp.Strength,
                cp.Barrier,
                cp.Contingency,
                cp.PlanComment,
            ):
                rows += session.scalars(select(model).where(model.plan_id.in_(plan_ids))).all()
            goal_ids = [r.id for r in rows if isinstance(r, cp.Goal)]
            rows += session.scalars(select(cp.Milestone).where(cp.Milestone.goal_id.in_(goal_ids)))
            for model in (Episode, Contact, CaseReview, MeasureResponse, MeasureSchedule):
                rows += session.scalars(select(model).where(model.patient_id == pid)).all()
            labelled = {str(r.id): r for r in rows if labels.labels_of(r, ctx, pid).part2}
            unlabelled = {str(r.id) for r in rows} - set(labelled)
            labelled_codes = {
                r.instrument for r in labelled.values() if isinstance(r, MeasureResponse)
            }
            assert "AUDIT-C" in labelled_codes and "PHQ-9" not in labelled_codes
            # The story labels records of every kind the rules name, and leaves others bare.
            kinds = {r.__tablename__ for r in labelled.values()}
            assert {"episode", "registry_contact", "measure_response", "strength"} <= kinds
            assert unlabelled
            params = {
                "patient_id": [str(pid)],
                "plan_id": [str(p) for p in plan_ids],
                "response_id": [
                    str(r.id) for r in rows if isinstance(r, MeasureResponse) and r.completed_at
                ],
                "decision_id": [
                    str(d)
                    for d in session.scalars(select(Decision.id).where(Decision.patient_id == pid))
                ],
                "alert_id": [
                    str(a)
                    for a in session.scalars(
                        select(SafetyAlert.id).where(SafetyAlert.patient_id == pid)
                    )
                ],
                "code": ["AUDIT-C", "PHQ-9"],
                "number": ["1"],
            }
        pages = []
        for route in app.routes:
            router = getattr(route, "original_router", None)
            for r in router.routes if router is not None else [route]:
                if (
                    isinstance(r, APIRoute)
                    and "GET" in r.methods
                    and r.path.startswith("/patients/{patient_id}")
                    and not r.path.endswith(".pdf")
                ):
                    names = re.findall(r"\{(\w+)\}", r.path)
                    if all(n in params for n in names):
                        filled = [r.path]
                        for n in names:
                            filled = [
                                p.replace("{" + n + "}", v) for p in filled for v in params[n]
                            ]
                        pages += filled
        pages += ["/steps"]
        assert len(pages) > 15
        with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
            client.cookies.set("concord_session", cookie)
            seen_badges: set[str] = set()
            opened = 0
            for page in sorted(set(pages)):
                got = client.get(page)
                if got.status_code == 404:
                    continue  # a decision, alert or form that is not this patient's to open
                assert got.status_code == 200, (page, got.status_code)
                opened += 1
                text = html.unescape(got.text)
                badges = set(re.findall(r'data-part2="([^"]+)"', got.text))
                assert badges <= set(labelled), (page, badges - set(labelled))
                assert "Protected by 42 CFR Part 2" in text or not badges
                seen_badges |= badges
                # A progress card's series: labelled when its scores are (AUDIT-C), never the
                # PHQ-9 (primary care's depression measure).
                series = set(re.findall(r'data-part2-series="([^"]+)"', got.text))
                assert series <= labelled_codes, (page, series)
                if page.endswith((str(pid), "/measures")):
                    assert "AUDIT-C" in series, page
                if page.endswith("/plan/history"):
                    continue
                for rid, row in labelled.items():
                    field = _SHOWN_AS.get(row.__tablename__)
                    words = getattr(row, field, None) if field else None
                    # A plan item is looked for on the pages that show plan items, a contact
                    # on the Collaborative care tab (a note may quote a goal's words).
                    where = _SHOWN_ON.get(row.__tablename__, _PLAN_PAGES)
                    shown = (
                        bool(words) and any(w in page for w in where) and words.strip()[:40] in text
                    ) or f"/measures/responses/{rid}" in text
                    if page.endswith(f"/measures/responses/{rid}"):
                        shown = True
                    if shown:
                        at = text.find(words.strip()[:40]) if words else -1
                        assert rid in badges, (
                            page,
                            row.__tablename__,
                            words or rid,
                            text[max(at - 200, 0) : at + 100],
                        )
            assert opened > 10
            # Every labelled kind the pages show was badged somewhere.
            assert {labelled[b].__tablename__ for b in seen_badges} >= {
                "episode",
                "registry_contact",
                "measure_response",
                "strength",
            }
    finally:
        outer.rollback()
        connection.close()
        engine.dispose()
        set_clock(previous)
        get_settings.cache_clear()


def test_megan_doyles_reported_benzodiazepine_raises_the_moud_finding(demo_session):
    """Issue 19's demo: buprenorphine from the addiction service's psychiatrist, sertraline
    from her primary care provider, and a benzodiazepine she reported in the portal, which
    raises "MOUD + benzodiazepine: caution, do not withhold MOUD" for the addiction service. Her
    primary care provider sees the sertraline they prescribed; without her consent not the
    MOUD nor the finding, nor her report (her portal account belongs to the addiction service's
    clinic, so the Part 2 rules count what she writes as written at the program)."""
    from concord import access
    from concord.accounts.models import User
    from concord.medications import service as meds
    from concord.patients.models import Patient

    megan = demo_session.scalar(select(Patient).where(Patient.given_name == "Megan"))
    lead = demo_session.scalar(select(User).where(User.name == "Renee Castillo"))
    varga = demo_session.scalar(select(User).where(User.name == "Dr. Ines Varga"))
    pcp = demo_session.scalar(select(User).where(User.name == "Dr. Hannah Lindqvist"))
    try:
        acc = access.patient_for(demo_session, lead, megan.id)
        listed = {m.name: m for m in meds.list_medications(demo_session, access=acc)}
        assert set(listed) == {"buprenorphine", "sertraline", "clonazepam"}
        assert listed["buprenorphine"].prescriber_id == varga.id
        assert listed["sertraline"].prescriber_id == pcp.id
        assert listed["clonazepam"].source == "patient_reported"
        rules = {f.rule_id for f in meds.list_findings(demo_session, access=acc)}
        assert "moud-benzodiazepine-or-cns-depressant" in rules
        # Both prescribers are on the protocol, each told of the other's changes.
        lines = {e.about: e for e in meds.list_protocol(demo_session, access=acc)}
        assert lines["buprenorphine"].prescriber_id == varga.id
        assert lines["buprenorphine"].tell == [str(pcp.id)]
        assert lines["sertraline"].prescriber_id == pcp.id
        assert lines["sertraline"].tell == [str(varga.id)]
        theirs = access.patient_for(demo_session, pcp, megan.id)
        seen = {m.name for m in meds.list_medications(demo_session, access=theirs)}
        assert seen == {"sertraline"}
        assert "moud-benzodiazepine-or-cns-depressant" not in {
            f.rule_id for f in meds.list_findings(demo_session, access=theirs)
        }
    finally:
        demo_session.rollback()


def test_the_quality_page_shows_cms159_and_cms2_for_both_clinics(demo_session):
    """The demo's EHR records (concord/demo_data/ehr.yaml), sent by its integration client
    through the EHR import, give each clinic's care manager CMS159 and CMS2 over their
    patients for the current year, with who has not met the goal."""
    year = NOW.year
    expected = {
        "maya.okafor@north.riverside.example.org": {"CMS159": (5, 3), "CMS2": (6, 4)},
        "jordan.blake@south.riverside.example.org": {"CMS159": (4, 2), "CMS2": (5, 4)},
    }
    for email, measures in expected.items():
        user = demo_session.scalar(select(Person).where(Person.email == email))
        views = quality.quality_overview(
            demo_session, by=user, period_start=date(year, 1, 1), period_end=date(year, 12, 31)
        )
        got = {
            v.measure_id: (v.overall.performance_denominator, v.overall.numerator) for v in views
        }
        assert got == measures, email
        for v in views:
            assert any(p.open for p in v.patients), (email, v.measure_id)
        # The process measures come from the registry the demo's stories filled.
        process = {
            m.measure: m
            for m in quality.process_overview(
                demo_session, by=user, period_start=date(year, 1, 1), period_end=date(year, 12, 31)
            )
        }
        assert process["days_to_first_contact"].days_count > 0, email
        assert process["follow_up_4_weeks"].overall.performance_denominator > 0, email
        assert process["follow_up_4_weeks"].trend, email
    demo_session.rollback()


def test_the_process_measures_leave_out_megans_part2_episode_without_consent(demo_session):
    """Dr. Lindqvist is on Megan Doyle's care team; Megan has not consented, so the addiction
    service's episode (and so its contacts) is not counted in her process measures."""
    from concord.accounts.models import Clinic
    from concord.patients.models import Patient
    from concord.registry.models import Episode

    megan = demo_session.scalar(select(Patient).where(Patient.given_name == "Megan"))
    pcp = demo_session.scalar(select(Person).where(Person.name == "Dr. Hannah Lindqvist"))
    recovery = demo_session.scalar(select(Clinic).where(Clinic.part2_program.is_(True)))
    assert demo_session.scalar(
        select(Episode).where(Episode.patient_id == megan.id, Episode.clinic_id == recovery.id)
    )
    facts = quality._episode_facts(demo_session, pcp, megan.id)
    assert recovery.id.hex not in {clinic for clinic, _ in facts}
    demo_session.rollback()


def test_the_demo_has_jamals_social_needs_and_their_referrals(demo_session):
    """Issue 23: food and housing needs; the food bank completed its referral through its link;
    the housing one was declined with a reason and re-sent elsewhere, where it is overdue and
    the care manager has the task."""
    from concord.patients.models import Patient
    from concord.registry.models import WorkTask
    from concord.social.models import Referral, SocialConcern

    jamal = demo_session.scalar(select(Patient).where(Patient.given_name == "Jamal"))
    needs = {
        c.domain
        for c in demo_session.scalars(
            select(SocialConcern).where(SocialConcern.patient_id == jamal.id)
        )
    }
    assert needs == {"food-insecurity", "housing-instability"}
    referrals = {
        r.service.provider_name: r
        for r in demo_session.scalars(select(Referral).where(Referral.patient_id == jamal.id))
    }
    assert referrals["Riverside Food Bank"].status == "completed"
    assert referrals["Riverside Food Bank"].outcome
    declined = referrals["Eastside Housing Help"]
    assert declined.status == "rejected" and declined.status_reason
    resent = referrals["Riverside Tenant Support"]
    assert resent.replaces_id == declined.id and resent.status == "requested"
    task = demo_session.scalar(
        select(WorkTask).where(WorkTask.source == f"referral-overdue:{resent.id}")
    )
    assert task is not None and task.status == "open"

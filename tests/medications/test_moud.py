"""MOUD records, the overdose-risk rules and the patient's medication check-in (issue 19):
service, actions and the JSON API, on both engines. Each rule is tested at its boundary."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from concord import disclosure
from concord.actions import medications as act
from concord.actions import part2 as part2_actions
from concord.dates import org_today
from concord.errors import InvalidInput, PermissionDenied
from concord.medications import overdose
from concord.medications import service as meds
from concord.medications.models import MoudRecord, OverdoseRiskHit
from concord.medications.overdose import RecordFact
from concord.medications.schemas import CheckinIn, MedicationIn, MoudIn
from concord.registry.models import TaskStatus, WorkTask
from concord.registry.service import Enrolment, enroll
from concord.safety.models import SafetyAlert
from tests.careplans.test_api import bearer
from tests.factories import acc_for

BUPRENORPHINE, SERTRALINE, CLONAZEPAM, NALOXONE, OXYCODONE = (
    "1819",
    "36437",
    "2598",
    "7242",
    "7804",
)
TODAY = date(2026, 11, 20)


@pytest.fixture
def team(session, people):
    return acc_for(session, people.care_manager, people.patient)


@pytest.fixture
def me(session, people):
    return acc_for(session, people.patient_user, people.patient)


def _alerts(session, patient_id):
    return list(
        session.scalars(
            select(SafetyAlert)
            .where(SafetyAlert.patient_id == patient_id)
            .order_by(SafetyAlert.created_at)
        )
    )


def _rules_of(alert):
    return {t["rule"] for t in alert.triggers}


# --- the rules, pure, at their boundaries --------------------------------------------------


def _ids(hits):
    return sorted(h.rule.id for h in hits)


def test_opioid_with_benzodiazepine_fires_only_with_both():
    both = overdose.evaluate([OXYCODONE, CLONAZEPAM], [], today=TODAY)
    assert _ids(both) == ["opioid-with-benzodiazepine"]
    assert _ids(overdose.evaluate([BUPRENORPHINE, CLONAZEPAM], [], today=TODAY)) == [
        "opioid-with-benzodiazepine"
    ]
    assert overdose.evaluate([OXYCODONE], [], today=TODAY) == []
    assert overdose.evaluate([CLONAZEPAM, SERTRALINE], [], today=TODAY) == []
    # Naloxone is an antagonist, not an opioid agonist.
    assert overdose.evaluate([NALOXONE, CLONAZEPAM], [], today=TODAY) == []
    assert overdose.evaluate([None, "999999"], [], today=TODAY) == []


@pytest.mark.parametrize(
    ("detail", "days_ago", "fires"),
    [
        ("prison", 0, True),
        ("prison", 13, True),  # still within the first two weeks (Binswanger 2007)
        ("prison", 14, False),
        ("residential", 119, True),  # within four months (Strang 2003), counted as 120 days
        ("residential", 120, False),
        ("prison", -1, False),  # a date in the future is never evidence
    ],
)
def test_release_rules_at_their_window(detail, days_ago, fires):
    fact = RecordFact("r1", "release", TODAY - timedelta(days=days_ago), detail)
    hits = overdose.evaluate([], [fact], today=TODAY)
    assert bool(hits) is fires
    if fires:
        expected = {"prison": "recent-release-from-prison"}.get(
            detail, "recent-discharge-from-residential-stay"
        )
        assert _ids(hits) == [expected]


def test_return_to_use_and_a_prior_overdose_fire_on_their_record_only():
    old = TODAY - timedelta(days=3000)
    assert _ids(overdose.evaluate([], [RecordFact("a", "return_to_use", old)], today=TODAY)) == [
        "return-to-use-after-abstinence"
    ]
    assert _ids(overdose.evaluate([], [RecordFact("b", "overdose", old)], today=TODAY)) == [
        "prior-overdose"
    ]
    for kind in ("pdmp_check", "urine_drug_test", "missed_dose", "induction"):
        assert overdose.evaluate([], [RecordFact("c", kind, TODAY)], today=TODAY) == []


def test_every_rule_names_a_source_and_the_file_is_checked():
    _, rules = overdose.default_rules()
    assert {r.id for r in rules} == {
        "opioid-with-benzodiazepine",
        "return-to-use-after-abstinence",
        "recent-release-from-prison",
        "recent-discharge-from-residential-stay",
        "prior-overdose",
    }
    assert all(r.url.startswith("https://") and r.citation and r.action for r in rules)
    bad = {"rules": [{"id": "x", "name": {"en": "x"}, "action": "x", "when": {"record": "nope"},
                      "source": {"citation": "c", "url": "u"}}]}  # fmt: skip
    with pytest.raises(overdose.OverdoseRulesError, match="unknown record kind"):
        overdose.parse_rules(bad)


# --- the MOUD state: PDMP interval, naloxone, missed -------------------------------------


def _state(interval, last_pdmp=None, started=TODAY - timedelta(days=60), **kw):
    last = {"pdmp_check": last_pdmp} if last_pdmp else {}
    last.update(kw.pop("last", {}))
    return meds.moud_state(
        moud_started=[started],
        naloxone_listed=kw.pop("naloxone_listed", False),
        last_by_kind=last,
        interval_days=interval,
        today=TODAY,
    )


def test_pdmp_due_at_the_clinics_interval_and_never_without_one():
    assert _state(None, TODAY - timedelta(days=400)).pdmp_due_on is None
    assert not _state(None, TODAY - timedelta(days=400)).pdmp_overdue
    on_time = _state(30, TODAY - timedelta(days=30))  # due today: not yet overdue
    assert on_time.pdmp_due_on == TODAY and not on_time.pdmp_overdue
    assert _state(30, TODAY - timedelta(days=31)).pdmp_overdue
    # Never checked: due from the start of MOUD.
    assert _state(30, None, started=TODAY - timedelta(days=30)).pdmp_overdue
    assert not _state(30, None, started=TODAY - timedelta(days=29)).pdmp_overdue


def test_naloxone_on_file_and_missed_reported():
    assert not _state(None).naloxone_on_file
    assert _state(None, naloxone_listed=True).naloxone_on_file
    assert _state(None, last={"naloxone_dispensed": TODAY}).naloxone_on_file
    missed = _state(None, last={"missed_visit": TODAY - timedelta(days=2)})
    assert missed.last_missed == TODAY - timedelta(days=2)


# --- the records through the actions --------------------------------------------------------


def test_a_moud_record_needs_its_fields_and_writes_nothing_when_bad(session, people, team, me):
    today = org_today(people.org)
    bup = act.add(session, access=team, data=MedicationIn(rxcui=BUPRENORPHINE)).medication
    ssri = act.add(session, access=team, data=MedicationIn(rxcui=SERTRALINE)).medication
    for data, field in (
        (MoudIn(kind="pdmp_check", on=today), "result"),
        (MoudIn(kind="urine_drug_test", on=today), "result"),
        (MoudIn(kind="pdmp_check", result="x"), "on"),
        (MoudIn(kind="pdmp_check", on=today + timedelta(days=1), result="x"), "on"),
        (MoudIn(kind="induction", on=today), "medication_id"),
        (MoudIn(kind="induction", on=today, medication_id=ssri.id), "medication_id"),
        (MoudIn(kind="release", on=today), "detail"),
        (MoudIn(kind="release", on=today, detail="hospital"), "detail"),
        (
            MoudIn(kind="pdmp_check", on=today, result="x", performed_by_id=people.outsider.id),
            "performed_by_id",
        ),  # fmt: skip
    ):
        with pytest.raises(InvalidInput) as err:
            act.record_moud(session, access=team, data=data)
        assert field in err.value.errors, (data, err.value.errors)
    assert session.scalar(select(func.count()).select_from(MoudRecord)) == 0
    with pytest.raises(PermissionDenied):
        act.record_moud(session, access=me, data=MoudIn(kind="missed_dose", on=today))
    row = act.record_moud(
        session, access=team, data=MoudIn(kind="pdmp_check", on=today, result="No other prescriber")
    )
    assert row.performed_by_id == people.care_manager.id  # blank: the person recording it
    act.record_moud(
        session,
        access=team,
        data=MoudIn(kind="induction", on=today, medication_id=bup.id, dose="8 mg"),
    )
    assert [r.kind for r in meds.list_moud_records(session, access=me)] == [
        "induction",
        "pdmp_check",
    ] or {r.kind for r in meds.list_moud_records(session, access=me)} == {
        "induction",
        "pdmp_check",
    }


def test_moud_records_are_labelled_part2_for_a_program_patient(session, people, team):
    today = org_today(people.org)
    row = act.record_moud(
        session, access=team, data=MoudIn(kind="urine_drug_test", on=today, result="negative")
    )
    assert not disclosure.label_of(session, team, row).part2
    part2_actions.set_part2_program(session, people.admin, people.north.id, True)
    enroll(session, access=team, data=Enrolment(program="co_occurring"))
    session.flush()
    assert disclosure.label_of(session, team, row).part2


def test_a_release_raises_one_alert_through_the_chain(session, people, team):
    today = org_today(people.org)
    act.record_moud(
        session,
        access=team,
        data=MoudIn(kind="release", on=today - timedelta(days=3), detail="prison"),
    )
    alerts = _alerts(session, people.patient.id)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.source_kind == "overdose_risk" and alert.tier == "high"
    assert _rules_of(alert) == {"recent-release-from-prison"}
    assert alert.owner_id is not None  # the first step of the chain took it
    assert all(t["source"]["url"].startswith("https://") for t in alert.triggers)
    # The nightly run and another change raise nothing new for the same cause.
    act.add(session, access=team, data=MedicationIn(rxcui=SERTRALINE))
    act.recheck_all(session)
    assert len(_alerts(session, people.patient.id)) == 1
    # A release three weeks ago: past the two weeks, no alert.
    act.record_moud(
        session,
        access=team,
        data=MoudIn(kind="release", on=today - timedelta(days=21), detail="prison"),
    )
    assert len(_alerts(session, people.patient.id)) == 1


def test_opioid_and_benzodiazepine_alert_once_and_again_after_it_went(session, people, team, me):
    from concord.medications.schemas import ReportedIn

    act.add(session, access=team, data=MedicationIn(rxcui=BUPRENORPHINE))
    assert _alerts(session, people.patient.id) == []
    benzo = act.report_new(session, access=me, data=ReportedIn(rxcui=CLONAZEPAM)).medication
    alerts = _alerts(session, people.patient.id)
    assert [_rules_of(a) for a in alerts] == [{"opioid-with-benzodiazepine"}]
    act.recheck_all(session)
    assert len(_alerts(session, people.patient.id)) == 1
    act.set_status(
        session, access=team, medication_id=benzo.id, status="stopped", reason="Taper", version=1
    )
    hit = session.scalar(select(OverdoseRiskHit))
    assert hit.resolved_at is not None
    act.set_status(
        session, access=team, medication_id=benzo.id, status="active", reason=None, version=2
    )
    assert len(_alerts(session, people.patient.id)) == 2


def test_the_patient_checks_in_and_a_question_reaches_the_prescriber(session, people, team, me):
    bup = act.add(
        session,
        access=team,
        data=MedicationIn(rxcui=BUPRENORPHINE, prescriber_id=people.consultant.id),
    ).medication
    with pytest.raises(InvalidInput):
        act.checkin(session, access=me, medication_id=bup.id, data=CheckinIn())
    with pytest.raises(InvalidInput) as err:
        act.checkin(session, access=me, medication_id=bup.id, data=CheckinIn(missed_why="busy"))
    assert "missed_doses" in err.value.errors
    with pytest.raises(PermissionDenied):
        act.checkin(session, access=team, medication_id=bup.id, data=CheckinIn(missed_doses=1))
    rows = act.checkin(
        session,
        access=me,
        medication_id=bup.id,
        data=CheckinIn(
            missed_doses=2,
            missed_why="Ran out before the refill",
            effects="Headaches",
            question="Can I take it at night?",
        ),
    )
    assert sorted(r.kind for r in rows) == ["adherence", "question", "side_effects"]
    task = session.scalar(
        select(WorkTask).where(WorkTask.source.startswith("medication-question:"))
    )
    assert task.owner_id == people.consultant.id and task.status == TaskStatus.open
    assert "night" not in task.title  # the task names no content
    said = meds.latest_checkins(session, access=team)[bup.id]
    assert said["adherence"].missed_doses == 2 and said["side_effects"].effects == "Headaches"
    question = said["question"]
    act.resolve_report(session, access=team, report_id=question.id, note="Yes, at bedtime")
    session.flush()
    assert task.status != TaskStatus.open
    assert "question" not in meds.latest_checkins(session, access=team)[bup.id]


# --- the JSON API ---------------------------------------------------------------------------


def test_the_api_records_moud_and_shows_the_state(client, session, people):
    team, me = bearer(session, people.care_manager), bearer(session, people.patient_user)
    base = f"/api/v1/patients/{people.patient.id}"
    made = client.post(f"{base}/medications", json={"rxcui": BUPRENORPHINE}, headers=team)
    assert made.status_code == 201
    bad = client.post(
        f"{base}/moud-records", json={"kind": "pdmp_check", "on": "2026-11-19"}, headers=team
    )
    assert bad.status_code == 422 and "result" in bad.text
    body = {"kind": "pdmp_check", "on": "2026-11-19", "result": "One other prescriber"}
    key = {**team, "Idempotency-Key": "moud-0001"}
    ok = client.post(f"{base}/moud-records", json=body, headers=key)
    assert ok.status_code == 201, ok.text
    assert ok.json()["category"] == "substance_use"
    again = client.post(f"{base}/moud-records", json=body, headers=key)
    assert again.status_code == 200 and again.json()["id"] == ok.json()["id"]
    clash = client.post(f"{base}/moud-records", json={**body, "result": "x"}, headers=key)
    assert clash.status_code == 409
    assert client.post(f"{base}/moud-records", json=body, headers=me).status_code == 403
    listed = client.get(f"{base}/medications", headers=team).json()
    assert listed["moud"]["last_pdmp_check"] == "2026-11-19"
    assert listed["moud"]["naloxone_on_file"] is False
    assert listed["pdmp_check_interval_days"] is None
    assert [r["kind"] for r in listed["moud_records"]] == ["pdmp_check"]
    mid = made.json()["medication"]["id"]
    body = {"missed_doses": 0, "effects": "Dry mouth"}
    key = {**me, "Idempotency-Key": "checkin-0001"}
    told = client.post(f"{base}/medications/{mid}/checkin", json=body, headers=key)
    assert told.status_code == 201, told.text
    again = client.post(f"{base}/medications/{mid}/checkin", json=body, headers=key)
    assert again.status_code == 200 and again.json() == told.json()  # nothing written twice
    listed = client.get(f"{base}/medications", headers=team).json()
    assert sorted(c["kind"] for c in listed["checkins"]) == ["adherence", "side_effects"]


def test_the_medications_tab_shows_the_moud_section(client, session, people, sign_in):
    team = bearer(session, people.care_manager)
    base = f"/api/v1/patients/{people.patient.id}"
    client.post(f"{base}/medications", json={"rxcui": BUPRENORPHINE}, headers=team)
    body = {"kind": "urine_drug_test", "on": "2026-11-19", "result": "Negative"}
    assert client.post(f"{base}/moud-records", json=body, headers=team).status_code == 201
    client.headers.pop("Authorization", None)
    sign_in("cara@test.example.org")
    page = client.get(f"/patients/{people.patient.id}/medications")
    assert page.status_code == 200
    assert "data-moud-state" in page.text and "No naloxone on file" in page.text
    assert "Negative" in page.text
    assert "has not set how often the PDMP is checked" in page.text


# --- the caseload's MOUD flags ----------------------------------------------------------------


def _flags(**kw):
    from concord.registry.rules import CaseFacts, ContactFact, flags

    contacts = [ContactFact(d, "follow_up") for d in kw.pop("contacts", [])]
    facts = CaseFacts(
        today=TODAY, status="active", started_on=TODAY - timedelta(days=10), contacts=contacts, **kw
    )
    return {f.code for f in flags(facts)} & {
        "moud_pdmp_check_due",
        "moud_no_naloxone",
        "moud_missed_reported",
    }


def test_the_moud_flags_at_their_boundaries():
    assert _flags() == set()  # not on MOUD: nothing
    assert _flags(on_moud=True, naloxone_on_file=False) == {"moud_no_naloxone"}
    assert _flags(on_moud=True, pdmp_overdue=True, pdmp_due_on=TODAY) == {"moud_pdmp_check_due"}
    day = TODAY - timedelta(days=3)
    assert _flags(missed_reported_on=day) == {"moud_missed_reported"}  # never reached
    assert _flags(missed_reported_on=day, contacts=[day - timedelta(days=1)]) == {
        "moud_missed_reported"
    }
    assert _flags(missed_reported_on=day, contacts=[day]) == set()  # reached that day
    assert _flags(missed_reported_on=day, contacts=[day + timedelta(days=1)]) == set()


def test_the_caseload_flags_a_moud_patient(session, people, team):
    from concord.patients.models import Patient
    from concord.registry.caseload import build_rows
    from concord.registry.models import Episode

    today = org_today(people.org)
    enroll(session, access=team, data=Enrolment(program="co_occurring"))
    act.add(
        session,
        access=team,
        data=MedicationIn(rxcui=BUPRENORPHINE, started_on=today - timedelta(days=40)),
    )

    def codes():
        session.flush()
        pairs = [
            (e, p)
            for e, p in session.execute(
                select(Episode, Patient)
                .join(Patient, Patient.id == Episode.patient_id)
                .where(Patient.id == people.patient.id)
            )
        ]
        (row,) = build_rows(session, pairs, today=today, tz=people.org.timezone)
        return row.flag_codes & {"moud_pdmp_check_due", "moud_no_naloxone", "moud_missed_reported"}

    assert codes() == {"moud_no_naloxone"}  # no interval set: no PDMP flag
    people.org.pdmp_check_interval_days = 30
    assert codes() == {"moud_no_naloxone", "moud_pdmp_check_due"}  # never checked, 40 days on
    act.record_moud(
        session,
        access=team,
        data=MoudIn(kind="pdmp_check", on=today - timedelta(days=30), result="Nothing else"),
    )
    act.record_moud(session, access=team, data=MoudIn(kind="naloxone_dispensed", on=today))
    assert codes() == set()  # checked 30 days ago: due today, not overdue
    act.record_moud(session, access=team, data=MoudIn(kind="missed_visit", on=today, count=1))
    assert codes() == {"moud_missed_reported"}


def test_the_moud_form_posts_blank_optional_fields():
    """A page form sends every field, the empty ones as ''."""
    blank = dict.fromkeys(
        ("medication_id", "performed_by_id", "detail", "dose", "count", "note"), ""
    )
    data = MoudIn.model_validate({"kind": "pdmp_check", "on": "2026-11-19", "result": "x", **blank})
    assert data.detail is None and data.dose is None and data.count is None
    too_long = {"kind": "induction", "on": "2026-11-19", "dose": "x" * 101}
    with pytest.raises(ValueError, match="dose"):
        MoudIn.model_validate(too_long)


def test_blank_numbers_from_a_form_are_none_not_a_500():
    """Pydantic refuses a `ge` on None: a blank number field must become None before it."""
    from concord.medications.schemas import ProtocolIn

    assert ProtocolIn.model_validate({"about": "x", "every_days": ""}).every_days is None
    assert CheckinIn.model_validate({"missed_doses": "", "question": "x"}).missed_doses is None
    assert CheckinIn.model_validate({"missed_doses": "0"}).missed_doses == 0
    with pytest.raises(ValueError, match="every_days"):
        ProtocolIn.model_validate({"about": "x", "every_days": "0"})


def test_a_reader_without_consent_sees_no_moud_state_nor_its_flags(session, people, team):
    """Part 2: a primary care provider outside the program, on the team without the patient's
    consent, gets neither the MOUD records, nor the state drawn from them, nor the flags."""
    from concord.accounts.models import Role
    from concord.medications.api import list_view
    from concord.patients.models import CareTeam, CareTeamMember, Patient
    from concord.registry.caseload import build_rows
    from concord.registry.models import Episode
    from tests.conftest import commit
    from tests.factories import create_staff

    today = org_today(people.org)
    part2_actions.set_part2_program(session, people.admin, people.north.id, True)
    enroll(session, access=team, data=Enrolment(program="co_occurring"))
    act.add(session, access=team, data=MedicationIn(rxcui=BUPRENORPHINE))
    act.record_moud(session, access=team, data=MoudIn(kind="missed_dose", on=today, count=2))
    pcp = create_staff(
        session, people.org, people.south, Role.primary_care_provider, "Pat Lee", "pcp@x.test"
    )
    care_team = session.scalar(select(CareTeam).where(CareTeam.patient_id == people.patient.id))
    session.add(
        CareTeamMember(care_team_id=care_team.id, user_id=pcp.id, role="primary_care_provider")
    )
    commit(session)
    mine = list_view(session, team)
    assert mine["moud"] is not None and mine["moud_records"]
    theirs = list_view(session, acc_for(session, pcp, people.patient))
    assert theirs["moud"] is None and theirs["moud_records"] == []
    pairs = [
        (e, p)
        for e, p in session.execute(
            select(Episode, Patient)
            .join(Patient, Patient.id == Episode.patient_id)
            .where(Patient.id == people.patient.id)
        )
    ]
    moud_flags = {"moud_pdmp_check_due", "moud_no_naloxone", "moud_missed_reported"}
    (row,) = build_rows(session, pairs, today=today, tz=people.org.timezone, by=team.by)
    assert row.flag_codes & moud_flags == {"moud_no_naloxone", "moud_missed_reported"}
    rows = build_rows(session, pairs, today=today, tz=people.org.timezone, by=pcp)
    assert all(not (r.flag_codes & moud_flags) for r in rows)


def test_the_alert_page_shows_what_to_do_and_the_source(client, session, people, sign_in):
    team = bearer(session, people.care_manager)
    base = f"/api/v1/patients/{people.patient.id}"
    body = {"kind": "overdose", "on": "2026-11-01", "note": "Naloxone given by a friend"}
    assert client.post(f"{base}/moud-records", json=body, headers=team).status_code == 201
    alert = session.scalar(select(SafetyAlert).where(SafetyAlert.patient_id == people.patient.id))
    client.headers.pop("Authorization", None)
    sign_in("cara@test.example.org")
    page = client.get(f"/patients/{people.patient.id}/alerts/{alert.id}")
    assert page.status_code == 200
    assert "Overdose risk: a prior overdose" in page.text
    assert "https://doi.org/10.1016/j.drugalcdep.2018.06.004" in page.text
    assert f"/patients/{people.patient.id}/medications" in page.text
    assert "Naloxone given by a friend" not in page.text  # the record's words stay on its tab


def test_an_organizations_rule_file_may_leave_out_the_overdose_event():
    """An organization's own risk rules written before issue 19 still load; the overdose-risk
    alert then takes `high` on the `standard` chain. Two rules for the event are refused."""
    import re

    from concord.safety.rules import RuleFileError, compile_rules, default_rules_text

    text = default_rules_text()
    without = re.sub(r"\n  - id: overdose-risk\n(    .*\n?)+", "\n", text)
    assert "overdose-risk" not in without
    rules = compile_rules(without)
    rule = rules.optional_event_rule("overdose-risk", {"en": "x"}, "s")
    assert (rule.tier, rule.chain) == ("high", "standard")
    own = compile_rules(text).optional_event_rule("overdose-risk", {"en": "x"}, "s")
    assert own.id == "overdose-risk" and own.source.startswith("The overdose-risk rules")
    again = text[text.index("  - id: overdose-risk") :].replace("id: overdose-risk", "id: od-2")
    twice = text + again
    with pytest.raises(RuleFileError, match="more than one rule for the event overdose-risk"):
        compile_rules(twice)


def test_the_patients_check_ins_lead_to_the_medication_check_in(client, session, people, sign_in):
    team = bearer(session, people.care_manager)
    base = f"/api/v1/patients/{people.patient.id}"
    made = client.post(f"{base}/medications", json={"rxcui": SERTRALINE}, headers=team).json()
    client.headers.pop("Authorization", None)
    sign_in("pat@patients.example.org")
    page = client.get("/my/check-ins")
    assert page.status_code == 200 and 'href="/my/medications" data-medication-checkin' in page.text
    mine = client.get("/my/medications")
    mid = made["medication"]["id"]
    assert f'action="/my/medications/{mid}/checkin"' in mine.text

"""Every care-plan read decides on Part 2 labels (issue 18, ADR 0021), on both engines.

The world of tests/part2/test_part2.py: North Clinic is a Part 2 program with the patient's
episode; its care manager (North staff) writes plan items; Dr Pat Lee, a PCP at South, is on the
team. Without consent the PCP never meets the program's items: not in their own step list,
not as the goal a step names, not in the progress card, not in the FHIR Goal search (whose total
and paging agree with what is shown). Every FHIR resource that holds a program item carries
42CFRPart2 / NORDSCLCD / R; one that holds none carries nothing.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from concord.actions import progress
from concord.audit.models import AuditEvent
from concord.careplans import service as plans
from concord.careplans.schemas import ActionStepIn, GoalIn, InterventionIn, PlanStart
from concord.decisions import service as decisions
from concord.disclosures.models import DisclosureLog
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for
from tests.part2.test_part2 import _tpo, make_world

PART2_CODES = {"42CFRPart2", "NORDSCLCD", "R"}
PROGRAM_GOAL = "Two alcohol-free days a week"
PCP_GOAL = "Sleep seven hours"
INLINE = "http://hl7.org/fhir/uv/security-label-ds4p/StructureDefinition/extension-inline-sec-label"


@pytest.fixture
def plan_world(session, people):
    """The program's goal (linked to the PHQ-9), its step given to the PCP and its treatment;
    the PCP's own goal and a step of theirs on the program's goal."""
    pcp, _ = make_world(session, people)
    by_program = acc_for(session, people.care_manager, people.patient)
    by_pcp = acc_for(session, pcp, people.patient)
    plans.start_plan(session, access=by_program, data=PlanStart())
    program_goal = plans.add_item(
        session,
        access=by_program,
        section="goals",
        data=GoalIn(
            statement=PROGRAM_GOAL,
            category="symptoms",
            measure_instrument="PHQ-9",
            measure_op="below",
            measure_value=10,
        ),
    )
    plans.add_item(
        session,
        access=by_program,
        section="action_steps",
        data=ActionStepIn(description="Call the counsellor", owner=str(pcp.id)),
    )
    plans.add_item(
        session,
        access=by_program,
        section="interventions",
        data=InterventionIn(kind="psychosocial_support", description="Relapse-prevention group"),
    )
    pcp_goal = plans.add_item(
        session,
        access=by_pcp,
        section="goals",
        data=GoalIn(statement=PCP_GOAL, category="symptoms"),
    )
    plans.add_item(
        session,
        access=by_pcp,
        section="action_steps",
        data=ActionStepIn(
            description="Walk after lunch", owner=str(pcp.id), goal_id=program_goal.id
        ),
    )
    commit(session)
    return pcp, program_goal, pcp_goal


def _goals(client, session, user, query=""):
    got = client.get(f"/fhir/Goal{query}", headers=bearer(session, user))
    assert got.status_code == 200, got.text
    return got.json()


def _security(resource):
    return {c["code"] for c in resource.get("meta", {}).get("security", [])}


def test_the_goal_search_withholds_the_programs_goal_before_paging(
    client, session, people, plan_world
):
    """Bundle.total and the next link count only what is shown (ADR 0021)."""
    pcp, program_goal, pcp_goal = plan_world
    pid = people.patient.id
    for query in ("", f"?patient={pid}", f"?patient={pid}&_count=1", "?_summary=count"):
        body = _goals(client, session, pcp, query)
        ids = [e["resource"]["id"] for e in body.get("entry", [])]
        assert str(program_goal.id) not in ids and PROGRAM_GOAL not in str(body)
        assert body["total"] == 1, query
        assert not [link for link in body.get("link", []) if link["relation"] == "next"]
    body = _goals(client, session, pcp)
    assert [e["resource"]["id"] for e in body["entry"]] == [str(pcp_goal.id)]
    assert _security(body["entry"][0]["resource"]) == set()
    # The withholding is in the trail, as a count.
    assert session.scalar(
        select(AuditEvent).where(
            AuditEvent.actor_id == pcp.id,
            AuditEvent.object_type == "Goal",
            AuditEvent.outcome == "denied",
        )
    )
    # The program's own staff see both, the program's labelled and the PCP's not.
    body = _goals(client, session, people.care_manager, f"?patient={pid}")
    found = {e["resource"]["id"]: e["resource"] for e in body["entry"]}
    assert body["total"] == 2 == len(found)
    assert _security(found[str(program_goal.id)]) == PART2_CODES
    assert _security(found[str(pcp_goal.id)]) == set()


def test_under_consent_the_pcp_finds_the_programs_goal_labelled_and_logged(
    client, session, people, plan_world
):
    """42 CFR 2.31: with a consent naming them; 2.32: the label travels with the record."""
    pcp, program_goal, _ = plan_world
    _tpo(session, people, pcp, categories=["substance_use", "care_plan"])
    before = session.scalar(
        select(DisclosureLog.id).where(DisclosureLog.recipient_id == pcp.id).limit(1)
    )
    assert before is None
    body = _goals(client, session, pcp, "?_count=1")
    assert body["total"] == 2
    assert [link for link in body["link"] if link["relation"] == "next"]
    body = _goals(client, session, pcp)
    found = {e["resource"]["id"]: e["resource"] for e in body["entry"]}
    assert _security(found[str(program_goal.id)]) == PART2_CODES
    assert session.scalar(select(DisclosureLog.id).where(DisclosureLog.recipient_id == pcp.id))


def test_the_pcps_own_steps_leave_out_the_programs_and_its_goal(
    client, session, people, plan_world
):
    pcp, _, _ = plan_world
    got = client.get("/api/v1/me/action-steps", headers=bearer(session, pcp))
    assert got.status_code == 200, got.text
    assert [s["description"] for s in got.json()] == ["Walk after lunch"]
    rows = plans.my_action_steps(session, by=pcp)
    assert [(r.step.description, r.goal) for r in rows] == [("Walk after lunch", None)]
    # The program's lead sees their own step list unchanged (nothing there is theirs), and
    # under consent the PCP sees the step the program gave them, with the goal its step names.
    _tpo(session, people, pcp, categories=["substance_use", "care_plan"])
    rows = plans.my_action_steps(session, by=pcp)
    assert sorted((r.step.description, r.goal) for r in rows) == [
        ("Call the counsellor", None),
        ("Walk after lunch", PROGRAM_GOAL),
    ]


def test_progress_and_the_decisions_treatments_leave_out_the_programs_items(
    session, people, plan_world
):
    pcp, program_goal, _ = plan_world
    mine = acc_for(session, pcp, people.patient)
    phq9 = next(
        p for p in progress.progress_for(session, access=mine) if p.instrument.code == "PHQ-9"
    )
    assert phq9.goals == []
    assert decisions.treatments_in_plan(session, mine) == []
    theirs = acc_for(session, people.care_manager, people.patient)
    phq9 = next(
        p for p in progress.progress_for(session, access=theirs) if p.instrument.code == "PHQ-9"
    )
    assert [g.id for g in phq9.goals] == [program_goal.id]
    assert [t.description for t in decisions.treatments_in_plan(session, theirs)] == [
        "Relapse-prevention group"
    ]


def test_the_care_plan_resource_is_labelled_where_it_holds_a_program_item(
    client, session, people, plan_world
):
    """The CarePlan (high-water mark) and each labelled activity (inline, DS4P) carry the
    labels for the program's staff; without a program item in it, the PCP's copy carries
    none."""
    pcp, _, _ = plan_world
    plan = plans.current_plan(session, people.patient.id)
    theirs = client.get(f"/fhir/CarePlan/{plan.id}", headers=bearer(session, people.care_manager))
    assert theirs.status_code == 200, theirs.text
    resource = theirs.json()
    assert _security(resource) == PART2_CODES
    labelled = {
        a["detail"]["description"]
        for a in resource["activity"]
        if any(e["url"] == INLINE for e in a.get("extension", []))
    }
    assert labelled == {"Relapse-prevention group", "Call the counsellor"}
    assert "Walk after lunch" in str(resource["activity"])
    mine = client.get(f"/fhir/CarePlan/{plan.id}", headers=bearer(session, pcp))
    assert mine.status_code == 200 and _security(mine.json()) == set()
    assert "Relapse-prevention group" not in mine.text

    def walk(body):
        return next(a for a in body["activity"] if a["detail"]["description"] == "Walk after lunch")

    # The PCP's step names the program's goal: not to the PCP (nor by its id in JSON).
    got = client.get(f"/api/v1/patients/{people.patient.id}/careplan", headers=bearer(session, pcp))
    assert [s["goal_id"] for s in got.json()["action_steps"]] == [None]
    assert walk(resource)["detail"]["goal"] and "goal" not in walk(mine.json())["detail"]


def test_an_answer_of_a_part2_response_is_labelled(client, session, people):
    """An AUDIT-C item Observation carries its response's label, read by id or derived."""
    _, made = make_world(session, people)
    response = made["AUDIT-C"]
    derived = client.get(
        f"/fhir/Observation?derived-from=QuestionnaireResponse/{response}",
        headers=bearer(session, people.care_manager),
    )
    assert derived.status_code == 200, derived.text
    entries = [e["resource"] for e in derived.json()["entry"]]
    assert entries and all(_security(r) == PART2_CODES for r in entries)
    items = [r for r in entries if r["id"].startswith(f"{response}.")]
    assert items  # the AUDIT-C's items are LOINC-coded
    one = client.get(
        f"/fhir/Observation/{items[0]['id']}", headers=bearer(session, people.care_manager)
    )
    assert one.status_code == 200 and _security(one.json()) == PART2_CODES


def test_a_change_by_id_cannot_reach_a_program_item_the_pcp_may_not_see(
    client, session, people, plan_world
):
    """A change or removal by id answers as for an item that does not exist, writes nothing,
    and is in the trail; the program's own staff change it as before."""
    pcp, program_goal, _ = plan_world
    pid = people.patient.id
    url = f"/api/v1/patients/{pid}/careplan/goals/{program_goal.id}"
    body = {"statement": "Changed", "category": "symptoms", "version": 1, "reason": "Why"}
    refused = client.put(url, json=body, headers=bearer(session, pcp))
    assert refused.status_code == 404, refused.text
    assert PROGRAM_GOAL not in refused.text
    removed = client.post(
        f"{url}/remove", json={"version": 1, "reason": "Done"}, headers=bearer(session, pcp)
    )
    assert removed.status_code == 404
    session.expire_all()
    assert plans.load_contents(session, plans.current_plan(session, pid)).goals[0].statement == (
        PROGRAM_GOAL
    )
    changed = client.put(url, json=body, headers=bearer(session, people.care_manager))
    assert changed.status_code == 200, changed.text


def test_the_badge_on_the_plan_page_in_english_and_spanish(
    client, session, people, plan_world, sign_in
):
    """The program's staff see "Protected by 42 CFR Part 2" beside its items (in their
    language) and beside nothing primary care wrote; the PCP without consent sees no badge."""
    import re

    pcp, program_goal, pcp_goal = plan_world
    pid = people.patient.id
    sign_in(people.care_manager.email)
    page = client.get(f"/patients/{pid}/plan")
    assert page.status_code == 200
    badged = set(re.findall(r'data-part2="([^"]+)"', page.text))
    assert str(program_goal.id) in badged and str(pcp_goal.id) not in badged
    assert "Protected by 42 CFR Part 2" in page.text
    people.care_manager.language = "es"
    commit(session)
    page = client.get(f"/patients/{pid}/plan")
    assert "Protegido por 42 CFR Parte 2" in page.text
    sign_in(pcp.email)
    page = client.get(f"/patients/{pid}/plan")
    assert page.status_code == 200 and "data-part2=" not in page.text
    assert PROGRAM_GOAL not in page.text and PCP_GOAL in page.text

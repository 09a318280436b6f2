"""The last gaps of issue 18 (ADR 0021, 0022), on both engines.

- A plan item's Part 2 label follows its author, never its last editor.
- The plan history's change list names its items, so a program item's change is badged.
- CSVs and the safety-plan PDF disclosing Part 2 data under a consent carry the § 2.32(b)
  consent explanation beside the redisclosure notice.
- A task the worker opens from the caseload's flags is opened only for an owner who may see the
  Part 2 data it follows from.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from concord import disclosure
from concord.careplans import service as plans
from concord.consents import service as consents
from concord.i18n import Msg
from concord.registry.caseload import FlagRow
from concord.registry.models import Episode, TaskStatus, WorkTask
from concord.registry.rules import Flag
from concord.registry.tasks import sync_flag_tasks
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for
from tests.part2.test_part2 import _tpo, make_world
from tests.part2.test_plan_reads import PCP_GOAL, PROGRAM_GOAL, plan_world  # noqa: F401 (the fixture)


def _goal(session, pid, statement):
    session.expire_all()
    contents = plans.load_contents(session, plans.current_plan(session, pid))
    return next(g for g in contents.goals if g.statement == statement)


def _edit(client, session, user, pid, goal, statement):
    url = f"/api/v1/patients/{pid}/careplan/goals/{goal.id}"
    body = {
        "statement": statement,
        "category": "symptoms",
        "version": goal.version,
        "reason": "Reworded with the patient",
    }
    got = client.put(url, json=body, headers=bearer(session, user))
    assert got.status_code == 200, got.text


def test_a_pcp_editing_a_program_item_under_consent_keeps_its_label(
    client,
    session,
    people,
    plan_world,  # noqa: F811
):
    """42 CFR 2.12(a)/2.11: the record is the program's because its staff wrote it; an edit
    by someone outside the program does not make it primary care's."""
    pcp, program_goal, _ = plan_world
    pid = people.patient.id
    _tpo(session, people, pcp, categories=["substance_use", "care_plan"])
    _edit(client, session, pcp, pid, program_goal, PROGRAM_GOAL + ", on weekends too")
    goal = _goal(session, pid, PROGRAM_GOAL + ", on weekends too")
    assert goal.updated_by_id == pcp.id and goal.author_id == people.care_manager.id
    assert disclosure.is_part2(goal, people.patient)
    # Under the consent the PCP still finds it.
    found = client.get(f"/fhir/Goal?patient={pid}", headers=bearer(session, pcp)).json()
    assert str(goal.id) in str(found)


def test_program_staff_editing_a_pcps_item_add_no_label(
    client,
    session,
    people,
    plan_world,  # noqa: F811
):
    pcp, _, pcp_goal = plan_world
    pid = people.patient.id
    _edit(client, session, people.care_manager, pid, pcp_goal, PCP_GOAL + " most nights")
    goal = _goal(session, pid, PCP_GOAL + " most nights")
    assert goal.updated_by_id == people.care_manager.id and goal.author_id == pcp.id
    assert not disclosure.is_part2(goal, people.patient)
    # The PCP, with no consent, still sees their own goal after the program's edit.
    found = client.get(f"/fhir/Goal?patient={pid}", headers=bearer(session, pcp)).json()
    assert found["total"] == 1 and PCP_GOAL + " most nights" in str(found)


def test_the_plan_history_badges_the_programs_changes_only(
    client,
    session,
    people,
    plan_world,  # noqa: F811
    sign_in,
):
    """The history's change list names each change's item: a program item's change carries
    the badge, a primary care item's does not, and the PCP without consent meets neither the
    program's change nor its badge (page and JSON)."""
    pcp, program_goal, pcp_goal = plan_world
    pid = people.patient.id
    sign_in(people.care_manager.email)
    page = client.get(f"/patients/{pid}/plan/history")
    assert page.status_code == 200, page.text
    badged = set(re.findall(r'data-part2="([^"]+)"', page.text))
    assert str(program_goal.id) in badged and str(pcp_goal.id) not in badged
    compared = client.get(f"/patients/{pid}/plan/history?from=1&to=5")
    assert str(program_goal.id) in set(re.findall(r'data-part2="([^"]+)"', compared.text))
    listed = client.get(
        f"/api/v1/patients/{pid}/careplan/revisions", headers=bearer(session, people.care_manager)
    ).json()
    changes = {c["item_id"]: c["part2"] for r in listed for c in r["changes"] if c["item_id"]}
    assert changes[str(program_goal.id)] is True and changes[str(pcp_goal.id)] is False
    sign_in(pcp.email)
    page = client.get(f"/patients/{pid}/plan/history")
    assert page.status_code == 200 and "data-part2=" not in page.text
    assert PROGRAM_GOAL not in page.text and PCP_GOAL in page.text
    # Under consent the PCP sees the program's change, badged.
    _tpo(session, people, pcp, categories=["substance_use", "care_plan"])
    page = client.get(f"/patients/{pid}/plan/history")
    assert str(program_goal.id) in set(re.findall(r'data-part2="([^"]+)"', page.text))


def _flag_sync(session, people, pcp, code):
    """The worker's sync for one flag of the patient's program episode, whose consultant is
    the PCP (outside the program): the tasks open for it afterwards."""
    episode = session.scalar(select(Episode).where(Episode.patient_id == people.patient.id))
    episode.consultant_id = pcp.id
    session.flush()
    row = FlagRow(episode, people.patient, [Flag(code, Msg("a rule"))])
    sync_flag_tasks(session, [row], today=episode.started_on)
    session.flush()
    return list(
        session.scalars(
            select(WorkTask).where(
                WorkTask.patient_id == people.patient.id, WorkTask.source.like(f"flag:{code}:%")
            )
        )
    ), TaskStatus


def test_a_flag_task_opens_only_for_an_owner_who_may_see_what_it_follows_from(session, people):
    """ADR 0021: the worker decides as the task's owner, not as the system. The program's
    "not improving" (its scores: PHQ-9 and AUDIT-C, an episode at a Part 2 program) is no
    task for a consultant outside the program without the patient's consent; under a consent
    it is; a revoked consent closes it at the nightly run; the program's own care manager
    gets the tasks of the flags they own."""
    pcp, _ = make_world(session, people)
    tasks, status = _flag_sync(session, people, pcp, "not_improving")
    assert tasks == []
    made = _tpo(session, people, pcp, scope="all", categories=None)
    tasks, status = _flag_sync(session, people, pcp, "not_improving")
    assert [(t.owner_id, t.status) for t in tasks] == [(pcp.id, status.open)]
    consents.revoke(
        session,
        access=acc_for(session, people.patient_user, people.patient),
        consent_id=made.id,
        reason="Changed my mind",
    )
    commit(session)
    tasks, status = _flag_sync(session, people, pcp, "not_improving")
    assert [t.status for t in tasks] == [status.done]
    assert tasks[0].close_note == "Closed: its owner may not see the records it follows from."
    tasks, status = _flag_sync(session, people, pcp, "no_contact_30_days")
    assert [(t.owner_id, t.status) for t in tasks] == [(people.care_manager.id, status.open)]

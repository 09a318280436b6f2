"""Reads that once took a patient id and answered from the table alone now pass the disclosure
decision (ADR 0020, 0021), on both engines: the latest scores (goals linked to measures), the
current risk (every patient page's header), the risk history (safety page, JSON, FHIR Flag),
the risks on the patients list, the clinician-wide alert list and the FHIR Task read of an
alert. A consent refusing safety data to one clinician, and a Part 2 AUDIT-C without a
permitting consent, reach each of them; the rest of the team is unaffected.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from concord.consents import service as consents
from concord.consents.schemas import ConsentIn
from concord.disclosures.models import DisclosureLog
from concord.errors import NotFound
from concord.measures.service import latest_scores
from concord.registry import tasks
from concord.registry.models import Episode
from concord.registry.service import judged_by
from concord.safety import alerts as safety_alerts
from concord.safety.risk import (
    current_risk,
    risk_for,
    risk_history,
    risk_history_for,
    risks_for,
)
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for
from tests.part2.test_part2 import make_world


def _consent(session, people, pcp, **kw):
    data = ConsentIn(
        grantee_kind="user",
        grantee_id=pcp.id,
        discloser="North Clinic addiction service",
        purposes=["treatment"],
        method="portal_signature",
        signed_name="Sam Rivera",
        **kw,
    )
    made = consents.record(
        session, access=acc_for(session, people.patient_user, people.patient), data=data
    )
    commit(session)
    return made


@pytest.fixture
def world(session, people):
    """The Part 2 world (tests/part2/test_part2.py) with a risk flag raised by the team."""
    pcp, made = make_world(session, people)
    alert = safety_alerts.raise_manual_flag(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        tier="high",
        reason="Synthetic concern for the test",
    )
    commit(session)
    return pcp, alert


def _refuse_safety(session, people, pcp):
    return _consent(
        session, people, pcp, scope="categories", categories=["safety"], provision="deny"
    )


def test_latest_scores_withhold_the_part2_audit_c_until_consent(session, people, world):
    pcp, _ = world
    acc = acc_for(session, pcp, people.patient)
    assert set(latest_scores(session, acc)) == {"PHQ-9"}
    # The program's own staff see both.
    own = acc_for(session, people.care_manager, people.patient)
    assert set(latest_scores(session, own)) == {"PHQ-9", "AUDIT-C"}
    consent = _consent(session, people, pcp, scope="all")
    assert set(latest_scores(session, acc_for(session, pcp, people.patient))) == {
        "PHQ-9",
        "AUDIT-C",
    }
    logged = session.scalars(
        select(DisclosureLog).where(DisclosureLog.recipient_id == pcp.id)
    ).all()
    assert [(r.category, r.consent_id) for r in logged] == [("substance_use", consent.id)]


def test_current_risk_and_history_reach_a_deny(session, people, world):
    pcp, _ = world
    assert current_risk(session, people.patient.id).tier == "high"  # the system's read
    assert risk_for(session, acc_for(session, pcp, people.patient)).tier == "high"
    assert risk_history_for(session, acc_for(session, pcp, people.patient))
    _refuse_safety(session, people, pcp)
    acc = acc_for(session, pcp, people.patient)
    assert risk_for(session, acc) is None
    assert risk_history_for(session, acc) == []
    assert risk_history(session, people.patient.id)  # nothing is deleted
    # The rest of the team still sees it.
    lead = acc_for(session, people.care_manager, people.patient)
    assert risk_for(session, lead).tier == "high"
    assert len(risk_history_for(session, lead)) == len(risk_history(session, people.patient.id))


def test_the_patients_list_risks_reach_a_deny(session, people, world):
    pcp, _ = world
    assert set(risks_for(session, pcp, [people.patient])) == {people.patient.id}
    _refuse_safety(session, people, pcp)
    assert risks_for(session, pcp, [people.patient]) == {}
    assert set(risks_for(session, people.care_manager, [people.patient])) == {people.patient.id}


def test_the_clinician_wide_alert_list_reaches_a_deny(session, people, world):
    pcp, alert = world
    assert alert.id in {r.alert.id for r in safety_alerts.list_alerts(session, by=pcp)}
    _refuse_safety(session, people, pcp)
    assert safety_alerts.list_alerts(session, by=pcp) == []
    lead = safety_alerts.list_alerts(session, by=people.care_manager)
    assert alert.id in {r.alert.id for r in lead}


def test_an_alert_read_by_id_reaches_a_deny(session, people, world):
    pcp, alert = world
    assert safety_alerts.get_team_alert(session, by=pcp, ident=str(alert.id)) is not None
    _refuse_safety(session, people, pcp)
    with pytest.raises(NotFound):
        safety_alerts.get_team_alert(session, by=pcp, ident=str(alert.id))
    assert safety_alerts.get_team_alert(session, by=people.care_manager, ident=str(alert.id))


def test_the_pages_that_show_them(client, session, people, world, sign_in):
    """The header's risk badge, the safety page's history and the patients list, as the PCP
    refused safety data."""
    pcp, alert = world
    _refuse_safety(session, people, pcp)
    sign_in("cara@test.example.org")
    assert str(alert.id) in client.get("/alerts").text
    assert str(alert.id) in client.get(f"/patients/{people.patient.id}/safety").text
    sign_in("pcp@x.test", "correct horse battery")
    for url in (f"/patients/{people.patient.id}/safety", "/patients", "/alerts"):
        got = client.get(url)
        assert got.status_code == 200, (url, got.status_code)
        assert str(alert.id) not in got.text


def test_the_measure_progress_is_judged_by_comes_from_an_episode_the_reader_may_see(
    session, people, world
):
    pcp, _ = world
    episode = session.scalar(select(Episode).where(Episode.patient_id == people.patient.id))
    episode.program = "substance_use"  # judged by the AUDIT-C
    commit(session)
    assert judged_by(session, acc_for(session, people.care_manager, people.patient)) == "AUDIT-C"
    # The PCP may not see the program's episode: nothing names its measure.
    assert judged_by(session, acc_for(session, pcp, people.patient)) == "PHQ-9"


def test_the_fhir_task_search_reaches_a_deny_and_its_total_agrees(client, session, people, world):
    pcp, alert = world

    def search(user):
        page = tasks.list_team_tasks(session, by=user, scope=None)
        return {getattr(item, "alert", item).id for item, _ in page.rows}, page.total

    found, total = search(pcp)
    assert alert.id in found and total == len(found)
    _refuse_safety(session, people, pcp)
    found, total = search(pcp)
    assert alert.id not in found and total == len(found)
    assert alert.id in search(people.care_manager)[0]
    got = client.get("/fhir/Task", headers=bearer(session, pcp))
    assert got.status_code == 200, got.text
    assert str(alert.id) not in got.text
    assert got.json().get("total", 0) == len(got.json().get("entry", []))

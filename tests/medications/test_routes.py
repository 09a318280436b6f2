"""The medication list's doors (issue 19): the team's Medications tab, the patient's My
medications (EN/ES), and the JSON API. Each door runs the same whole-list check: a patient's
"I take clonazepam" beside buprenorphine shows the MOUD + benzodiazepine finding on the page
and in the API."""

from __future__ import annotations

from sqlalchemy import select

from concord.accounts.models import Role
from concord.actions import medications as act
from concord.actions import part2 as part2_actions
from concord.medications.models import FindingOverride, Medication, MedicationReport
from concord.medications.schemas import MedicationIn
from concord.patients.models import CareTeam, CareTeamMember
from concord.registry.service import Enrolment, enroll
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for, create_staff

BUPRENORPHINE, SERTRALINE, CLONAZEPAM = "1819", "36437", "2598"
MOUD_BENZO = "moud-benzodiazepine-or-cns-depressant"


def _api(session, people):
    return bearer(session, people.care_manager), bearer(session, people.patient_user)


def test_the_api_adds_checks_and_the_patient_reports(client, session, people):
    team, me = _api(session, people)
    base = f"/api/v1/patients/{people.patient.id}/medications"
    made = client.post(
        base,
        json={"rxcui": BUPRENORPHINE, "dose": "8 mg", "route": "sublingual"},
        headers={**team, "Idempotency-Key": "med-add-0001"},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["medication"]["name"] == "buprenorphine"
    assert body["medication"]["category"] == "substance_use"
    again = client.post(
        base,
        json={"rxcui": BUPRENORPHINE, "dose": "8 mg", "route": "sublingual"},
        headers={**team, "Idempotency-Key": "med-add-0001"},
    )
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert session.scalar(select(Medication).where(Medication.rxcui == BUPRENORPHINE))
    # The patient reports clonazepam: the finding is in the answer and on the list.
    told = client.post(f"{base}/reported", json={"rxcui": CLONAZEPAM}, headers=me)
    assert told.status_code == 201, told.text
    assert MOUD_BENZO in {f["rule_id"] for f in told.json()["findings"]}
    listed = client.get(base, headers=team).json()
    finding = next(f for f in listed["findings"] if f["rule_id"] == MOUD_BENZO)
    assert finding["source"]["url"].startswith("https://") and finding["action"]
    assert [d["kind"] for d in listed["differences"]] == ["reported_not_listed"]
    # The team may not report for the patient; the patient may not prescribe.
    assert (
        client.post(f"{base}/reported", json={"rxcui": SERTRALINE}, headers=team).status_code == 403
    )
    assert client.post(base, json={"rxcui": SERTRALINE}, headers=me).status_code == 403
    # Override: a reason is required, then kept.
    url = f"/api/v1/patients/{people.patient.id}/medication-findings/{finding['id']}/override"
    bad = client.post(url, json={"reason": ""}, headers=team)
    assert bad.status_code == 422 and "reason" in bad.text
    ok = client.post(url, json={"reason": "Taper planned together"}, headers=team)
    assert ok.status_code == 201, ok.text
    assert session.scalar(select(FindingOverride)).reason == "Taper planned together"
    after = client.get(base, headers=team).json()
    kept = next(f for f in after["findings"] if f["rule_id"] == MOUD_BENZO)
    assert kept["overridden_at"] and kept["overrides"][0]["reason"] == "Taper planned together"


def test_the_api_names_the_bad_field_and_writes_nothing(client, session, people):
    team, _ = _api(session, people)
    base = f"/api/v1/patients/{people.patient.id}/medications"
    for body, field in (
        ({"rxcui": "abc"}, "rxcui"),
        ({}, "name"),
        ({"rxcui": SERTRALINE, "started_on": "1800-01-01"}, "started_on"),
        (
            {"rxcui": SERTRALINE, "started_on": "2026-01-02", "stopped_on": "2026-01-01"},
            "stopped_on",
        ),
    ):
        got = client.post(base, json=body, headers=team)
        assert got.status_code == 422, (body, got.text)
        assert field in got.text
    assert session.scalar(select(Medication)) is None


def test_stop_change_and_reconcile_through_the_api(client, session, people):
    team, me = _api(session, people)
    base = f"/api/v1/patients/{people.patient.id}/medications"
    med = client.post(base, json={"rxcui": SERTRALINE, "dose": "50 mg"}, headers=team).json()
    mid = med["medication"]["id"]
    changed = client.put(
        f"{base}/{mid}", json={"rxcui": SERTRALINE, "dose": "100 mg", "version": 1}, headers=team
    )
    assert changed.status_code == 200 and changed.json()["medication"]["dose"] == "100 mg"
    stale = client.put(
        f"{base}/{mid}", json={"rxcui": SERTRALINE, "dose": "25 mg", "version": 1}, headers=team
    )
    assert stale.status_code == 409
    told = client.post(f"{base}/{mid}/reports", json={"kind": "stopped"}, headers=me)
    assert told.status_code == 201, told.text
    listed = client.get(base, headers=team).json()
    assert [d["kind"] for d in listed["differences"]] == ["reported_stopped"]
    report_id = listed["differences"][0]["report_id"]
    done = client.post(
        f"/api/v1/patients/{people.patient.id}/medication-reports/{report_id}/resolve",
        json={"note": "Talked it over"},
        headers=team,
    )
    assert done.status_code == 200, done.text
    stopped = client.post(
        f"{base}/{mid}/status",
        json={"status": "stopped", "reason": "Side effects", "version": 2},
        headers=team,
    )
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["medication"]["status"] == "stopped"


def test_the_team_tab_shows_the_finding_and_the_portal_the_list(client, session, people, sign_in):
    team, me = _api(session, people)
    base = f"/api/v1/patients/{people.patient.id}/medications"
    client.post(base, json={"rxcui": BUPRENORPHINE, "dose": "8 mg"}, headers=team)
    client.post(f"{base}/reported", json={"rxcui": CLONAZEPAM}, headers=me)
    client.headers.pop("Authorization", None)
    sign_in("cara@test.example.org")
    page = client.get(f"/patients/{people.patient.id}/medications")
    assert page.status_code == 200, page.text
    assert f'data-finding="{MOUD_BENZO}"' in page.text
    assert "clonazepam" in page.text and "data-differences" in page.text
    assert 'aria-current="page">Medications<' in page.text
    # The patient's portal, in English and in Spanish.
    sign_in("pat@patients.example.org")
    mine = client.get("/my/medications")
    assert mine.status_code == 200
    assert "buprenorphine" in mine.text and "I stopped this" in mine.text
    assert MOUD_BENZO not in mine.text  # the team's findings are the team's to explain
    spanish = client.get("/my/medications", headers={"Accept-Language": "es"})
    assert spanish.status_code == 200


def test_the_page_forms_run_the_same_actions(client, session, people, sign_in):
    token = sign_in("cara@test.example.org")
    added = client.post(
        f"/patients/{people.patient.id}/medications",
        data={"csrf_token": token, "rxcui": BUPRENORPHINE, "dose": "8 mg"},
    )
    assert added.status_code == 303, added.text
    bad = client.post(
        f"/patients/{people.patient.id}/medications",
        data={"csrf_token": token, "rxcui": "", "name": ""},
    )
    assert bad.status_code == 422 and "has-error" in bad.text
    med = session.scalar(select(Medication))
    status = client.post(
        f"/patients/{people.patient.id}/medications/{med.id}/status",
        data={"csrf_token": token, "status": "stopped", "reason": "", "version": "1"},
    )
    assert status.status_code == 422
    token = sign_in("pat@patients.example.org")
    told = client.post(
        f"/my/medications/{med.id}/report", data={"csrf_token": token, "kind": "stopped"}
    )
    assert told.status_code == 303
    commit(session)
    assert session.scalar(select(MedicationReport)).kind == "stopped"
    reported = client.post(
        "/my/medications/reported",
        data={"csrf_token": token, "rxcui": CLONAZEPAM, "over_the_counter": "on"},
    )
    assert reported.status_code == 303, reported.text
    page = client.get("/my/medications?done=reported")
    assert "clonazepam" in page.text


def test_family_and_strangers_get_not_found(client, session, people):
    base = f"/api/v1/patients/{people.patient.id}/medications"
    for user in (people.family, people.outsider, people.other_patient_user):
        got = client.get(base, headers=bearer(session, user))
        assert got.status_code == 404


def test_the_protocol_on_the_tab_and_in_the_api(client, session, people, sign_in):
    team, _ = _api(session, people)
    base = f"/api/v1/patients/{people.patient.id}"
    med = client.post(f"{base}/medications", json={"rxcui": BUPRENORPHINE}, headers=team).json()
    made = client.post(
        f"{base}/medication-protocol",
        json={
            "medication_id": med["medication"]["id"],
            "monitoring": "Urine drug test",
            "every_days": 28,
            "tell": [str(people.consultant.id)],
        },
        headers=team,
    )
    assert made.status_code == 201, made.text
    assert made.json()["next_due_on"] and made.json()["about"] == "buprenorphine"
    bad = client.post(
        f"{base}/medication-protocol", json={"about": "x", "every_days": 0}, headers=team
    )
    assert bad.status_code == 422 and "every_days" in bad.text
    listed = client.get(f"{base}/medications", headers=team).json()
    assert [e["monitoring"] for e in listed["protocol"]] == ["Urine drug test"]
    token = sign_in("cara@test.example.org")
    page = client.get(f"/patients/{people.patient.id}/medications")
    assert "data-protocol-entry" in page.text and "Urine drug test" in page.text
    done = client.post(
        f"/patients/{people.patient.id}/medication-protocol/{made.json()['id']}/done",
        data={"csrf_token": token, "done_on": ""},
    )
    assert done.status_code == 303, done.text
    added = client.post(
        f"/patients/{people.patient.id}/medication-protocol",
        data={
            "csrf_token": token,
            "about": "Sertraline",
            "tell": [str(people.consultant.id), str(people.therapist.id)],
        },
    )
    assert added.status_code == 303, added.text


def test_a_change_answers_only_with_the_findings_the_asker_may_see(client, session, people):
    """42 CFR Part 2: a primary care provider outside the program, on the team, adds a
    medication; the answer does not name the MOUD findings the program's record holds."""
    part2_actions.set_part2_program(session, people.admin, people.north.id, True)
    team_acc = acc_for(session, people.care_manager, people.patient)
    enroll(session, access=team_acc, data=Enrolment(program="co_occurring"))
    act.add(session, access=team_acc, data=MedicationIn(rxcui=BUPRENORPHINE))
    act.add(session, access=team_acc, data=MedicationIn(rxcui=CLONAZEPAM))
    pcp = create_staff(
        session, people.org, people.south, Role.primary_care_provider, "Pat Lee", "pcp@x.test"
    )
    care_team = session.scalar(select(CareTeam).where(CareTeam.patient_id == people.patient.id))
    session.add(
        CareTeamMember(care_team_id=care_team.id, user_id=pcp.id, role="primary_care_provider")
    )
    commit(session)
    got = client.post(
        f"/api/v1/patients/{people.patient.id}/medications",
        json={"rxcui": SERTRALINE},
        headers=bearer(session, pcp),
    )
    assert got.status_code == 201, got.text
    assert all(BUPRENORPHINE not in f["rxcuis"] for f in got.json()["findings"])
    assert got.json()["new_findings"] == []
    listed = client.get(
        f"/api/v1/patients/{people.patient.id}/medications", headers=bearer(session, pcp)
    ).json()
    assert {m["rxcui"] for m in listed["medications"]} == {SERTRALINE}

"""MOUD records through /fhir (issue 19, ADR 0025): a PDMP check as a Procedure (the CDC opioid
guideline IG's PDMPReviewProcedure code), read and searched by patient, date, status and code
beside the Procedures an EHR sent, behind the record's access, the disclosure decision and
42 CFR Part 2; validated with fhir.resources."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from concord.accounts.models import Role
from concord.actions import medications as act
from concord.actions import part2 as part2_actions
from concord.audit.models import AuditEvent
from concord.dates import org_today
from concord.fhir.mapping import validate
from concord.medications.schemas import MedicationIn, MoudIn
from concord.patients.models import CareTeam, CareTeamMember
from concord.registry.service import Enrolment, enroll
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.ehr.test_import import bundle, client_token, patient, put, send
from tests.factories import acc_for, create_staff

FHIR = {"Accept": "application/fhir+json"}
SNOMED = "http://snomed.info/sct"
PDMP_REVIEW = "461621000124108"
RESULT = "Two prescribers in the last 90 days; no overlap"  # synthetic
BUPRENORPHINE = "1819"


def _records(session, people):
    """Two PDMP checks (ten days apart), an induction and a urine drug test."""
    team = acc_for(session, people.care_manager, people.patient)
    today = org_today(people.org)
    bup = act.add(session, access=team, data=MedicationIn(rxcui=BUPRENORPHINE, dose="8 mg"))
    earlier = act.record_moud(
        session,
        access=team,
        data=MoudIn(kind="pdmp_check", on=today - timedelta(days=10), result="None found"),
    )
    latest = act.record_moud(
        session,
        access=team,
        data=MoudIn(kind="pdmp_check", on=today, result=RESULT, note="Checked before the refill"),
    )
    induction = act.record_moud(
        session,
        access=team,
        data=MoudIn(kind="induction", on=today, medication_id=bup.medication.id, dose="8 mg"),
    )
    test = act.record_moud(
        session, access=team, data=MoudIn(kind="urine_drug_test", on=today, result="negative")
    )
    commit(session)
    return earlier, latest, induction, test


def _get(client, url, headers):
    return client.get(url, headers={**FHIR, **headers})


def _ids(response):
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json().get("entry", [])]


def test_a_pdmp_check_is_a_procedure(client, session, people):
    earlier, latest, induction, test = _records(session, people)
    for who in (people.care_manager, people.patient_user):
        got = _get(client, f"/fhir/Procedure/concord-pdmp-{latest.id}", bearer(session, who))
        assert got.status_code == 200, got.text
        resource = validate(got.json())
        assert resource["status"] == "completed"
        assert resource["code"]["coding"][0]["system"] == SNOMED
        assert resource["code"]["coding"][0]["code"] == PDMP_REVIEW
        assert resource["subject"]["reference"] == f"Patient/{people.patient.id}"
        assert resource["performedDateTime"] == latest.on.isoformat()
        # Who checked: the clinician who recorded it, unless another was named.
        assert resource["performer"][0]["actor"]["reference"] == (
            f"Practitioner/{people.care_manager.id}"
        )
        assert resource["outcome"] == {"text": RESULT}  # as recorded, not interpreted
        assert resource["note"] == [{"text": "Checked before the refill"}]
        assert "security" not in resource["meta"]  # not a Part 2 program's record
    # Each read is in the trail.
    reads = session.scalars(
        select(AuditEvent.actor_id).where(
            AuditEvent.object_type == "MoudRecord",
            AuditEvent.action == "read",
            AuditEvent.object_id == str(latest.id),
        )
    ).all()
    assert {people.care_manager.id, people.patient_user.id} <= set(reads)
    team = bearer(session, people.care_manager)
    # Only a PDMP check is a Procedure; any other record, a bad id, an unprefixed id: 404.
    for ident in (f"concord-pdmp-{induction.id}", f"concord-pdmp-{test.id}", "concord-pdmp-x"):
        assert _get(client, f"/fhir/Procedure/{ident}", team).status_code == 404
    assert _get(client, f"/fhir/Procedure/{latest.id}", team).status_code == 404


def test_search_by_patient_date_status_and_code(client, session, people):
    earlier, latest, _, _ = _records(session, people)
    imported = bundle(
        put("Patient", "p1", patient(mrn="N-1", given="Pat", family="Ient", birth="1985-05-17")),
        put(
            "Procedure",
            "x1",
            {
                "resourceType": "Procedure",
                "status": "completed",
                "code": {"coding": [{"system": SNOMED, "code": "183380000"}]},
                "subject": {"reference": "Patient/p1"},
                "performedDateTime": "2026-01-10",
            },
        ),
    )
    assert send(client, imported, client_token(session, people)).status_code == 200
    team = bearer(session, people.care_manager)
    pid = people.patient.id
    ours, old = f"concord-pdmp-{latest.id}", f"concord-pdmp-{earlier.id}"

    def found(query):
        return _ids(_get(client, f"/fhir/Procedure?patient={pid}{query}", team))

    assert found("") == ["x1", ours, old]  # the EHR's first, then Concord's, newest first
    assert _ids(_get(client, "/fhir/Procedure", team)) == ["x1", ours, old]
    assert _ids(_get(client, f"/fhir/Procedure?subject=Patient/{pid}", team)) == ["x1", ours, old]
    # The EHR's own is read as before, by its sender's id.
    assert _get(client, "/fhir/Procedure/x1", team).json()["code"]["coding"][0]["code"] == (
        "183380000"
    )
    day = latest.on.isoformat()
    assert found(f"&date={day}") == [ours]
    assert found(f"&date=ge{earlier.on.isoformat()}") == [ours, old]
    assert found(f"&date=lt{day}") == ["x1", old]
    assert found(f"&date=gt{earlier.on.isoformat()}&date=le{day}") == [ours]  # AND
    assert found("&date=2026-01") == ["x1"]
    assert found("&status=completed") == ["x1", ours, old]
    assert found("&status=in-progress,preparation") == []
    assert found(f"&code={SNOMED}|{PDMP_REVIEW}") == [ours, old]
    assert found("&code=183380000") == ["x1"]
    assert found(f"&code=http://loinc.org|{PDMP_REVIEW}") == []
    # What is not offered, or a time where a date is searched, is refused, never ignored.
    for query in ("&date=2026-11-20T10:00", "&date=", "&performer=x", "&date=ap2026"):
        refused = _get(client, f"/fhir/Procedure?patient={pid}{query}", team)
        assert refused.status_code in (400, 422), (query, refused.text)
    validate(_get(client, f"/fhir/Procedure?patient={pid}", team).json())
    # The integration client reads what the EHR sent only.
    feed = client_token(session, people, name="q")
    client_sees = _ids(_get(client, f"/fhir/Procedure?patient={pid}", feed))
    assert "x1" in client_sees
    assert not [i for i in client_sees if i.startswith("concord-pdmp-")]


def test_the_moud_medication_carries_its_inductions(client, session, people):
    _, _, induction, _ = _records(session, people)
    team = bearer(session, people.care_manager)
    expected = [{"time": induction.on.isoformat(), "text": "Induction: 8 mg"}]
    got = _get(client, f"/fhir/MedicationRequest/{induction.medication_id}", team)
    assert got.status_code == 200, got.text
    assert validate(got.json())["note"] == expected
    found = _get(client, f"/fhir/MedicationRequest?patient={people.patient.id}", team).json()
    (entry,) = [e for e in found["entry"] if e["resource"]["id"] == str(induction.medication_id)]
    assert entry["resource"]["note"] == expected
    # Another medication has no course of its own.
    other = act.add(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        data=MedicationIn(rxcui="36437"),
    )
    commit(session)
    got = _get(client, f"/fhir/MedicationRequest/{other.medication.id}", team).json()
    assert "note" not in got


def test_off_team_is_not_found_and_searches_are_empty(client, session, people):
    _, latest, _, _ = _records(session, people)
    for who in (people.outsider, people.other_patient_user, people.family):
        token = bearer(session, who)
        got = _get(client, f"/fhir/Procedure/concord-pdmp-{latest.id}", token)
        assert got.status_code in (403, 404), (who.email, got.text)
        assert RESULT not in got.text
        for url in (f"/fhir/Procedure?patient={people.patient.id}", "/fhir/Procedure"):
            got = _get(client, url, token)
            if got.status_code == 200:
                assert not [i for i in _ids(got) if i.startswith("concord-pdmp-")]
            assert RESULT not in got.text
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.outcome == "denied", AuditEvent.actor_id == people.outsider.id
        )
    ).all()
    assert denied


def test_a_part2_record_is_labelled_and_withheld_without_consent(client, session, people):
    """A PDMP check of a patient at a Part 2 program carries 42CFRPart2; a primary care
    provider on the team, outside the program and without the patient's consent, is answered
    as if it did not exist, on a read and in a search."""
    part2_actions.set_part2_program(session, people.admin, people.north.id, True)
    enroll(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        data=Enrolment(program="co_occurring"),
    )
    _, latest, _, _ = _records(session, people)
    pcp = create_staff(
        session, people.org, people.south, Role.primary_care_provider, "Pat Lee", "pcp@x.test"
    )
    care_team = session.scalar(select(CareTeam).where(CareTeam.patient_id == people.patient.id))
    session.add(
        CareTeamMember(care_team_id=care_team.id, user_id=pcp.id, role="primary_care_provider")
    )
    commit(session)
    url = f"/fhir/Procedure/concord-pdmp-{latest.id}"
    got = _get(client, url, bearer(session, people.care_manager))
    assert got.status_code == 200, got.text
    codes = {c["code"] for c in validate(got.json())["meta"]["security"]}
    assert codes == {"42CFRPart2", "NORDSCLCD", "R"}
    outside = bearer(session, pcp)
    refused = _get(client, url, outside)
    assert refused.status_code == 404 and RESULT not in refused.text
    search = _get(client, f"/fhir/Procedure?patient={people.patient.id}", outside)
    assert search.status_code == 200 and RESULT not in search.text
    assert not [i for i in _ids(search) if i.startswith("concord-pdmp-")]
    # The MOUD medication itself is withheld alike (MedicationRequest).
    meds = _get(client, f"/fhir/MedicationRequest?patient={people.patient.id}", outside)
    assert meds.status_code == 200 and "buprenorphine" not in meds.text


def test_an_ehr_cannot_send_a_pdmp_checks_id(client, session, people):
    body = bundle(
        put("Patient", "p1", patient(mrn="N-1", given="Pat", family="Ient", birth="1985-05-17")),
        put(
            "Procedure",
            "concord-pdmp-1",
            {
                "resourceType": "Procedure",
                "status": "completed",
                "code": {"text": "x"},
                "subject": {"reference": "Patient/p1"},
            },
        ),
    )
    got = send(client, body, client_token(session, people))
    assert got.status_code in (400, 422), got.text
    assert "concord-pdmp-" in got.text


def test_the_capability_statement_lists_the_procedure_search(client):
    statement = validate(client.get("/fhir/metadata").json())
    procedure = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Procedure")
    assert {p["name"] for p in procedure["searchParam"]} == {"patient", "date", "status", "code"}
    assert {"read", "search-type"} <= {i["code"] for i in procedure["interaction"]}
    assert "PDMP" in procedure["documentation"] and PDMP_REVIEW in procedure["documentation"]

"""CMS159's exclusions in the process measures built on it, from the EHR's record (issue 20):
an imported death leaves the patient's response and remission out."""

from __future__ import annotations

import csv
from datetime import date

from concord.quality.cms159 import Exclusions
from tests.ehr.test_import import bundle, client_token, patient, put, send
from tests.ehr.test_imported_observations import observation
from tests.registry.conftest import contact, enroll


def _process(client) -> dict:
    body = client.get("/api/v1/quality?start=2026-01-01&end=2026-12-31").json()
    return {m["measure"]: m["overall"] for m in body["process_measures"]}


def _send(client, session, people, **extra):
    token = client_token(session, people)
    who = patient(mrn="N-1", given="Pat", family="Ient", birth="1985-05-17")
    body = bundle(
        put("Patient", "p1", {**who, **extra}),
        put("Observation", "o1", observation(15, "2026-03-01")),
        put("Observation", "o2", observation(3, "2026-09-01")),
    )
    assert send(client, body, token).status_code == 200


def test_remission_counts_from_the_ehrs_scores(client, session, people, sign_in):
    enroll(session, people, started_on=date(2026, 3, 5))
    _send(client, session, people)
    sign_in("cara@test.example.org")
    found = _process(client)["remission_6_months"]
    assert (found["numerator"], found["performance_denominator"]) == (1, 1)
    assert found["counts"]["denominator-exclusion"] == 0


def test_a_death_the_ehr_sent_excludes_the_patient(client, session, people, sign_in):
    enroll(session, people, started_on=date(2026, 3, 5))
    _send(client, session, people, deceasedDateTime="2026-10-01")
    sign_in("cara@test.example.org")
    found = _process(client)
    for measure in ("remission_6_months", "response_6_months"):
        rate = found[measure]
        assert rate["performance_denominator"] == 0, measure
        assert rate["counts"]["denominator-exclusion"] == 1, measure
    text = client.get("/quality.csv?start=2026-01-01&end=2026-12-31").text
    rows = list(
        csv.DictReader(
            text.splitlines()[
                text.splitlines().index(
                    next(line for line in text.splitlines() if line.startswith("measure,"))
                ) :
            ]
        )
    )
    overall = next(
        r
        for r in rows
        if r["measure"] == "remission_6_months" and not r["clinic"] and not r["clinician"]
    )
    assert (overall["denominator_exclusion"], overall["rate_denominator"]) == ("1", "0")
    page = client.get("/quality?start=2026-01-01&end=2026-12-31").text
    section = page.split('id="p-remission_6_months"', 1)[1].split("</table>", 1)[0]
    assert "<td>0</td><td>0</td><td>1</td>" in section  # met, counted, left out


def test_nqf_0712_exclusions_leave_phq9_utilization_out(client, session, people, sign_in):
    """PHQ-9 utilization follows NQF 0712 / CMS160: a death the EHR sent by the end of a
    4-month period leaves that period out (counted apart); a period before it is kept."""
    enroll(session, people, started_on=date(2026, 3, 5))
    contact(session, people, "initial_assessment", date(2026, 3, 10))
    contact(session, people, "follow_up", date(2026, 6, 10))
    sign_in("cara@test.example.org")
    _send(client, session, people)
    before = _process(client)["phq9_utilization"]
    # January-April (PHQ-9 on March 1) met, May-August (none) not met.
    assert (before["numerator"], before["performance_denominator"]) == (1, 2)
    assert before["counts"]["denominator-exclusion"] == 0
    _send(client, session, people, deceasedDateTime="2026-07-01")
    after = _process(client)["phq9_utilization"]
    assert (after["numerator"], after["performance_denominator"]) == (1, 1)
    assert after["counts"]["denominator-exclusion"] == 1


def test_palliative_care_is_cms159s_exclusion_not_nqf_0712s():
    record = [
        {"resourceType": "Patient", "id": "p1", "birthDate": "1980-01-01"},
        {
            "resourceType": "Observation",
            "id": "pal",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "71007-9"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2026-03-01",
        },
    ]
    found = Exclusions(record)
    assert found.reason(date(2026, 1, 1), date(2026, 4, 30)) == "palliative_care"
    assert found.utilization_reason(date(2026, 1, 1), date(2026, 4, 30)) is None
    dead = Exclusions([{**record[0], "deceasedDateTime": "2026-04-30"}])
    assert dead.utilization_reason(date(2026, 1, 1), date(2026, 4, 30)) == "died"
    assert dead.utilization_reason(date(2025, 9, 1), date(2025, 12, 31)) is None

"""CMS159's exclusions in the process measures built on it, from the EHR's record (issue 20):
an imported death leaves the patient's response and remission out."""

from __future__ import annotations

import csv
from datetime import date

from tests.ehr.test_import import bundle, client_token, patient, put, send
from tests.ehr.test_imported_observations import observation
from tests.registry.conftest import enroll


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

"""The purpose of use named on the API and FHIR doors (issue 18): X-Purpose-Of-Use carries a v3
PurposeOfUse code, mapped to Concord's seven purposes; every decision of the request reads for
it. An unknown code is refused with 400 naming the header, never read as the default."""

from __future__ import annotations

import pytest

from concord.categories import Purpose
from concord.disclosure import ACT_REASON, PURPOSE_OF_USE, purpose_of_use
from tests.careplans.test_api import bearer
from tests.part2.test_part2 import AUDIT_C_TOTAL, _tpo, make_world

HEADER = "X-Purpose-Of-Use"


def test_the_seven_purposes_each_have_a_code():
    assert set(PURPOSE_OF_USE.values()) == set(Purpose)
    assert purpose_of_use("TREAT") == Purpose.treatment
    assert purpose_of_use(f"{ACT_REASON}|ETREAT") == Purpose.emergency
    assert purpose_of_use("http://example.org/other|TREAT") is None
    assert purpose_of_use("treat") is None  # codes are case-sensitive


@pytest.mark.parametrize("url", ["/api/v1/patients/{pid}/measures/responses", "/fhir/Observation"])
def test_an_unknown_code_is_refused_naming_the_header(client, session, people, url):
    got = client.get(
        url.format(pid=people.patient.id),
        headers={**bearer(session, people.care_manager), HEADER: "HMARKT"},
    )
    assert got.status_code == 400
    assert HEADER in got.text and "TREAT" in got.text


def test_a_page_does_not_read_the_header(client, session, people, sign_in):
    sign_in("cara@test.example.org")
    page = client.get(f"/patients/{people.patient.id}", headers={HEADER: "nonsense"})
    assert page.status_code == 200


def test_the_consent_permits_only_the_purposes_it_names(client, session, people):
    """42 CFR 2.31(a): the consent names the purpose (here treatment, payment and operations;
    not research); LEAP's purpose-of-use fixture through the FHIR door."""
    pcp, _ = make_world(session, people)
    _tpo(session, people, pcp)
    url = f"/fhir/Observation?patient={people.patient.id}"

    def codes(purpose):
        headers = bearer(session, pcp)
        if purpose is not None:
            headers[HEADER] = purpose
        body = client.get(url, headers=headers).json()
        assert body["total"] == len(body.get("entry", []))
        return {c["code"] for e in body.get("entry", []) for c in e["resource"]["code"]["coding"]}

    assert AUDIT_C_TOTAL in codes(None)  # the care team's default purpose: treatment
    assert AUDIT_C_TOTAL in codes("TREAT")
    assert AUDIT_C_TOTAL in codes(f"{ACT_REASON}|HOPERAT")
    # Research: not named by the consent (and the table of ADR 0020 reads nothing for it).
    assert codes("HRESCH") == set()
    # Payment: named by the consent, but the table reads no substance-use answers for it.
    assert AUDIT_C_TOTAL not in codes("HPAYMT")
    # Emergency treatment without an emergency access (break the glass) opens nothing.
    assert codes("ETREAT") == set()

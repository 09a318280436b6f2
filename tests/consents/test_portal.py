"""The patient gives a consent in the portal ("Share my record", issue 18): a template for the
common case, shown with the elements of 42 CFR 2.31(a) in plain words (English and Spanish),
signed with the typed full name and today's date, with CSRF, an Idempotency-Key on the JSON
twin, audited, recorded through the same consents service as the team's form; the PCP then
sees the AUDIT-C. A wrong name or date is an error naming the field; nothing is written."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select

from concord.audit.models import AuditEvent
from concord.consents.models import Consent
from concord.dates import org_today
from concord.patients.models import RelatedPerson
from tests.careplans.test_api import bearer
from tests.conftest import csrf_of
from tests.factories import create_plan
from tests.part2.test_part2 import AUDIT_C_TOTAL, _observations, make_world

PATIENT = "pat@patients.example.org"
SHARE = "/my/consents/share"


def _count(session):
    return session.scalar(select(func.count()).select_from(Consent))


def _today(people):
    return org_today(people.patient.clinic.organization)


def test_the_patient_chooses_reads_signs_and_the_pcp_then_sees_the_audit_c(
    client, session, people, sign_in
):
    pcp, _ = make_world(session, people)
    _, codes = _observations(client, session, pcp, people.patient.id)
    assert AUDIT_C_TOTAL not in codes
    sign_in(PATIENT)
    mine = client.get("/my/consents")
    assert 'href="/my/consents/share"' in mine.text
    menu = client.get(SHARE)
    assert menu.status_code == 200
    assert "?template=named-clinician" in menu.text and "?template=family-member" in menu.text
    page = client.get(f"{SHARE}?template=named-clinician")
    assert page.status_code == 200
    text = page.text
    # The required elements, each with its paragraph, in plain words.
    for element in ("2.31(a)(1)", "2.31(a)(2)", "2.31(a)(3)", "2.31(a)(4)", "2.31(a))"):
        assert element in text, element
    assert people.patient.full_name in text
    assert "North Clinic" in text  # who may share: the Part 2 program
    assert "Pat Lee" in text  # the PCP at South, to choose
    assert "42 CFR Part 2" in text and "You may refuse to sign it." in text
    before = _count(session)
    values = {
        "csrf_token": csrf_of(text),
        "idem": uuid.uuid4().hex,
        "template": "named-clinician",
        "grantee_id": str(pcp.id),
        "period_end": (_today(people) + timedelta(days=90)).isoformat(),
        "signed_name": people.patient.full_name.upper(),  # case does not matter
        "signed_on": _today(people).isoformat(),
    }
    # Without the form's token: refused, nothing written.
    forged = client.post(SHARE, data={k: v for k, v in values.items() if k != "csrf_token"})
    assert forged.status_code == 403 and _count(session) == before
    done = client.post(SHARE, data=values)
    assert done.status_code == 303 and done.headers["location"] == "/my/consents?done=shared"
    again = client.post(SHARE, data=values)  # the same form sent twice: one consent
    assert again.status_code == 303 and _count(session) == before + 1
    session.expire_all()
    made = session.scalar(select(Consent).where(Consent.method == "portal_signature"))
    assert made.method == "portal_signature" and made.grantee_user_id == pcp.id
    assert made.discloser == "North Clinic" and made.signed_on == _today(people)
    assert made.is_part2 and made.purposes == ["treatment"]
    assert session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "consent_record", AuditEvent.object_id == str(made.id))
    )
    listed = client.get("/my/consents?done=shared")
    assert "Pat Lee" in listed.text and "Done. Your consent is signed" in listed.text
    _, codes = _observations(client, session, pcp, people.patient.id)
    assert AUDIT_C_TOTAL in codes


def test_a_wrong_name_or_date_names_the_field_and_writes_nothing(client, session, people, sign_in):
    pcp, _ = make_world(session, people)
    sign_in(PATIENT)
    page = client.get(f"{SHARE}?template=named-clinician")
    before = _count(session)
    bad = client.post(
        SHARE,
        data={
            "csrf_token": csrf_of(page.text),
            "idem": uuid.uuid4().hex,
            "template": "named-clinician",
            "grantee_id": str(uuid.uuid4()),
            "period_end": "",
            "signed_name": "Somebody Else",
            "signed_on": (_today(people) - timedelta(days=1)).isoformat(),
        },
    )
    assert bad.status_code == 422
    for field in ("signed_name", "signed_on", "grantee_id", "period_end"):
        assert f'id="{field}-error"' in bad.text, field
    assert _count(session) == before


def test_the_page_in_spanish(client, session, people, sign_in):
    make_world(session, people)
    people.patient_user.language = "es"
    session.commit()
    sign_in(PATIENT)
    page = client.get(f"{SHARE}?template=treating-providers")
    assert page.status_code == 200
    assert "Mi nombre" in page.text and "2.31(a)(3)" in page.text
    assert "Compartir mi expediente" in client.get(SHARE).text


def test_the_json_twin_signs_once_per_key_and_only_the_patient_signs(client, session, people):
    pcp, _ = make_world(session, people)
    listed = client.get(
        f"/api/v1/patients/{people.patient.id}/consent-templates",
        headers=bearer(session, people.patient_user),
    )
    assert listed.status_code == 200
    named = {t["template"]: t for t in listed.json()}["named-clinician"]
    assert named["elements"]["discloser"] == "North Clinic"
    assert str(pcp.id) in {c["id"] for c in named["choices"]}
    assert named["today"] == _today(people).isoformat()
    team_reads = client.get(
        f"/api/v1/patients/{people.patient.id}/consent-templates",
        headers=bearer(session, people.care_manager),
    )
    assert team_reads.status_code == 404
    url = f"/api/v1/patients/{people.patient.id}/consents/signed"
    body = {
        "template": "treating-providers",
        "period_end": (_today(people) + timedelta(days=30)).isoformat(),
        "signed_name": f"  {people.patient.full_name.lower()} ",
        "signed_on": _today(people).isoformat(),
    }
    headers = {**bearer(session, people.patient_user), "Idempotency-Key": "sign-once-0001"}
    before = _count(session)
    first = client.post(url, json=body, headers=headers)
    assert first.status_code == 201, first.text
    replay = client.post(url, json=body, headers=headers)
    assert replay.json()["id"] == first.json()["id"] and _count(session) == before + 1
    assert first.json()["grantee"]["kind"] == "treating_providers"
    assert first.json()["method"] == "portal_signature"
    # The care team cannot sign for the patient (refused, audited, nothing written).
    team = client.post(url, json=body, headers=bearer(session, people.care_manager))
    assert team.status_code == 403 and _count(session) == before + 1
    wrong = client.post(
        url, json={**body, "template": "nope"}, headers=bearer(session, people.patient_user)
    )
    assert wrong.status_code == 422 and "template" in wrong.text
    _, codes = _observations(client, session, pcp, people.patient.id)
    assert AUDIT_C_TOTAL in codes


def test_the_family_template_shares_the_plan_with_a_listed_person(client, session, people, sign_in):
    """Family sharing signed in the portal goes through the same action as the team's form: the
    family member's access follows at once, and revoking takes it away again."""
    create_plan(session, people, activate=True)
    sign_in("nico@family.example.org")
    assert client.get(f"/shared/{people.patient.id}").status_code == 404
    sign_in(PATIENT)
    page = client.get(f"{SHARE}?template=family-member")
    assert page.status_code == 200 and "Nico Noconsent" in page.text
    assert "2.31(a)" not in page.text  # not a Part 2 consent
    link = session.scalar(
        select(RelatedPerson).where(RelatedPerson.user_id == people.family_no_consent.id)
    )
    done = client.post(
        SHARE,
        data={
            "csrf_token": csrf_of(page.text),
            "idem": uuid.uuid4().hex,
            "template": "family-member",
            "grantee_id": str(link.id),
            "signed_name": people.patient.full_name,
            "signed_on": _today(people).isoformat(),
        },
    )
    assert done.status_code == 303, done.text[:3000]
    sign_in("nico@family.example.org")
    assert client.get(f"/shared/{people.patient.id}").status_code == 200

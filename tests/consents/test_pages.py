"""The consent pages: the patient's "Who can see my record" in plain words (English and
Spanish) with a Revoke that asks first, needs the form's CSRF token, is audited and takes
effect at once; the team's list and form (errors named, nothing written); the printable forms;
nobody else sees them."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from concord.audit.models import AuditEvent
from concord.consents.models import Consent
from concord.patients.models import RelatedPerson
from tests.conftest import csrf_of

CM = "cara@test.example.org"
PATIENT = "pat@patients.example.org"
OUTSIDER = "otto@test.example.org"
FAMILY = "fay@family.example.org"


def sister_consent(session, people):
    link = session.scalar(select(RelatedPerson).where(RelatedPerson.user_id == people.family.id))
    return session.scalar(select(Consent).where(Consent.grantee_related_person_id == link.id))


def test_the_patient_reads_every_consent_in_plain_words(client, session, people, sign_in):
    sign_in(PATIENT)
    page = client.get("/my/consents")
    assert page.status_code == 200
    assert "Who can see my record" in page.text
    assert (
        "Your care team may share your care plan with Fay Family for following and "
        "supporting your care until you revoke this consent." in page.text
    )
    assert "Revoke" in page.text


def test_the_page_in_spanish(client, session, people, sign_in):
    people.patient_user.language = "es"
    session.commit()
    sign_in(PATIENT)
    page = client.get("/my/consents")
    assert "Quién puede ver mi expediente" in page.text
    assert (
        "Su equipo de cuidado puede compartir su plan de cuidado con Fay Family para seguir y "
        "apoyar su cuidado hasta que usted revoque este consentimiento." in page.text
    )


def test_revoking_asks_first_needs_csrf_is_audited_and_ends_access_at_once(
    client, session, people, sign_in
):
    consent = sister_consent(session, people)
    token = sign_in(PATIENT)
    confirm = client.get(f"/my/consents/{consent.id}/revoke")
    assert confirm.status_code == 200 and "Yes, revoke it" in confirm.text
    url = f"/patients/{people.patient.id}/consents/{consent.id}/revoke"
    forged = client.post(url, data={"idem": uuid.uuid4().hex, "reason": "x"})
    assert forged.status_code == 403
    session.expire_all()
    assert session.get(Consent, consent.id).status == "active"
    done = client.post(
        url, data={"csrf_token": csrf_of(confirm.text) or token, "idem": uuid.uuid4().hex}
    )
    assert done.status_code == 303 and done.headers["location"] == "/my/consents?done=revoked"
    session.expire_all()
    assert session.get(Consent, consent.id).status == "revoked"
    assert session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.object_type == "Consent", AuditEvent.action == "consent_withdraw")
    )
    # The sister can no longer open the shared plan.
    sign_in(FAMILY)
    assert client.get(f"/shared/{people.patient.id}").status_code == 404
    # And the patient's list shows it revoked, with no Revoke button for it.
    sign_in(PATIENT)
    page = client.get("/my/consents")
    assert "Revoked on" in page.text and f"/my/consents/{consent.id}/revoke" not in page.text


def test_the_team_records_a_paper_consent_and_a_bad_one_writes_nothing(
    client, session, people, sign_in
):
    token = sign_in(CM)
    page = client.get(f"/patients/{people.patient.id}/consents")
    assert page.status_code == 200 and "Record a consent" in page.text
    before = session.scalar(select(func.count()).select_from(Consent))
    base = {
        "csrf_token": token,
        "provision": "permit",
        "discloser": "The Addiction Service",
        "grantee_kind": "organization",
        "grantee_name": "Riverside Primary Care",
        "scope": "categories",
        "categories": ["substance_use"],
        "purposes": ["treatment"],
        "method": "verbal",
    }
    bad = client.post(
        f"/patients/{people.patient.id}/consents", data={**base, "idem": uuid.uuid4().hex}
    )
    assert bad.status_code == 422 and "42 CFR Part 2 needs written consent" in bad.text
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Consent)) == before
    good = client.post(
        f"/patients/{people.patient.id}/consents",
        data={
            **base,
            "idem": uuid.uuid4().hex,
            "method": "paper_scanned",
            "signed_name": "Pat Ient",
            "signed_on": "2026-11-20",
            "period_end": "2027-06-01",
        },
    )
    assert good.status_code == 303, good.text
    listing = client.get(good.headers["location"])
    assert (
        "The Addiction Service may share your substance-use treatment records with "
        "Riverside Primary Care for treatment until Jun 1, 2027." in listing.text
    )
    assert "Protected by 42 CFR Part 2" in listing.text


def test_the_printable_forms(client, people, sign_in):
    sign_in(CM)
    for form in ("part2-named-provider", "part2-tpo", "family-care-plan"):
        pdf = client.get(f"/patients/{people.patient.id}/consent-forms/{form}.pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert client.get(f"/patients/{people.patient.id}/consent-forms/nothing.pdf").status_code == 404


def test_nobody_else_sees_the_pages(client, people, sign_in, session):
    consent = sister_consent(session, people)
    for email in (OUTSIDER, FAMILY):
        sign_in(email)
        for path in (
            f"/patients/{people.patient.id}/consents",
            f"/patients/{people.patient.id}/consents/{consent.id}/revoke",
            f"/patients/{people.patient.id}/consent-forms/part2-tpo.pdf",
            "/my/consents",
        ):
            answer = client.get(path)
            assert answer.status_code == 404, (email, path)
            assert "Fay Family may" not in answer.text

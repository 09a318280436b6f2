"""A FHIR create naming a patient the caller may not record for answers exactly as one naming
a patient that does not exist, and the attempt is in the audit trail as a denial (issue 16
follow-up, item 7)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from concord.audit.models import AuditEvent
from concord.measures.models import MeasureResponse
from tests.careplans.test_api import bearer
from tests.fhir.test_fhir_measures import ehr_response

FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _post(client, body, token):
    return client.post("/fhir/QuestionnaireResponse", json=body, headers={**FHIR, **token})


def _denials(session, object_type="QuestionnaireResponse"):
    session.expire_all()
    return session.scalars(
        select(AuditEvent).where(
            AuditEvent.outcome == "denied", AuditEvent.object_type == object_type
        )
    ).all()


def _shape(response):
    """What a client can tell apart: the status and the body, ids taken out."""
    text = response.text
    for ident in __import__("re").findall(r"[0-9a-f]{8}-[0-9a-f-]{27}", text):
        text = text.replace(ident, "ID")
    return response.status_code, text


def test_off_scope_patient_is_answered_as_a_missing_one_and_audited(client, session, people):
    token = bearer(session, people.care_manager)
    before = session.scalar(select(func.count()).select_from(MeasureResponse))
    off = _post(client, ehr_response(people.other_patient.id, [0] * 9, identifier="x-1"), token)
    missing = _post(client, ehr_response(uuid.uuid4(), [0] * 9, identifier="x-1"), token)
    assert off.status_code in (404, 422), off.text
    assert _shape(off) == _shape(missing)
    assert session.scalar(select(func.count()).select_from(MeasureResponse)) == before
    denied = _denials(session)
    assert {d.patient_id for d in denied} >= {people.other_patient.id}
    assert len(denied) == 2  # the missing one is audited too


def test_family_and_another_patient_cannot_record_a_check_in(client, session, people):
    """Read access to the shared plan is not leave to record answers for the patient."""
    for who in (people.family, people.other_patient_user):
        token = bearer(session, who)
        off = _post(client, ehr_response(people.patient.id, [0] * 9, identifier="y"), token)
        missing = _post(client, ehr_response(uuid.uuid4(), [0] * 9, identifier="y"), token)
        assert off.status_code in (403, 404, 422), off.text
        if off.status_code != 403:  # a scope that cannot write at all is refused as such
            assert _shape(off) == _shape(missing), who.email
    assert session.scalar(select(func.count()).select_from(MeasureResponse)) == 0

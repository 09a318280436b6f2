"""Consents as JSON at /api/v1: a patient's list, one consent, recording one and revoking one
(the same services and rules as the pages; recording and revoking may carry an
Idempotency-Key)."""

# No `from __future__ import annotations`: FastAPI reads the body models from the annotations.

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from concord import access
from concord.access import PatientAccess
from concord.actions import consents as consent_actions
from concord.clock import now
from concord.consents import service as cs
from concord.consents.labels import sentence, state_line
from concord.consents.models import Consent
from concord.consents.portal import FAMILY_NOTICES, PART2_NOTICES, REVOKE_TEXT
from concord.consents.schemas import ConsentIn, RevokeIn, SignedConsentIn
from concord.i18n import gettext, translate
from concord.web.deps import ApiActor, ApiWriter, DbSession
from concord.web.idempotency import Idempotent, create_once

router = APIRouter(prefix="/api/v1", tags=["consents"])


def _access(session: Session, actor: Any, patient_id: str, action: str = "read") -> PatientAccess:
    return access.patient_for(session, actor.user, patient_id, action=action, object_type="Consent")


def _day(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def consent_json(c: Consent) -> dict[str, Any]:
    at = now()
    return {
        "id": str(c.id),
        "patient_id": str(c.patient_id),
        "summary": sentence(c, "en"),
        "state": c.state(at).value,
        "state_text": state_line(c, "en", at),
        "status": c.status,
        "discloser": c.discloser,
        "grantee": {
            "kind": c.grantee_kind,
            "related_person_id": str(c.grantee_related_person_id)
            if c.grantee_related_person_id
            else None,
            "user_id": str(c.grantee_user_id) if c.grantee_user_id else None,
            "clinic_id": str(c.grantee_clinic_id) if c.grantee_clinic_id else None,
            "name": c.grantee_name or (c.grantee_user.name if c.grantee_user else None),
        },
        "scope": c.scope,
        "categories": list(c.categories or []),
        "purposes": list(c.purposes or []),
        "purpose_other": c.purpose_other,
        "provision": c.provision,
        "part2": c.is_part2,
        "period_start": _day(c.period_start),
        "period_end": _day(c.period_end),
        "method": c.method,
        "signed_name": c.signed_name,
        "signed_on": _day(c.signed_on),
        "document_reference": c.document_reference,
        "note": c.note,
        "recorded_by_id": str(c.recorded_by_id) if c.recorded_by_id else None,
        "recorded_at": c.recorded_at.isoformat(),
        "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
        "revoked_by_id": str(c.revoked_by_id) if c.revoked_by_id else None,
        "revoked_reason": c.revoked_reason,
        "fhir": f"Consent/{c.id}",
    }


@router.get("/patients/{patient_id}/consents")
def consents(patient_id: str, session: DbSession, actor: ApiActor) -> list[dict[str, Any]]:
    """The patient's consents, newest first (a family member or carer: those naming them)."""
    acc = _access(session, actor, patient_id)
    return [consent_json(c) for c in cs.list_consents(session, access=acc)]


@router.get("/patients/{patient_id}/consents/{consent_id}")
def consent(patient_id: str, consent_id: str, session: DbSession, actor: ApiActor) -> Any:
    acc = _access(session, actor, patient_id)
    return consent_json(cs.get_consent(session, access=acc, consent_id=consent_id))


@router.post("/patients/{patient_id}/consents", status_code=201)
def record(
    patient_id: str, body: ConsentIn, session: DbSession, actor: ApiWriter, idem: Idempotent
) -> Any:
    """Record a consent: the care team (paper_scanned, or verbal for family), or the patient
    (portal_signature with signed_name)."""
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        made = consent_actions.record(session, access=acc, data=body)
        return str(made.id), consent_json(made)

    return create_once(
        session,
        actor,
        idem,
        create=create,
        replay=lambda cid: consent_json(
            cs.get_consent(session, access=acc, consent_id=cid, audited=False)
        ),
    )


@router.get("/patients/{patient_id}/consent-templates")
def consent_templates(patient_id: str, session: DbSession, actor: ApiActor) -> list[Any]:
    """The consents the patient may sign ("Share my record"), each with the elements of a
    42 CFR 2.31(a) consent filled in as the page shows them, in the patient's language, and the
    people they may choose (the patient only)."""
    acc = _access(session, actor, patient_id)
    lang = actor.user.language or "en"
    out = []
    for form in consent_actions.sharing_forms(session, access=acc):
        t = form.template
        out.append(
            {
                "template": t.id,
                "title": translate(t.title, lang),
                "part2": t.part2,
                "elements": {
                    "patient_name": form.patient_name,
                    "discloser": form.discloser if t.part2 else None,
                    "what": gettext(lang, t.what, program=form.program),
                    "recipient": translate(t.recipient, lang) if t.recipient else None,
                    "purpose": translate(t.purpose, lang),
                    "revocation": translate(REVOKE_TEXT, lang),
                    "ends": "date" if t.ends else "when_revoked",
                    "notices": [
                        translate(n, lang) for n in (PART2_NOTICES if t.part2 else FAMILY_NOTICES)
                    ],
                },
                "choices": [
                    {"id": str(c.id), "name": c.name, "detail": c.detail} for c in form.choices
                ],
                "today": form.today.isoformat(),
                "default_end": form.default_end.isoformat() if form.default_end else None,
            }
        )
    return out


@router.post("/patients/{patient_id}/consents/signed", status_code=201)
def sign(
    patient_id: str,
    body: SignedConsentIn,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    """The patient signs one of the portal's consent templates ("Share my record"), with the
    typed full name and today's date (the patient only; the page /my/consents/share)."""
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        made = consent_actions.sign(session, access=acc, data=body)
        return str(made.id), consent_json(made)

    return create_once(
        session,
        actor,
        idem,
        create=create,
        replay=lambda cid: consent_json(
            cs.get_consent(session, access=acc, consent_id=cid, audited=False)
        ),
    )


@router.post("/patients/{patient_id}/consents/{consent_id}/revoke")
def revoke(
    patient_id: str,
    consent_id: str,
    body: RevokeIn,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    """Revoke a consent now (the patient or the care team)."""
    acc = _access(session, actor, patient_id, "update")

    def create() -> tuple[str, Any]:
        done = consent_actions.revoke(
            session, access=acc, consent_id=consent_id, reason=body.reason
        )
        return str(done.id), consent_json(done)

    return create_once(
        session,
        actor,
        idem,
        create=create,
        replay=lambda cid: consent_json(
            cs.get_consent(session, access=acc, consent_id=cid, audited=False)
        ),
    )

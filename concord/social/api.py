"""Social needs as JSON at /api/v1: a patient's concerns and referrals, sending a referral,
the team's and the patient's changes, the directory, and the partner's link. The same
services and rules as the pages."""

# No `from __future__ import annotations`: FastAPI reads the body models from the annotations.

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from concord import access
from concord.access import PatientAccess
from concord.actions import social as social_actions
from concord.errors import NotFound
from concord.i18n import Msg
from concord.social import referrals as rules
from concord.social import service as social
from concord.social.models import CommunityService, Referral, SocialConcern
from concord.social.schemas import (
    ConcernDecisionIn,
    ConcernToPlanIn,
    ImportIn,
    PartnerStatusIn,
    ReferralIn,
    ReportIn,
    ServiceIn,
    TeamStatusIn,
)
from concord.web.deps import ApiActor, ApiWriter, DbSession

router = APIRouter(prefix="/api/v1", tags=["social needs"])


def _access(session: Session, actor: Any, patient_id: str, action: str = "read") -> PatientAccess:
    acc = access.patient_for(session, actor.user, patient_id, action=action, object_type="Referral")
    if not acc.can_read_record:
        raise access.refuse_record(session, acc, action=action, object_type="Referral")
    return acc


def _secret(request: Request) -> str:
    return request.app.state.settings.effective_secret_key()


def concern_json(c: SocialConcern) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "domain": c.domain,
        "status": c.status,
        "patient_words": c.patient_words,
        "snomed": c.snomed,
        "icd10": c.icd10,
        "sensitive": c.sensitive,
        "created_at": c.created_at.isoformat(),
    }


def service_json(s: CommunityService, km: float | None = None) -> dict[str, Any]:
    return {
        "id": str(s.id),
        "provider_name": s.provider_name,
        "name": s.name,
        "description": s.description,
        "categories": list(s.categories or []),
        "eligibility": s.eligibility,
        "languages": list(s.languages or []),
        "hours": s.hours,
        "address": s.address,
        "postcode": s.postcode,
        "phone": s.phone,
        "email": s.email,
        "website": s.website,
        "electronic_referrals": s.electronic_referrals,
        "active": s.active,
        "km": km,
    }


def referral_json(session: Session, r: Referral) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "status": r.status,
        "domain": r.domain,
        "service": service_json(r.service),
        "concern_id": str(r.concern_id) if r.concern_id else None,
        "self_referral": r.self_referral,
        "shared_summary": r.shared_summary,
        "requested_at": r.requested_at.isoformat(),
        "respond_by": r.respond_by.isoformat(),
        "status_reason": r.status_reason,
        "outcome": r.outcome,
        "patient_report": r.patient_report,
        "replaces_id": str(r.replaces_id) if r.replaces_id else None,
        "link_expires_at": r.token_expires_at.isoformat() if r.token_expires_at else None,
        "history": [
            {
                "at": e.at.isoformat(),
                "party": e.party,
                "from": e.from_status,
                "to": e.to_status,
                "note": e.note,
            }
            for e in social.events(session, r)
        ],
    }


@router.get("/patients/{patient_id}/social")
def overview(patient_id: str, session: DbSession, actor: ApiActor) -> dict[str, Any]:
    acc = _access(session, actor, patient_id)
    return {
        "concerns": [concern_json(c) for c in social.list_concerns(session, access=acc)],
        "referrals": [
            referral_json(session, r) for r in social.list_referrals(session, access=acc)
        ],
    }


@router.post("/patients/{patient_id}/referrals", status_code=201)
def send(
    patient_id: str, body: ReferralIn, request: Request, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    acc = _access(session, actor, patient_id, "create")
    referral, token = social_actions.send_referral_in(
        session, access=acc, data=body, secret=_secret(request)
    )
    base = request.app.state.settings.base_url.rstrip("/")
    return {**referral_json(session, referral), "partner_link": f"{base}/referral-link/{token}"}


@router.post("/patients/{patient_id}/referrals/{referral_id}/status")
def team_status(
    patient_id: str, referral_id: str, body: TeamStatusIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    acc = _access(session, actor, patient_id, "update")
    referral = social.team_transition(
        session, access=acc, referral_id=referral_id, to=body.status, reason=body.reason
    )
    return referral_json(session, referral)


@router.post("/patients/{patient_id}/referrals/{referral_id}/link")
def new_link(
    patient_id: str, referral_id: str, request: Request, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    """A fresh link for the partner, working for 30 days; the old link stops working. The new
    link is in this answer only (only its hash is kept)."""
    acc = _access(session, actor, patient_id, "update")
    referral, token = social.renew_link(
        session, access=acc, referral_id=referral_id, secret=_secret(request)
    )
    base = request.app.state.settings.base_url.rstrip("/")
    return {**referral_json(session, referral), "partner_link": f"{base}/referral-link/{token}"}


@router.post("/patients/{patient_id}/referrals/{referral_id}/report")
def report(
    patient_id: str, referral_id: str, body: ReportIn, session: DbSession, actor: ApiWriter
) -> dict[str, Any]:
    acc = _access(session, actor, patient_id, "update")
    referral = social_actions.patient_report(
        session, access=acc, referral_id=referral_id, report=body.report
    )
    return referral_json(session, referral)


@router.post("/patients/{patient_id}/social-concerns/{concern_id}")
def decide(
    patient_id: str,
    concern_id: str,
    body: ConcernDecisionIn,
    session: DbSession,
    actor: ApiWriter,
) -> dict[str, Any]:
    acc = _access(session, actor, patient_id, "update")
    concern = social.decide_concern(
        session,
        access=acc,
        concern_id=concern_id,
        decision=body.decision,
        words=body.words,
        reason=body.reason,
    )
    return concern_json(concern)


@router.post("/patients/{patient_id}/social-concerns/{concern_id}/plan", status_code=201)
def to_plan(
    patient_id: str,
    concern_id: str,
    body: ConcernToPlanIn,
    session: DbSession,
    actor: ApiWriter,
) -> dict[str, Any]:
    acc = _access(session, actor, patient_id, "update")
    made = social_actions.concern_to_plan(session, access=acc, concern_id=concern_id, data=body)
    return {name: str(item.id) for name, item in made.items()}


# --- the directory -------------------------------------------------------------------------------


@router.get("/directory/services")
def directory(
    session: DbSession,
    actor: ApiActor,
    need: str | None = None,
    language: str | None = None,
    near: str | None = None,
    within_km: float | None = None,
) -> list[dict[str, Any]]:
    if not (actor.user.is_clinician or actor.user.is_patient or actor.user.role == "admin"):
        raise NotFound(Msg("Not found."))
    found = social.search_services(
        session, by=actor.user, need=need, language=language, near=near, within_km=within_km
    )
    return [service_json(f.service, f.km) for f in found]


@router.post("/directory/services", status_code=201)
def add_service(body: ServiceIn, session: DbSession, actor: ApiWriter) -> dict[str, Any]:
    return service_json(social.add_service(session, by=actor.user, data=body.model_dump()))


@router.post("/directory/import")
def import_services(body: ImportIn, session: DbSession, actor: ApiWriter) -> dict[str, Any]:
    done = social.import_hsds(session, by=actor.user, content=body.content, kind=body.kind)
    return {"imported": len(done)}


# --- the partner's link (no account: the token in the path is the credential) -----------------


@router.get("/referral-link/{token}")
def partner_read(token: str, request: Request, session: DbSession) -> dict[str, Any]:
    referral = social.read_by_partner(session, token=token, secret=_secret(request))
    return _partner_json(referral)


@router.post("/referral-link/{token}")
def partner_update(
    token: str, body: PartnerStatusIn, request: Request, session: DbSession
) -> dict[str, Any]:
    referral = social.partner_transition(
        session,
        token=token,
        secret=_secret(request),
        to=body.status,
        reason=body.reason,
        outcome=body.outcome,
    )
    return _partner_json(referral)


def _partner_json(r: Referral) -> dict[str, Any]:
    """Only what the service needs: never the patient's record."""
    return {
        "status": r.status,
        "service": r.service.name,
        "shared_summary": r.shared_summary,
        "contact": r.contact,
        "respond_by": r.respond_by.isoformat(),
        "next": rules.next_for(r.status, rules.PARTNER),
    }

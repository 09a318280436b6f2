"""Pages: the team's social-needs page for a patient (concerns, referrals and their loop, the
directory, sending a referral), the patient's own (confirm or decline a need, see referrals,
"I got help" / "nobody called me", refer themselves), and the community partner's page,
reached by the referral's link without an account."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from concord import access
from concord.access import PatientAccess
from concord.actions import social as social_actions
from concord.errors import InvalidInput, NotFound
from concord.i18n import Msg
from concord.social import labels
from concord.social import referrals as rules
from concord.social import service as social
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
from concord.web.deps import (
    Actor,
    DbSession,
    PostedBy,
    WebActor,
    anonymous_csrf,
    check_anonymous_csrf,
)
from concord.web.forms import FormOf, Posted
from concord.web.patient_header import header_context
from concord.web.templating import render

router = APIRouter()
OBJECT = "Referral"


def secret(request: Request) -> str:
    return request.app.state.settings.effective_secret_key()


def _labels() -> dict[str, Any]:
    return {
        "status_labels": labels.STATUS_LABELS,
        "action_labels": labels.ACTION_LABELS,
        "concern_labels": labels.CONCERN_LABELS,
        "domain_labels": labels.DOMAIN_LABELS,
        "report_labels": labels.REPORT_LABELS,
        "party_labels": labels.PARTY_LABELS,
    }


def social_context(
    session: DbSession, acc: PatientAccess, query: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """What the team's and the patient's pages show (and the API twin returns)."""
    referrals = social.list_referrals(session, access=acc)
    need = query.get("need") or None
    language = query.get("language") or None
    near = query.get("near") or None
    errors: dict[str, Any] = dict(extra.pop("errors", {}))
    try:
        found = social.search_services(session, by=acc.by, need=need, language=language, near=near)
    except InvalidInput as exc:
        errors.update(exc.errors)
        found = social.search_services(session, by=acc.by, need=need, language=language)
    context = {
        "acc": acc,
        "patient": acc.patient,
        "concerns": social.list_concerns(session, access=acc),
        "referrals": referrals,
        "history": {r.id: social.events(session, r) for r in referrals},
        "team_next": {r.id: rules.next_for(r.status, rules.REQUESTER) for r in referrals},
        "services": found,
        "query": {"need": need or "", "language": language or "", "near": near or ""},
        "domains": list(social.domains()),
        "errors": errors,
        "values": {},
        "link": None,
        **_labels(),
    }
    context.update(extra)
    return context


def _team(session: DbSession, actor: Actor, patient_id: str, action: str = "read") -> PatientAccess:
    return access.team_access(session, actor.user, patient_id, action=action, object_type=OBJECT)


def _own(session: DbSession, actor: Actor, action: str = "read") -> PatientAccess:
    return access.own_record(session, actor.user, action=action, object_type=OBJECT)


@router.get("/patients/{patient_id}/social")
def team_page(patient_id: str, request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _team(session, actor, patient_id)
    return render(
        request,
        "social/team.html",
        {
            **social_context(session, acc, dict(request.query_params)),
            **header_context(session, acc, tab="social"),
        },
    )


@router.post("/patients/{patient_id}/social/referrals")
def team_send(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ReferralIn], FormOf(ReferralIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "create")
    # Bad input raises InvalidInput: the request is rolled back (a consent recorded with it
    # too) and the error names each field.
    referral, token = social_actions.send_referral_in(
        session, access=acc, data=form.read(), secret=secret(request)
    )
    # The link is shown once, for the team to give the partner; only its hash is kept.
    return render(
        request,
        "social/team.html",
        {
            **social_context(session, acc, {}, link=partner_link(request, token), sent=referral),
            **header_context(session, acc, tab="social"),
        },
    )


def partner_link(request: Request, token: str) -> str:
    base = request.app.state.settings.base_url.rstrip("/")
    return f"{base}/referral-link/{token}"


@router.post("/patients/{patient_id}/social/referrals/{referral_id}/status")
def team_status(
    patient_id: str,
    referral_id: str,
    session: DbSession,
    form: Annotated[Posted[TeamStatusIn], FormOf(TeamStatusIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    data = form.read()
    social.team_transition(
        session, access=acc, referral_id=referral_id, to=data.status, reason=data.reason
    )
    return RedirectResponse(f"/patients/{acc.patient.id}/social", status_code=303)


@router.post("/patients/{patient_id}/social/concerns/{concern_id}")
def team_concern(
    patient_id: str,
    concern_id: str,
    session: DbSession,
    form: Annotated[Posted[ConcernDecisionIn], FormOf(ConcernDecisionIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    data = form.read()
    social.decide_concern(
        session,
        access=acc,
        concern_id=concern_id,
        decision=data.decision,
        words=data.words,
        reason=data.reason,
    )
    return RedirectResponse(f"/patients/{acc.patient.id}/social", status_code=303)


@router.post("/patients/{patient_id}/social/concerns/{concern_id}/plan")
def team_concern_to_plan(
    patient_id: str,
    concern_id: str,
    session: DbSession,
    form: Annotated[Posted[ConcernToPlanIn], FormOf(ConcernToPlanIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    social_actions.concern_to_plan(session, access=acc, concern_id=concern_id, data=form.read())
    return RedirectResponse(f"/patients/{acc.patient.id}/plan", status_code=303)


# --- the patient ------------------------------------------------------------------------------


@router.get("/my/social")
def my_page(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _own(session, actor)
    return render(
        request, "social/mine.html", social_context(session, acc, dict(request.query_params))
    )


@router.post("/my/social/concerns/{concern_id}")
def my_concern(
    concern_id: str,
    session: DbSession,
    form: Annotated[Posted[ConcernDecisionIn], FormOf(ConcernDecisionIn)],
    actor: PostedBy,
) -> Response:
    acc = _own(session, actor, "update")
    data = form.read()
    social.decide_concern(
        session,
        access=acc,
        concern_id=concern_id,
        decision=data.decision,
        words=data.words,
        reason=data.reason,
    )
    return RedirectResponse("/my/social", status_code=303)


@router.post("/my/social/referrals/{referral_id}/report")
def my_report(
    referral_id: str,
    session: DbSession,
    form: Annotated[Posted[ReportIn], FormOf(ReportIn)],
    actor: PostedBy,
) -> Response:
    acc = _own(session, actor, "update")
    social_actions.patient_report(
        session, access=acc, referral_id=referral_id, report=form.read().report
    )
    return RedirectResponse("/my/social", status_code=303)


@router.post("/my/social/referrals")
def my_referral(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ReferralIn], FormOf(ReferralIn)],
    actor: PostedBy,
) -> Response:
    acc = _own(session, actor, "create")
    social_actions.send_referral_in(session, access=acc, data=form.read(), secret=secret(request))
    return RedirectResponse("/my/social", status_code=303)


# --- the community partner's link ---------------------------------------------------------------


def partner_context(referral: Any, **extra: Any) -> dict[str, Any]:
    return {
        "referral": referral,
        "service": referral.service,
        "next": rules.next_for(referral.status, rules.PARTNER),
        "needs_reason": sorted(rules.NEEDS_REASON),
        "errors": {},
        "values": {},
        "done": None,
        **_labels(),
        **extra,
    }


@router.get("/referral-link/{token}")
def partner_page(token: str, request: Request, session: DbSession) -> Response:
    referral = social.read_by_partner(session, token=token, secret=secret(request))
    anonymous_csrf(request)
    return render(request, "social/partner.html", partner_context(referral))


@router.post("/referral-link/{token}")
def partner_update(
    token: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[PartnerStatusIn], FormOf(PartnerStatusIn)],
    _csrf: Annotated[None, Depends(check_anonymous_csrf)],
) -> Response:
    data = form.read()
    referral = social.partner_transition(
        session,
        token=token,
        secret=secret(request),
        to=data.status,
        reason=data.reason,
        outcome=data.outcome,
    )
    anonymous_csrf(request)
    return render(request, "social/partner.html", partner_context(referral, done=data.status))


# --- the directory (the clinic's staff) ---------------------------------------------------------


@router.get("/directory")
def directory_page(request: Request, session: DbSession, actor: WebActor) -> Response:
    if not (actor.user.is_clinician or actor.user.role == "admin"):
        raise NotFound(Msg("Not found."))
    query = dict(request.query_params)
    return render(
        request,
        "social/directory.html",
        {
            "services": social.search_services(
                session,
                by=actor.user,
                need=query.get("need") or None,
                language=query.get("language") or None,
            ),
            "query": {
                "need": query.get("need", ""),
                "language": query.get("language", ""),
                "near": "",
            },
            "domains": list(social.domains()),
            "errors": {},
            "values": {},
            "done": None,
            **_labels(),
        },
    )


@router.post("/directory/services")
def directory_add(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ServiceIn], FormOf(ServiceIn)],
    actor: PostedBy,
) -> Response:
    social.add_service(session, by=actor.user, data=form.read().model_dump())
    return RedirectResponse("/directory", status_code=303)


@router.post("/directory/import")
def directory_import(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ImportIn], FormOf(ImportIn)],
    actor: PostedBy,
) -> Response:
    data = form.read()
    social.import_hsds(session, by=actor.user, content=data.content, kind=data.kind)
    return RedirectResponse("/directory", status_code=303)

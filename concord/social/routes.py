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
from concord.db import all_or_nothing
from concord.errors import Conflict, InvalidInput, NotFound
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


def _search(
    session: DbSession, by: Any, query: dict[str, Any]
) -> tuple[list[social.Found], dict[str, str], dict[str, Any]]:
    """The directory searched as the search form asks: (what was found, the form's values,
    errors). A need or postcode Concord does not know is named beside its field and the
    search runs without it, so the page still shows."""
    asked = {k: str(query.get(k) or "") for k in ("need", "language", "near")}
    errors: dict[str, Any] = {}
    terms = {k: v or None for k, v in asked.items()}
    for _ in terms:
        try:
            return social.search_services(session, by=by, **terms), asked, errors
        except InvalidInput as exc:
            bad = [k for k in exc.errors if terms.get(k) is not None]
            if not bad:
                raise
            errors.update({k: exc.errors[k] for k in bad})
            terms.update(dict.fromkeys(bad))
    return social.search_services(session, by=by), asked, errors


def social_context(
    session: DbSession, acc: PatientAccess, query: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """What the team's and the patient's pages show (and the API twin returns)."""
    referrals = social.list_referrals(session, access=acc)
    found, searched, errors = _search(session, acc.by, query)
    errors.update(extra.pop("errors", {}))
    context = {
        "acc": acc,
        "patient": acc.patient,
        "concerns": social.list_concerns(session, access=acc),
        "referrals": referrals,
        "history": {r.id: social.events(session, r) for r in referrals},
        "team_next": {r.id: rules.next_for(r.status, rules.REQUESTER) for r in referrals},
        "services": found,
        "query": searched,
        "domains": list(social.domains()),
        "errors": errors,
        "values": {},
        "failed": None,
        "message": None,
        "link": None,
        "link_expired": {r.id: social.link_expired(r) for r in referrals},
        **_labels(),
    }
    context.update(extra)
    return context


def _team(session: DbSession, actor: Actor, patient_id: str, action: str = "read") -> PatientAccess:
    return access.team_access(session, actor.user, patient_id, action=action, object_type=OBJECT)


def _own(session: DbSession, actor: Actor, action: str = "read") -> PatientAccess:
    return access.own_record(session, actor.user, action=action, object_type=OBJECT)


REFUSED = (InvalidInput, Conflict)


def _refused(
    request: Request,
    template: str,
    context: dict[str, Any],
    exc: InvalidInput | Conflict,
    form: Posted[Any],
    failed: str,
) -> Response:
    """The page again after a refused post: the form that failed (`failed`) shows what was
    typed and each field's error; nothing the post tried was written (all_or_nothing)."""
    context.update(
        values=form.values,
        errors=getattr(exc, "errors", {}),
        message=exc.message,
        failed=failed,
    )
    return render(
        request, template, context, status_code=422 if isinstance(exc, InvalidInput) else 409
    )


def _team_page(session: DbSession, acc: PatientAccess, **extra: Any) -> dict[str, Any]:
    context = social_context(session, acc, {}, **extra)
    return {**context, **header_context(session, acc, tab="social")}


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
    try:
        # A consent recorded with the referral is undone with it when the referral is refused.
        with all_or_nothing(session, *REFUSED):
            referral, token = social_actions.send_referral_in(
                session, access=acc, data=form.read(), secret=secret(request)
            )
    except REFUSED as exc:
        return _refused(request, "social/team.html", _team_page(session, acc), exc, form, "send")
    # The link is shown once, for the team to give the partner; only its hash is kept.
    return render(
        request,
        "social/team.html",
        _team_page(session, acc, link=partner_link(request, token), sent=referral),
    )


def partner_link(request: Request, token: str) -> str:
    base = request.app.state.settings.base_url.rstrip("/")
    return f"{base}/referral-link/{token}"


@router.post("/patients/{patient_id}/social/referrals/{referral_id}/link")
def team_new_link(
    patient_id: str,
    referral_id: str,
    request: Request,
    session: DbSession,
    actor: PostedBy,
) -> Response:
    """A fresh link for the partner (the old one expired or was lost); the old one is dead."""
    acc = _team(session, actor, patient_id, "update")
    try:
        with all_or_nothing(session, *REFUSED):
            referral, token = social.renew_link(
                session, access=acc, referral_id=referral_id, secret=secret(request)
            )
    except REFUSED as exc:
        return _refused(
            request,
            "social/team.html",
            _team_page(session, acc),
            exc,
            Posted(None, {}),
            f"link-{referral_id}",
        )
    return render(
        request,
        "social/team.html",
        _team_page(session, acc, link=partner_link(request, token), renewed=referral),
    )


@router.post("/patients/{patient_id}/social/referrals/{referral_id}/status")
def team_status(
    patient_id: str,
    referral_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[TeamStatusIn], FormOf(TeamStatusIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    try:
        with all_or_nothing(session, *REFUSED):
            data = form.read()
            social.team_transition(
                session, access=acc, referral_id=referral_id, to=data.status, reason=data.reason
            )
    except REFUSED as exc:
        failed = f"status-{referral_id}"
        return _refused(request, "social/team.html", _team_page(session, acc), exc, form, failed)
    return RedirectResponse(f"/patients/{acc.patient.id}/social", status_code=303)


@router.post("/patients/{patient_id}/social/concerns/{concern_id}")
def team_concern(
    patient_id: str,
    concern_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ConcernDecisionIn], FormOf(ConcernDecisionIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    try:
        with all_or_nothing(session, *REFUSED):
            data = form.read()
            social.decide_concern(
                session,
                access=acc,
                concern_id=concern_id,
                decision=data.decision,
                words=data.words,
                reason=data.reason,
            )
    except REFUSED as exc:
        failed = f"concern-{concern_id}"
        return _refused(request, "social/team.html", _team_page(session, acc), exc, form, failed)
    return RedirectResponse(f"/patients/{acc.patient.id}/social", status_code=303)


@router.post("/patients/{patient_id}/social/concerns/{concern_id}/plan")
def team_concern_to_plan(
    patient_id: str,
    concern_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ConcernToPlanIn], FormOf(ConcernToPlanIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    try:
        with all_or_nothing(session, *REFUSED):
            social_actions.concern_to_plan(
                session, access=acc, concern_id=concern_id, data=form.read()
            )
    except REFUSED as exc:
        failed = f"plan-{concern_id}"
        return _refused(request, "social/team.html", _team_page(session, acc), exc, form, failed)
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
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ConcernDecisionIn], FormOf(ConcernDecisionIn)],
    actor: PostedBy,
) -> Response:
    acc = _own(session, actor, "update")
    try:
        with all_or_nothing(session, *REFUSED):
            data = form.read()
            social.decide_concern(
                session,
                access=acc,
                concern_id=concern_id,
                decision=data.decision,
                words=data.words,
                reason=data.reason,
            )
    except REFUSED as exc:
        context = social_context(session, acc, {})
        return _refused(request, "social/mine.html", context, exc, form, f"concern-{concern_id}")
    return RedirectResponse("/my/social", status_code=303)


@router.post("/my/social/referrals/{referral_id}/report")
def my_report(
    referral_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ReportIn], FormOf(ReportIn)],
    actor: PostedBy,
) -> Response:
    acc = _own(session, actor, "update")
    try:
        with all_or_nothing(session, *REFUSED):
            social_actions.patient_report(
                session, access=acc, referral_id=referral_id, report=form.read().report
            )
    except REFUSED as exc:
        context = social_context(session, acc, {})
        return _refused(request, "social/mine.html", context, exc, form, f"report-{referral_id}")
    return RedirectResponse("/my/social", status_code=303)


@router.post("/my/social/referrals")
def my_referral(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ReferralIn], FormOf(ReferralIn)],
    actor: PostedBy,
) -> Response:
    acc = _own(session, actor, "create")
    try:
        with all_or_nothing(session, *REFUSED):
            social_actions.send_referral_in(
                session, access=acc, data=form.read(), secret=secret(request)
            )
    except REFUSED as exc:
        context = social_context(session, acc, {})
        return _refused(request, "social/mine.html", context, exc, form, "send")
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
        "message": None,
        "done": None,
        **_labels(),
        **extra,
    }


def _link_expired(request: Request, exc: social.LinkExpired) -> Response:
    """The expired link's page: what happened and what to do, nothing of the referral."""
    return render(request, "social/partner_expired.html", {"message": exc.message}, status_code=410)


@router.get("/referral-link/{token}")
def partner_page(token: str, request: Request, session: DbSession) -> Response:
    try:
        referral = social.read_by_partner(session, token=token, secret=secret(request))
    except social.LinkExpired as exc:
        return _link_expired(request, exc)
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
    try:
        with all_or_nothing(session, *REFUSED):
            data = form.read()
            referral = social.partner_transition(
                session,
                token=token,
                secret=secret(request),
                to=data.status,
                reason=data.reason,
                outcome=data.outcome,
            )
    except social.LinkExpired as exc:
        return _link_expired(request, exc)
    except REFUSED as exc:
        # The form again, as the partner typed it, with the field named (the link was checked
        # again: an expired or unknown one answers as above).
        try:
            again = social.read_by_partner(session, token=token, secret=secret(request))
        except social.LinkExpired as gone:
            return _link_expired(request, gone)
        anonymous_csrf(request)
        return render(
            request,
            "social/partner.html",
            partner_context(
                again,
                values=form.values,
                errors=getattr(exc, "errors", {}),
                message=exc.message,
            ),
            status_code=422 if isinstance(exc, InvalidInput) else 409,
        )
    anonymous_csrf(request)
    return render(request, "social/partner.html", partner_context(referral, done=data.status))


# --- the directory (the clinic's staff) ---------------------------------------------------------


def _directory_context(session: DbSession, actor: Actor, query: dict[str, Any]) -> dict[str, Any]:
    found, searched, errors = _search(session, actor.user, query)
    return {
        "services": found,
        "query": searched,
        "domains": list(social.domains()),
        "errors": errors,
        "values": {},
        "failed": None,
        "message": None,
        "done": None,
        **_labels(),
    }


def _staff(actor: Actor) -> None:
    if not (actor.user.is_clinician or actor.user.role == "admin"):
        raise NotFound(Msg("Not found."))


@router.get("/directory")
def directory_page(request: Request, session: DbSession, actor: WebActor) -> Response:
    _staff(actor)
    context = _directory_context(session, actor, dict(request.query_params))
    return render(request, "social/directory.html", context)


@router.post("/directory/services")
def directory_add(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ServiceIn], FormOf(ServiceIn)],
    actor: PostedBy,
) -> Response:
    _staff(actor)
    try:
        with all_or_nothing(session, *REFUSED):
            social.add_service(session, by=actor.user, data=form.read().model_dump())
    except REFUSED as exc:
        context = _directory_context(session, actor, {})
        return _refused(request, "social/directory.html", context, exc, form, "add")
    return RedirectResponse("/directory", status_code=303)


@router.post("/directory/import")
def directory_import(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ImportIn], FormOf(ImportIn)],
    actor: PostedBy,
) -> Response:
    _staff(actor)
    try:
        with all_or_nothing(session, *REFUSED):
            data = form.read()
            social.import_hsds(session, by=actor.user, content=data.content, kind=data.kind)
    except REFUSED as exc:
        context = _directory_context(session, actor, {})
        return _refused(request, "social/directory.html", context, exc, form, "import")
    return RedirectResponse("/directory", status_code=303)

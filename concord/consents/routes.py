"""The consent pages: the patient's "Who can see my record" (/my/consents) with a Revoke
button that asks first, the care team's list on the patient's record with a form to record a
consent given on paper or out loud, and the consent forms to print for a wet signature.

Who may open them: the patient (their own) and the care team; a family member or carer and
anyone else get the stranger's 404 (a family member reads the consents naming them through
the JSON API)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from concord import access
from concord.access import PatientAccess
from concord.accounts.models import Clinic
from concord.actions import consents as consent_actions
from concord.actions import part2 as part2_actions
from concord.clock import now
from concord.consents import service as cs
from concord.consents.forms import TEMPLATES, render_pdf
from concord.consents.labels import (
    CATEGORY_LABELS,
    PURPOSE_LABELS,
    method_line,
    sentence,
    state_line,
)
from concord.consents.models import CATEGORIES, ConsentState, GranteeKind, Purpose
from concord.consents.portal import FAMILY_NOTICES, PART2_NOTICES, REVOKE_TEXT
from concord.consents.portal import TEMPLATES as SHARING
from concord.consents.schemas import ConsentIn, RevokeIn, SignedConsentIn
from concord.dates import org_today
from concord.disclosures import service as disclosures
from concord.disclosures.labels import line
from concord.errors import InvalidInput
from concord.patients import service as patients
from concord.web.deps import DbSession, PostedBy, WebActor
from concord.web.forms import FormOf, Posted
from concord.web.idempotency import already_done, remember
from concord.web.patient_header import header_context
from concord.web.templating import render

router = APIRouter()
OBJECT = "Consent"


def _clinic_names(session: DbSession, acc: PatientAccess) -> dict[Any, str]:
    from sqlalchemy import select

    return {
        c.id: c.name
        for c in session.scalars(
            select(Clinic).where(Clinic.organization_id == acc.patient.organization_id)
        )
    }


def _rows(session: DbSession, acc: PatientAccess, lang: str) -> list[dict[str, Any]]:
    at = now()
    clinics = _clinic_names(session, acc)
    return [
        {
            "consent": c,
            "sentence": sentence(c, lang, clinics),
            "state": c.state(at).value,
            "state_text": state_line(c, lang, at),
            "active": c.state(at) in (ConsentState.active, ConsentState.not_started),
            "method": method_line(c, lang),
        }
        for c in cs.list_consents(session, access=acc)
    ]


def _team_access(session: DbSession, actor: Any, patient_id: str, action: str = "read") -> Any:
    acc = access.patient_for(session, actor.user, patient_id, action=action, object_type=OBJECT)
    if not acc.can_read_record:
        raise access.refuse_record(session, acc, action=action, object_type=OBJECT)
    return acc


# --- the patient's portal ----------------------------------------------------------------------


@router.get("/my/consents")
def my_consents(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = access.own_record(session, actor.user, object_type=OBJECT)
    return render(
        request,
        "consents/mine.html",
        {
            "acc": acc,
            "rows": _rows(session, acc, request.state.lang),
            "done": request.query_params.get("done"),
            "templates": TEMPLATES,
            # Who opened withheld records in an emergency (42 CFR 2.51), shown to the patient.
            "emergencies": part2_actions.emergency_accesses(session, acc),
        },
    )


@router.get("/my/consents/share")
def my_share(request: Request, session: DbSession, actor: WebActor) -> Response:
    """ "Share my record": the kinds of sharing offered, or one of them to read and sign."""
    acc = access.own_record(session, actor.user, object_type=OBJECT)
    template = request.query_params.get("template")
    if not template:
        return render(request, "consents/share.html", {"acc": acc, "sharing": SHARING})
    return _share_form(request, session, acc, template, values={}, errors={})


def _share_form(
    request: Request,
    session: DbSession,
    acc: PatientAccess,
    template: str,
    *,
    values: Mapping[str, Any],
    errors: Mapping[str, Any],
    message: Any = None,
    status_code: int = 200,
) -> Response:
    form = consent_actions.sharing_form(session, access=acc, template_id=template)
    return render(
        request,
        "consents/sign.html",
        {
            "acc": acc,
            "form": form,
            "notices": PART2_NOTICES if form.template.part2 else FAMILY_NOTICES,
            "revoke_text": REVOKE_TEXT,
            "values": values,
            "errors": errors,
            "message": message,
        },
        status_code=status_code,
    )


@router.post("/my/consents/share")
def my_share_sign(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[SignedConsentIn], FormOf(SignedConsentIn)],
    actor: PostedBy,
) -> Response:
    """The patient signs: the same action as the JSON twin, which records the consent through
    the consents service (audited); a mistake comes back on the form, nothing written."""
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    acc = access.own_record(session, actor.user, action="create", object_type=OBJECT)
    try:
        data = form.read()
        consent_actions.sign(session, access=acc, data=data)
    except InvalidInput as exc:
        template = form.typed("template")
        if template not in SHARING:
            raise
        return _share_form(
            request,
            session,
            acc,
            template,
            values=form.values,
            errors=exc.errors,
            message=exc.message,
            status_code=422,
        )
    target = "/my/consents?done=shared"
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


@router.get("/my/consents/{consent_id}/revoke")
def my_revoke_confirm(
    consent_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = access.own_record(session, actor.user, object_type=OBJECT)
    return _confirm(request, session, acc, consent_id, back="/my/consents")


def _confirm(
    request: Request, session: DbSession, acc: PatientAccess, consent_id: str, back: str
) -> Response:
    consent = cs.get_consent(session, access=acc, consent_id=consent_id)
    return render(
        request,
        "consents/revoke.html",
        {
            "acc": acc,
            "consent": consent,
            "sentence": sentence(consent, request.state.lang, _clinic_names(session, acc)),
            "back": back,
        },
    )


# --- the care team's page on the patient's record ---------------------------------------------


def _team_context(
    session: DbSession, acc: PatientAccess, lang: str, **extra: Any
) -> dict[str, Any]:
    related = patients.list_related_persons(session, access=acc)
    staff = [m.user for m in patients.members_of_patient(session, patient_id=acc.patient.id)]
    return {
        **header_context(session, acc, tab="consents"),
        "acc": acc,
        "patient": acc.patient,
        "rows": _rows(session, acc, lang),
        "related": related,
        "staff": staff,
        "clinics": sorted(_clinic_names(session, acc).items(), key=lambda kv: kv[1]),
        "categories": [(c, CATEGORY_LABELS[c]) for c in CATEGORIES],
        "purposes": [(p.value, PURPOSE_LABELS.get(p.value)) for p in Purpose],
        "grantee_kinds": [k.value for k in GranteeKind],
        "templates": TEMPLATES,
        "values": {},
        "errors": {},
        **extra,
    }


@router.get("/patients/{patient_id}/consents")
def team_consents(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team_access(session, actor, patient_id)
    if acc.is_self:
        return RedirectResponse("/my/consents", status_code=303)
    context = _team_context(session, acc, request.state.lang)
    context["done"] = request.query_params.get("done")
    # Who received the patient's Part 2 records (issue 18): the team reads the patient's log.
    lang = request.state.lang
    context["disclosures"] = [
        line(r, lang) for r in disclosures.list_disclosures(session, access=acc)
    ]
    return render(request, "consents/team.html", context)


@router.get("/patients/{patient_id}/consents/{consent_id}/revoke")
def team_revoke_confirm(
    patient_id: str, consent_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team_access(session, actor, patient_id)
    back = "/my/consents" if acc.is_self else f"/patients/{acc.patient.id}/consents"
    return _confirm(request, session, acc, consent_id, back=back)


def _consent_form(form: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(form)
    for listed in ("categories", "purposes"):
        value = data.get(listed)
        data[listed] = value if isinstance(value, list) else ([value] if value else [])
    # The grantee's id comes from the select that matches the kind chosen.
    kind = data.get("grantee_kind")
    data["grantee_id"] = data.get(f"grantee_id_{kind}") or data.get("grantee_id") or None
    return data


@router.post("/patients/{patient_id}/consents")
def record_consent(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ConsentIn], FormOf(ConsentIn, shape=_consent_form)],
    actor: PostedBy,
) -> Response:
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    acc = _team_access(session, actor, patient_id, "create")
    try:
        data = form.read()
        consent_actions.record(session, access=acc, data=data)
    except InvalidInput as exc:
        context = _team_context(
            session,
            acc,
            request.state.lang,
            values=form.values,
            errors=exc.errors,
            message=exc.message,
        )
        return render(request, "consents/team.html", context, status_code=422)
    target = f"/patients/{acc.patient.id}/consents?done=recorded"
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


@router.post("/patients/{patient_id}/consents/{consent_id}/revoke")
def revoke_consent(
    patient_id: str,
    consent_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[RevokeIn], FormOf(RevokeIn)],
    actor: PostedBy,
) -> Response:
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    acc = _team_access(session, actor, patient_id, "update")
    data = form.read()
    consent_actions.revoke(session, access=acc, consent_id=consent_id, reason=data.reason)
    target = (
        "/my/consents?done=revoked"
        if acc.is_self
        else f"/patients/{acc.patient.id}/consents?done=revoked"
    )
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


# --- printable forms -------------------------------------------------------------------------


@router.get("/patients/{patient_id}/consent-forms/{template_id}.pdf")
def consent_form_pdf(
    patient_id: str, template_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team_access(session, actor, patient_id)
    language = cs.get_form_export(session, access=acc, template_id=template_id)
    body = render_pdf(
        template_id,
        lang=language or request.state.lang,
        patient_name=acc.patient.full_name,
        today=org_today(acc.patient.clinic.organization),
    )
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{template_id}.pdf"'},
    )

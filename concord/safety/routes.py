"""Pages: safety alerts (list, one alert, acknowledge, close, follow up), a patient's risk
status and safety plan (team and portal), sharing the plan, the figures a clinic checks, and
the administrator's risk rules and undelivered messages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from concord import access
from concord.access import PatientAccess
from concord.accounts.models import Organization
from concord.accounts.users import list_users
from concord.clock import now
from concord.dates import local_date, org_today
from concord.disclosures.notice import pdf_notice
from concord.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from concord.i18n import N_, Msg, translate
from concord.outbox import failing_messages, retry_now
from concord.safety import plans as safety_plans
from concord.safety.alerts import (
    Closing,
    acknowledge,
    alert_events,
    alerts_for_patient,
    close,
    follow_up_alert,
    get_alert,
    list_alerts,
    outcomes_by_alert,
    outcomes_of,
    patient_of_alert,
    raise_manual_flag,
    record_follow_up,
)
from concord.safety.chain import resolve_step
from concord.safety.figures import Figures, get_figures
from concord.safety.models import NO_RISK, AlertOutcome
from concord.safety.notifications import mark_read, notifications_for, open_notification
from concord.safety.pdf import render as render_pdf
from concord.safety.risk import risk_history_for
from concord.safety.rulesets import current_rule_set, load_rules, rule_sets, rules_for
from concord.safety.schemas import CloseIn, FlagIn, FollowUpIn, SafetyPlanIn, ShareIn
from concord.validation import check_datetime_range, parse_date
from concord.web.deps import Actor, DbSession, Form, PostedBy, WebActor
from concord.web.exports import csv_response
from concord.web.forms import FormOf, Posted, back_to
from concord.web.idempotency import already_done, remember
from concord.web.patient_header import header_context, limited_header
from concord.web.templating import render

router = APIRouter()

OUTCOME_LABELS = {
    AlertOutcome.assessed: N_("Safety assessment done"),
    AlertOutcome.safety_plan: N_("Safety plan reviewed or created with the patient"),
    AlertOutcome.emergency: N_("Referred to emergency services"),
    AlertOutcome.unreachable: N_("Could not reach the patient"),
}


def tier_names(rules: Any, lang: str) -> dict[str, str]:
    return {t.code: t.name.get(lang) or t.name["en"] for t in rules.tiers}


def _team(session: DbSession, actor: Actor, patient_id: str, action: str = "read") -> PatientAccess:
    return access.team_access(
        session, actor.user, patient_id, action=action, object_type="SafetyAlert"
    )


def _local(value: Any, tz: str) -> str:
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M") if value else ""


def _in_zone(when: datetime | None, tz: str, name: str) -> datetime | None:
    """A time typed on a page without a zone is in the organization's."""
    if when is None or when.tzinfo is not None:
        return when
    when = when.replace(tzinfo=ZoneInfo(tz))
    check_datetime_range(when, name)
    return when


# --- alerts ------------------------------------------------------------------------------------


@router.get("/alerts")
def alerts_page(request: Request, session: DbSession, actor: WebActor) -> Response:
    include_closed = request.query_params.get("closed") == "1"
    rows = list_alerts(session, by=actor.user, include_closed=include_closed)
    return render(
        request,
        "safety/alerts.html",
        {
            "rows": rows,
            "include_closed": include_closed,
            "now": now(),
            "notifications": notifications_for(session, actor.user),
        },
    )


@router.post("/alerts/notifications/read")
def notifications_read(request: Request, session: DbSession, actor: PostedBy) -> Response:
    mark_read(session, actor.user)
    return RedirectResponse("/alerts", status_code=303)


@router.get("/alerts/notifications/{notification_id}")
def notification_link(
    notification_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    """A notice in "New for you": opening it marks it read (the count in the navigation goes
    down) and leads to where on the record it is read."""
    where = open_notification(session, actor.user, notification_id)
    if where is None:
        raise NotFound(Msg("No such notice."))
    return RedirectResponse(where, status_code=303)


@router.get("/alerts/{alert_id}")
def alert_link(alert_id: str, request: Request, session: DbSession, actor: WebActor) -> Response:
    """The link in a notification email: find the alert's patient, then the usual checks."""
    patient_id = patient_of_alert(session, alert_id)
    if patient_id is None:
        raise NotFound(Msg("No such alert."))
    acc = _team(session, actor, str(patient_id))
    return RedirectResponse(f"/patients/{acc.patient.id}/alerts/{alert_id}", status_code=303)


def _alert_context(
    session: DbSession, acc: PatientAccess, alert_id: str, lang: str, **extra: Any
) -> dict[str, Any]:
    alert = get_alert(session, access=acc, alert_id=alert_id)
    org = session.get(Organization, acc.patient.organization_id)
    assert org is not None
    rules = rules_for(session, org.id)
    tz = acc.by.organization.timezone
    chain = []
    for index, step in enumerate(alert.chain):
        person = resolve_step(session, step, acc.patient.id, org)
        chain.append(
            {
                "step": step,
                "person": person,
                "current": index == alert.chain_position and alert.owner_id is not None,
            }
        )
    plan = safety_plans.plan_for(session, acc, audit=False)
    mark_read(session, acc.by, alert.id)
    events = alert_events(session, alert.id)
    context = {
        "acc": acc,
        "patient": acc.patient,
        "alert": alert,
        "events": events,
        "outcomes_done": outcomes_of(events, alert),
        "chain": chain,
        "tiers": tier_names(rules, lang),
        "tier_options": [(t.code, t.name.get(lang) or t.name["en"]) for t in rules.tiers],
        "outcome_options": [(o.value, translate(OUTCOME_LABELS[o], lang)) for o in AlertOutcome],
        "no_risk": NO_RISK,
        "within": (
            rules.tier(alert.tier).acknowledge_within
            if rules.has_tier(alert.tier)
            else rules.highest.acknowledge_within
        ),
        "follow_up_default": _local(now() + rules.follow_up_within, tz),
        "follow_up_within": rules.follow_up_within,
        "follow_up_alert": follow_up_alert(session, alert.id),
        "earlier": session.get(type(alert), alert.follow_up_of_id)
        if alert.follow_up_of_id
        else None,
        "plan": plan,
        "now": now(),
        "errors": {},
        "values": {},
        "message": None,
        "done": None,
        "outcome_labels": {o.value: translate(OUTCOME_LABELS[o], lang) for o in AlertOutcome},
    }
    context.update(header_context(session, acc, tab="safety", current_alert_id=alert.id))
    context.update(extra)
    return context


@router.get("/patients/{patient_id}/alerts/{alert_id}")
def alert_page(
    patient_id: str, alert_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team(session, actor, patient_id)
    return render(
        request,
        "safety/alert.html",
        _alert_context(
            session, acc, alert_id, request.state.lang, done=request.query_params.get("done")
        ),
    )


def _alert_refused(
    request: Request,
    session: DbSession,
    acc: PatientAccess,
    alert_id: str,
    exc: InvalidInput | Conflict,
    form: dict[str, Any] | None = None,
) -> Response:
    """The alert page again, with what was wrong and what was typed (nothing was written)."""
    errors = exc.errors if isinstance(exc, InvalidInput) else {}
    return render(
        request,
        "safety/alert.html",
        _alert_context(
            session,
            acc,
            alert_id,
            request.state.lang,
            errors=errors,
            message=exc.message,
            values=form or {},
        ),
        status_code=422 if isinstance(exc, InvalidInput) else 409,
    )


@router.post("/patients/{patient_id}/alerts/{alert_id}/acknowledge")
def alert_acknowledge(
    patient_id: str,
    alert_id: str,
    request: Request,
    session: DbSession,
    form: Form,
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    try:
        acknowledge(session, access=acc, alert_id=alert_id)
    except Conflict as exc:
        return _alert_refused(request, session, acc, alert_id, exc)
    return RedirectResponse(
        back_to(form, f"/patients/{acc.patient.id}/alerts/{alert_id}?done=taken"), status_code=303
    )


@router.post("/patients/{patient_id}/alerts/{alert_id}/close")
def alert_close(
    patient_id: str,
    alert_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[CloseIn], FormOf(CloseIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    tz = acc.by.organization.timezone
    try:
        data = form.read()
        closing = Closing(
            outcome=data.outcome if isinstance(data.outcome, list) else [data.outcome],
            note=data.note,
            risk_after=data.risk_after,
            follow_up_due_at=_in_zone(data.follow_up_due_at, tz, "follow_up_due_at"),
            no_follow_up=data.no_follow_up,
        )
        close(session, access=acc, alert_id=alert_id, closing=closing)
    except (InvalidInput, Conflict) as exc:
        return _alert_refused(request, session, acc, alert_id, exc, form.values)
    target = f"/patients/{acc.patient.id}/alerts/{alert_id}?done=closed"
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


@router.post("/patients/{patient_id}/alerts/{alert_id}/follow-up")
def alert_follow_up(
    patient_id: str,
    alert_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[FollowUpIn], FormOf(FollowUpIn, prefix="follow_up_")],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    try:
        data = form.read()
    except InvalidInput as exc:
        return _alert_refused(request, session, acc, alert_id, exc, form.values)
    try:
        record_follow_up(session, access=acc, alert_id=alert_id, note=data.note)
    except InvalidInput as exc:
        # The service names the field "note"; on this page it is "follow_up_note".
        exc.errors = {("follow_up_note" if k == "note" else k): v for k, v in exc.errors.items()}
        return _alert_refused(request, session, acc, alert_id, exc, form.values)
    except Conflict as exc:
        return _alert_refused(request, session, acc, alert_id, exc, form.values)
    return RedirectResponse(
        f"/patients/{acc.patient.id}/alerts/{alert_id}?done=followed_up", status_code=303
    )


# --- a patient's safety page ---------------------------------------------------------------------


def _safety_page_context(
    session: DbSession, acc: PatientAccess, lang: str, **extra: Any
) -> dict[str, Any]:
    rules = rules_for(session, acc.patient.organization_id)
    history = alerts_for_patient(session, access=acc, include_closed=True)
    context = {
        "acc": acc,
        "patient": acc.patient,
        "history": history,
        "outcomes_of": outcomes_by_alert(session, history),
        "risk_history": risk_history_for(session, acc),
        "tiers": tier_names(rules, lang),
        "tier_options": [(t.code, t.name.get(lang) or t.name["en"]) for t in rules.tiers],
        "plan": safety_plans.plan_for(session, acc),
        "people": safety_plans.people(session, acc),
        "outcome_labels": {o.value: translate(OUTCOME_LABELS[o], lang) for o in AlertOutcome},
        "now": now(),
        "errors": {},
        "values": {},
        "message": None,
        "done": None,
    }
    context.update(header_context(session, acc, tab="safety"))
    context.update(extra)
    return context


@router.get("/patients/{patient_id}/safety")
def safety_page(patient_id: str, request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _team(session, actor, patient_id)
    return render(
        request,
        "safety/patient.html",
        _safety_page_context(
            session, acc, request.state.lang, done=request.query_params.get("done")
        ),
    )


@router.post("/patients/{patient_id}/safety/flag")
def raise_flag(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[FlagIn], FormOf(FlagIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "create")
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    try:
        data = form.read()
        alert = raise_manual_flag(session, access=acc, tier=data.tier, reason=data.reason)
    except InvalidInput as exc:
        return render(
            request,
            "safety/patient.html",
            _safety_page_context(
                session,
                acc,
                request.state.lang,
                errors=exc.errors,
                message=exc.message,
                values=form.values,
            ),
            status_code=422,
        )
    target = f"/patients/{acc.patient.id}/alerts/{alert.id}?done=raised"
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


# --- safety plan (team and patient) --------------------------------------------------------------


def _plan_context(
    session: DbSession, acc: PatientAccess, lang: str, **extra: Any
) -> dict[str, Any]:
    plan = safety_plans.plan_for(session, acc)
    content = plan.content if plan is not None else safety_plans.empty_content()
    context: dict[str, Any] = {
        "acc": acc,
        "patient": acc.patient,
        "tab": "safety",
        "plan": plan,
        "content": content,
        "sections": safety_plans.SECTIONS,
        "crisis": safety_plans.crisis_lines(session, acc.patient.organization_id, lang),
        "versions": safety_plans.versions(session, acc, plan) if plan is not None else [],
        "errors": {},
        "message": None,
        "done": None,
        "editing": False,
        "base_version": plan.version if plan is not None else 0,
    }
    if acc.on_team:
        context.update(header_context(session, acc, tab="safety"))
    context.update(extra)
    return context


def plan_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The safety plan's page: each section's fields, gathered into `content`."""
    return {**form, "content": safety_plans.content_from_form(form)}


PlanForm = Annotated[Posted[SafetyPlanIn], FormOf(SafetyPlanIn, shape=plan_form)]


def _save_plan(
    request: Request,
    session: DbSession,
    form: Posted[SafetyPlanIn],
    actor: Actor,
    acc: PatientAccess,
    template: str,
    target: str,
) -> Response:
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    raw = plan_form(form.values)["content"]
    base: int | None = None
    try:
        data = form.read()
        base = data.base_version
        safety_plans.save(
            session,
            access=acc,
            content=data.content,
            reason=data.reason,
            base_version=base,
        )
    except (InvalidInput, Conflict) as exc:
        return render(
            request,
            template,
            _plan_context(
                session,
                acc,
                request.state.lang,
                content=raw,
                editing=True,
                errors=exc.errors if isinstance(exc, InvalidInput) else {},
                message=exc.message,
                conflict=isinstance(exc, Conflict),
                reason=form.typed("reason"),
                base_version=base if isinstance(exc, InvalidInput) else None,
            ),
            status_code=422 if isinstance(exc, InvalidInput) else 409,
        )
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


@router.get("/patients/{patient_id}/safety-plan")
def team_plan(patient_id: str, request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _team(session, actor, patient_id)
    editing = request.query_params.get("edit") == "1"
    return render(
        request,
        "safety/team_plan.html",
        _plan_context(
            session,
            acc,
            request.state.lang,
            editing=editing,
            done=request.query_params.get("done"),
            from_alert=request.query_params.get("alert"),
        ),
    )


@router.post("/patients/{patient_id}/safety-plan")
def team_plan_save(
    patient_id: str, request: Request, session: DbSession, form: PlanForm, actor: PostedBy
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    return _save_plan(
        request,
        session,
        form,
        actor,
        acc,
        "safety/team_plan.html",
        f"/patients/{acc.patient.id}/safety-plan?done=saved",
    )


@router.get("/patients/{patient_id}/safety-plan/versions/{number}")
def team_plan_version(
    patient_id: str, number: int, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team(session, actor, patient_id)
    plan = safety_plans.plan_for(session, acc, audit=False)
    if plan is None:
        raise NotFound(Msg("No safety plan yet."))
    version = safety_plans.version_of(session, acc, plan, number)
    return render(
        request,
        "safety/team_plan.html",
        _plan_context(
            session, acc, request.state.lang, content=version.content, shown_version=version
        ),
    )


@router.post("/patients/{patient_id}/safety-plan/people/{related_id}")
def team_plan_share(
    patient_id: str,
    related_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ShareIn], FormOf(ShareIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    safety_plans.set_share(
        session, access=acc, related_person_id=related_id, share=form.read().share
    )
    return RedirectResponse(
        f"/patients/{acc.patient.id}/safety?done=shared#people", status_code=303
    )


def _pdf(session: DbSession, export: safety_plans.PlanExport, lang: str) -> Response:
    """The printed plan: only what the domain's export read returned (no query here)."""
    body = render_pdf(
        lang=lang,
        name=export.name,
        meta=translate(
            Msg("version %(n)s, %(date)s", n=export.version, date=export.updated_on), lang
        ),
        content=export.content,
        crisis=export.crisis,
        notice=pdf_notice(session, lang),
    )
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": 'inline; filename="safety-plan.pdf"'},
    )


@router.get("/patients/{patient_id}/safety-plan.pdf")
def team_plan_pdf(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team(session, actor, patient_id)
    lang = acc.patient.language or request.state.lang
    return _pdf(session, safety_plans.get_plan_export(session, acc, lang), lang)


# --- the patient's portal ------------------------------------------------------------------------


def _self(session: DbSession, actor: Actor, action: str = "read") -> PatientAccess:
    return access.own_record(session, actor.user, action=action, object_type="SafetyPlan")


@router.get("/my/safety-plan")
def my_plan(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _self(session, actor)
    return render(
        request,
        "safety/my_plan.html",
        _plan_context(
            session,
            acc,
            request.state.lang,
            editing=request.query_params.get("edit") == "1",
            done=request.query_params.get("done"),
        ),
    )


@router.post("/my/safety-plan")
def my_plan_save(request: Request, session: DbSession, form: PlanForm, actor: PostedBy) -> Response:
    acc = _self(session, actor, "update")
    return _save_plan(
        request, session, form, actor, acc, "safety/my_plan.html", "/my/safety-plan?done=saved"
    )


@router.get("/my/safety-plan.pdf")
def my_plan_pdf(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _self(session, actor)
    lang = request.state.lang
    return _pdf(session, safety_plans.get_plan_export(session, acc, lang), lang)


@router.get("/my/safety-plan/people")
def my_plan_people(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _self(session, actor)
    return render(
        request,
        "safety/my_people.html",
        {
            "acc": acc,
            "people": safety_plans.people(session, acc),
            "done": request.query_params.get("done"),
        },
    )


@router.post("/my/safety-plan/people/{related_id}")
def my_plan_share(
    related_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ShareIn], FormOf(ShareIn)],
    actor: PostedBy,
) -> Response:
    acc = _self(session, actor, "update")
    share = form.read().share
    safety_plans.set_share(session, access=acc, related_person_id=related_id, share=share)
    return RedirectResponse(
        f"/my/safety-plan/people?done={'shared' if share else 'stopped'}", status_code=303
    )


# --- people the patient shares it with -----------------------------------------------------------


@router.get("/shared/{patient_id}/safety-plan")
def shared_plan(patient_id: str, request: Request, session: DbSession, actor: WebActor) -> Response:
    patient, plan = safety_plans.shared_plan(session, actor.user, patient_id)
    return render(
        request,
        "safety/shared_plan.html",
        {
            "patient": patient,
            "header": limited_header(patient, access.Relation.related),
            "plan": plan,
            "content": plan.content if plan else safety_plans.empty_content(),
            "sections": safety_plans.SECTIONS,
            "crisis": safety_plans.crisis_lines(
                session, patient.organization_id, request.state.lang
            ),
        },
    )


@router.get("/shared/{patient_id}/safety-plan.pdf")
def shared_plan_pdf(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    lang = request.state.lang
    export = safety_plans.get_shared_plan_export(session, actor.user, patient_id, lang)
    return _pdf(session, export, lang)


# --- figures -------------------------------------------------------------------------------------


def _figures_for(request: Request, session: DbSession, actor: Actor) -> Figures:
    user = actor.user
    if not (user.is_clinician or user.can_administer):
        # Checked again by get_figures; here so a bad date does not answer before the refusal.
        raise PermissionDenied(Msg("Safety figures are for clinicians and administrators."))
    today = org_today(ZoneInfo(user.organization.timezone))
    errors = {}

    def day(name: str, default: Any) -> Any:
        raw = request.query_params.get(name)
        if not raw:
            return default
        try:
            return parse_date(raw, name) or default
        except InvalidInput as exc:
            errors.update(exc.errors)
            return default

    start = day("from", today - timedelta(days=89))
    end = day("to", today)
    if not errors and end < start:
        errors["to"] = Msg("must be on or after the start date")
    if errors:
        raise InvalidInput(Msg("The dates are not valid."), errors=errors)
    return get_figures(session, by=user, start=start, end=end)


@router.get("/safety/figures")
def figures_page(request: Request, session: DbSession, actor: WebActor) -> Response:
    try:
        result = _figures_for(request, session, actor)
        errors: dict[str, str] = {}
    except InvalidInput as exc:
        result, errors = None, exc.errors
    rules = rules_for(session, actor.user.organization_id)
    return render(
        request,
        "safety/figures.html",
        {
            "figures": result,
            "to_day": local_date(result.until - timedelta(days=1), actor.user.organization)
            if result
            else None,
            "errors": errors,
            "tiers": tier_names(rules, request.state.lang),
            "within": {t.code: t.acknowledge_within for t in rules.tiers},
            "query": dict(request.query_params),
        },
        status_code=422 if errors else 200,
    )


@router.get("/safety/figures.csv")
def figures_csv(request: Request, session: DbSession, actor: WebActor) -> Response:
    result = _figures_for(request, session, actor)
    columns = [
        "alert",
        "tier",
        "rule",
        "source",
        "raised_at",
        "acknowledged_at",
        "minutes_to_acknowledge",
        "acknowledged_in_time",
        "escalations",
        "status",
        "open_past_deadline",
        "outcome",
        "outcomes",
        "closed_at",
    ]
    return csv_response(
        result.rows, columns, "safety-alerts.csv", session=session, lang=request.state.lang
    )


# --- administration: risk rules and undelivered messages -----------------------------------------


def _admin(session: DbSession, actor: Actor) -> None:
    list_users(session, by=actor.user)  # administrators only (denial audited)


def _rules_context(session: DbSession, actor: Actor, lang: str, **extra: Any) -> dict[str, Any]:
    org_id = actor.user.organization_id
    rules = rules_for(session, org_id)
    current = current_rule_set(session, org_id)
    context = {
        "rules": rules,
        "current": current,
        "history": rule_sets(session, org_id),
        "tiers": tier_names(rules, lang),
        "text": current.text if current else rules.text,
        "is_default": current is None,
        "errors": {},
        "message": None,
        "done": None,
    }
    context.update(extra)
    return context


@router.get("/admin/risk-rules")
def admin_rules(request: Request, session: DbSession, actor: WebActor) -> Response:
    _admin(session, actor)
    return render(
        request,
        "safety/admin_rules.html",
        _rules_context(session, actor, request.state.lang, done=request.query_params.get("done")),
    )


MAX_RULES_FILE = 1_000_000


def _rules_refused(
    request: Request, session: DbSession, actor: Actor, text: str, problem: str
) -> Response:
    return render(
        request,
        "safety/admin_rules.html",
        _rules_context(
            session,
            actor,
            request.state.lang,
            errors={"rules": problem},
            message=Msg("The rules were not loaded; the rules in force are unchanged."),
            text=text,
        ),
        status_code=422,
    )


@router.post("/admin/risk-rules")
async def admin_rules_load(request: Request, session: DbSession, actor: PostedBy) -> Response:
    _admin(session, actor)
    form = await request.form()
    upload = form.get("file")
    text = ""
    if upload is not None and hasattr(upload, "read"):
        raw = await upload.read(MAX_RULES_FILE + 1)
        await upload.close()
        if len(raw) > MAX_RULES_FILE:
            return _rules_refused(request, session, actor, "", Msg("is larger than 1 MB"))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _rules_refused(request, session, actor, "", Msg("must be a UTF-8 text file"))
    if not text.strip():
        text = str(form.get("rules") or "")
    try:
        load_rules(session, by=actor.user, organization=actor.user.organization, text=text)
    except InvalidInput as exc:
        return render(
            request,
            "safety/admin_rules.html",
            _rules_context(
                session,
                actor,
                request.state.lang,
                errors=exc.errors,
                message=exc.message,
                text=text,
            ),
            status_code=422,
        )
    return RedirectResponse("/admin/risk-rules?done=loaded", status_code=303)


# What each kind of email is, in words (its kind is an internal key).
MESSAGE_KINDS = {
    "safety_raised": N_("safety alert: a new one for its owner"),
    "safety_escalated": N_("safety alert: passed to the next person"),
    "safety_reminder": N_("safety alert: still waiting"),
    "safety_no_owner": N_("safety alert: nobody to own it"),
    "checkin_reminder": N_("check-in reminder to a patient"),
    "patient_notice": N_("something from a patient for the care team"),
}


@router.get("/admin/messages")
def admin_messages(request: Request, session: DbSession, actor: WebActor) -> Response:
    _admin(session, actor)
    return render(
        request,
        "safety/admin_messages.html",
        {
            "messages": failing_messages(session, actor.user.organization_id),
            "kinds": {k: translate(v, request.state.lang) for k, v in MESSAGE_KINDS.items()},
            "done": request.query_params.get("done"),
            "now": now(),
        },
    )


@router.post("/admin/messages/{message_id}/retry")
def admin_message_retry(
    message_id: str, request: Request, session: DbSession, actor: PostedBy
) -> Response:
    _admin(session, actor)
    retry_now(session, message_id, actor.user.organization_id)
    return RedirectResponse("/admin/messages?done=retry", status_code=303)

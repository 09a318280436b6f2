"""Care-plan pages: the team's editor, the patient's portal, and the view shared with family.

Each form posts to its own address. An HTMX request gets back the section it changed (and the
plan's status bar, out of band); a plain form post is redirected back to the page (PRG). A
form with a problem comes back with the error beside the field and everything typed kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from concord import access
from concord.access import PatientAccess
from concord.actions import careplan as plan_actions
from concord.careplans import service as plans
from concord.careplans.forms import (
    ADD_LABELS,
    FORMS,
    PAGE_SECTIONS,
    PREFERENCE_FORM,
    SECTION_TITLES,
    item_form_values,
    preference_values,
)
from concord.careplans.history import Change
from concord.careplans.models import (
    AgreementParty,
    BarrierKind,
    BarrierStatus,
    CodeSystem,
    ConcernStatus,
    GoalCategory,
    GoalStatus,
    InterventionKind,
    InterventionStatus,
    MonitoringIntensity,
    PlanAgreement,
    Priority,
    StepStatus,
)
from concord.careplans.reasons import reason_text
from concord.careplans.schemas import (
    ITEM_CREATE,
    ITEM_UPDATE,
    AgreeIn,
    CommentIn,
    GoalProposal,
    PlanActivate,
    PlanEndIn,
    PlanStart,
    PreferencesIn,
    RemoveIn,
    ReviewIn,
    StepStatusIn,
)
from concord.dates import org_today
from concord.decisions.service import decisions_for_plan
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import Msg
from concord.measures.library import library as measure_library
from concord.measures.service import check_ins, goal_met, latest_scores
from concord.patients.models import RelatedPerson
from concord.patients.service import list_my_patients, list_related_persons
from concord.registry.reviews import recommendations_for
from concord.registry.service import relapse_plan_for
from concord.safety.plans import crisis_lines, plan_for, shared_with_me
from concord.social import labels as social_labels
from concord.social import service as social_needs
from concord.social.labels import DOMAIN_LABELS
from concord.social.models import ConcernStatus as NeedStatus
from concord.substance.models import Substance, UseAim, UseMeasure
from concord.web.deps import Actor, DbSession, PostedBy, WebActor
from concord.web.forms import FormOf, Posted, back_to
from concord.web.idempotency import already_done, remember
from concord.web.patient_header import header_context
from concord.web.templating import render

router = APIRouter()


@dataclass
class FormState:
    """A form that came back: which one, what was typed, and what is wrong."""

    form: str
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    conflict: dict[str, Any] | None = None


def _is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _options(view: plans.PlanView | None) -> dict[str, Any]:
    members = view.members if view else []
    goals = view.contents.goals if view else []
    return {
        "code_systems": [(c.value, c.value) for c in CodeSystem],
        "concern_statuses": [(s.value, s.value) for s in ConcernStatus],
        "goal_categories": [(c.value, c.value) for c in GoalCategory],
        "priorities": [(p.value, p.value) for p in Priority],
        "goal_statuses": [(s.value, s.value) for s in GoalStatus],
        "intervention_kinds": [(k.value, k.value) for k in InterventionKind],
        "intervention_statuses": [(s.value, s.value) for s in InterventionStatus],
        "step_statuses": [(s.value, s.value) for s in StepStatus],
        "barrier_kinds": [(k.value, k.value) for k in BarrierKind],
        "barrier_statuses": [(s.value, s.value) for s in BarrierStatus],
        "monitoring": [(m.value, m.value) for m in MonitoringIntensity],
        "measure_instruments": [
            (i.code, i.code)
            for i in measure_library().all()
            if i.main_score is not None and i.usable
        ]
        # The days-of-use calendar's figures, for substance-use goals.
        + [(m.value, m.value) for m in UseMeasure],
        "substances": [(s.value, s.value) for s in Substance],
        "use_aims": [(a.value, a.value) for a in UseAim],
        "measure_ops": [("below", "below"), ("at_most", "at_most"), ("at_least", "at_least")],
        "goal_options": [(str(g.id), g.statement) for g in goals],
        "member_options": [(str(m.user_id), m.user.name) for m in members],
        "owner_options": [("patient", "patient")]
        + [(str(m.user_id), m.user.name) for m in members],
    }


def _editor_context(
    session: DbSession, acc: PatientAccess, *, state: FormState | None = None
) -> dict[str, Any]:
    view = plans.plan_view(session, access=acc)
    needs = _social_needs(session, acc, view)
    return {
        "acc": acc,
        "patient": acc.patient,
        "view": view,
        "state": state,
        "fs": lambda form_id: state if state is not None and state.form == form_id else None,
        "item_values": item_form_values,
        "preference_values": preference_values,
        "preference_form": PREFERENCE_FORM,
        "editable": bool(view and acc.can_edit_plan and view.plan.is_current),
        "latest_scores": latest_scores(session, acc) if view else {},
        "goal_met": goal_met,
        "forms": FORMS,
        "sections": PAGE_SECTIONS,
        "titles": SECTION_TITLES,
        "add_labels": ADD_LABELS,
        "options": {**_options(view), "social_concern_options": needs.options},
        "social_need_labels": needs.labels,
        **header_context(session, acc, tab="plan"),
        "past_plans": [p for p in plans.list_plans(session, access=acc) if not p.is_current]
        if acc.on_team
        else [],
        # intervention id -> the decision made together that chose it (linked on the page)
        "decision_links": _decision_links(session, view.plan.id) if view else {},
        **(_referrals(session, acc) if view else {}),
    }


@dataclass
class SocialNeeds:
    """The patient's social needs as the goal form and the goals show them: the open ones
    to choose from (and any a goal already names), and a label for each."""

    options: list[tuple[str, str]]
    labels: dict[Any, str]


def _social_needs(
    session: DbSession, acc: PatientAccess, view: plans.PlanView | None
) -> SocialNeeds:
    if not acc.can_read_record:
        return SocialNeeds([], {})
    concerns = social_needs.list_concerns(session, access=acc)
    named = {g.social_concern_id for g in (view.contents.goals if view else [])}
    labels = {c.id: DOMAIN_LABELS.get(c.domain, c.domain) for c in concerns}
    options = [
        (str(c.id), labels[c.id])
        for c in concerns
        if c.status in (NeedStatus.proposed, NeedStatus.confirmed) or c.id in named
    ]
    return SocialNeeds(options, labels)


def _referrals(session: DbSession, acc: PatientAccess) -> dict[str, Any]:
    """The patient's referrals to community services and each one's recorded changes, for the
    plan's pages. A referral's change is not plan content (it makes no plan version and asks
    for no new agreement): it is shown from the referral's own audited history, read through
    the social-needs domain (its access check and disclosure decision)."""
    if not acc.can_read_record:
        return {
            "referrals": [],
            "referral_history": {},
            "referral_timeline": [],
            "referral_labels": _REFERRAL_LABELS,
        }
    referrals = social_needs.list_referrals(session, access=acc)
    history = social_needs.history_of(session, referrals)
    # Every change of every referral, newest first, each with its referral (the history page).
    timeline = sorted(
        ((e, r) for r in referrals for e in history[r.id]),
        key=lambda pair: (pair[0].at, pair[0].seq),
        reverse=True,
    )
    return {
        "referrals": referrals,
        "referral_history": history,
        "referral_timeline": timeline,
        "referral_labels": _REFERRAL_LABELS,
    }


_REFERRAL_LABELS = {
    "status": social_labels.STATUS_LABELS,
    "party": social_labels.PARTY_LABELS,
    "domain": social_labels.DOMAIN_LABELS,
    "report": social_labels.REPORT_LABELS,
}


def _decision_links(session: DbSession, plan_id: Any) -> dict[Any, Any]:
    return decisions_for_plan(session, plan_id)


def _team_access(
    session: DbSession, actor: Actor, patient_id: str, action: str = "read"
) -> PatientAccess:
    # Patients and family have their own pages; this address is the team's.
    return access.team_access(
        session, actor.user, patient_id, action=action, object_type="CarePlan"
    )


def _editor_response(
    request: Request,
    session: DbSession,
    acc: PatientAccess,
    *,
    section: str | None,
    state: FormState | None = None,
    status: int = 200,
    done: str | None = None,
) -> Response:
    if status == 200 and state is None and not _is_htmx(request):
        anchor = f"#section-{section}" if section else ""
        suffix = f"?done={done}" if done else ""
        return RedirectResponse(f"/patients/{acc.patient.id}/plan{suffix}{anchor}", status_code=303)
    context = _editor_context(session, acc, state=state)
    context["done"] = done
    if _is_htmx(request) and section:
        context["section"] = section
        return render(request, "careplans/_fragment.html", context, status_code=status)
    return render(request, "careplans/plan.html", context, status_code=status)


def _failed(
    exc: InvalidInput | Conflict, form_id: str, form: dict[str, Any]
) -> tuple[FormState, int]:
    if isinstance(exc, InvalidInput):
        return FormState(form_id, values=form, errors=exc.errors, message=exc.message), 422
    values = dict(form)
    if "current_version" in exc.data:
        # Let the next save go through, now that the person has seen the newer version.
        values["version"] = exc.data["current_version"]
    return FormState(form_id, values=values, message=exc.message, conflict=exc.data), 409


# --- the team's editor ---------------------------------------------------------------------


@router.get("/patients/{patient_id}/plan")
def plan_page(patient_id: str, request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _team_access(session, actor, patient_id)
    context = _editor_context(session, acc)
    context["done"] = request.query_params.get("done")
    return render(request, "careplans/plan.html", context)


@router.post("/patients/{patient_id}/plan/start")
def plan_start(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[PlanStart], FormOf(PlanStart)],
    actor: PostedBy,
) -> Response:
    acc = _team_access(session, actor, patient_id, "create")
    if already_done(session, form.values, actor):
        return _editor_response(request, session, acc, section=None)
    try:
        plans.start_plan(session, access=acc, data=form.read())
    except (InvalidInput, Conflict) as exc:
        state, status = _failed(exc, "start", form.values)
        return _editor_response(request, session, acc, section=None, state=state, status=status)
    remember(session, form.values, actor, f"/patients/{acc.patient.id}/plan")
    return _editor_response(request, session, acc, section=None, done="started")


@router.post("/patients/{patient_id}/plan/activate")
def plan_activate(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[PlanActivate], FormOf(PlanActivate)],
    actor: PostedBy,
) -> Response:
    acc = _team_access(session, actor, patient_id, "update")
    try:
        plan_actions.activate_plan(session, access=acc, version=form.read().version)
    except (InvalidInput, Conflict) as exc:
        state, status = _failed(exc, "status", form.values)
        return _editor_response(request, session, acc, section="status", state=state, status=status)
    return _editor_response(request, session, acc, section="status", done="activated")


@router.post("/patients/{patient_id}/plan/review")
def plan_review(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ReviewIn], FormOf(ReviewIn)],
    actor: PostedBy,
) -> Response:
    acc = _team_access(session, actor, patient_id, "update")
    try:
        plan_actions.record_review(session, access=acc, data=form.read())
    except (InvalidInput, Conflict) as exc:
        state, status = _failed(exc, "review", form.values)
        return _editor_response(request, session, acc, section="status", state=state, status=status)
    return _editor_response(request, session, acc, section="status", done="reviewed")


@router.post("/patients/{patient_id}/plan/end")
def plan_end(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[PlanEndIn], FormOf(PlanEndIn)],
    actor: PostedBy,
) -> Response:
    acc = _team_access(session, actor, patient_id, "update")
    try:
        data = form.read()
        plan_actions.end_plan(session, access=acc, status=data.status, reason=data.reason)
    except (InvalidInput, Conflict) as exc:
        state, status = _failed(exc, "end", form.values)
        return _editor_response(request, session, acc, section=None, state=state, status=status)
    if _is_htmx(request):
        return Response(
            status_code=204, headers={"HX-Redirect": f"/patients/{acc.patient.id}/plan?done=ended"}
        )
    return _editor_response(request, session, acc, section=None, done="ended")


@router.post("/patients/{patient_id}/plan/preferences")
def plan_preferences(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[PreferencesIn], FormOf(PreferencesIn)],
    actor: PostedBy,
) -> Response:
    acc = _team_access(session, actor, patient_id, "update")
    try:
        plans.update_preferences(session, access=acc, data=form.read())
    except (InvalidInput, Conflict) as exc:
        state, status = _failed(exc, "preferences", form.values)
        return _editor_response(
            request, session, acc, section="preferences", state=state, status=status
        )
    return _editor_response(request, session, acc, section="preferences", done="saved")


@router.post("/patients/{patient_id}/plan/agree")
def plan_agree_lead(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[AgreeIn], FormOf(AgreeIn)],
    actor: PostedBy,
) -> Response:
    acc = _team_access(session, actor, patient_id, "agree")
    try:
        plan_actions.agree(session, access=acc, revision=form.read().revision)
    except (InvalidInput, Conflict) as exc:
        state, status = _failed(exc, "agree", form.values)
        return _editor_response(request, session, acc, section="status", state=state, status=status)
    return _editor_response(request, session, acc, section="status", done="agreed")


@router.post("/patients/{patient_id}/plan/comments")
def plan_comment(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[CommentIn], FormOf(CommentIn)],
    actor: PostedBy,
) -> Response:
    acc = _team_access(session, actor, patient_id, "create")
    if not already_done(session, form.values, actor):
        try:
            plan_actions.add_comment(session, access=acc, body=form.read().body)
        except (InvalidInput, NotFound) as exc:
            if isinstance(exc, NotFound):
                raise
            state, status = _failed(exc, "comment", form.values)
            return _editor_response(
                request, session, acc, section="comments", state=state, status=status
            )
        remember(session, form.values, actor, f"/patients/{acc.patient.id}/plan#section-comments")
    return _editor_response(request, session, acc, section="comments", done="commented")


@router.post("/patients/{patient_id}/plan/action_steps/{step_id}/status")
def step_status(
    patient_id: str,
    step_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[StepStatusIn], FormOf(StepStatusIn)],
    actor: PostedBy,
) -> Response:
    acc = _team_access(session, actor, patient_id, "update")
    try:
        data = form.read()
        plans.set_step_status(
            session, access=acc, step_id=step_id, status=data.status, version=data.version
        )
    except (InvalidInput, Conflict) as exc:
        state, status = _failed(exc, f"action_steps-{step_id}", form.values)
        return _editor_response(
            request, session, acc, section="action_steps", state=state, status=status
        )
    return _editor_response(request, session, acc, section="action_steps", done="saved")


def _section_of(section: str) -> str:
    plans.spec_for(section)  # NotFound for anything else
    return "goals" if section == "milestones" else section


@router.post("/patients/{patient_id}/plan/{section}")
def item_add(
    patient_id: str,
    section: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[Any], FormOf(ITEM_CREATE, by="section")],
    actor: PostedBy,
) -> Response:
    shown = _section_of(section)
    acc = _team_access(session, actor, patient_id, "create")
    if already_done(session, form.values, actor):
        return _editor_response(request, session, acc, section=shown)
    try:
        data = form.read()
        plan_actions.add_item(session, access=acc, section=section, data=data, reason=data.reason)
    except (InvalidInput, Conflict) as exc:
        form_id = (
            f"{section}-add"
            if section != "milestones"
            else (f"milestones-add-{form.typed('goal_id')}")
        )
        state, status = _failed(exc, form_id, form.values)
        return _editor_response(request, session, acc, section=shown, state=state, status=status)
    remember(session, form.values, actor, f"/patients/{acc.patient.id}/plan#section-{shown}")
    return _editor_response(request, session, acc, section=shown, done="added")


@router.post("/patients/{patient_id}/plan/{section}/{item_id}")
def item_update(
    patient_id: str,
    section: str,
    item_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[Any], FormOf(ITEM_UPDATE, by="section")],
    actor: PostedBy,
) -> Response:
    shown = _section_of(section)
    acc = _team_access(session, actor, patient_id, "update")
    if already_done(session, form.values, actor):
        return _editor_response(request, session, acc, section=shown)
    try:
        data = form.read()
        plan_actions.update_item(
            session,
            access=acc,
            section=section,
            item_id=item_id,
            data=data,
            version=data.version,
            reason=data.reason,
        )
    except (InvalidInput, Conflict) as exc:
        state, status = _failed(exc, f"{section}-{item_id}", form.values)
        return _editor_response(request, session, acc, section=shown, state=state, status=status)
    remember(session, form.values, actor, f"/patients/{acc.patient.id}/plan#section-{shown}")
    return _editor_response(request, session, acc, section=shown, done="saved")


@router.post("/patients/{patient_id}/plan/{section}/{item_id}/remove")
def item_remove(
    patient_id: str,
    section: str,
    item_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[RemoveIn], FormOf(RemoveIn)],
    actor: PostedBy,
) -> Response:
    shown = _section_of(section)
    acc = _team_access(session, actor, patient_id, "delete")
    if already_done(session, form.values, actor):
        return _editor_response(request, session, acc, section=shown)
    try:
        data = form.read()
        plan_actions.remove_item(
            session,
            access=acc,
            section=section,
            item_id=item_id,
            version=data.version,
            reason=data.reason,
        )
    except (InvalidInput, Conflict) as exc:
        state, status = _failed(exc, f"{section}-{item_id}-remove", form.values)
        return _editor_response(request, session, acc, section=shown, state=state, status=status)
    remember(session, form.values, actor, f"/patients/{acc.patient.id}/plan#section-{shown}")
    return _editor_response(request, session, acc, section=shown, done="removed")


# --- history ---------------------------------------------------------------------------------


def _plan_for_history(session: DbSession, acc: PatientAccess, plan_id: str | None) -> Any:
    plan = plans.get_plan(session, access=acc, plan_id=plan_id)
    if plan is None:
        raise NotFound(Msg("There is no plan yet."))
    return plan


@router.get("/patients/{patient_id}/plan/history")
def plan_history(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team_access(session, actor, patient_id)
    plan = _plan_for_history(session, acc, request.query_params.get("plan"))
    revisions = plans.list_revisions(session, access=acc, plan=plan)
    older = request.query_params.get("from")
    newer = request.query_params.get("to")
    comparison = None
    if older and newer:
        try:
            first, second, changes = plans.compare_revisions(
                session, access=acc, plan=plan, older=int(older), newer=int(newer)
            )
        except ValueError:
            raise InvalidInput.field("from", Msg("must be a revision number")) from None
        comparison = {"first": first, "second": second, "changes": changes}

    lang, tz = request.state.lang, actor.user.organization.timezone
    return render(
        request,
        "careplans/history.html",
        {
            "acc": acc,
            "patient": acc.patient,
            "plan": plan,
            "revisions": revisions,
            "comparison": comparison,
            **header_context(session, acc, tab="plan"),
            "changes_of": lambda r: [Change.from_dict(d) for d in r.summary.get("changes", [])],
            "reason_of": lambda r: reason_text(r, lang, tz),
            **_referrals(session, acc),
        },
    )


@router.get("/patients/{patient_id}/plans/{plan_id}")
def past_plan(
    patient_id: str, plan_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team_access(session, actor, patient_id)
    view = plans.plan_view(session, access=acc, plan_id=plan_id)
    return render(
        request,
        "careplans/plan_readonly.html",
        {
            "acc": acc,
            "patient": acc.patient,
            "view": view,
            **header_context(session, acc, tab="plan"),
        },
    )


# --- the patient's portal ----------------------------------------------------------------------


def _self_access(session: DbSession, actor: Actor, action: str = "read") -> PatientAccess:
    return access.own_record(session, actor.user, action=action)


def _portal_context(
    session: DbSession,
    acc: PatientAccess,
    state: FormState | None = None,
    *,
    referrals: bool = True,
) -> dict[str, Any]:
    """What "My plan" shows (`referrals`: with the patient's referrals and their changes; the
    portal's home page, which shows none, leaves them out)."""
    view = plans.plan_view(session, access=acc)
    since = None
    if view is not None and view.agreement.patient is None:
        # Show the patient what changed since they last agreed, if they ever did.
        last = _last_agreed_revision(session, view.plan.id)
        if last:
            since = plans.changes_since(session, access=acc, plan=view.plan, revision=last)
    return {
        "acc": acc,
        "patient": acc.patient,
        "view": view,
        "state": state,
        "changes_since_agreed": since,
        **(_referrals(session, acc) if view and referrals else {}),
    }


def _last_agreed_revision(session: DbSession, plan_id: Any) -> int | None:
    return session.scalar(
        select(PlanAgreement.revision_number)
        .where(PlanAgreement.plan_id == plan_id, PlanAgreement.party == AgreementParty.patient)
        .order_by(PlanAgreement.revision_number.desc())
        .limit(1)
    )


@router.get("/my")
def my_home(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _self_access(session, actor)
    context = _portal_context(session, acc, referrals=False)
    context["steps"] = plans.my_action_steps(session, by=actor.user)

    context["check_ins"] = [
        c for c in check_ins(session, access=acc) if c.state.status in ("due", "overdue")
    ]

    context["safety_plan"] = plan_for(session, acc, audit=False)
    context["crisis"] = crisis_lines(session, acc.patient.organization_id, request.state.lang)
    context["done"] = request.query_params.get("done")
    return render(request, "careplans/my_home.html", context)


@router.get("/my/plan")
def my_plan(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _self_access(session, actor)
    context = _portal_context(session, acc)
    context["done"] = request.query_params.get("done")
    context["proposals"] = recommendations_for(session, acc, status="proposed")
    context["relapse_plan"] = relapse_plan_for(session, acc)
    return render(request, "careplans/my_plan.html", context)


@router.get("/my/plan/propose")
def my_propose_page(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _self_access(session, actor)
    return render(
        request,
        "careplans/my_propose.html",
        {
            "acc": acc,
            "values": {},
            "errors": {},
            "category_options": [(c.value, c.value) for c in GoalCategory],
        },
    )


@router.post("/my/plan/propose")
def my_propose(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[GoalProposal], FormOf(GoalProposal)],
    actor: PostedBy,
) -> Response:
    acc = _self_access(session, actor, "create")
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    try:
        _, sent = plan_actions.suggest_goal(session, access=acc, data=form.read())
    except InvalidInput as exc:
        return render(
            request,
            "careplans/my_propose.html",
            {
                "acc": acc,
                "values": form.values,
                "errors": exc.errors,
                "category_options": [(c.value, c.value) for c in GoalCategory],
            },
            status_code=422,
        )
    target = _crisis_target(sent) or "/my/plan?done=proposed"
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


@router.post("/my/plan/agree")
def my_agree(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[AgreeIn], FormOf(AgreeIn)],
    actor: PostedBy,
) -> Response:
    acc = _self_access(session, actor, "agree")
    try:
        plan_actions.agree(session, access=acc, revision=form.read().revision)
    except (InvalidInput, Conflict) as exc:
        state, status = _failed(exc, "agree", form.values)
        return render(
            request,
            "careplans/my_plan.html",
            _portal_context(session, acc, state),
            status_code=status,
        )
    return RedirectResponse("/my/plan?done=agreed#agreement", status_code=303)


@router.post("/my/plan/comments")
def my_comment(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[CommentIn], FormOf(CommentIn)],
    actor: PostedBy,
) -> Response:
    acc = _self_access(session, actor, "create")
    target = "/my/plan?done=commented#comments"
    if not already_done(session, form.values, actor):
        try:
            _, sent = plan_actions.comment_on_plan(session, access=acc, body=form.read().body)
        except InvalidInput as exc:
            state, status = _failed(exc, "comment", form.values)
            return render(
                request,
                "careplans/my_plan.html",
                _portal_context(session, acc, state),
                status_code=status,
            )
        target = _crisis_target(sent) or target
        remember(session, form.values, actor, target)
        return RedirectResponse(target, status_code=303)
    return RedirectResponse(target, status_code=303)


def _crisis_target(sent: Any) -> str | None:
    """Words of crisis in what the patient wrote: the crisis resources at once, shown in the
    thread where the team will answer."""
    if sent is not None and sent.crisis:
        return f"/my/messages/{sent.thread.id}?crisis=1"
    return None


@router.post("/my/steps/{step_id}/status")
def my_step_status(
    step_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[StepStatusIn], FormOf(StepStatusIn)],
    actor: PostedBy,
) -> Response:
    acc = _self_access(session, actor, "update")
    back = back_to(form.values, "/my/plan")
    try:
        data = form.read()
        plans.set_step_status(
            session, access=acc, step_id=step_id, status=data.status, version=data.version
        )
    except (InvalidInput, Conflict) as exc:
        state, status = _failed(exc, f"step-{step_id}", form.values)
        return render(
            request,
            "careplans/my_plan.html",
            _portal_context(session, acc, state),
            status_code=status,
        )
    return RedirectResponse(f"{back}?done=step#step-{step_id}", status_code=303)


@router.get("/my/people")
def my_people(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _self_access(session, actor)
    return render(
        request,
        "careplans/my_people.html",
        {
            "acc": acc,
            "people": list_related_persons(session, access=acc),
            "done": request.query_params.get("done"),
        },
    )


# --- family members and carers -------------------------------------------------------------


@router.get("/shared")
def shared_list(request: Request, session: DbSession, actor: WebActor) -> Response:
    if not actor.user.is_related_person:
        raise NotFound(Msg("This page is for family members and carers."))

    people = list_my_patients(session, by=actor.user)
    safety_people = shared_with_me(session, actor.user)
    if len(people) + len(safety_people) == 1:
        target = (
            f"/shared/{people[0].id}" if people else f"/shared/{safety_people[0].id}/safety-plan"
        )
        return RedirectResponse(target, status_code=303)
    links = {
        r.patient_id: r
        for r in session.scalars(
            select(RelatedPerson).where(RelatedPerson.user_id == actor.user.id)
        )
    }
    return render(
        request,
        "careplans/shared_list.html",
        {"people": people, "safety_people": safety_people, "links": links},
    )


@router.get("/shared/{patient_id}")
def shared_plan(patient_id: str, request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = access.patient_for(session, actor.user, patient_id, object_type="CarePlan")
    if acc.relation != access.Relation.related:
        raise NotFound(Msg("No such patient."))
    view = plans.plan_view(session, access=acc)
    return render(
        request,
        "careplans/shared_plan.html",
        {"acc": acc, "patient": acc.patient, "view": view, **header_context(session, acc)},
    )


@router.get("/steps")
def clinician_steps(request: Request, session: DbSession, actor: WebActor) -> Response:
    if actor.user.is_patient:
        return RedirectResponse("/my#steps", status_code=303)

    return render(
        request,
        "careplans/steps.html",
        {
            "rows": plans.my_action_steps(session, by=actor.user),
            "today": org_today(actor.user.organization),
        },
    )

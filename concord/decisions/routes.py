"""Pages: the patient's decisions in the portal (work through an aid at home), the team's view
of a patient's decisions (side by side in a visit, and recording the outcome), and the clinic's
CollaboRATE report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from concord import access
from concord.access import PatientAccess
from concord.actions import decisions as decision_actions
from concord.decisions import reports
from concord.decisions import service as ds
from concord.decisions.aids import ATTRIBUTES
from concord.decisions.labels import ATTRIBUTE_LABELS, MISSING_LABELS, STATUS_LABELS, sure_items
from concord.decisions.schemas import (
    AnsweredIn,
    OutcomeIn,
    QuestionIn,
    StartIn,
    SureIn,
    ValuesIn,
    outcome_form,
    question_form,
    sure_form,
    values_form,
)
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import Msg
from concord.registry.service import open_episode, org_today
from concord.web.deps import Actor, DbSession, Form, PostedBy, WebActor
from concord.web.forms import FormOf, Posted, Reading
from concord.web.idempotency import already_done, remember
from concord.web.patient_header import header_context
from concord.web.templating import render

router = APIRouter()


def _decision_context(
    session: DbSession, acc: PatientAccess, decision: Any, **extra: Any
) -> dict[str, Any]:
    aid = ds.aid_of(decision)
    if aid is None:
        raise NotFound(Msg("This decision aid is no longer offered here."))
    values = list(extra.pop("chosen_values", decision.values))
    context: dict[str, Any] = {
        "acc": acc,
        "patient": acc.patient,
        "decision": decision,
        "aid": aid,
        "attributes": ATTRIBUTES,
        "attribute_labels": ATTRIBUTE_LABELS,
        "status_labels": STATUS_LABELS,
        "missing_labels": MISSING_LABELS,
        # Each SURE item with what it is about (the Decisional Conflict Scale's domain), said
        # beside the item's name when the clinic has not installed the test's own wording.
        "sure_items": [
            (item, text, MISSING_LABELS[ds.SURE_MISSING[item]]) for item, text in sure_items()
        ],
        "chosen_values": values,
        "summary": ds.fit_summary(aid, values),
        "readiness": ds.readiness(decision),
        "errors": {},
        "message": None,
        "form": None,
        "values": {},
        "done": None,
    }
    context.update(extra)
    return context


# The steps of working through a decision, each read with the model its API twin takes.
STEPS: dict[str, type[Any] | Reading] = {
    "values": Reading(ValuesIn, shape=values_form),
    "question": Reading(QuestionIn, shape=question_form),
    "sure": Reading(SureIn, shape=sure_form),
}
# The team also marks a question answered.
TEAM_STEPS: dict[str, type[Any] | Reading] = {**STEPS, "answered": AnsweredIn}


def _work(
    request: Request,
    session: DbSession,
    form: Posted[Any],
    actor: Actor,
    acc: PatientAccess,
    decision_id: str,
    step: str,
    base: str,
    template: str,
    extra: dict[str, Any] | None = None,
) -> Response:
    """One step of working through a decision (values, a question, SURE), from either side."""
    done = already_done(session, form.values, actor)
    crisis_thread = None
    if done:
        return RedirectResponse(done, status_code=303)
    try:
        if step == "values":
            chosen = form.read()
            decision = ds.save_values(
                session,
                access=acc,
                decision_id=decision_id,
                values=chosen.values,
                note=chosen.note,
                leaning=chosen.leaning,
                base_version=chosen.version,
            )
        elif step == "question":
            asked = form.read()
            decision, sent = decision_actions.ask(
                session, access=acc, decision_id=decision_id, text=asked.text
            )
            if sent is not None and sent.crisis:
                crisis_thread = sent.thread.id
        elif step == "sure":
            # sure_form names the page's own fields (sure_<item>) when one is unanswered.
            sure = form.read()
            decision = ds.save_sure(
                session, access=acc, decision_id=decision_id, answers=sure.model_dump()
            )
        elif step == "answered":
            decision = ds.mark_answered(
                session, access=acc, decision_id=decision_id, index=form.read().index
            )
        else:
            raise NotFound(Msg("No such page."))
    except (InvalidInput, Conflict) as exc:
        decision = ds.get_decision(session, access=acc, decision_id=decision_id, audit=False)
        return render(
            request,
            template,
            _decision_context(
                session,
                acc,
                decision,
                errors=exc.errors if isinstance(exc, InvalidInput) else {},
                message=exc.message,
                form=step,
                values={k: v for k, v in form.values.items() if isinstance(v, str)},
                chosen_values=values_form(form.values)["values"]
                if step == "values"
                else decision.values,
                **(extra or {}),
            ),
            status_code=422 if isinstance(exc, InvalidInput) else 409,
        )
    target = f"{base}/{decision.id}?done={step}#{'fit' if step == 'values' else step}"
    if crisis_thread is not None:  # words of crisis: the resources at once, in the thread
        target = f"/my/messages/{crisis_thread}?crisis=1"
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


# --- the patient's portal -----------------------------------------------------------------------


def _programs(session: DbSession, acc: PatientAccess) -> list[str]:
    """The program of the patient's open episode of collaborative care: its aids come first
    (before, aids were offered in alphabetical order, whatever the patient was treated for)."""
    episode = open_episode(session, acc.patient.id)
    return [episode.program] if episode is not None else []


def _own(session: DbSession, actor: Actor, action: str = "read") -> PatientAccess:
    return access.own_record(session, actor.user, action=action, object_type="Decision")


@router.get("/my/decisions")
def my_decisions(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = _own(session, actor)
    return render(
        request,
        "decisions/my_list.html",
        {
            "acc": acc,
            "decisions": ds.list_decisions(session, access=acc),
            "aids": ds.offered_aids(_programs(session, acc)),
            "status_labels": STATUS_LABELS,
        },
    )


@router.post("/my/decisions")
def my_start(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[StartIn], FormOf(StartIn)],
    actor: PostedBy,
) -> Response:
    acc = _own(session, actor, "create")
    decision = ds.start(session, access=acc, aid_id=form.read().aid)
    return RedirectResponse(f"/my/decisions/{decision.id}", status_code=303)


@router.get("/my/decisions/{decision_id}")
def my_decision(
    decision_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _own(session, actor)
    decision = ds.get_decision(session, access=acc, decision_id=decision_id)
    return render(
        request,
        "decisions/my_decision.html",
        _decision_context(
            session,
            acc,
            decision,
            done=request.query_params.get("done"),
            collaborate=reports.collaborate_state(session, decision),
        ),
    )


@router.post("/my/decisions/{decision_id}/collaborate")
def my_collaborate(
    decision_id: str, request: Request, session: DbSession, form: Form, actor: PostedBy
) -> Response:
    acc = _own(session, actor, "update")
    target = reports.start_collaborate(session, access=acc, decision_id=decision_id)
    return RedirectResponse(target, status_code=303)


@router.post("/my/decisions/{decision_id}/{step}")
def my_step(
    decision_id: str,
    step: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[Any], FormOf(STEPS, by="step")],
    actor: PostedBy,
) -> Response:
    acc = _own(session, actor, "update")
    return _work(
        request,
        session,
        form,
        actor,
        acc,
        decision_id,
        step,
        "/my/decisions",
        "decisions/my_decision.html",
        {"collaborate": None},
    )


# --- the care team --------------------------------------------------------------------------------


def _team(session: DbSession, actor: Actor, patient_id: str, action: str = "read") -> PatientAccess:
    return access.team_access(
        session, actor.user, patient_id, action=action, object_type="Decision"
    )


def _team_extra(session: DbSession, acc: PatientAccess) -> dict[str, Any]:
    on = org_today(session, acc.patient.organization_id)  # the clinic's date, not the server's
    extra: dict[str, Any] = {
        **header_context(session, acc, tab="decisions"),
        "today": on,
        "clinicians": reports.team_clinicians(session, acc.patient.id),
        # The plan's current treatments, beside the decision that may add one.
        "treatments": ds.treatments_in_plan(session, acc),
    }
    return extra


@router.get("/patients/{patient_id}/decisions")
def team_decisions(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team(session, actor, patient_id)
    return render(
        request,
        "decisions/team_list.html",
        {
            "acc": acc,
            "patient": acc.patient,
            "decisions": ds.list_decisions(session, access=acc),
            "aids": ds.offered_aids(_programs(session, acc)),
            "status_labels": STATUS_LABELS,
            **_team_extra(session, acc),
        },
    )


@router.post("/patients/{patient_id}/decisions")
def team_start(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[StartIn], FormOf(StartIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "create")
    decision = ds.start(session, access=acc, aid_id=form.read().aid)
    return RedirectResponse(f"/patients/{acc.patient.id}/decisions/{decision.id}", status_code=303)


@router.get("/patients/{patient_id}/decisions/{decision_id}")
def team_decision(
    patient_id: str, decision_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team(session, actor, patient_id)
    decision = ds.get_decision(session, access=acc, decision_id=decision_id)
    return render(
        request,
        "decisions/team_decision.html",
        _decision_context(
            session,
            acc,
            decision,
            done=request.query_params.get("done"),
            **_team_extra(session, acc),
        ),
    )


@router.post("/patients/{patient_id}/decisions/{decision_id}/record")
def team_record(
    patient_id: str,
    decision_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[OutcomeIn], FormOf(OutcomeIn, shape=outcome_form)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    try:
        recorded = form.read()
        decision = ds.record_outcome(
            session,
            access=acc,
            decision_id=decision_id,
            outcome=recorded.to_outcome(),
            base_version=recorded.version,
        )
    except (InvalidInput, Conflict) as exc:
        decision = ds.get_decision(session, access=acc, decision_id=decision_id, audit=False)
        return render(
            request,
            "decisions/team_decision.html",
            _decision_context(
                session,
                acc,
                decision,
                errors=exc.errors if isinstance(exc, InvalidInput) else {},
                message=exc.message,
                form="record",
                values={k: v for k, v in form.values.items() if isinstance(v, str)},
                **_team_extra(session, acc),
            ),
            status_code=422 if isinstance(exc, InvalidInput) else 409,
        )
    step = "recorded_existing" if getattr(decision, "reused_treatment", False) else "recorded"
    target = f"/patients/{acc.patient.id}/decisions/{decision.id}?done={step}"
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


@router.post("/patients/{patient_id}/decisions/{decision_id}/{step}")
def team_step(
    patient_id: str,
    decision_id: str,
    step: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[Any], FormOf(TEAM_STEPS, by="step")],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    return _work(
        request,
        session,
        form,
        actor,
        acc,
        decision_id,
        step,
        f"/patients/{acc.patient.id}/decisions",
        "decisions/team_decision.html",
        _team_extra(session, acc),
    )


# --- the clinic's CollaboRATE report ------------------------------------------------------------


@router.get("/decisions/collaborate")
def collaborate_report(request: Request, session: DbSession, actor: WebActor) -> Response:
    if not (actor.user.is_clinician or actor.user.is_admin):
        raise NotFound(Msg("No such page."))
    return render(
        request,
        "decisions/collaborate.html",
        {"report": reports.collaborate_report(session, by=actor.user)},
    )

"""Pages: the caseload, the program view, the month's minutes, the consultant's review queue,
a patient's collaborative-care tab (episodes, contacts, reviews, recommendations, tasks), the
relapse-prevention plan, and my tasks. The CSV exports also accept an API token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from concord import access, disclosure
from concord.access import PatientAccess, parse_id
from concord.accounts.organizations import list_clinics
from concord.actions import recommendation
from concord.actions import registry as registry_actions
from concord.dates import score
from concord.ehr import service as ehr
from concord.errors import Conflict, InvalidInput, PermissionDenied
from concord.i18n import Msg, translate
from concord.patients.service import members_of_patient
from concord.registry import caseload as cl
from concord.registry import reports
from concord.registry import reviews as rv
from concord.registry import service as reg
from concord.registry import tasks as tk
from concord.registry.labels import LABELS
from concord.registry.models import (
    CLOSED_STATUSES,
    ContactKind,
    ContactMode,
    EpisodeStatus,
    Program,
    RecommendationKind,
)
from concord.registry.rules import FLAG_CODES
from concord.registry.schemas import (
    ContactBody,
    DecisionIn,
    DiagnosisIn,
    EnrolIn,
    PatientViewIn,
    RelapsePlanIn,
    ReviewBody,
    ReviewRequestIn,
    StatusIn,
    TaskDoneIn,
    TaskIn,
    VoidContactIn,
)
from concord.safety.plans import content_from_form, empty_content
from concord.social.labels import DOMAIN_LABELS
from concord.social.measures import social_figures
from concord.web.deps import Actor, ApiActor, DbSession, PostedBy, WebActor
from concord.web.exports import csv_response
from concord.web.forms import FormOf, Posted, back_to
from concord.web.idempotency import already_done, remember
from concord.web.patient_header import header_context
from concord.web.templating import render

router = APIRouter()


def label(value: str, lang: str) -> str:
    text = LABELS.get(value)
    return translate(text, lang) if text else value


# --- the caseload -----------------------------------------------------------------------------


def _view(session: DbSession, actor: Actor, params: dict[str, Any], *, save: bool) -> cl.View:
    """The view asked for in the URL, over the one this person saved; remembered when asked
    for (the page's form), so the page opens the same way next time."""
    view = cl.view_from(params, cl.get_saved_view(session, actor.user))
    if save and any(
        k in params for k in ("sort", "descending", "flags", "programs", "statuses", "columns")
    ):
        cl.save_view(session, actor.user, view)
    return view


def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key in request.query_params.keys():
        values = request.query_params.getlist(key)
        params[key] = values if key in ("flags", "programs", "statuses", "columns") else values[-1]
    return params


def _scope(request: Request, actor: Actor) -> str:
    scope = request.query_params.get("scope")
    if scope in ("mine", "teams"):
        return scope
    return "mine" if actor.user.role == "care_manager" else "teams"


@router.get("/registry")
def caseload_page(request: Request, session: DbSession, actor: WebActor) -> Response:
    if not actor.user.is_clinician:
        raise PermissionDenied(Msg("The registry is for clinicians."))
    params = _params(request)
    view = _view(session, actor, params, save=True)
    scope = _scope(request, actor)
    rows, shown = cl.list_caseload(session, by=actor.user, scope=scope, view=view)
    counts = {code: sum(1 for r in rows if code in r.flag_codes) for code in FLAG_CODES}
    instruments = cl.instruments_for(shown)
    return render(
        request,
        "registry/caseload.html",
        {
            "rows": shown,
            "total": len(rows),
            "view": view,
            "scope": scope,
            "counts": counts,
            "flag_codes": FLAG_CODES,
            "programs": [p.value for p in Program],
            "statuses": ["awaiting_first_contact", "active", "relapse_prevention"],
            "sorts": cl.sorts_for(cl.instruments_for(rows)),
            "sort_labels": cl.SORT_LABELS,
            "columns": cl.COLUMNS,
            "instruments": instruments,
            "instrument_keys": cl.INSTRUMENT_KEYS,
            "query": request.url.query,
            "today_date": reg.org_today(session, actor.user.organization_id),
            # The reader is on every listed patient's care team: entitled to know.
            "withheld": disclosure.withheld_in_request(session),
        },
    )


CASELOAD_COLUMNS = [
    "patient",
    "mrn",
    "program",
    "episode_status",
    "started_on",
    "weeks",
    *(
        f"{key}_{part}"
        for key in cl.INSTRUMENT_KEYS.values()
        for part in ("first", "first_on", "latest", "latest_on", "change_percent")
    ),
    "status",
    "last_contact",
    "next_contact_due",
    "contacts",
    "open_alerts",
    "review",
    "plan_review_due",
    "flags",
]


def _iso(value: Any) -> str:
    return value.isoformat() if value else ""


@router.get("/registry/caseload.csv")
def caseload_csv(request: Request, session: DbSession, actor: ApiActor) -> Response:
    """What the caseload page shows (the same view), as CSV; with an API token, the token's
    owner's caseload."""
    if not actor.user.is_clinician:
        raise PermissionDenied(Msg("The registry is for clinicians."))
    view = _view(session, actor, _params(request), save=False)
    _, shown = cl.list_caseload(session, by=actor.user, scope=_scope(request, actor), view=view)
    out = []
    for r in shown:

        def val(m: Any, which: str) -> Any:
            point = getattr(m, which) if m else None
            return score(point.value) if point else ""

        def on(m: Any, which: str) -> str:
            point = getattr(m, which) if m else None
            return _iso(point.on) if point else ""

        scores: dict[str, Any] = {}
        for code, key in cl.INSTRUMENT_KEYS.items():
            m = r.measures.get(code)
            scores |= {
                f"{key}_first": val(m, "first"),
                f"{key}_first_on": on(m, "first"),
                f"{key}_latest": val(m, "latest"),
                f"{key}_latest_on": on(m, "latest"),
                f"{key}_change_percent": m.change_percent
                if m and m.change_percent is not None
                else "",
            }
        out.append(
            {
                "patient": r.patient.display_name,
                "mrn": r.patient.mrn,
                "program": r.episode.program,
                "episode_status": r.episode.status,
                "started_on": _iso(r.episode.started_on),
                "weeks": r.weeks,
                **scores,
                "status": r.status,
                "last_contact": _iso(r.last_contact),
                "next_contact_due": _iso(r.next_due),
                "contacts": r.contacts,
                "open_alerts": r.open_alerts,
                "review": r.review,
                "plan_review_due": _iso(r.plan_review_on),
                "flags": " ".join(sorted(r.flag_codes)),
            }
        )
    return csv_response(
        out, CASELOAD_COLUMNS, "caseload.csv", session=session, lang=request.state.lang
    )


# --- the program view and the minutes ------------------------------------------------------------


def _clinic(request: Request) -> Any:
    raw = request.query_params.get("clinic")
    if not raw:
        return None
    cid = parse_id(raw)
    if cid is None:
        raise InvalidInput.field("clinic", Msg("must be one of this organization's clinics"))
    return cid


def _clinics(session: DbSession, actor: Actor) -> list[tuple[str, str]]:
    return [
        (str(c.id), c.name)
        for c in list_clinics(session, organization_id=actor.user.organization_id)
    ]


@router.get("/registry/program")
def program_page(request: Request, session: DbSession, actor: WebActor) -> Response:
    view = reports.program_view(session, by=actor.user, clinic_id=_clinic(request))
    return render(
        request,
        "registry/program.html",
        {
            "p": view,
            # Social needs (issue 23): screening, positive domains and the referral loop.
            "social": social_figures(session, by=actor.user, clinic_id=_clinic(request)),
            "domain_labels": DOMAIN_LABELS,
            "clinics": _clinics(session, actor),
            "clinic": request.query_params.get("clinic", ""),
        },
    )


@router.get("/registry/program/social-figures.csv")
def program_social_csv(request: Request, session: DbSession, actor: ApiActor) -> Response:
    """The program view's social-needs figures as CSV: one row per figure (no patient)."""
    figures = social_figures(session, by=actor.user, clinic_id=_clinic(request))
    rows = [
        {"figure": name, "value": "" if value is None else value} for name, value in figures.rows()
    ]
    return csv_response(
        rows, ["figure", "value"], "social-needs.csv", session=session, lang=request.state.lang
    )


@router.get("/registry/minutes")
def minutes_page(request: Request, session: DbSession, actor: WebActor) -> Response:
    month = reports.parse_month(
        request.query_params.get("month"), reg.org_today(session, actor.user.organization_id)
    )
    report = reports.minutes_report(session, by=actor.user, month=month, clinic_id=_clinic(request))
    return render(
        request,
        "registry/minutes.html",
        {
            "report": report,
            "month": month.strftime("%Y-%m"),
            "clinics": _clinics(session, actor),
            "clinic": request.query_params.get("clinic", ""),
        },
    )


MINUTES_COLUMNS = [
    "month",
    "patient",
    "mrn",
    "clinic",
    "program",
    "episode_started",
    "month_kind",
    "care_manager_minutes",
    "consultant_minutes",
    "other_minutes",
    "contacts",
    "codes",
]


@router.get("/registry/minutes.csv")
def minutes_csv(request: Request, session: DbSession, actor: ApiActor) -> Response:
    month = reports.parse_month(
        request.query_params.get("month"), reg.org_today(session, actor.user.organization_id)
    )
    report = reports.minutes_report(session, by=actor.user, month=month, clinic_id=_clinic(request))
    rows = [
        {
            "month": month.strftime("%Y-%m"),
            "patient": r.patient_name,
            "mrn": r.mrn,
            "clinic": r.clinic,
            "program": r.program,
            "episode_started": _iso(r.episode_started),
            "month_kind": "initial" if r.initial else "subsequent",
            "care_manager_minutes": r.care_manager_minutes,
            "consultant_minutes": r.consultant_minutes,
            "other_minutes": r.other_minutes,
            "contacts": r.contacts,
            "codes": " ".join(f"{c}x{n}" for c, n in r.codes.codes),
        }
        for r in report.rows
    ]
    return csv_response(
        rows,
        MINUTES_COLUMNS,
        f"minutes-{month.strftime('%Y-%m')}.csv",
        session=session,
        lang=request.state.lang,
    )


# --- the consultant's review queue ---------------------------------------------------------------


@router.get("/registry/reviews")
def review_queue(request: Request, session: DbSession, actor: WebActor) -> Response:
    if not actor.user.is_clinician:
        raise PermissionDenied(Msg("The review queue is for clinicians."))
    return render(request, "registry/queue.html", {"items": rv.queue(session, by=actor.user)})


# --- one patient's collaborative care ------------------------------------------------------------


def _team(session: DbSession, actor: Actor, patient_id: str, action: str = "read") -> PatientAccess:
    return access.team_access(session, actor.user, patient_id, action=action, object_type="Episode")


def _patient_context(
    session: DbSession, acc: PatientAccess, lang: str, **extra: Any
) -> dict[str, Any]:
    on = reg.org_today(session, acc.patient.organization_id)
    # The open episode and its scores as this reader may see them (a Part 2 program's episode
    # or the AUDIT-C without a permitting consent are withheld: ADR 0020, 0021).
    episodes = reg.episodes_for(session, acc)
    episode = next((e for e in episodes if e.ended_on is None), None)
    row = None
    if episode is not None:
        hidden = cl.withheld_instruments(session, acc, episode.program)
        rows = cl.build_rows(
            session,
            [(episode, acc.patient)],
            today=on,
            tz=acc.by.organization.timezone,
            withheld={acc.patient.id: hidden},
        )
        row = rows[0] if rows else None
    members = members_of_patient(session, patient_id=acc.patient.id)
    month = on.replace(day=1)
    contacts = reg.contacts_for(session, acc)
    month_cm = sum(
        c.minutes
        for c in contacts
        if c.voided_at is None
        and c.occurred_on >= month
        and c.role == "care_manager"
        and episode is not None
        and c.episode_id == episode.id
    )
    context: dict[str, Any] = {
        "acc": acc,
        "patient": acc.patient,
        **header_context(session, acc, tab="registry"),
        "episode": episode,
        "episodes": episodes,
        "changes": reg.episode_changes(session, episode.id) if episode else [],
        # The EHR's diagnoses this reader may see, to choose the qualifying one (issue 20).
        "diagnosis_options": [
            (d.ref, f"{d.code} {d.display}".strip())
            for d in (ehr.imported_record(session, access=acc).diagnoses if episode else [])
            if d.code
        ],
        "row": row,
        "contacts": contacts,
        "month_minutes": month_cm,
        "reviews": rv.reviews_for(session, acc),
        "recommendations": rv.recommendations_for(session, acc),
        "tasks": tk.tasks_for_patient(session, acc),
        "relapse_plan": reg.relapse_plan_for(session, acc),
        "members": members,
        "member_options": [
            (str(m.user_id), f"{m.user.name} ({m.role.replace('_', ' ')})") for m in members
        ],
        "consultant_options": [
            (str(m.user_id), m.user.name) for m in members if m.role == "psychiatric_consultant"
        ],
        "program_options": [(p.value, label(p.value, lang)) for p in Program],
        "kind_options": [(k.value, label(k.value, lang)) for k in ContactKind],
        "mode_options": [(m.value, label(m.value, lang)) for m in ContactMode],
        "status_options": [
            (s.value, label(s.value, lang))
            for s in reg.TRANSITIONS.get(EpisodeStatus(episode.status), set())
        ]
        if episode
        else [],
        "closing": [s.value for s in CLOSED_STATUSES],
        "rec_options": [(k.value, label(k.value, lang)) for k in RecommendationKind],
        "is_consultant": acc.by.role == "psychiatric_consultant",
        "today": on,
        "errors": {},
        "values": {},
        "message": None,
        "form": None,
        "done": None,
    }
    context.update(extra)
    return context


def _refused(
    request: Request,
    session: DbSession,
    acc: PatientAccess,
    exc: InvalidInput | Conflict,
    form: dict[str, Any],
    which: str,
) -> Response:
    return render(
        request,
        "registry/patient.html",
        _patient_context(
            session,
            acc,
            request.state.lang,
            errors=exc.errors if isinstance(exc, InvalidInput) else {},
            message=exc.message,
            values=form,
            form=which,
        ),
        status_code=422 if isinstance(exc, InvalidInput) else 409,
    )


def _back(acc: PatientAccess, done: str, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(
        f"/patients/{acc.patient.id}/registry?done={done}{anchor}", status_code=303
    )


@router.get("/patients/{patient_id}/registry")
def patient_page(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team(session, actor, patient_id)
    return render(
        request,
        "registry/patient.html",
        _patient_context(session, acc, request.state.lang, done=request.query_params.get("done")),
    )


@router.post("/patients/{patient_id}/registry/enroll")
def enroll(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[EnrolIn], FormOf(EnrolIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "create")
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    try:
        data = form.read()
        registry_actions.enroll(
            session,
            access=acc,
            data=reg.Enrolment(
                program=data.program,
                started_on=data.started_on,
                care_manager_id=data.care_manager_id,
                consultant_id=data.consultant_id,
            ),
        )
    except (InvalidInput, Conflict) as exc:
        return _refused(request, session, acc, exc, form.values, "enroll")
    target = f"/patients/{acc.patient.id}/registry?done=enrolled"
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


@router.post("/patients/{patient_id}/registry/episodes/{episode_id}/status")
def episode_status(
    patient_id: str,
    episode_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[StatusIn], FormOf(StatusIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    try:
        data = form.read()
        episode = registry_actions.change_status(
            session,
            access=acc,
            episode_id=episode_id,
            status=data.status,
            reason=data.reason,
            version=data.version,
        )
    except (InvalidInput, Conflict) as exc:
        return _refused(request, session, acc, exc, form.values, "status")
    if episode.status == EpisodeStatus.completed:
        # Completing an episode prompts the relapse-prevention plan.
        return RedirectResponse(
            f"/patients/{acc.patient.id}/relapse-plan?edit=1&from=completed", status_code=303
        )
    return _back(acc, "status")


@router.post("/patients/{patient_id}/registry/episodes/{episode_id}/diagnosis")
def episode_diagnosis(
    patient_id: str,
    episode_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[DiagnosisIn], FormOf(DiagnosisIn)],
    actor: PostedBy,
) -> Response:
    """An imported EHR diagnosis becomes the episode's qualifying diagnosis (issue 20)."""
    acc = _team(session, actor, patient_id, "update")
    try:
        data = form.read()
        registry_actions.set_qualifying_diagnosis(
            session,
            access=acc,
            episode_id=episode_id,
            diagnosis_ref=data.diagnosis,
            version=data.version,
        )
    except (InvalidInput, Conflict) as exc:
        return _refused(request, session, acc, exc, form.values, "diagnosis")
    return _back(acc, "diagnosis")


@router.post("/patients/{patient_id}/registry/contacts")
def log_contact(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ContactBody], FormOf(ContactBody)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "create")
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    try:
        data = form.read()
        registry_actions.log_contact(
            session,
            access=acc,
            data=reg.ContactIn(
                kind=data.kind,
                mode=data.mode,
                minutes=data.minutes,
                occurred_on=data.occurred_on,
                note=data.note,
                user_id=data.user_id,
            ),
        )
    except (InvalidInput, Conflict) as exc:
        return _refused(request, session, acc, exc, form.values, "contact")
    target = f"/patients/{acc.patient.id}/registry?done=contact#contacts"
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


@router.post("/patients/{patient_id}/registry/contacts/{contact_id}/void")
def void_contact(
    patient_id: str,
    contact_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[VoidContactIn], FormOf(VoidContactIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    try:
        data = form.read()
        registry_actions.void_contact(
            session, access=acc, contact_id=contact_id, reason=data.reason
        )
    except (InvalidInput, Conflict) as exc:
        return _refused(request, session, acc, exc, form.values, "void")
    return _back(acc, "voided", "#contacts")


@router.post("/patients/{patient_id}/registry/reviews")
def request_review(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ReviewRequestIn], FormOf(ReviewRequestIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "create")
    try:
        data = form.read()
        rv.request_review(
            session, access=acc, question=data.question, consultant_id=data.consultant_id
        )
    except (InvalidInput, Conflict) as exc:
        return _refused(request, session, acc, exc, form.values, "request")
    return _back(acc, "review_requested", "#reviews")


@router.post("/patients/{patient_id}/registry/reviews/record")
def record_review(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ReviewBody], FormOf(ReviewBody)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    try:
        data = form.read()
        registry_actions.record_review(
            session,
            access=acc,
            review_id=data.review_id,
            data=rv.ReviewIn(
                minutes=data.minutes,
                summary=data.summary,
                recommendations=[
                    rv.RecommendationIn(kind=r.kind, text=r.text) for r in data.recommendations
                ],
                reviewed_on=data.reviewed_on,
            ),
        )
    except (InvalidInput, Conflict) as exc:
        return _refused(request, session, acc, exc, form.values, "review")
    target = f"/patients/{acc.patient.id}/registry?done=reviewed#reviews"
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


@router.post("/patients/{patient_id}/registry/recommendations/{rec_id}")
def decide(
    patient_id: str,
    rec_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[DecisionIn], FormOf(DecisionIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    try:
        data = form.read()
        recommendation.decide(
            session,
            access=acc,
            rec_id=rec_id,
            accept=data.accept,
            reason=data.reason,
            version=data.version,
        )
    except (InvalidInput, Conflict) as exc:
        return _refused(request, session, acc, exc, form.values, f"rec-{rec_id}")
    return _back(acc, "decided", "#recommendations")


@router.post("/patients/{patient_id}/tasks")
def create_task(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[TaskIn], FormOf(TaskIn)],
    actor: PostedBy,
) -> Response:
    acc = _team(session, actor, patient_id, "create")
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    try:
        data = form.read()
        tk.create_task(
            session,
            access=acc,
            owner_id=data.owner_id,
            title=data.title,
            due_on=data.due_on,
            priority=data.priority,
            detail=data.detail,
        )
    except InvalidInput as exc:
        return _refused(request, session, acc, exc, form.values, "task")
    target = f"/patients/{acc.patient.id}/registry?done=task#tasks"
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


# --- tasks ---------------------------------------------------------------------------------------


@router.get("/tasks")
def my_tasks(request: Request, session: DbSession, actor: WebActor) -> Response:
    include_done = request.query_params.get("done") == "1"
    return render(
        request,
        "registry/tasks.html",
        {
            "rows": tk.my_tasks(session, actor.user, include_done=include_done),
            "include_done": include_done,
            "today": reg.org_today(session, actor.user.organization_id),
        },
    )


@router.post("/tasks/{task_id}/done")
def task_done(
    task_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[TaskDoneIn], FormOf(TaskDoneIn)],
    actor: PostedBy,
) -> Response:
    try:
        tk.complete_task(session, by=actor.user, task_id=task_id, note=form.read().note)
    except Conflict:
        pass  # already closed: nothing more to do
    return RedirectResponse(back_to(form.values, "/tasks"), status_code=303)


# --- relapse-prevention plan ---------------------------------------------------------------------


def _relapse_context(
    session: DbSession, acc: PatientAccess, lang: str, **extra: Any
) -> dict[str, Any]:
    plan = reg.relapse_plan_for(session, acc)
    sections = reg.relapse_sections()
    context: dict[str, Any] = {
        "acc": acc,
        "patient": acc.patient,
        **header_context(session, acc, tab="registry"),
        "plan": plan,
        "content": plan.content if plan else empty_content(sections),
        "sections": sections,
        "crisis": [],
        "base_version": plan.version if plan else 0,
        "errors": {},
        "message": None,
        "editing": False,
        "done": None,
    }
    context.update(extra)
    return context


def relapse_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The relapse plan's page: each section's fields, gathered into `content`."""
    return {**form, "content": content_from_form(form, reg.relapse_sections())}


RelapseForm = Annotated[Posted[RelapsePlanIn], FormOf(RelapsePlanIn, shape=relapse_form)]


def _save_relapse(
    request: Request,
    session: DbSession,
    form: Posted[RelapsePlanIn],
    actor: Actor,
    acc: PatientAccess,
    template: str,
    target: str,
) -> Response:
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    raw = relapse_form(form.values)["content"]
    try:
        data = form.read()
        reg.save_relapse_plan(
            session,
            access=acc,
            content=data.content,
            reason=data.reason,
            base_version=data.base_version,
        )
    except (InvalidInput, Conflict) as exc:
        return render(
            request,
            template,
            _relapse_context(
                session,
                acc,
                request.state.lang,
                content=raw,
                editing=True,
                errors=exc.errors if isinstance(exc, InvalidInput) else {},
                message=exc.message,
                conflict=isinstance(exc, Conflict),
                reason=form.typed("reason"),
            ),
            status_code=422 if isinstance(exc, InvalidInput) else 409,
        )
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


@router.get("/patients/{patient_id}/relapse-plan")
def team_relapse(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team(session, actor, patient_id)
    return render(
        request,
        "registry/relapse.html",
        _relapse_context(
            session,
            acc,
            request.state.lang,
            editing=request.query_params.get("edit") == "1",
            done=request.query_params.get("done") or request.query_params.get("from"),
        ),
    )


@router.post("/patients/{patient_id}/relapse-plan")
def team_relapse_save(
    patient_id: str, request: Request, session: DbSession, form: RelapseForm, actor: PostedBy
) -> Response:
    acc = _team(session, actor, patient_id, "update")
    return _save_relapse(
        request,
        session,
        form,
        actor,
        acc,
        "registry/relapse.html",
        f"/patients/{acc.patient.id}/relapse-plan?done=saved",
    )


@router.get("/my/relapse-plan")
def my_relapse(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = access.own_record(session, actor.user, object_type="RelapsePlan")
    return render(
        request,
        "registry/my_relapse.html",
        _relapse_context(
            session,
            acc,
            request.state.lang,
            editing=request.query_params.get("edit") == "1",
            done=request.query_params.get("done"),
        ),
    )


@router.post("/my/relapse-plan")
def my_relapse_save(
    request: Request, session: DbSession, form: RelapseForm, actor: PostedBy
) -> Response:
    acc = access.own_record(session, actor.user, action="update", object_type="RelapsePlan")
    return _save_relapse(
        request,
        session,
        form,
        actor,
        acc,
        "registry/my_relapse.html",
        "/my/relapse-plan?done=saved",
    )


@router.post("/my/recommendations/{rec_id}")
def my_view_of_recommendation(
    rec_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[PatientViewIn], FormOf(PatientViewIn)],
    actor: PostedBy,
) -> Response:
    acc = access.own_record(session, actor.user, action="update", object_type="Recommendation")
    data = form.read()
    rv.patient_view(session, access=acc, rec_id=rec_id, agree=data.agree, reason=data.reason)
    return RedirectResponse("/my/plan?done=view#proposals", status_code=303)

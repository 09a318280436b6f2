"""Pages: my patients, registering a patient, a patient's overview, care team and family."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from concord import access
from concord.access import PatientAccess
from concord.accounts.models import Organization, Role
from concord.accounts.organizations import list_clinics
from concord.actions.timeline import timeline_for
from concord.careplans import service as plans
from concord.dates import org_today
from concord.ehr import service as ehr
from concord.errors import InvalidInput, PermissionDenied
from concord.i18n import Msg
from concord.measures.routes import chart_data, progress_card
from concord.patients import service as patients
from concord.patients.models import AdministrativeGender, CareTeam, Patient
from concord.patients.schemas import ConsentIn, PatientIn, RelatedPersonIn, TeamMemberIn
from concord.registry.service import episodes_for, judged_by
from concord.safety.risk import risks_for
from concord.safety.rulesets import rules_for
from concord.web.deps import Actor, DbSession, Form, PostedBy, WebActor
from concord.web.forms import FormOf, Posted
from concord.web.idempotency import already_done, remember
from concord.web.patient_header import age_on, header_context, withheld_context
from concord.web.templating import render

router = APIRouter()

LIST_FILTERS = (
    "all",
    "at_risk",
    "no_plan",
    "draft",
    "review_due",
    "review_overdue",
    "awaiting_agreement",
)


def _matches(show: str, summary: plans.PlanSummary, risk: Any = None) -> bool:
    if show == "at_risk":
        return risk is not None
    if show == "no_plan":
        return summary.plan is None
    if show == "draft":
        return summary.plan is not None and summary.plan.status == "draft"
    if show == "review_due":
        return summary.review == "due"
    if show == "review_overdue":
        return summary.review == "overdue"
    if show == "awaiting_agreement":
        return summary.agreement is not None and not summary.agreement.agreed
    return True


@router.get("/patients")
def my_patients(request: Request, session: DbSession, actor: WebActor) -> Response:
    if actor.user.is_patient:
        return RedirectResponse("/my", status_code=303)
    if actor.user.is_related_person:
        return RedirectResponse("/shared", status_code=303)
    show = request.query_params.get("show", "all")
    if show not in LIST_FILTERS:
        show = "all"
    rows: list[Any] = []
    counts = dict.fromkeys(LIST_FILTERS, 0)
    on = org_today(actor.user.organization)
    if actor.user.is_clinician:
        mine = patients.list_my_patients(session, by=actor.user)
        summaries = plans.plan_summaries(session, mine, on)
        risks = risks_for(session, actor.user, mine)
        for patient in mine:
            summary = summaries[patient.id]
            risk = risks.get(patient.id)
            for key in LIST_FILTERS:
                counts[key] += _matches(key, summary, risk)
            if _matches(show, summary, risk):
                rows.append(
                    {
                        "patient": patient,
                        "summary": summary,
                        "age": age_on(patient.birth_date, on),
                        "risk": risk,
                    }
                )
        # Patients at risk first, most serious first; then the usual order.
        rules = rules_for(session, actor.user.organization_id)
        rows.sort(key=lambda r: -rules.rank(r["risk"].tier) if r["risk"] else 0)
    return render(
        request,
        "patients/list.html",
        {
            "rows": rows,
            "show": show,
            "counts": counts,
            "filters": LIST_FILTERS,
            "is_clinician": actor.user.is_clinician,
        },
    )


# --- registering -----------------------------------------------------------------------------


def _register_context(session: DbSession, actor: Actor, **extra: Any) -> dict[str, Any]:
    clinics = list_clinics(session, organization_id=actor.user.organization_id)
    context: dict[str, Any] = {
        "clinic_options": [(str(c.id), c.name) for c in clinics],
        "gender_options": [(g.value, g.value) for g in AdministrativeGender],
        "values": {"clinic_id": str(actor.user.clinic_id or "")},
        "errors": {},
    }
    context.update(extra)
    return context


@router.get("/patients/new")
def register_page(request: Request, session: DbSession, actor: WebActor) -> Response:
    if not (actor.user.is_clinician or actor.user.can_administer):
        raise PermissionDenied(Msg("Only clinicians and administrators can register patients."))
    return render(request, "patients/register.html", _register_context(session, actor))


@router.post("/patients/new")
def register(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[PatientIn], FormOf(PatientIn)],
    actor: PostedBy,
) -> Response:
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    try:
        data = form.read()
        org = session.get(Organization, actor.user.organization_id)
        assert org is not None
        patient, password = patients.register_patient(
            session,
            by=actor.user,
            organization=org,
            data=data.to_new_patient(),
            portal_email=data.portal_email,
        )
    except InvalidInput as exc:
        return render(
            request,
            "patients/register.html",
            _register_context(session, actor, values=form.values, errors=exc.errors),
            status_code=422,
        )
    target = (
        f"/patients/{patient.id}" if actor.user.is_clinician else (f"/admin/patients/{patient.id}")
    )
    remember(session, form.values, actor, target)
    return render(
        request,
        "patients/registered.html",
        {
            "patient": patient,
            "password": password,
            "portal_email": data.portal_email,
            "target": target,
        },
    )


# --- one patient -----------------------------------------------------------------------------


def _overview(session: DbSession, actor: Actor, patient_id: str, lang: str) -> dict[str, Any]:
    # Patients use their own portal; family members see only the shared plan.
    acc = access.team_access(session, actor.user, patient_id)
    team, members = patients.read_care_team(session, access=acc)
    summary = plans.plan_summaries(session, [acc.patient], org_today(actor.user.organization))[
        acc.patient.id
    ]
    imported = ehr.imported_record(session, access=acc)
    episodes = episodes_for(session, acc)
    card = progress_card(session, acc, lang, judged=judged_by(session, acc, episodes))
    main = card["main_progress"]
    if main is not None and imported.scores:
        # The EHR's scores of the same instrument on its chart, marked imported.
        code = main.instrument.code
        card["chart_json"] = {
            code: chart_data(main, lang, [s for s in imported.scores if s.instrument == code])
        }
    return {
        "acc": acc,
        "patient": acc.patient,
        "team": team,
        "members": members,
        "summary": summary,
        "related": patients.list_related_persons(session, access=acc),
        **card,
        **header_context(session, acc, tab="overview"),
        **withheld_context(session, acc),
        # What the clinic's EHR sent (issue 20): diagnoses, PHQ-9 totals as sent, encounters.
        "imported": imported,
        # The imported diagnoses that qualify an episode of care this reader may see.
        "qualifying_refs": {
            str(e.diagnosis_resource_id) for e in episodes if e.diagnosis_resource_id is not None
        },
    }


@router.get("/patients/{patient_id}")
def patient_page(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    context = _overview(session, actor, patient_id, request.state.lang)
    context["done"] = request.query_params.get("done")
    return render(request, "patients/overview.html", context)


@router.get("/patients/{patient_id}/timeline")
def timeline_page(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    """Visits and encounters: Concord's visits and contacts and the EHR's encounters, newest
    first, each marked by where it comes from (the JSON twin: /api/v1/patients/{id}/timeline)."""
    acc = access.team_access(session, actor.user, patient_id)
    return render(
        request,
        "patients/timeline.html",
        {
            "acc": acc,
            "patient": acc.patient,
            "entries": timeline_for(session, access=acc),
            **header_context(session, acc, tab="timeline"),
            **withheld_context(session, acc),
        },
    )


def _team_context(
    session: DbSession, actor: Actor, patient: Patient, *, admin_view: bool, **extra: Any
) -> dict[str, Any]:
    from sqlalchemy import select

    team = session.scalar(select(CareTeam).where(CareTeam.patient_id == patient.id))
    assert team is not None
    members = patients.current_members(session, team_id=team.id)
    lead = next((m for m in members if m.is_lead), None)
    can_manage = actor.user.can_administer or (lead is not None and lead.user_id == actor.user.id)
    on_team = {m.user_id for m in members}
    candidates = [
        u
        for u in patients.list_clinicians(session, organization_id=patient.organization_id)
        if u.id not in on_team
    ]
    context: dict[str, Any] = {
        "patient": patient,
        "team": team,
        "members": members,
        "can_manage": can_manage,
        "team_candidate_options": [
            (str(u.id), f"{u.name} ({u.role.replace('_', ' ')})") for u in candidates
        ],
        "team_role_options": [(r.value, r.value) for r in Role if r.is_clinical],
        "admin_view": admin_view,
        "base": f"/admin/patients/{patient.id}" if admin_view else f"/patients/{patient.id}/team",
        "errors": {},
        "tab": "team",
    }
    context.update(extra)
    return context


@router.get("/patients/{patient_id}/team")
def team_page(patient_id: str, request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = access.team_access(session, actor.user, patient_id, object_type="CareTeam")
    patients.read_care_team(session, access=acc)
    return render(
        request,
        "patients/team.html",
        _team_context(
            session,
            actor,
            acc.patient,
            admin_view=False,
            done=request.query_params.get("done"),
            acc=acc,
            **header_context(session, acc, tab="team"),
        ),
    )


def _team_patient(
    session: DbSession, actor: Actor, patient_id: str, admin_view: bool
) -> tuple[Patient, PatientAccess | None]:
    if admin_view:
        return patients.get_patient_for_admin(session, by=actor.user, patient_id=patient_id), None
    acc = access.team_access(
        session, actor.user, patient_id, action="update", object_type="CareTeam"
    )
    return acc.patient, acc


def _uuid(value: Any, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput.field(field, Msg("choose someone from the list")) from None


MemberForm = Annotated[Posted[TeamMemberIn], FormOf(TeamMemberIn)]


def _team_change(
    request: Request,
    session: DbSession,
    form: Posted[TeamMemberIn] | dict[str, Any],
    actor: Actor,
    patient_id: str,
    admin_view: bool,
    change: str,
    member_id: str | None = None,
) -> Response:
    patient, acc = _team_patient(session, actor, patient_id, admin_view)
    base = f"/admin/patients/{patient.id}" if admin_view else f"/patients/{patient.id}/team"
    values = form.values if isinstance(form, Posted) else form
    try:
        if isinstance(form, Posted):  # adding someone: the only change with fields
            member = form.read()
            patients.add_team_member(
                session,
                by=actor.user,
                patient=patient,
                user_id=member.user_id,
                role=member.role,
                make_lead=member.make_lead,
            )
        elif change == "lead":
            patients.set_team_lead(
                session, by=actor.user, patient=patient, member_id=_uuid(member_id, "member_id")
            )
        else:
            patients.remove_team_member(
                session, by=actor.user, patient=patient, member_id=_uuid(member_id, "member_id")
            )
    except InvalidInput as exc:
        template = "patients/admin_team.html" if admin_view else "patients/team.html"
        return render(
            request,
            template,
            _team_context(
                session,
                actor,
                patient,
                admin_view=admin_view,
                errors=exc.errors,
                values=values,
                **(header_context(session, acc, tab="team") if acc is not None else {}),
            ),
            status_code=422,
        )
    return RedirectResponse(f"{base}?done=team_{change}", status_code=303)


@router.post("/patients/{patient_id}/team/add")
def team_add(
    patient_id: str, request: Request, session: DbSession, form: MemberForm, actor: PostedBy
) -> Response:
    return _team_change(request, session, form, actor, patient_id, False, "add")


@router.post("/patients/{patient_id}/team/{member_id}/lead")
def team_lead(
    patient_id: str,
    member_id: str,
    request: Request,
    session: DbSession,
    form: Form,
    actor: PostedBy,
) -> Response:
    return _team_change(request, session, form, actor, patient_id, False, "lead", member_id)


@router.post("/patients/{patient_id}/team/{member_id}/remove")
def team_remove(
    patient_id: str,
    member_id: str,
    request: Request,
    session: DbSession,
    form: Form,
    actor: PostedBy,
) -> Response:
    return _team_change(request, session, form, actor, patient_id, False, "remove", member_id)


# --- family members and carers -------------------------------------------------------------------


@router.post("/patients/{patient_id}/related")
def related_add(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[RelatedPersonIn], FormOf(RelatedPersonIn)],
    actor: PostedBy,
) -> Response:
    done = already_done(session, form.values, actor)
    if done:
        return RedirectResponse(done, status_code=303)
    acc = access.patient_for(
        session, actor.user, patient_id, action="update", object_type="RelatedPerson"
    )
    try:
        data = form.read()
        link, password = patients.add_related_person(
            session,
            access=acc,
            name=data.name,
            email=data.email,
            relationship=data.relationship,
            patient_consented=data.patient_consented,
            consent_note=data.consent_note,
        )
    except InvalidInput as exc:
        context = _overview(session, actor, patient_id, request.state.lang)
        context.update(related_errors=exc.errors, related_values=form.values)
        return render(request, "patients/overview.html", context, status_code=422)
    target = f"/patients/{acc.patient.id}?done=related_added"
    remember(session, form.values, actor, target)
    if password:
        return render(
            request,
            "patients/related_created.html",
            {"patient": acc.patient, "link": link, "password": password, "target": target},
        )
    return RedirectResponse(target, status_code=303)


@router.post("/patients/{patient_id}/related/{related_id}/consent")
def related_consent(
    patient_id: str,
    related_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ConsentIn], FormOf(ConsentIn)],
    actor: PostedBy,
) -> Response:
    acc = access.patient_for(
        session, actor.user, patient_id, action="update", object_type="RelatedPerson"
    )
    consent = form.read()
    patients.set_related_person_consent(
        session,
        access=acc,
        related_id=_uuid(related_id, "related_id"),
        consented=consent.consented,
        note=consent.note,
    )
    if acc.is_self:
        return RedirectResponse("/my/people?done=consent", status_code=303)
    return RedirectResponse(f"/patients/{acc.patient.id}?done=consent", status_code=303)


# --- administration: patients and their teams, without clinical content -----------------------


@router.get("/admin/patients")
def admin_patients(request: Request, session: DbSession, actor: WebActor) -> Response:
    rows = patients.list_patients_for_admin(session, by=actor.user)
    return render(request, "patients/admin_list.html", {"patients": rows})


@router.get("/admin/patients/{patient_id}")
def admin_patient(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    patient = patients.get_patient_for_admin(session, by=actor.user, patient_id=patient_id)
    return render(
        request,
        "patients/admin_team.html",
        _team_context(
            session, actor, patient, admin_view=True, done=request.query_params.get("done")
        ),
    )


@router.post("/admin/patients/{patient_id}/team/add")
def admin_team_add(
    patient_id: str, request: Request, session: DbSession, form: MemberForm, actor: PostedBy
) -> Response:
    return _team_change(request, session, form, actor, patient_id, True, "add")


@router.post("/admin/patients/{patient_id}/team/{member_id}/lead")
def admin_team_lead(
    patient_id: str,
    member_id: str,
    request: Request,
    session: DbSession,
    form: Form,
    actor: PostedBy,
) -> Response:
    return _team_change(request, session, form, actor, patient_id, True, "lead", member_id)


@router.post("/admin/patients/{patient_id}/team/{member_id}/remove")
def admin_team_remove(
    patient_id: str,
    member_id: str,
    request: Request,
    session: DbSession,
    form: Form,
    actor: PostedBy,
) -> Response:
    return _team_change(request, session, form, actor, patient_id, True, "remove", member_id)

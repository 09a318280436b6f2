"""42 CFR Part 2 pages: the administrator's list of clinics with the Part 2 setting, and the
care team's "withheld" line with its break-the-glass form (POST with CSRF; the JSON twins are
in concord.part2.api)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from concord import access
from concord.accounts import organizations
from concord.accounts.admin import require_admin
from concord.actions import part2 as actions
from concord.errors import InvalidInput
from concord.part2.schemas import Part2ProgramIn, PrivacyOfficerIn, ReasonIn
from concord.web.deps import DbSession, PostedBy, WebActor
from concord.web.forms import FormOf, Posted
from concord.web.templating import render

router = APIRouter()


@router.post("/patients/{patient_id}/emergency-access")
def break_glass(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ReasonIn], FormOf(ReasonIn)],
    actor: PostedBy,
) -> Response:
    acc = access.team_access(
        session, actor.user, patient_id, action="create", object_type="EmergencyAccess"
    )
    try:
        actions.break_glass(session, acc, form.read().reason)
    except InvalidInput:
        return RedirectResponse(f"/patients/{acc.patient.id}?done=emergency_reason", 303)
    return RedirectResponse(f"/patients/{acc.patient.id}?done=emergency", 303)


@router.get("/admin/part2")
def admin_part2(request: Request, session: DbSession, actor: WebActor) -> Response:
    require_admin(session, actor.user, action="list")
    clinics = organizations.list_clinics(session, organization_id=actor.user.organization_id)
    staff = actions.officer_candidates(session, actor.user)
    return render(
        request,
        "admin/part2.html",
        {
            "clinics": clinics,
            "staff": staff,
            "names": {u.id: u.name for u in staff},
            "done": request.query_params.get("done"),
        },
    )


@router.post("/admin/part2/{clinic_id}")
def admin_part2_set(
    clinic_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[Part2ProgramIn], FormOf(Part2ProgramIn)],
    actor: PostedBy,
) -> Response:
    require_admin(session, actor.user, action="update")
    actions.set_part2_program(session, actor.user, clinic_id, form.read().part2_program)
    return RedirectResponse("/admin/part2?done=saved", 303)


@router.post("/admin/part2/{clinic_id}/privacy-officer")
def admin_privacy_officer(
    clinic_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[PrivacyOfficerIn], FormOf(PrivacyOfficerIn)],
    actor: PostedBy,
) -> Response:
    require_admin(session, actor.user, action="update")
    actions.set_privacy_officer(session, actor.user, clinic_id, form.read().user_id)
    return RedirectResponse("/admin/part2?done=saved", 303)


@router.get("/privacy/notices")
def privacy_notices(request: Request, session: DbSession, actor: WebActor) -> Response:
    """The privacy officer's notices: each emergency opening of withheld records at their
    programs, with who, whose, when and why, and what to do next."""
    rows = actions.privacy_notices(session, actor.user)
    return render(request, "part2/notices.html", {"rows": rows})

"""42 CFR Part 2 pages: the administrator's list of clinics with the Part 2 setting, and the
care team's "withheld" line with its break-the-glass form (POST with CSRF; the JSON twins are
in concord.part2.api)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from concord import access, disclosure
from concord.access import PatientAccess
from concord.accounts import organizations
from concord.accounts.admin import require_admin
from concord.actions import part2 as actions
from concord.errors import InvalidInput
from concord.web.deps import DbSession, Form, PostedBy, WebActor
from concord.web.templating import render

router = APIRouter()


def withheld_context(session: Session, acc: PatientAccess) -> dict[str, Any]:
    """The care team's "N records withheld by the patient's consent" line (for pages that
    listed the patient's records in this request) and the emergency window's length."""
    from concord.settings import get_settings

    if not acc.on_team:
        return {}
    return {
        "withheld": disclosure.withheld_by_consent(session, acc.patient.id),
        "emergency_minutes": get_settings().emergency_access_minutes,
    }


@router.post("/patients/{patient_id}/emergency-access")
def break_glass(
    patient_id: str, request: Request, session: DbSession, form: Form, actor: PostedBy
) -> Response:
    acc = access.team_access(
        session, actor.user, patient_id, action="create", object_type="EmergencyAccess"
    )
    try:
        actions.break_glass(session, acc, str(form.get("reason") or ""))
    except InvalidInput:
        return RedirectResponse(f"/patients/{acc.patient.id}?done=emergency_reason", 303)
    return RedirectResponse(f"/patients/{acc.patient.id}?done=emergency", 303)


@router.get("/admin/part2")
def admin_part2(request: Request, session: DbSession, actor: WebActor) -> Response:
    require_admin(session, actor.user, action="list")
    clinics = organizations.list_clinics(session, organization_id=actor.user.organization_id)
    return render(
        request,
        "admin/part2.html",
        {"clinics": clinics, "done": request.query_params.get("done")},
    )


@router.post("/admin/part2/{clinic_id}")
def admin_part2_set(
    clinic_id: str, request: Request, session: DbSession, form: Form, actor: PostedBy
) -> Response:
    actions.set_part2_program(session, actor.user, clinic_id, form.get("part2_program") == "yes")
    return RedirectResponse("/admin/part2?done=saved", 303)

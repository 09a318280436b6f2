"""Organizations and clinics: create them, and the organization's own settings."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.accounts.admin import require_admin
from concord.accounts.models import (
    Clinic,
    Organization,
    User,
)
from concord.audit.service import record
from concord.errors import Conflict, InvalidInput
from concord.i18n import Msg


def create_organization(
    session: Session,
    *,
    name: str,
    slug: str,
    timezone: str = "UTC",
    require_mfa_for_clinicians: bool = False,
) -> Organization:
    if session.scalar(select(Organization).where(Organization.slug == slug)) is not None:
        raise Conflict(f"An organization called {slug!r} already exists.")
    org = Organization(
        name=name,
        slug=slug,
        timezone=timezone,
        require_mfa_for_clinicians=require_mfa_for_clinicians,
    )
    session.add(org)
    session.flush()
    return org


def create_clinic(session: Session, *, organization: Organization, name: str) -> Clinic:
    clinic = Clinic(organization_id=organization.id, name=name)
    session.add(clinic)
    session.flush()
    return clinic


def list_clinics(session: Session, *, organization_id: uuid.UUID) -> list[Clinic]:
    return list(
        session.scalars(
            select(Clinic).where(Clinic.organization_id == organization_id).order_by(Clinic.name)
        )
    )


def parse_crisis_resources(text: str) -> dict[str, Any] | None:
    """One resource a line: name | how to reach it | link (tel: or https:) | more detail.
    Empty means Concord's defaults."""
    resources = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise InvalidInput.field(
                "crisis_resources",
                Msg("line %(n)s needs at least a name and how to reach it, separated by |", n=n),
            )
        href = parts[2] if len(parts) > 2 else ""
        if href and not (href.startswith("tel:") or href.startswith("https://")):
            raise InvalidInput.field(
                "crisis_resources",
                Msg("line %(n)s: the link must start with tel: or https://", n=n),
            )
        resources.append(
            {
                "name": {"en": parts[0]},
                "contact": {"en": parts[1]},
                "href": href,
                "detail": {"en": parts[3] if len(parts) > 3 else ""},
            }
        )
    return {"resources": resources} if resources else None


def crisis_resources_text(org: Organization) -> str:
    if not org.crisis_resources:
        return ""
    return "\n".join(
        " | ".join(
            [
                r["name"].get("en", ""),
                r["contact"].get("en", ""),
                r.get("href", ""),
                r.get("detail", {}).get("en", ""),
            ]
        ).rstrip(" |")
        for r in org.crisis_resources["resources"]
    )


def update_organization_settings(
    session: Session,
    *,
    by: User,
    require_mfa_for_clinicians: bool,
    review_interval_days: int | None,
    crisis_resources: str | None = None,
    on_call_user_id: str | None = None,
    pdmp_check_interval_days: int | None | str = "keep",
    sso_required: bool | None = None,
    sso_available: bool = False,
    video_url_template: str | None = None,
    video_join_minutes: str | None = None,
    visit_reminders: str | None = None,
) -> Organization:
    """The organization's own settings. An empty review interval means the installation's
    default (CONCORD_REVIEW_INTERVAL_DAYS). `on_call_user_id` ("" for nobody) names the
    clinician who takes safety alerts nobody on the care team acknowledged in time."""
    require_admin(session, by, action="organization_update")
    if review_interval_days is not None and not 1 <= review_interval_days <= 366:
        raise InvalidInput.field(
            "review_interval_days", Msg("must be a number of days from 1 to 366")
        )
    if isinstance(pdmp_check_interval_days, int) and not 1 <= pdmp_check_interval_days <= 366:
        raise InvalidInput.field(
            "pdmp_check_interval_days", Msg("must be a number of days from 1 to 366")
        )
    org = session.get(Organization, by.organization_id)
    assert org is not None
    org.require_mfa_for_clinicians = require_mfa_for_clinicians
    if pdmp_check_interval_days != "keep":
        # No default: how often a PDMP is checked is set by state law and the clinic's policy.
        org.pdmp_check_interval_days = pdmp_check_interval_days  # type: ignore[assignment]
    if sso_required is not None:
        if sso_required and not sso_available:
            # Staff would have no way to sign in.
            raise InvalidInput.field(
                "sso_required", Msg("single sign-on is not set up here (docs/sso.md)")
            )
        org.sso_required = sso_required
    org.review_interval_days = review_interval_days
    if crisis_resources is not None:
        org.crisis_resources = parse_crisis_resources(crisis_resources)
    if on_call_user_id is not None:
        org.on_call_user_id = _on_call(session, org, on_call_user_id)
    _video_settings(org, video_url_template, video_join_minutes, visit_reminders)
    record(
        session,
        by=by,
        action="organization_update",
        object_type="Organization",
        object_id=org.id,
        detail={
            "require_mfa_for_clinicians": require_mfa_for_clinicians,
            "sso_required": org.sso_required,
            "review_interval_days": review_interval_days,
            "pdmp_check_interval_days": org.pdmp_check_interval_days,
            "on_call": str(org.on_call_user_id) if org.on_call_user_id else None,
        },
    )
    return org


def _video_settings(
    org: Organization, template: str | None, join: str | None, reminders: str | None
) -> None:
    """The clinic's video service (a URL with {room}, https), how early "Join" shows, and when
    visit reminders go (minutes before, comma-separated). None: unchanged; "" clears the
    template (no video visits) or restores the default."""
    errors: dict[str, Any] = {}
    if template is not None:
        value = template.strip()
        if value and (not value.startswith("https://") or "{room}" not in value):
            errors["video_url_template"] = Msg(
                "must be an https:// address with {room} where the room's name goes, e.g. "
                "https://meet.jit.si/{room}"
            )
        elif len(value) > 300:
            errors["video_url_template"] = Msg("must be at most %(max)s characters", max=300)
        else:
            org.video_url_template = value or None
    if join is not None:
        text = join.strip() or "10"
        if not text.isdigit() or not 0 <= int(text) <= 120:
            errors["video_join_minutes"] = Msg("must be a number of minutes from 0 to 120")
        else:
            org.video_join_minutes = int(text)
    if reminders is not None:
        parts = [p.strip() for p in (reminders.strip() or "1440,60").split(",") if p.strip()]
        if not parts or not all(p.isdigit() and 1 <= int(p) <= 20160 for p in parts):
            errors["visit_reminders"] = Msg(
                "must be minutes before the visit, separated by commas (1 to 20160), e.g. 1440,60"
            )
        else:
            org.visit_reminders = ",".join(str(int(p)) for p in parts)
    if errors:
        raise InvalidInput(Msg("The settings were not saved."), errors=errors)


def _on_call(session: Session, org: Organization, value: str) -> uuid.UUID | None:
    if not value.strip():
        return None
    try:
        uid = uuid.UUID(value.strip())
    except ValueError:
        uid = None
    user = session.get(User, uid) if uid is not None else None
    if user is None or user.organization_id != org.id or not user.active or not user.is_clinician:
        raise InvalidInput.field(
            "on_call_user_id", Msg("must be an active clinician of this organization, or nobody")
        )
    return user.id


def organization_of(session: Session, user: User) -> Organization:
    """The organization a user belongs to."""
    org = session.get(Organization, user.organization_id)
    assert org is not None
    return org

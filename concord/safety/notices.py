"""In-app notices to the care team when a patient (or their family member) does something the
team must read: a goal suggested, a comment on the plan, a question for a decision, a change
to their safety or relapse plan, a view on a recommendation. Before, such an action reached
no one until someone happened to open the page.

The notice names the patient on the team's "New for you" list (only to people on the team);
the email through the outbox says only that something is waiting, never who or what."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.accounts.models import Role, User
from concord.clock import now
from concord.i18n import gettext
from concord.outbox import queue_email
from concord.patients.service import members_of_patient
from concord.safety.models import Notification
from concord.settings import get_settings

# kind -> where on the patient's record the team reads it
KINDS = {
    "patient_goal": "plan",
    "patient_comment": "plan",
    "patient_question": "decisions",
    "patient_decision": "decisions",
    "patient_safety_plan": "safety-plan",
    "patient_relapse_plan": "relapse-plan",
    "patient_view": "registry#recommendations",
}


def recipients(session: Session, patient_id: uuid.UUID) -> list[User]:
    """The team's lead and its care managers (the people who answer the patient)."""
    people = [
        m.user
        for m in members_of_patient(session, patient_id=patient_id)
        if m.is_lead or m.user.role == Role.care_manager
    ]
    return [u for u in people if u.active and u.is_clinician]


def notify_care_team(session: Session, *, patient_id: uuid.UUID, kind: str) -> int:
    """One unread notice per person and kind of thing (never a second while the first is
    unread), and one email without patient details. Returns how many people were told."""
    assert kind in KINDS, kind
    base = get_settings().base_url.rstrip("/")
    told = 0
    for user in recipients(session, patient_id):
        waiting = session.scalar(
            select(Notification.id).where(
                Notification.user_id == user.id,
                Notification.patient_id == patient_id,
                Notification.kind == kind,
                Notification.read_at.is_(None),
            )
        )
        if waiting is not None:
            continue
        session.add(
            Notification(user_id=user.id, kind=kind, patient_id=patient_id, created_at=now())
        )
        lang = user.language
        queue_email(
            session,
            kind="patient_notice",
            to=user.email,
            subject=gettext(lang, "Concord: a patient on your care team sent you something"),
            body="\n\n".join(
                [
                    gettext(lang, "Something from a patient on your care team is waiting for you."),
                    gettext(lang, "Sign in to see it: %(url)s", url=f"{base}/alerts"),
                    gettext(
                        lang,
                        "This message has no patient details on purpose. Do not reply to it.",
                    ),
                ]
            ),
            organization_id=user.organization_id,
        )
        told += 1
    return told

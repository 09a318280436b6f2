"""A patient's question on a decision reaches the team as a message (issue 22).

The question is kept on the decision (seen on the team's page before the visit); when the
patient asked it, the same question is posted as their message in the thread about that
decision ("Decision: <aid>"), so the care manager gets the reply task and the unread count,
and the team's answer in the thread closes it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.actions import messaging
from concord.decisions import service as ds
from concord.decisions.models import Decision


def add_question(
    session: Session, *, access: PatientAccess, decision_id: Any, text: str
) -> Decision:
    return ask(session, access=access, decision_id=decision_id, text=text)[0]


def ask(
    session: Session, *, access: PatientAccess, decision_id: Any, text: str
) -> tuple[Decision, messaging.Sent | None]:
    """The question kept on the decision, and the patient's message about it (if they asked)."""
    decision = ds.add_question(session, access=access, decision_id=decision_id, text=text)
    sent = None
    if access.is_self:
        aid = ds.aid_of(decision)
        lang = messaging.language_of(access)
        title = (aid.title.get(lang) or aid.title.get("en") or "") if aid else ""
        sent = messaging.decision_question_posted(
            session,
            access=access,
            decision_id=decision.id,
            aid_title=title or decision.aid_id,
            question=decision.questions[-1]["text"],
        )
    return decision, sent

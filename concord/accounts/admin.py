"""Who may administer accounts: the check every administrative act starts with."""

from __future__ import annotations

from sqlalchemy.orm import Session

from concord.accounts.models import (
    User,
)
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.errors import NotFound, PermissionDenied


def require_admin(session: Session, by: User, *, action: str, object_id: object = None) -> None:
    if not by.can_administer:
        record(
            session,
            by=by,
            action=action,
            object_type="User",
            object_id=str(object_id) if object_id else None,
            outcome=Outcome.denied,
        )
        raise PermissionDenied("Only an administrator can do that.")


def same_org(by: User, user: User) -> None:
    if user.organization_id != by.organization_id:
        raise NotFound("No such user.")

"""A submission carried out once, however many times it arrives.

Every form carries a one-time key (`idem`); API clients may send an Idempotency-Key header.
The key is claimed at the start of the unit of work with an insert that does nothing on
conflict, so a concurrent duplicate waits for the first to commit and then sees it as done.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from concord.accounts.models import Submission
from concord.clock import now
from concord.errors import InvalidInput
from concord.i18n import Msg
from concord.web.deps import Actor

KEY_RE = re.compile(r"^[A-Za-z0-9_\-]{8,64}$")


def _key(actor: Actor, raw: str) -> str:
    if not KEY_RE.match(raw):
        raise InvalidInput.field("idem", Msg("must be 8 to 64 letters, digits, - or _"))
    return f"{actor.user.id.hex}:{raw}"


def claim(session: Session, actor: Actor, raw_key: str | None) -> Submission | None:
    """None if this submission is new (and is now claimed); the earlier one if it is a repeat."""
    if not raw_key:
        return None
    key = _key(actor, raw_key)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # RETURNING says whether this insert won: rowcount is not reliable across drivers.
    inserted = session.execute(
        insert(Submission)
        .values(key=key, user_id=actor.user.id, created_at=now())
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(Submission.key)
    ).first()
    if inserted is not None:
        session.info["submission_key"] = key
        return None
    return session.scalar(select(Submission).where(Submission.key == key))


def already_done(session: Session, form: dict[str, Any], actor: Actor) -> str | None:
    """For a form post: where the earlier, identical submission led, if there was one."""
    earlier = claim(session, actor, str(form.get("idem") or "") or None)
    if earlier is None:
        return None
    return earlier.result or "/"


def remember(session: Session, form: dict[str, Any] | None, actor: Actor, result: str) -> None:
    key = session.info.get("submission_key")
    if key:
        submission = session.get(Submission, key)
        if submission is not None:
            submission.result = result[:300]


def remember_result(session: Session, result: str) -> None:
    """What a claimed API submission produced, so its repeat can answer with the same."""
    key = session.info.get("submission_key")
    if key:
        submission = session.get(Submission, key)
        if submission is not None:
            submission.result = result[:300]

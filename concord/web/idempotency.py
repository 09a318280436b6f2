"""A submission carried out once, however many times it arrives.

Every form carries a one-time key (`idem`); API clients may send an Idempotency-Key header.
The key is claimed at the start of the unit of work with an insert that does nothing on
conflict, so a concurrent duplicate waits for the first to commit and then sees it as done.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse

from concord import access
from concord.accounts.models import Submission
from concord.clock import now
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import Msg
from concord.web.deps import Actor

KEY_RE = re.compile(r"^[A-Za-z0-9_\-]{8,64}$")


def _key(actor: Actor, raw: str) -> str:
    if not KEY_RE.match(raw):
        raise InvalidInput.field("idem", Msg("must be 8 to 64 letters, digits, - or _"))
    return f"{actor.user.id.hex}:{raw}"


def request_hash(method: str, path: str, body: bytes) -> str:
    """What makes a repeat the same request: the method, the path and the body's bytes."""
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def claim(
    session: Session, actor: Actor, raw_key: str | None, body_hash: str | None = None
) -> Submission | None:
    """None if this submission is new (and is now claimed); the earlier one if it is a repeat
    of the same request. The key sent again with a different request is a Conflict: the
    first request's result is not an answer to the second, and the second was not done."""
    if not raw_key:
        return None
    key = _key(actor, raw_key)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # RETURNING says whether this insert won: rowcount is not reliable across drivers.
    inserted = session.execute(
        insert(Submission)
        .values(key=key, user_id=actor.user.id, created_at=now(), body_hash=body_hash)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(Submission.key)
    ).first()
    if inserted is not None:
        session.info["submission_key"] = key
        return None
    earlier = session.scalar(select(Submission).where(Submission.key == key))
    # A key claimed before requests were hashed has no hash to compare: a repeat, as before.
    if earlier is not None and earlier.body_hash and earlier.body_hash != body_hash:
        raise Conflict(
            Msg(
                "This Idempotency-Key was already used for a different request. Send a new "
                "key for a new request; a retry must repeat the first request exactly."
            )
        )
    return earlier


@dataclass(frozen=True)
class Idempotency:
    """An API create's Idempotency-Key header and the hash of the request it came with."""

    key: str | None
    body_hash: str


async def idempotency(
    request: Request, idempotency_key: Annotated[str | None, Header()] = None
) -> Idempotency:
    body = await request.body()  # already read (concord.web.deps.db): no wait here
    return Idempotency(idempotency_key, request_hash(request.method, request.url.path, body))


Idempotent = Annotated[Idempotency, Depends(idempotency)]


def create_once(
    session: Session,
    actor: Actor,
    idem: Idempotency,
    *,
    create: Callable[[], tuple[str, Any]],
    replay: Callable[[str], Any],
) -> Any:
    """The one create-and-replay block of the JSON API. `create()` does the work and returns
    (what to remember, the answer); a repeat of the same request answers 200 with
    `replay(what was remembered)` and the Idempotent-Replayed header; the same key with a
    different request is 409 (see claim)."""
    earlier = claim(session, actor, idem.key, idem.body_hash)
    if earlier is not None:
        return JSONResponse(
            jsonable_encoder(replay(earlier.result or "")),
            status_code=200,
            headers={"Idempotent-Replayed": "true"},
        )
    result, answer = create()
    remember_result(session, result)
    return answer


def earlier_record(session: Session, model: Any, result: str, *, patient_id: Any = None) -> Any:
    """For a replay: the row the earlier submission under this key created (on this patient,
    when the row names one), or 404 when it is gone."""
    found = session.get(model, access.parse_id(result))
    if found is None or (patient_id is not None and found.patient_id != patient_id):
        raise NotFound(Msg("The earlier submission with this key is not available."))
    return found


def form_hash(form: dict[str, Any]) -> str:
    """A form post's content, without its one-time key and CSRF token."""
    content = {k: v for k, v in form.items() if k not in ("idem", "csrf_token")}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def already_done(session: Session, form: dict[str, Any], actor: Actor) -> str | None:
    """For a form post: where the earlier, identical submission led, if there was one (the
    same form's key with different content is a Conflict)."""
    earlier = claim(session, actor, str(form.get("idem") or "") or None, form_hash(form))
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

"""Secure messages as JSON at /api/v1 (issue 22): the twins of the message pages, through the
same action (concord.actions.messaging) and the same access rules; a new thread or answer may
carry an Idempotency-Key. The patient's own app uses the same routes with their own id."""

# No `from __future__ import annotations`: FastAPI reads the body models from the annotations.

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.responses import Response

from concord import access
from concord.access import PatientAccess
from concord.accounts.admin import require_admin
from concord.accounts.models import Organization
from concord.actions import messaging as act
from concord.audit.service import record
from concord.clock import now
from concord.errors import NotFound
from concord.i18n import Msg, gettext
from concord.messaging import service as messages
from concord.messaging.models import Message, MessageThread
from concord.messaging.schemas import MessageIn, MessagingSettingsIn, ReplyIn, ThreadStatusIn
from concord.safety.crisis import crisis_resources
from concord.web.deps import ApiActor, ApiWriter, DbSession
from concord.web.idempotency import Idempotent, create_once, earlier_record

router = APIRouter(prefix="/api/v1", tags=["messages"])
OBJECT = messages.OBJECT


def _access(session: Session, actor: Any, patient_id: str, action: str = "read") -> PatientAccess:
    """The care team, the patient, or a family member the patient's consent names (the
    domain decides which threads and messages each sees; anyone else: not found)."""
    return access.patient_for(session, actor.user, patient_id, action=action, object_type=OBJECT)


def author_display(m: Message, lang: str) -> str:
    """Who wrote the message in words: "Fay (family)", "Pat (the patient)", "Dr Lee"."""
    if m.side == "family":
        return gettext(lang, "%(name)s (family)", name=m.author.name)
    if m.side == "patient":
        return gettext(lang, "%(name)s (the patient)", name=m.author.name)
    return m.author.name


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def message_json(m: Message, view: messages.ThreadView, lang: str = "en") -> dict[str, Any]:
    return {
        "id": str(m.id),
        "number": m.number,
        "author": {
            "id": str(m.author_id),
            "name": m.author.name,
            "role": m.author.role,
            "side": m.side,
            "display": author_display(m, lang),
        },
        "from_patient": m.from_patient,
        "body": m.body,
        "sent_at": _iso(m.created_at),
        "read_by_team": view.read_by_team(m),
        "read_by_patient": view.read_by_patient(m),
        "files": [
            {
                "id": str(a.id),
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "url": f"/api/v1/message-files/{a.id}",
            }
            for a in m.attachments
        ],
    }


def thread_json(
    view: messages.ThreadView, *, with_messages: bool, lang: str = "en"
) -> dict[str, Any]:
    t = view.thread
    out: dict[str, Any] = {
        "id": str(t.id),
        "kind": t.kind,
        "subject": t.subject,
        "topic": t.topic,
        "started_by": {"id": str(t.created_by_id), "name": t.created_by.name},
        "last_message_at": _iso(t.last_message_at),
        "awaiting": t.awaiting,
        "reply_due_at": _iso(t.reply_due_at),
        "status": "closed" if t.closed_at else "open",
        "closed_at": _iso(t.closed_at),
        "unread": view.unread,
        "messages_count": len(view.messages),
        "read_by_team_at": _iso(view.read_by_team_at),
    }
    if with_messages:
        out["messages"] = [message_json(m, view, lang) for m in view.messages]
    return out


def policy_json(org: Organization, lang: str) -> dict[str, Any]:
    policy = messages.policy_of(org)
    return {
        "reply_within_hours": int(policy.reply_within.total_seconds() // 3600),
        "office_days": list(policy.office_days),
        "office_start": policy.office_start.isoformat("minutes"),
        "office_end": policy.office_end.isoformat("minutes"),
        "clinic_phone": policy.clinic_phone,
        "in_office_hours_now": policy.in_office_hours(now()),
        "crisis_resources": crisis_resources(org, lang),
    }


def _thread_in(session: Session, actor: Any, patient_id: str, thread_id: str, action: str) -> Any:
    thread, acc = messages.find_thread(session, by=actor.user, ident=thread_id, action=action)
    if str(thread.patient_id) != str(access.parse_id(patient_id) or ""):
        raise NotFound(Msg("No such message."))
    return thread, acc


def _sent_json(session: Session, acc: PatientAccess, sent: act.Sent) -> dict[str, Any]:
    view = act.read(session, acc, sent.thread)
    org = acc.patient.clinic.organization
    out = {
        "thread": thread_json(view, with_messages=True, lang=acc.by.language or "en"),
        "crisis": sent.crisis,
    }
    if sent.crisis:
        out["crisis_resources"] = crisis_resources(org, acc.by.language or "en")
    return out


@router.get("/patients/{patient_id}/messages")
def list_threads(patient_id: str, session: DbSession, actor: ApiActor) -> Any:
    """The patient's threads the caller may see, newest first, with the clinic's messaging
    policy (answer time, office hours) and the crisis resources."""
    acc = _access(session, actor, patient_id)
    views = messages.threads_for(session, acc)
    return {
        "threads": [thread_json(v, with_messages=False) for v in views],
        "policy": policy_json(acc.patient.clinic.organization, actor.user.language or "en"),
    }


@router.post("/patients/{patient_id}/messages", status_code=201)
def start(
    patient_id: str, body: MessageIn, session: DbSession, actor: ApiWriter, idem: Idempotent
) -> Any:
    """Start a thread (the patient with their team, or the team about the patient)."""
    acc = _access(session, actor, patient_id, "create")

    def create() -> tuple[str, Any]:
        sent = act.start(
            session,
            access=acc,
            kind=body.kind,
            subject=body.subject,
            body=body.body,
            files=[f.upload() for f in body.files],
        )
        return str(sent.message.id), _sent_json(session, acc, sent)

    def replay(result: str) -> Any:
        message = earlier_record(session, Message, result, patient_id=acc.patient.id)
        thread = session.get(MessageThread, message.thread_id)
        return _sent_json(session, acc, act.Sent(thread, message, bool(message.crisis_rule)))

    return create_once(session, actor, idem, create=create, replay=replay)


@router.get("/patients/{patient_id}/messages/{thread_id}")
def read_thread(patient_id: str, thread_id: str, session: DbSession, actor: ApiActor) -> Any:
    """A thread with its messages; reading it marks it read for the caller."""
    thread, acc = _thread_in(session, actor, patient_id, thread_id, "read")
    view = act.read(session, acc, thread)
    return {"thread": thread_json(view, with_messages=True, lang=actor.user.language or "en")}


@router.post("/patients/{patient_id}/messages/{thread_id}", status_code=201)
def answer(
    patient_id: str,
    thread_id: str,
    body: ReplyIn,
    session: DbSession,
    actor: ApiWriter,
    idem: Idempotent,
) -> Any:
    """Answer in a thread."""
    thread, acc = _thread_in(session, actor, patient_id, thread_id, "create")

    def create() -> tuple[str, Any]:
        sent = act.answer(
            session,
            by=actor.user,
            thread_id=str(thread.id),
            body=body.body,
            files=[f.upload() for f in body.files],
        )
        return str(sent.message.id), _sent_json(session, acc, sent)

    def replay(result: str) -> Any:
        message = earlier_record(session, Message, result, patient_id=acc.patient.id)
        return _sent_json(session, acc, act.Sent(thread, message, bool(message.crisis_rule)))

    return create_once(session, actor, idem, create=create, replay=replay)


@router.post("/patients/{patient_id}/messages/{thread_id}/status")
def thread_status(
    patient_id: str, thread_id: str, body: ThreadStatusIn, session: DbSession, actor: ApiWriter
) -> Any:
    """A clinician on the care team closes a thread (`closed`: its reply task is closed too;
    nothing more can be written in it) or reopens it (`open`). Asking again changes nothing."""
    thread, acc = _thread_in(session, actor, patient_id, thread_id, "update")
    act.set_closed(session, by=actor.user, thread_id=str(thread.id), closed=body.status == "closed")
    view = act.read(session, acc, thread)
    return {"thread": thread_json(view, with_messages=False, lang=actor.user.language or "en")}


@router.get("/messages/unread")
def unread(session: DbSession, actor: ApiActor) -> Any:
    """How many messages wait for the caller, and (for a clinician) how many threads on their
    teams wait for the team's answer. Numbers only."""
    return {
        "unread": messages.unread_count(session, actor.user),
        "waiting_for_team": messages.waiting_for_team(session, actor.user),
    }


@router.get("/messages")
def inbox(session: DbSession, actor: ApiActor) -> Any:
    """A clinician's threads across their care teams, newest first (the team inbox)."""
    found = messages.inbox(session, actor.user)
    return {
        "threads": [
            {"patient": {"id": str(acc.patient.id), "name": acc.patient.display_name}}
            | thread_json(view, with_messages=False)
            for acc, view in found
        ]
    }


@router.get("/message-files/{file_id}")
def download(file_id: str, session: DbSession, actor: ApiActor) -> Response:
    """A file sent with a message, to whoever may read the message (never cached)."""
    found, _ = messages.attachment_for(session, by=actor.user, ident=file_id)
    return file_response(found)


def file_response(found: Any) -> Response:
    return Response(
        found.content,
        media_type=found.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{found.filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.put("/organization/messaging-settings")
def settings(body: MessagingSettingsIn, session: DbSession, actor: ApiWriter) -> Any:
    """An administrator sets the clinic's messaging policy, and its own crisis phrase list
    (`crisis_phrases`, the format of concord/messaging/crisis-phrases.yaml; null: Concord's)."""
    require_admin(session, actor.user, action="update")
    org = actor.user.organization
    values = body.model_dump(exclude={"crisis_phrases"})
    # The clinic's phrase list stays unless it is sent (null: back to Concord's default).
    if "crisis_phrases" in body.model_fields_set:
        values["crisis_phrases"] = body.crisis_phrases
    else:
        values["crisis_phrases"] = (org.messaging_settings or {}).get("crisis_phrases")
    org.messaging_settings = messages.check_settings(values)
    record(
        session,
        by=actor.user,
        action="update",
        object_type="Organization",
        object_id=org.id,
        detail={"messaging_settings": sorted(org.messaging_settings)},
    )
    return {"settings": org.messaging_settings}

"""The message pages (issue 22): the care team's "Messages" tab on the patient's record (the
patient's threads and the team's own threads about them), the team inbox, and the patient's
"Messages" in the portal. Every form posts to concord.actions.messaging, as the JSON API does.

The portal tells the patient, on every message page, when messages are read (office hours),
when the clinic answers, and what to do if it is urgent; words of crisis in what they send show
the crisis resources at once (and raise an alert behind the scenes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.routing import APIRouter
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response

from concord import access
from concord.access import PatientAccess
from concord.actions import messaging as act
from concord.clock import now
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import Msg
from concord.messaging import service as messages
from concord.messaging.api import file_response
from concord.messaging.schemas import MessageIn, ReplyIn, ThreadStatusIn
from concord.safety.crisis import crisis_resources
from concord.web.deps import DbSession, PostedBy, WebActor
from concord.web.forms import FormOf, Posted
from concord.web.idempotency import already_done, remember
from concord.web.patient_header import header_context
from concord.web.templating import render

router = APIRouter()
OBJECT = messages.OBJECT


async def uploads(request: Request) -> list[messages.Upload]:
    """The files of a multipart form post (the form's text fields are read by FormOf)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return []
    form = await request.form()
    found = []
    for value in form.getlist("attachments"):
        if isinstance(value, UploadFile):
            if value.filename or value.size:
                found.append(messages.Upload(value.filename or "file", await value.read()))
            await value.close()
    return found


Uploads = Annotated[list[messages.Upload], Depends(uploads)]


def _policy(acc: PatientAccess, lang: str) -> dict[str, Any]:
    org = acc.patient.clinic.organization
    policy = messages.policy_of(org)
    return {
        "policy": policy,
        "in_office_hours": policy.in_office_hours(now()),
        "crisis": crisis_resources(org, lang),
        "reply_hours": int(policy.reply_within.total_seconds() // 3600),
    }


def _team_access(session: DbSession, actor: Any, patient_id: str, action: str = "read") -> Any:
    return access.team_access(session, actor.user, patient_id, action=action, object_type=OBJECT)


def _list_context(
    session: DbSession, acc: PatientAccess, lang: str, **extra: Any
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "acc": acc,
        "threads": messages.threads_for(session, acc),
        "values": {},
        "errors": {},
        "message": None,
        "crisis_now": False,
        **_policy(acc, lang),
    }
    if acc.is_self:
        # Who the patient's family-sharing consent lets take part (the choice is the consent).
        context["family"] = messages.family_taking_part(session, acc.patient)
    context.update(_door(session, acc))
    context.update(extra)
    return context


def _door(session: DbSession, acc: PatientAccess) -> dict[str, Any]:
    """The header and where the pages of this door are: the team's tab, the patient's portal,
    or a family member's pages beside the plan shared with them."""
    out: dict[str, Any] = {"base": _base(acc), "as_family": messages.is_family(acc)}
    if acc.on_team:
        out.update(header_context(session, acc, tab="messages"))
    elif messages.is_family(acc):
        out.update(header_context(session, acc))
    return out


def _thread_context(
    session: DbSession, acc: PatientAccess, thread: Any, lang: str, **extra: Any
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "acc": acc,
        "view": act.read(session, acc, thread),
        "values": {},
        "errors": {},
        "message": None,
        "crisis_now": False,
        **_policy(acc, lang),
    }
    context.update(_door(session, acc))
    context.update(extra)
    return context


def _base(acc: PatientAccess) -> str:
    if acc.is_self:
        return "/my/messages"
    if messages.is_family(acc):
        return f"/shared/{acc.patient.id}/messages"
    return f"/patients/{acc.patient.id}/messages"


def _template(acc: PatientAccess, name: str) -> str:
    # The patient and their family member see the portal's pages (the family's own words).
    return f"messaging/{'my_' if messages.from_patient_side(acc) else ''}{name}.html"


def _start(
    request: Request,
    session: DbSession,
    actor: Any,
    acc: PatientAccess,
    form: Posted[MessageIn],
    files: list[messages.Upload],
) -> Response:
    earlier = already_done(session, form.values, actor)
    if earlier:
        return RedirectResponse(earlier, status_code=303)
    try:
        data = form.read()
        sent = act.start(
            session,
            access=acc,
            kind="patient" if messages.from_patient_side(acc) else data.kind,
            subject=data.subject,
            body=data.body,
            files=files,
        )
    except InvalidInput as exc:
        context = _list_context(
            session,
            acc,
            request.state.lang,
            values=form.values,
            errors=exc.errors,
            message=exc.message,
        )
        return render(request, _template(acc, "list"), context, status_code=422)
    target = f"{_base(acc)}/{sent.thread.id}" + ("?crisis=1" if sent.crisis else "")
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


def _answer(
    request: Request,
    session: DbSession,
    actor: Any,
    thread_id: str,
    form: Posted[ReplyIn],
    files: list[messages.Upload],
    patient_id: str | None,
    *,
    family: bool = False,
) -> Response:
    earlier = already_done(session, form.values, actor)
    if earlier:
        return RedirectResponse(earlier, status_code=303)
    thread, acc = _thread(session, actor, thread_id, patient_id, "create", family=family)
    try:
        data = form.read()
        sent = act.answer(session, by=actor.user, thread_id=thread_id, body=data.body, files=files)
    except Conflict as exc:
        context = _thread_context(
            session, acc, thread, request.state.lang, values=form.values, message=exc.message
        )
        return render(request, _template(acc, "thread"), context, status_code=409)
    except InvalidInput as exc:
        context = _thread_context(
            session,
            acc,
            thread,
            request.state.lang,
            values=form.values,
            errors=exc.errors,
            message=exc.message,
        )
        return render(request, _template(acc, "thread"), context, status_code=422)
    target = f"{_base(acc)}/{thread.id}" + ("?crisis=1" if sent.crisis else "")
    remember(session, form.values, actor, target)
    return RedirectResponse(target, status_code=303)


def _thread(
    session: DbSession,
    actor: Any,
    thread_id: str,
    patient_id: str | None,
    action: str,
    *,
    family: bool = False,
) -> tuple[Any, PatientAccess]:
    """The thread, reached from the team's tab of its patient, from the patient's portal
    (`patient_id` None) or from a family member's pages (`family`)."""
    thread, acc = messages.find_thread(session, by=actor.user, ident=thread_id, action=action)
    if patient_id is None:
        if not acc.is_self:
            raise NotFound(Msg("No such message."))
    elif str(thread.patient_id) != str(access.parse_id(patient_id) or ""):
        raise NotFound(Msg("No such message."))
    elif not (messages.is_family(acc) if family else acc.on_team):
        raise NotFound(Msg("No such message."))
    return thread, acc


# --- the care team --------------------------------------------------------------------------


@router.get("/patients/{patient_id}/messages")
def team_messages(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _team_access(session, actor, patient_id)
    return render(request, "messaging/list.html", _list_context(session, acc, request.state.lang))


@router.post("/patients/{patient_id}/messages")
def team_start(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[MessageIn], FormOf(MessageIn)],
    files: Uploads,
    actor: PostedBy,
) -> Response:
    acc = _team_access(session, actor, patient_id, "create")
    return _start(request, session, actor, acc, form, files)


@router.get("/patients/{patient_id}/messages/{thread_id}")
def team_thread(
    patient_id: str, thread_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    thread, acc = _thread(session, actor, thread_id, patient_id, "read")
    context = _thread_context(session, acc, thread, request.state.lang)
    return render(request, "messaging/thread.html", context)


@router.post("/patients/{patient_id}/messages/{thread_id}")
def team_answer(
    patient_id: str,
    thread_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ReplyIn], FormOf(ReplyIn)],
    files: Uploads,
    actor: PostedBy,
) -> Response:
    return _answer(request, session, actor, thread_id, form, files, patient_id)


@router.post("/patients/{patient_id}/messages/{thread_id}/status")
def team_thread_status(
    patient_id: str,
    thread_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ThreadStatusIn], FormOf(ThreadStatusIn)],
    actor: PostedBy,
) -> Response:
    """Close the conversation (its reply task with it) or reopen it."""
    thread, acc = _thread(session, actor, thread_id, patient_id, "update")
    data = form.read()
    act.set_closed(session, by=actor.user, thread_id=str(thread.id), closed=data.status == "closed")
    return RedirectResponse(f"{_base(acc)}/{thread.id}", status_code=303)


@router.get("/messages")
def team_inbox(request: Request, session: DbSession, actor: WebActor) -> Response:
    if not actor.user.is_clinician:
        raise NotFound(Msg("This page is for the care team."))
    found = messages.inbox(session, actor.user)
    return render(request, "messaging/inbox.html", {"found": found})


@router.get("/messages/badge")
def badge(request: Request, session: DbSession, actor: WebActor) -> Response:
    """The number beside "Messages" in the top bar, loaded after the page (a number only)."""
    count = messages.unread_count(session, actor.user)
    return render(request, "messaging/_badge.html", {"count": count})


@router.get("/messages/files/{file_id}")
def download(file_id: str, session: DbSession, actor: WebActor) -> Response:
    found, _ = messages.attachment_for(session, by=actor.user, ident=file_id)
    return file_response(found)


# --- the patient's portal ---------------------------------------------------------------------


@router.get("/my/messages")
def my_messages(request: Request, session: DbSession, actor: WebActor) -> Response:
    acc = access.own_record(session, actor.user, object_type=OBJECT)
    context = _list_context(session, acc, request.state.lang)
    return render(request, "messaging/my_list.html", context)


@router.post("/my/messages")
def my_start(
    request: Request,
    session: DbSession,
    form: Annotated[Posted[MessageIn], FormOf(MessageIn)],
    files: Uploads,
    actor: PostedBy,
) -> Response:
    acc = access.own_record(session, actor.user, action="create", object_type=OBJECT)
    return _start(request, session, actor, acc, form, files)


def _show_to_patient_side(request: Request, session: DbSession, acc: Any, thread: Any) -> Response:
    """One thread as the patient or a family member sees it (crisis resources at the top
    just after a message with words of crisis)."""
    context = _thread_context(
        session,
        acc,
        thread,
        request.state.lang,
        crisis_now=request.query_params.get("crisis") == "1",
    )
    return render(request, "messaging/my_thread.html", context)


@router.get("/my/messages/{thread_id}")
def my_thread(thread_id: str, request: Request, session: DbSession, actor: WebActor) -> Response:
    thread, acc = _thread(session, actor, thread_id, None, "read")
    return _show_to_patient_side(request, session, acc, thread)


@router.post("/my/messages/{thread_id}")
def my_answer(
    thread_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ReplyIn], FormOf(ReplyIn)],
    files: Uploads,
    actor: PostedBy,
) -> Response:
    return _answer(request, session, actor, thread_id, form, files, None)


# --- a family member the patient's consent lets take part -----------------------------------


def _family_access(session: DbSession, actor: Any, patient_id: str, action: str = "read") -> Any:
    """The patient, for a family member their family-sharing consent names now; not found
    (audited) for anyone else, the team and the patient included (they have their own pages)."""
    acc = access.patient_for(session, actor.user, patient_id, action=action, object_type=OBJECT)
    if not messages.is_family(acc):
        raise NotFound(Msg("No such patient."))
    return acc


@router.get("/shared/{patient_id}/messages")
def family_messages(
    patient_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    acc = _family_access(session, actor, patient_id)
    context = _list_context(session, acc, request.state.lang)
    return render(request, "messaging/my_list.html", context)


@router.post("/shared/{patient_id}/messages")
def family_start(
    patient_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[MessageIn], FormOf(MessageIn)],
    files: Uploads,
    actor: PostedBy,
) -> Response:
    acc = _family_access(session, actor, patient_id, "create")
    return _start(request, session, actor, acc, form, files)


@router.get("/shared/{patient_id}/messages/{thread_id}")
def family_thread(
    patient_id: str, thread_id: str, request: Request, session: DbSession, actor: WebActor
) -> Response:
    thread, acc = _thread(session, actor, thread_id, patient_id, "read", family=True)
    return _show_to_patient_side(request, session, acc, thread)


@router.post("/shared/{patient_id}/messages/{thread_id}")
def family_answer(
    patient_id: str,
    thread_id: str,
    request: Request,
    session: DbSession,
    form: Annotated[Posted[ReplyIn], FormOf(ReplyIn)],
    files: Uploads,
    actor: PostedBy,
) -> Response:
    return _answer(request, session, actor, thread_id, form, files, patient_id, family=True)

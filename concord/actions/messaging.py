"""A secure message is sent (issue 22), whichever door it came through (the team's page, the
patient's portal, the JSON API):

- a patient's words are checked against the crisis phrase list first: on a match the message
  is kept with the rule's id (never the words elsewhere), a safety alert is raised through the
  escalation chain (risk rule "message-phrase"), and the door shows the crisis resources at once;
- a patient's message makes it the team's turn: a task "Reply to the patient's message" for the
  patient's care manager (the team's lead when there is none), due when the clinic says it
  answers; one open task per thread, however many messages the patient sends;
- a team member's answer in the patient's thread closes that task;
- the other side is told through the notification service (concord/notifications): a
  patient's message tells the person who owns the reply task (nobody else), a team member's
  message in the patient's thread tells the patient. The notice says only "You have a new
  message in Concord" with a link to /messages or /my/messages: never the patient's name, the
  subject or the words. One notice per thread while it is unread: its source carries how far
  the person had read the thread, so a second message before they read it is the same source
  (no second email), and once they have read it the next message tells them again. A message
  in a team-only thread tells every other clinician on the patient's care team who may read
  it (the disclosure decision: a Part 2 program's message is not announced to a colleague it
  is withheld from), never the patient. Reading a thread (`read`) marks its notices read on
  the bell.

What the patient does elsewhere that the team must answer (a goal they suggest, a comment on
their plan, a question on a decision) is posted by `post_for_patient` as the patient's message
in a thread about it ("My care plan", "Decision: <aid>"), joined while that thread is open, so
the same reply task, unread counts and answer close it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from concord.access import PatientAccess
from concord.accounts.models import Role, User
from concord.dates import local_date
from concord.i18n import N_, gettext
from concord.messaging import service as messages
from concord.messaging.models import Awaiting, Message, MessageRead, MessageThread, ThreadKind
from concord.notifications import service as notices
from concord.patients import service as patients
from concord.patients.models import Patient, RelatedPerson
from concord.registry import tasks
from concord.safety import alerts

REPLY_TASK = N_("Reply to the patient's message")
REPLIED = N_("Done: the team answered the message.")


@dataclass(frozen=True)
class Sent:
    thread: MessageThread
    message: Message
    crisis: bool  # words of crisis: the door shows the crisis resources now


def _source(thread: MessageThread) -> str:
    return f"message:{thread.id}"


def _reply_owner(session: Session, access: PatientAccess) -> object:
    members = patients.members_of_patient(session, patient_id=access.patient.id)
    for member in members:
        if member.role == Role.care_manager:
            return member.user_id
    return members[0].user_id if members else None


TEAM_LINK = "/messages"  # the team's inbox: an email's link names no patient, not even by id
PATIENT_LINK = "/my/messages"
FAMILY_LINK = "/shared"  # a family member's list of the people who share with them


def _read_upto(session: Session, thread: MessageThread, user_id: object) -> int:
    return (
        session.scalar(
            select(MessageRead.upto).where(
                MessageRead.thread_id == thread.id, MessageRead.user_id == user_id
            )
        )
        or 0
    )


def _tell(session: Session, thread: MessageThread, user_id: object, by: User, link: str) -> None:
    """Tell one person a message waits in `thread`: once while they have not read it."""
    if user_id is None or user_id == by.id:
        return
    user = session.get(User, user_id)
    if user is None:
        return
    upto = _read_upto(session, thread, user.id)
    notices.notify(
        session,
        user=user,
        kind="message_waiting",
        link=link,
        source=f"{_source(thread)}:{upto}",
    )


def _after(
    session: Session, access: PatientAccess, thread: MessageThread, message: Message
) -> Sent:
    if messages.from_patient_side(access):
        task = tasks.open_task(
            session,
            organization_id=thread.organization_id,
            patient_id=thread.patient_id,
            owner_id=_reply_owner(session, access),  # type: ignore[arg-type]
            title=REPLY_TASK,
            source=_source(thread),
            due_on=local_date(thread.reply_due_at, access.patient.clinic.organization)
            if thread.reply_due_at
            else None,
            priority="urgent" if message.crisis_rule else "routine",
            by=access.by,
        )
        if message.crisis_rule:
            # Words of crisis make the thread's open task urgent, even one opened before them.
            task.priority = "urgent"
        _tell(session, thread, task.owner_id, access.by, TEAM_LINK)
        if message.crisis_rule:
            alerts.raise_for_message(
                session,
                patient=access.patient,
                by=access.by,
                phrase_rule=message.crisis_rule,
                message_id=message.id,
            )
    elif thread.kind == ThreadKind.patient:
        tasks.close_tasks(
            session,
            patient_id=thread.patient_id,
            source=_source(thread),
            note=REPLIED,
            by=access.by,
        )
        patient = session.get(Patient, thread.patient_id)
        if patient is not None:
            _tell(session, thread, patient.user_id, access.by, PATIENT_LINK)
        _tell_family(session, access, thread, message)
    else:
        _tell_colleagues(session, access, thread, message)
    return Sent(thread, message, bool(message.crisis_rule))


def _tell_colleagues(
    session: Session, access: PatientAccess, thread: MessageThread, message: Message
) -> None:
    """A team-only thread: every other clinician on the patient's care team who may read the
    message (a Part 2 program's message is not announced to whom the consent decision
    withholds it), once per thread while they have not read it. Never the patient."""
    for member in patients.members_of_patient(session, patient_id=thread.patient_id):
        user = member.user
        if user.id == access.by.id or not user.is_clinician or not user.active:
            continue
        if messages.may_be_told(session, user, thread, message):
            _tell(session, thread, user.id, access.by, TEAM_LINK)


def _tell_family(
    session: Session, access: PatientAccess, thread: MessageThread, message: Message
) -> None:
    """A team member's message in the patient's thread: each family member who may read it
    now (the patient's family-sharing consent names them, and the consent decision permits
    this message: a Part 2 program's message is not announced to whom it is withheld from),
    once per thread while they have not read it."""
    patient = session.get(Patient, thread.patient_id)
    if patient is None:
        return
    for link in session.scalars(
        select(RelatedPerson).where(
            RelatedPerson.patient_id == patient.id, RelatedPerson.ended_at.is_(None)
        )
    ):
        if messages.family_may_be_told(session, link, thread, message):
            _tell(session, thread, link.user_id, access.by, FAMILY_LINK)


def read(session: Session, access: PatientAccess, thread: MessageThread) -> messages.ThreadView:
    """Open a thread to read (the reader's mark moves to its last message) and mark the
    reader's notices about it read: the bell and the unread count agree."""
    view = messages.open_thread(session, access, thread)
    notices.mark_read_from(session, by=access.by, source_prefix=f"{_source(thread)}:")
    return view


CLOSED_NOTE = N_("Done: the team closed the conversation.")


def set_closed(session: Session, *, by: User, thread_id: str, closed: bool) -> MessageThread:
    """A clinician on the care team closes a thread (its reply task is closed with it: nobody
    must answer a closed conversation) or reopens it (if the patient's or their family's words
    are the last, it is the team's turn again, with the reply task, due by the clinic's answer
    time). Asking for what already holds changes nothing."""
    thread, access = messages.find_thread(session, by=by, ident=thread_id, action="update")
    if not messages.set_closed(session, access=access, thread=thread, closed=closed):
        return thread
    if closed:
        tasks.close_tasks(
            session,
            patient_id=thread.patient_id,
            source=_source(thread),
            note=CLOSED_NOTE,
            by=by,
        )
    elif thread.awaiting == Awaiting.team:
        last = messages.last_message(session, thread)
        tasks.open_task(
            session,
            organization_id=thread.organization_id,
            patient_id=thread.patient_id,
            owner_id=_reply_owner(session, access),  # type: ignore[arg-type]
            title=REPLY_TASK,
            source=_source(thread),
            due_on=local_date(thread.reply_due_at, access.patient.clinic.organization)
            if thread.reply_due_at
            else None,
            priority="urgent" if last is not None and last.crisis_rule else "routine",
            by=by,
        )
    return thread


def _crisis_rule(access: PatientAccess, *texts: str | None) -> str | None:
    """The crisis phrase rule a patient's (or their family member's) words match, in the
    clinic's own list or Concord's default (the team's own words are not checked: they quote
    and discuss)."""
    if not messages.from_patient_side(access):
        return None
    org = access.patient.clinic.organization
    return messages.phrases_of(org).match(" \n ".join(t or "" for t in texts))


def start(
    session: Session,
    *,
    access: PatientAccess,
    kind: str,
    subject: str | None,
    body: str | None,
    files: list[messages.Upload] | None = None,
) -> Sent:
    thread, message = messages.start_thread(
        session,
        access=access,
        kind=kind,
        subject=subject,
        body=body,
        files=files,
        crisis_rule=_crisis_rule(access, subject, body),
    )
    return _after(session, access, thread, message)


def answer(
    session: Session,
    *,
    by: User,
    thread_id: str,
    body: str | None,
    files: list[messages.Upload] | None = None,
) -> Sent:
    thread, access = messages.find_thread(session, by=by, ident=thread_id, action="create")
    message = messages.reply(
        session,
        access=access,
        thread=thread,
        body=body,
        files=files,
        crisis_rule=_crisis_rule(access, body),
    )
    return _after(session, access, thread, message)


# A patient's words quoted in a message are cut to fit one (the rest stays where they wrote it).
QUOTE_LIMIT = 4000


def quote(words: str) -> str:
    words = words.strip()
    return words if len(words) <= QUOTE_LIMIT else words[: QUOTE_LIMIT - 1] + "…"


def post_for_patient(
    session: Session, *, access: PatientAccess, topic: str, subject: str, body: str, words: str
) -> Sent | None:
    """The patient's message to the team about `topic`, in the open thread about it or a new
    one. Only the patient's own doing is posted (the team's or a family member's is not: the
    team wrote it, and the patient's thread is not theirs to start)."""
    if not access.is_self:
        return None
    thread = messages.open_topic_thread(session, access=access, topic=topic)
    rule = _crisis_rule(access, words)  # the patient's own words, not the wording around them
    if thread is None:
        thread, message = messages.start_thread(
            session,
            access=access,
            kind=ThreadKind.patient,
            subject=subject,
            body=body,
            crisis_rule=rule,
            topic=topic,
        )
    else:
        message = messages.reply(session, access=access, thread=thread, body=body, crisis_rule=rule)
    return _after(session, access, thread, message)


def language_of(access: PatientAccess) -> str:
    return access.by.language or "en"


def plan_goal_posted(session: Session, *, access: PatientAccess, statement: str) -> Sent | None:
    lang = language_of(access)
    return post_for_patient(
        session,
        access=access,
        topic="careplan",
        subject=gettext(lang, "My care plan"),
        body=gettext(
            lang, "I suggested a goal for my care plan: “%(goal)s”", goal=quote(statement)
        ),
        words=statement,
    )


def plan_comment_posted(session: Session, *, access: PatientAccess, comment: str) -> Sent | None:
    lang = language_of(access)
    return post_for_patient(
        session,
        access=access,
        topic="careplan",
        subject=gettext(lang, "My care plan"),
        body=gettext(lang, "I commented on my care plan: “%(comment)s”", comment=quote(comment)),
        words=comment,
    )


def decision_question_posted(
    session: Session, *, access: PatientAccess, decision_id: object, aid_title: str, question: str
) -> Sent | None:
    lang = language_of(access)
    return post_for_patient(
        session,
        access=access,
        topic=f"decision:{decision_id}",
        subject=gettext(lang, "Decision: %(aid)s", aid=aid_title)[:200],
        body=gettext(
            lang, "I asked a question about this decision: “%(question)s”", question=quote(question)
        ),
        words=question,
    )

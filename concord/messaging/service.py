"""Secure messages (issue 22), the domain: threads, messages, attachments and read state, each
read and write behind the access rules (the care team sees the patient's threads and the team's
own threads about them; the patient sees their own threads with the team; anyone else: not
found) and the disclosure decision (a message written by a Part 2 program's staff is labelled
by concord/part2/rules.yaml and withheld without consent like any such record).

What crosses domains (the reply task, the crisis alert) is concord/actions/messaging.py.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from concord import disclosure
from concord.access import (
    PatientAccess,
    Relation,
    deny,
    parse_id,
    patient_for,
    reaches,
    readable_patients,
)
from concord.accounts.models import Organization, User
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.categories import DataCategory
from concord.clock import now
from concord.errors import Conflict, InvalidInput, NotFound
from concord.i18n import Msg
from concord.messaging import phrases
from concord.messaging.models import (
    Awaiting,
    Message,
    MessageAttachment,
    MessageRead,
    MessageThread,
    ThreadKind,
)
from concord.patients.models import CareTeam, CareTeamMember, Patient, RelatedPerson

OBJECT = "Communication"
MAX_SUBJECT = 200
MAX_BODY = 5000
MAX_FILES = 3
MAX_FILE_BYTES = 2 * 1024 * 1024  # under the request limit (4 MB) once base64-encoded
# What a file must start with to be taken as its type (the name and the browser's word are
# not trusted).
FILE_TYPES = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}

# Concord's defaults for a clinic's messaging policy (no source sets them: each clinic sets
# its own answer time and office hours): answered within two days; office hours Monday to
# Friday, 9:00 to 17:00 in the organization's zone.
DEFAULT_SETTINGS: dict[str, Any] = {
    "reply_within_hours": 48,
    "office_days": [0, 1, 2, 3, 4],
    "office_start": "09:00",
    "office_end": "17:00",
    "clinic_phone": "",
}


@dataclass(frozen=True)
class Policy:
    reply_within: timedelta
    office_days: tuple[int, ...]
    office_start: time
    office_end: time
    clinic_phone: str
    zone: ZoneInfo

    def in_office_hours(self, at: datetime) -> bool:
        local = at.astimezone(self.zone)
        return (
            local.weekday() in self.office_days
            and self.office_start <= local.time() < self.office_end
        )


def policy_of(org: Organization) -> Policy:
    raw = {**DEFAULT_SETTINGS, **(org.messaging_settings or {})}
    return Policy(
        reply_within=timedelta(hours=int(raw["reply_within_hours"])),
        office_days=tuple(int(d) for d in raw["office_days"]),
        office_start=time.fromisoformat(str(raw["office_start"])),
        office_end=time.fromisoformat(str(raw["office_end"])),
        clinic_phone=str(raw.get("clinic_phone") or ""),
        zone=ZoneInfo(org.timezone or "UTC"),
    )


def phrases_of(org: Organization) -> phrases.PhraseList:
    """The crisis phrase list a patient's words are checked against: the clinic's own (its
    messaging settings' `crisis_phrases`, the format of crisis-phrases.yaml, a source cited),
    or Concord's default list."""
    return phrases.phrases_for((org.messaging_settings or {}).get("crisis_phrases"))


def check_settings(values: dict[str, Any]) -> dict[str, Any]:
    """A clinic's messaging settings, checked field by field."""
    errors: dict[str, Any] = {}
    out: dict[str, Any] = {}
    hours = values.get("reply_within_hours", DEFAULT_SETTINGS["reply_within_hours"])
    try:
        out["reply_within_hours"] = int(hours)
        if not 1 <= out["reply_within_hours"] <= 24 * 14:
            raise ValueError
    except (TypeError, ValueError):
        errors["reply_within_hours"] = Msg("must be a whole number of hours from 1 to 336")
    days = values.get("office_days", DEFAULT_SETTINGS["office_days"])
    if not isinstance(days, list) or not all(isinstance(d, int) and 0 <= d <= 6 for d in days):
        errors["office_days"] = Msg("must be a list of weekday numbers, 0 (Monday) to 6 (Sunday)")
    else:
        out["office_days"] = sorted(set(days))
    for name in ("office_start", "office_end"):
        raw = values.get(name, DEFAULT_SETTINGS[name])
        try:
            time.fromisoformat(str(raw))
            out[name] = str(raw)
        except ValueError:
            errors[name] = Msg("must be a time of day such as 09:00")
    if not errors and out["office_start"] >= out["office_end"]:
        errors["office_end"] = Msg("must be after the start of office hours")
    phone = str(values.get("clinic_phone") or "").strip()
    if len(phone) > 40:
        errors["clinic_phone"] = Msg("must be at most %(max)s characters", max=40)
    out["clinic_phone"] = phone
    own = values.get("crisis_phrases")
    if own is not None:
        try:
            phrases.parse(own)
            out["crisis_phrases"] = own
        except phrases.PhraseFileError as exc:
            errors["crisis_phrases"] = Msg("is not a crisis phrase list: %(why)s", why=str(exc))
    if errors:
        raise InvalidInput(Msg("The messaging settings were not saved."), errors=errors)
    return out


# --- input --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


def _words(value: str | None) -> str:
    return (value or "").strip()


def check_message(
    subject: str | None, body: str | None, files: list[Upload], *, new_thread: bool
) -> tuple[str, str, list[tuple[Upload, str]]]:
    """The subject, body and files as stored; InvalidInput naming each field wrong."""
    errors: dict[str, Any] = {}
    text = _words(body)
    title = " ".join((subject or "").split())
    if new_thread:
        if not title:
            errors["subject"] = Msg("say in a few words what it is about")
        elif len(title) > MAX_SUBJECT:
            errors["subject"] = Msg("must be at most %(max)s characters", max=MAX_SUBJECT)
    if not text:
        errors["body"] = Msg("write your message")
    elif len(text) > MAX_BODY:
        errors["body"] = Msg("must be at most %(max)s characters", max=MAX_BODY)
    checked: list[tuple[Upload, str]] = []
    files = [f for f in files if f.data or f.filename]
    if len(files) > MAX_FILES:
        errors["files"] = Msg("at most %(max)s files with one message", max=MAX_FILES)
    for f in files[:MAX_FILES]:
        kind = next(
            (t for t, starts in FILE_TYPES.items() if any(f.data.startswith(s) for s in starts)),
            None,
        )
        if not f.data:
            errors["files"] = Msg("%(name)s is empty", name=f.filename[:80])
        elif len(f.data) > MAX_FILE_BYTES:
            errors["files"] = Msg("%(name)s is larger than 2 MB", name=f.filename[:80])
        elif kind is None:
            errors["files"] = Msg("%(name)s is not a PDF, PNG or JPEG file", name=f.filename[:80])
        else:
            checked.append((f, kind))
    if errors:
        raise InvalidInput(Msg("The message was not sent."), errors=errors)
    return title, text, checked


def _safe_name(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if c.isprintable() and c not in '<>:"|?*').strip(". ")
    return (cleaned or "file")[:200]


# --- who may do what ------------------------------------------------------------------------------


# A family member takes part in the patient's threads with the team under the consent that
# shares the patient's care with them (the family-sharing permit, concord/consents/family.py,
# which names the care plan): the messages are decided for them as that category, so the one
# consent decision (concord.disclosure) admits them, and withholds a Part 2 program's message
# unless the consent covers substance-use records too. Team-only threads never reach them.
FAMILY_CATEGORY = DataCategory.care_plan


def is_family(access: PatientAccess) -> bool:
    return access.relation == Relation.related


def from_patient_side(access: PatientAccess) -> bool:
    """The patient, or a family member writing with them: their words make it the team's
    turn and are checked for words of crisis."""
    return access.is_self or is_family(access)


def family_category(thread: MessageThread) -> DataCategory:
    """What a thread is decided as for a family member: a question on a decision is the
    patient's decision (which family sharing does not cover); anything else is shared as the
    patient's care with the team."""
    if (thread.topic or "").startswith("decision:"):
        return DataCategory.decisions
    return FAMILY_CATEGORY


def category_for(
    access: PatientAccess, threads: dict[uuid.UUID, MessageThread] | None = None
) -> Any:
    """The category each thread, or message of `threads`, is decided as for this reader."""
    if not is_family(access):
        return disclosure.category_of
    known = threads or {}

    def decided_as(row: Any) -> DataCategory:
        thread = row if isinstance(row, MessageThread) else known.get(row.thread_id)
        return family_category(thread) if thread is not None else DataCategory.decisions

    return decided_as


def _may_see(access: PatientAccess, thread: MessageThread) -> bool:
    if access.on_team:
        return True
    return from_patient_side(access) and thread.kind == ThreadKind.patient


def _may_write(access: PatientAccess, kind: str) -> bool:
    if access.on_team:
        return bool(access.by.is_clinician)
    return from_patient_side(access) and kind == ThreadKind.patient


# --- writes -------------------------------------------------------------------------------------


def _add_message(
    session: Session,
    access: PatientAccess,
    thread: MessageThread,
    text: str,
    files: list[tuple[Upload, str]],
    crisis_rule: str | None,
) -> Message:
    at = now()
    thread.message_count = (thread.message_count or 0) + 1
    message = Message(
        organization_id=thread.organization_id,
        patient_id=thread.patient_id,
        thread_id=thread.id,
        number=thread.message_count,
        author_id=access.by.id,
        from_patient=access.is_self,
        body=text,
        created_at=at,
        crisis_rule=crisis_rule,
    )
    session.add(message)
    session.flush()
    for upload, kind in files:
        session.add(
            MessageAttachment(
                message_id=message.id,
                filename=_safe_name(upload.filename),
                content_type=kind,
                size=len(upload.data),
                sha256=hashlib.sha256(upload.data).hexdigest(),
                content=upload.data,
            )
        )
    thread.last_message_at = at
    if from_patient_side(access):
        org = session.get(Organization, thread.organization_id)
        assert org is not None
        thread.awaiting = Awaiting.team
        thread.reply_due_at = at + policy_of(org).reply_within
    elif thread.kind == ThreadKind.patient:
        thread.awaiting = Awaiting.patient
        thread.reply_due_at = None
    else:
        thread.awaiting = None
        thread.reply_due_at = None
    _mark_read(session, access, thread, at)
    session.flush()
    session.refresh(message)
    record(
        session,
        by=access.by,
        action="create",
        object_type=OBJECT,
        object_id=message.id,
        patient_id=thread.patient_id,
        detail={"thread": str(thread.id), "files": len(files)},
    )
    return message


def start_thread(
    session: Session,
    *,
    access: PatientAccess,
    kind: str,
    subject: str | None,
    body: str | None,
    files: list[Upload] | None = None,
    crisis_rule: str | None = None,
    topic: str | None = None,
) -> tuple[MessageThread, Message]:
    if kind not in (ThreadKind.patient, ThreadKind.team):
        raise InvalidInput.field("kind", Msg("must be one of: patient, team"))
    if not _may_write(access, kind):
        raise deny(
            session,
            access,
            action="create",
            object_type=OBJECT,
            message="Only the patient, their care team and the family they chose write here.",
        )
    title, text, checked = check_message(subject, body, files or [], new_thread=True)
    thread = MessageThread(
        organization_id=access.patient.organization_id,
        patient_id=access.patient.id,
        kind=kind,
        subject=title,
        created_by_id=access.by.id,
        created_at=now(),
        last_message_at=now(),
        message_count=0,
        topic=topic,
    )
    session.add(thread)
    session.flush()
    return thread, _add_message(session, access, thread, text, checked, crisis_rule)


def reply(
    session: Session,
    *,
    access: PatientAccess,
    thread: MessageThread,
    body: str | None,
    files: list[Upload] | None = None,
    crisis_rule: str | None = None,
) -> Message:
    if not _may_write(access, thread.kind):
        raise deny(
            session,
            access,
            action="create",
            object_type=OBJECT,
            object_id=thread.id,
            message="Only the patient, their care team and the family they chose write here.",
        )
    if access.on_team:
        # A Part 2 program's thread is written in only by whom it may be disclosed to (else
        # NotFound, audited): the team's pages and the API never show it to the others.
        disclosure.check_record(
            session,
            access,
            thread,
            object_type=OBJECT,
            action="create",
            message=Msg("No such message."),
        )
    if thread.closed_at is not None:
        # Nothing is written: the page shows no answer form on a closed thread, the API
        # answers 409, and the team reopens it to write again.
        raise Conflict(CLOSED)
    _, text, checked = check_message(None, body, files or [], new_thread=False)
    return _add_message(session, access, thread, text, checked, crisis_rule)


CLOSED = Msg("This conversation is closed. Start a new message to write again.")


def last_message(session: Session, thread: MessageThread) -> Message | None:
    """The thread's newest message (whose turn a reopened thread is)."""
    return session.scalars(
        select(Message).where(Message.thread_id == thread.id).order_by(Message.number.desc())
    ).first()


def set_closed(
    session: Session, *, access: PatientAccess, thread: MessageThread, closed: bool
) -> bool:
    """A clinician on the patient's care team closes a thread (nobody's turn, no answer date;
    nothing more can be written in it) or reopens it. The patient and their family cannot
    (refused, audited). Returns whether it changed: asking twice changes and records once."""
    if not (access.on_team and access.by.is_clinician):
        raise deny(
            session,
            access,
            action="update",
            object_type=OBJECT,
            object_id=thread.id,
            message="Only the care team closes or reopens a conversation.",
        )
    # A Part 2 program's thread is changed only by whom it may be disclosed to (else NotFound,
    # audited, as for a stranger).
    disclosure.check_record(
        session,
        access,
        thread,
        object_type=OBJECT,
        action="update",
        message=Msg("No such message."),
    )
    if (thread.closed_at is not None) == closed:
        return False
    if closed:
        thread.closed_at = now()
        thread.awaiting = None
        thread.reply_due_at = None
    else:
        thread.closed_at = None
        last = last_message(session, thread)
        if last is not None and last.side != "team":
            # The patient's (or family's) words are still unanswered: the team's turn again.
            org = session.get(Organization, thread.organization_id)
            assert org is not None
            thread.awaiting = Awaiting.team
            thread.reply_due_at = now() + policy_of(org).reply_within
        elif last is not None and thread.kind == ThreadKind.patient:
            thread.awaiting = Awaiting.patient
    session.flush()
    record(
        session,
        by=access.by,
        action="update",
        object_type=OBJECT,
        object_id=thread.id,
        patient_id=thread.patient_id,
        detail={"status": "closed" if closed else "open"},
    )
    return True


def open_topic_thread(
    session: Session, *, access: PatientAccess, topic: str
) -> MessageThread | None:
    """The patient's open thread with the team about `topic` (the newest), if there is one."""
    return session.scalars(
        select(MessageThread)
        .where(
            MessageThread.patient_id == access.patient.id,
            MessageThread.kind == ThreadKind.patient,
            MessageThread.topic == topic,
            MessageThread.closed_at.is_(None),
        )
        .order_by(MessageThread.last_message_at.desc())
        .limit(1)
    ).first()


def check_text(body: str | None) -> str:
    """The body as it would be stored (for the crisis check before the write)."""
    return _words(body)


def _mark_read(
    session: Session, access: PatientAccess, thread: MessageThread, at: datetime
) -> None:
    row = session.scalar(
        select(MessageRead).where(
            MessageRead.thread_id == thread.id, MessageRead.user_id == access.by.id
        )
    )
    upto = thread.message_count or 0
    if row is None:
        session.add(
            MessageRead(
                thread_id=thread.id,
                user_id=access.by.id,
                read_at=at,
                upto=upto,
                team=access.on_team,
            )
        )
    elif row.upto < upto:
        row.upto = upto
        row.read_at = at


# --- reads --------------------------------------------------------------------------------------


def find_thread(
    session: Session, *, by: User, ident: str, action: str = "read"
) -> tuple[MessageThread, PatientAccess]:
    """A thread by its id and the reader's access to its patient; NotFound (audited) when
    there is none or it is not theirs to see."""
    tid = parse_id(ident)
    thread = session.get(MessageThread, tid) if tid is not None else None
    if thread is None:
        record(
            session,
            by=by,
            action=action,
            object_type=OBJECT,
            object_id=str(ident)[:64],
            outcome=Outcome.denied,
        )
        raise NotFound(Msg("No such message."))
    acc = patient_for(session, by, thread.patient_id, action=action, object_type=OBJECT)
    if not _may_see(acc, thread):
        record(
            session,
            by=by,
            action=action,
            object_type=OBJECT,
            object_id=thread.id,
            patient_id=thread.patient_id,
            outcome=Outcome.denied,
        )
        raise NotFound(Msg("No such message."))
    if is_family(acc):
        # A family member reaches only the threads the consent decision gives them (not a
        # decision's thread, nor one a Part 2 program started without a consent covering it),
        # to read or to write in.
        disclosure.require(
            session,
            acc,
            family_category(thread),
            object_type=OBJECT,
            action=action,
            object_id=thread.id,
            label=disclosure.label_of(session, acc, thread),
            message=Msg("No such message."),
        )
    return thread, acc


def find_message(
    session: Session, *, by: User, ident: str
) -> tuple[Message | None, MessageThread, PatientAccess]:
    """A message by its id, or (message None) a thread by its id, with the reader's access to
    its patient; NotFound (audited) when there is neither or it is not theirs to see. The
    message itself still passes the disclosure decision (`check_message`)."""
    mid = parse_id(ident)
    message = session.get(Message, mid) if mid is not None else None
    thread, acc = find_thread(
        session, by=by, ident=str(message.thread_id) if message is not None else ident
    )
    return message, thread, acc


def read_one(
    session: Session, *, by: User, ident: str
) -> tuple[Message | None, MessageThread, PatientAccess]:
    """A message, or (message None) a thread's header, by its id, to read on its own (FHIR's
    read): NotFound, audited, when the reader may not see it (the disclosure decision on its
    Part 2 label included); the read is in the audit trail."""
    message, thread, acc = find_message(session, by=by, ident=ident)
    row: Any = message if message is not None else thread
    disclosure.check_record(session, acc, row, object_type=OBJECT)
    record(
        session,
        by=by,
        action="read",
        object_type=OBJECT,
        object_id=row.id,
        patient_id=thread.patient_id,
    )
    return message, thread, acc


@dataclass
class ThreadView:
    thread: MessageThread
    messages: list[Message] = field(default_factory=list)
    unread: int = 0
    read_by_team_at: datetime | None = None
    read_by_patient_at: datetime | None = None
    team_upto: int = 0  # the team has read the messages numbered up to this
    patient_upto: int = 0

    def read_by_team(self, message: Message) -> bool:
        return message.number <= self.team_upto

    def read_by_patient(self, message: Message) -> bool:
        return message.number <= self.patient_upto

    @property
    def last(self) -> Message | None:
        return self.messages[-1] if self.messages else None


def _reads(session: Session, thread_ids: list[uuid.UUID]) -> list[MessageRead]:
    if not thread_ids:
        return []
    return list(session.scalars(select(MessageRead).where(MessageRead.thread_id.in_(thread_ids))))


def _views(
    session: Session, access: PatientAccess, threads: list[MessageThread], action: str
) -> list[ThreadView]:
    """The threads with the messages the reader may see (the disclosure decision, one audit
    event per thread read), and their read state."""
    threads = [t for t in threads if _may_see(access, t)]
    category = category_for(access)
    threads = disclosure.filter_records(
        session, access, threads, object_type=OBJECT, action=action, category=category
    )
    ids = [t.id for t in threads]
    messages = (
        list(
            session.scalars(
                select(Message)
                .where(Message.thread_id.in_(ids))
                .order_by(Message.thread_id, Message.number)
            )
        )
        if ids
        else []
    )
    by_id = {t.id: t for t in threads}
    messages = disclosure.filter_records(
        session,
        access,
        messages,
        object_type=OBJECT,
        action=action,
        category=category_for(access, by_id),
    )
    reads = _reads(session, ids)
    views = {t.id: ThreadView(t) for t in threads}
    for m in messages:
        views[m.thread_id].messages.append(m)
    for r in reads:
        view = views[r.thread_id]
        if r.team:
            view.read_by_team_at = max(filter(None, (view.read_by_team_at, r.read_at)))
            view.team_upto = max(view.team_upto, r.upto)
        elif r.user_id == access.patient.user_id:  # the patient's own (not a family member's)
            view.read_by_patient_at = max(filter(None, (view.read_by_patient_at, r.read_at)))
            view.patient_upto = max(view.patient_upto, r.upto)
    mine = {r.thread_id: r.upto for r in reads if r.user_id == access.by.id}
    for view in views.values():
        seen = mine.get(view.thread.id, 0)
        view.unread = sum(
            1 for m in view.messages if m.author_id != access.by.id and m.number > seen
        )
    for view in views.values():
        record(
            session,
            by=access.by,
            action=action,
            object_type=OBJECT,
            object_id=view.thread.id,
            patient_id=access.patient.id,
        )
    return [views[t.id] for t in threads if t.id in views]


def threads_for(session: Session, access: PatientAccess) -> list[ThreadView]:
    """The patient's threads the reader may see, newest first."""
    threads = list(
        session.scalars(
            select(MessageThread)
            .where(MessageThread.patient_id == access.patient.id)
            .order_by(MessageThread.last_message_at.desc(), MessageThread.id)
        )
    )
    return _views(session, access, threads, "list")


def open_thread(session: Session, access: PatientAccess, thread: MessageThread) -> ThreadView:
    """One thread to read: its messages, and the reader's read mark moved to now."""
    views = _views(session, access, [thread], "read")
    if not views:
        raise NotFound(Msg("No such message."))
    view = views[0]
    _mark_read(session, access, thread, now())
    session.flush()
    view.unread = 0
    return view


def attachment_for(
    session: Session, *, by: User, ident: str
) -> tuple[MessageAttachment, PatientAccess]:
    aid = parse_id(ident)
    found = session.get(MessageAttachment, aid) if aid is not None else None
    message = session.get(Message, found.message_id) if found is not None else None
    if found is None or message is None:
        record(
            session,
            by=by,
            action="read",
            object_type=OBJECT,
            object_id=str(ident)[:64],
            outcome=Outcome.denied,
        )
        raise NotFound(Msg("No such file."))
    thread, acc = find_thread(session, by=by, ident=str(message.thread_id))
    disclosure.require(
        session,
        acc,
        category_for(acc, {thread.id: thread})(message),
        object_type=OBJECT,
        object_id=message.id,
        label=disclosure.label_of(session, acc, message),
    )
    record(
        session,
        by=by,
        action="read",
        object_type=OBJECT,
        object_id=message.id,
        patient_id=thread.patient_id,
        detail={"file": str(found.id)},
    )
    return found, acc


# --- unread counts --------------------------------------------------------------------------------


def unread_count(session: Session, user: User) -> int:
    """Messages waiting for `user`: in the threads they may see, written by someone else
    after they last read the thread. Counted from the messages, so it cannot drift; a message
    the disclosure decision withholds from them is not counted (a count must not reveal it)."""
    read = MessageRead
    query = (
        select(Message, MessageThread)
        .join(MessageThread, MessageThread.id == Message.thread_id)
        .outerjoin(read, and_(read.thread_id == MessageThread.id, read.user_id == user.id))
        .where(
            Message.author_id != user.id,
            or_(read.upto.is_(None), Message.number > read.upto),
        )
    )
    if user.is_clinician:
        query = query.where(MessageThread.patient_id.in_(_my_teams(user)))
    elif user.is_patient:
        query = query.where(
            MessageThread.kind == ThreadKind.patient,
            MessageThread.patient_id.in_(select(Patient.id).where(Patient.user_id == user.id)),
        )
    elif user.is_related_person:
        # The patients whose family-sharing consent names them now; each message still passes
        # the consent decision below (a revoked consent: nothing counted).
        query = query.where(
            MessageThread.kind == ThreadKind.patient,
            MessageThread.patient_id.in_(readable_patients(user).with_only_columns(Patient.id)),
        )
    else:
        return 0
    rows = session.execute(query.limit(1000)).all()
    if not rows:
        return 0
    counted = 0
    accesses: dict[uuid.UUID, PatientAccess | None] = {}
    for message, thread in rows:
        if thread.patient_id not in accesses:
            try:
                accesses[thread.patient_id] = patient_for(
                    session, user, thread.patient_id, object_type=OBJECT
                )
            except NotFound:
                accesses[thread.patient_id] = None
        if _sees(session, accesses[thread.patient_id], thread, message):
            counted += 1
    return counted


def _sees(
    session: Session, acc: PatientAccess | None, thread: MessageThread, message: Message
) -> bool:
    """Whether the person of `acc` may see `message` (the thread's kind, then the disclosure
    decision on the message's Part 2 label). Decides only: reads nothing to show."""
    if acc is None or not _may_see(acc, thread):
        return False
    label = disclosure.label_of(session, acc, message)
    category = category_for(acc, {thread.id: thread})(message)
    return disclosure.decide(acc, category, label=label, session=session).permit


def may_be_told(session: Session, user: User, thread: MessageThread, message: Message) -> bool:
    """Whether `user` may be told that `message` waits for them: only someone who could read
    it (a notice must not reveal a message the disclosure decision withholds from them)."""
    try:
        acc = patient_for(session, user, thread.patient_id, object_type=OBJECT)
    except NotFound:
        return False
    return _sees(session, acc, thread, message)


def family_taking_part(session: Session, patient: Patient) -> list[RelatedPerson]:
    """The family members who may read and write in the patient's threads with the team now:
    a current link whose family-sharing consent names them and which the consent decision
    permits (the patient's own page names them; the notices go to them). Decides only."""
    links = session.scalars(
        select(RelatedPerson)
        .where(RelatedPerson.patient_id == patient.id, RelatedPerson.ended_at.is_(None))
        .order_by(RelatedPerson.created_at)
    )
    found = []
    for link in links:
        acc = reaches(session, link.user, patient)
        if acc is not None and is_family(acc):
            if disclosure.decide(acc, FAMILY_CATEGORY, session=session).permit:
                found.append(link)
    return found


def family_may_be_told(
    session: Session, link: RelatedPerson, thread: MessageThread, message: Message
) -> bool:
    """`may_be_told` for a family member, without a refusal in the audit trail (they asked
    for nothing)."""
    patient = session.get(Patient, thread.patient_id)
    acc = reaches(session, link.user, patient) if patient is not None else None
    return acc is not None and is_family(acc) and _sees(session, acc, thread, message)


def _my_teams(user: User) -> Any:
    return (
        select(CareTeam.patient_id)
        .join(CareTeamMember, CareTeamMember.care_team_id == CareTeam.id)
        .where(CareTeamMember.user_id == user.id, CareTeamMember.ended_at.is_(None))
    )


def waiting_for_team(session: Session, user: User) -> int:
    """Threads on `user`'s teams whose turn is the team's (the inbox's headline)."""
    if not user.is_clinician:
        return 0
    return int(
        session.scalar(
            select(func.count())
            .select_from(MessageThread)
            .where(
                MessageThread.awaiting == Awaiting.team,
                MessageThread.patient_id.in_(_my_teams(user)),
            )
        )
        or 0
    )


def inbox(session: Session, by: User, *, limit: int = 50) -> list[tuple[PatientAccess, ThreadView]]:
    """A clinician's newest threads across the care teams they are on, each through the
    patient's access and the disclosure decision (the team inbox)."""
    if not by.is_clinician:
        return []
    threads = list(
        session.scalars(
            select(MessageThread)
            .where(MessageThread.patient_id.in_(_my_teams(by)))
            .order_by(MessageThread.last_message_at.desc(), MessageThread.id)
            .limit(limit)
        )
    )
    by_patient: dict[uuid.UUID, list[MessageThread]] = {}
    for t in threads:
        by_patient.setdefault(t.patient_id, []).append(t)
    if by_patient:
        disclosure.prepare(session, by.organization_id, by_patient)
    found: list[tuple[PatientAccess, ThreadView]] = []
    for patient_id, rows in by_patient.items():
        acc = patient_for(session, by, patient_id, action="list", object_type=OBJECT)
        found += [(acc, view) for view in _views(session, acc, rows, "list")]
    found.sort(
        key=lambda pair: (pair[1].thread.last_message_at, str(pair[1].thread.id)), reverse=True
    )
    return found

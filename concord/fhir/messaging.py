"""Secure messages as FHIR R4 `Communication` (issue 22), read and search by patient.

Shape (as Medplum threads messages): a thread is a header Communication (topic: its subject;
status in-progress, or completed once closed); each message is a Communication `partOf` its
thread, with the sender (Patient or Practitioner; a family member by display name, "Fay
(family)"), the recipient (the care team, or the
patient), `sent`, and the payload: the text, and each file as an attachment whose `url` is the
file's address in the JSON API (same token, same access). A message written by a Part 2
program's staff carries the Part 2 security labels.

Who may read them: the care team (the patient's threads and the team's own) and the patient
(their threads with the team); anyone else: not found. Reads are audited by the domain.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from concord import access
from concord.accounts.models import User
from concord.errors import InvalidInput, NotFound
from concord.fhir.mapping import SYSTEM, _drop_empty, _instant, _ref, person_ref
from concord.fhir.search import Query, page_of
from concord.fhir.service import _labelled
from concord.i18n import Msg
from concord.messaging import service as messages
from concord.messaging.models import Message, MessageThread, ThreadKind
from concord.patients import service as patients
from concord.patients.models import Patient

CATEGORY = f"{SYSTEM}/CodeSystem/message-thread-kind"


def _recipient(thread: MessageThread, message: Message | None, patient: Patient, team: Any) -> Any:
    team_ref = (
        _ref("CareTeam", team.id, "Care team") if team is not None else {"display": "Care team"}
    )
    if thread.kind == ThreadKind.team:
        return [team_ref]
    if message is not None and message.side == "team":
        return [_ref("Patient", patient.id, patient.display_name)]
    return [team_ref]


def _sender(author: User, patient: Patient) -> Any:
    """The clinician as Practitioner, the patient as Patient; a family member by name, saying
    they are family (Concord serves no RelatedPerson resource)."""
    if author.is_related_person:
        return {"display": f"{author.name} (family)"}
    return person_ref(author, patient)


def thread_resource(thread: MessageThread, patient: Patient, team: Any) -> dict[str, Any]:
    return _drop_empty(
        {
            "resourceType": "Communication",
            "id": str(thread.id),
            "meta": {"lastUpdated": _instant(thread.last_message_at)},
            "status": "completed" if thread.closed_at else "in-progress",
            "category": [
                {
                    "coding": [{"system": CATEGORY, "code": str(thread.kind)}],
                    "text": "With the patient"
                    if thread.kind == ThreadKind.patient
                    else "Care team only",
                }
            ],
            "topic": {"text": thread.subject},
            "subject": _ref("Patient", patient.id, patient.display_name),
            "sent": _instant(thread.created_at),
            "sender": _sender(thread.created_by, patient),
            "recipient": _recipient(thread, None, patient, team),
        }
    )


def message_resource(
    message: Message, thread: MessageThread, patient: Patient, team: Any, base_url: str
) -> dict[str, Any]:
    payload: list[dict[str, Any]] = [{"contentString": message.body}]
    for a in message.attachments:
        payload.append(
            {
                "contentAttachment": {
                    "contentType": a.content_type,
                    "title": a.filename,
                    "size": a.size,
                    "url": f"{base_url}/api/v1/message-files/{a.id}",
                }
            }
        )
    return _drop_empty(
        {
            "resourceType": "Communication",
            "id": str(message.id),
            "meta": {"lastUpdated": _instant(message.created_at)},
            "partOf": [{"reference": f"Communication/{thread.id}"}],
            "status": "completed",
            "subject": _ref("Patient", patient.id, patient.display_name),
            "topic": {"text": thread.subject},
            "sent": _instant(message.created_at),
            "sender": _sender(message.author, patient),
            "recipient": _recipient(thread, message, patient, team),
            "payload": payload,
        }
    )


def _resources(
    session: Session, acc: Any, views: list[messages.ThreadView], base_url: str
) -> list[dict[str, Any]]:
    team = patients.care_team_of(session, acc.patient.id)
    out: list[dict[str, Any]] = []
    for view in views:
        t = view.thread
        out.append(_labelled(session, t, acc.patient, thread_resource(t, acc.patient, team)))
        out += [
            _labelled(session, m, acc.patient, message_resource(m, t, acc.patient, team, base_url))
            for m in view.messages
        ]
    return out


def read_communication(session: Session, *, by: User, ident: str, base_url: str) -> dict[str, Any]:
    """A thread (header) or a message by its id."""
    try:
        message, thread, acc = messages.read_one(session, by=by, ident=ident)
    except NotFound:
        raise NotFound(Msg("No such resource.")) from None
    team = patients.care_team_of(session, acc.patient.id)
    if message is None:
        return _labelled(session, thread, acc.patient, thread_resource(thread, acc.patient, team))
    return _labelled(
        session,
        message,
        acc.patient,
        message_resource(message, thread, acc.patient, team, base_url),
    )


def search_communications(
    session: Session, *, by: User, q: Query, base_url: str
) -> tuple[list[dict[str, Any]], str | None, int]:
    """A patient's threads and their messages, newest thread first, each thread's header
    before its messages (patient or subject is required)."""
    ids = q.patient_ids()
    if ids is None:
        raise InvalidInput.field("patient", Msg("is required: Communication?patient=<id>"))
    resources: list[dict[str, Any]] = []
    for ident in sorted(ids):
        try:
            acc = access.record_access(session, by, ident, object_type=messages.OBJECT)
        except NotFound:
            continue
        resources += _resources(session, acc, messages.threads_for(session, acc), base_url)
    return (*page_of(resources, q), len(resources))

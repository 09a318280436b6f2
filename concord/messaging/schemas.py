"""What the message pages and their JSON twins may send: one model per input, shared by every
door. The length and content rules are the domain's (concord.messaging.service.check_message),
so a page, the API and a test get the same field errors."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from concord.messaging.service import Upload


class FileIn(BaseModel):
    """A file sent through the JSON API: its name and its bytes in base64."""

    model_config = ConfigDict(extra="forbid")

    filename: Annotated[str, Field(max_length=200)]
    data_base64: str

    @field_validator("data_base64")
    @classmethod
    def _decodes(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be the file's bytes in base64") from None
        return value

    def upload(self) -> Upload:
        return Upload(self.filename, base64.b64decode(self.data_base64))


class MessageIn(BaseModel):
    """A new thread: `kind` patient (with the patient) or team (the care team only; a patient
    may start only `patient`), a subject, the first message and up to three files."""

    model_config = ConfigDict(extra="ignore")

    kind: Annotated[str, Field(max_length=10)] = "patient"
    subject: Annotated[str, Field(max_length=1000)] = ""
    body: Annotated[str, Field(max_length=20000)] = ""
    files: list[FileIn] = []


class ReplyIn(BaseModel):
    """An answer in a thread."""

    model_config = ConfigDict(extra="ignore")

    body: Annotated[str, Field(max_length=20000)] = ""
    files: list[FileIn] = []


class ThreadStatusIn(BaseModel):
    """A clinician closes a conversation (`closed`: its reply task is closed, nothing more can
    be written in it) or reopens it (`open`)."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["open", "closed"]


class MessagingSettingsIn(BaseModel):
    """A clinic's messaging policy: the answer time it promises, its office hours (weekdays
    0 = Monday .. 6 = Sunday, times of day in the organization's zone) and its phone."""

    model_config = ConfigDict(extra="forbid")

    reply_within_hours: int = 48
    office_days: list[int] = [0, 1, 2, 3, 4]
    office_start: str = "09:00"
    office_end: str = "17:00"
    clinic_phone: str = ""
    # The clinic's own crisis phrase list, in the format of concord/messaging/crisis-phrases.yaml
    # (kind, source.citation, rules with phrases per language). Left out: the list in force is
    # kept; null: back to Concord's default list.
    crisis_phrases: dict[str, Any] | None = None

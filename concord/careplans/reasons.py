"""Revision reasons the system writes (a recommendation accepted, a decision made together),
kept as a message and its parameters so each reader sees them in their language with the
organization's local date, not as stored English with an ISO date.

The revision's `reason` column keeps the English text (the API, FHIR and older code read it);
`summary["reason"]` holds the message. Rows written before this have only the English text:
the two sentences the system wrote are recognised and shown the new way; anything else (a
person's own words) is shown as written."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from concord.dates import format_date
from concord.i18n import N_, gettext

REVIEW_ACCEPTED = "review_accepted"
DECISION_MADE = "decision_made"

MESSAGES = {
    REVIEW_ACCEPTED: N_(
        "Psychiatric case review recommendation (%(consultant)s, %(date)s) accepted"
    ),
    DECISION_MADE: N_("Decision made together (%(aid)s): %(option)s"),
}

# The English sentences stored before (concord/registry/reviews.py, concord/decisions).
_OLD = (
    (
        REVIEW_ACCEPTED,
        re.compile(
            r"^Psychiatric case review recommendation \((?P<consultant>.*), "
            r"(?P<date>\d{4}-\d{2}-\d{2})?\) accepted(?:: (?P<words>.*))?$",
            re.S,
        ),
    ),
    (DECISION_MADE, re.compile(r"^Decision made together \((?P<aid>.*?)\): (?P<option>.*)$", re.S)),
)


def system_reason(key: str, words: str | None = None, **params: Any) -> tuple[str, dict[str, Any]]:
    """(the English text for the `reason` column, the message for `summary["reason"]`).
    A parameter may be a date (shown in the reader's format) or a {language: text} dict (an
    aid's title, an option's name: shown in the reader's language); `words` are a person's,
    added as written."""
    stored = {
        name: {"date": value.isoformat()} if isinstance(value, date) else value
        for name, value in params.items()
    }
    message = {"key": key, "params": stored, "words": words or None}
    return render(message, "en", None), message


def _param(value: Any, lang: str, where: Any) -> str:
    if isinstance(value, dict) and "date" in value:
        if where is None:  # the English text for the column: ISO, as before
            return str(value["date"])
        return format_date(date.fromisoformat(value["date"]), lang=lang, where=where)
    if isinstance(value, dict):
        return str(value.get(lang) or value.get("en") or next(iter(value.values()), ""))
    return "" if value is None else str(value)


def render(message: dict[str, Any], lang: str, where: Any) -> str:
    key = message.get("key")
    if key not in MESSAGES:
        return ""
    params = {n: _param(v, lang, where) for n, v in (message.get("params") or {}).items()}
    text = gettext(lang, MESSAGES[key], **params)
    words = message.get("words")
    return f"{text}: {words}" if words else text


def reason_text(revision: Any, lang: str, where: Any) -> str | None:
    """A revision's reason as this reader reads it (None when none was given)."""
    message = (revision.summary or {}).get("reason")
    if isinstance(message, dict) and message.get("key") in MESSAGES:
        return render(message, lang, where)
    stored = revision.reason
    if not stored:
        return None
    for key, pattern in _OLD:
        found = pattern.match(stored)
        if found is None:
            continue
        parts = found.groupdict()
        words = parts.pop("words", None)
        if parts.get("date"):
            parts["date"] = {"date": parts["date"]}
        return render({"key": key, "params": parts, "words": words}, lang, where)
    return stored

"""Safety emails' text: no patient name, no clinical detail, the deadline in the clinic's zone."""

from __future__ import annotations

from datetime import datetime

from concord.dates import format_datetime, local_datetime
from concord.i18n import gettext


def _local_time(when: datetime, tz: str, lang: str) -> str:
    """The deadline in the organization's zone, in the reader's format, with the zone named
    (an email is read away from the clinic)."""
    zone_name = local_datetime(when, tz).tzname() or tz
    return f"{format_datetime(when, lang=lang, where=tz, format='medium')} ({zone_name})"


def _email_text(lang: str, kind: str, deadline: str, url: str) -> tuple[str, str]:
    if kind == "escalated":
        subject = gettext(lang, "Concord: a safety alert was passed to you")
        intro = gettext(
            lang,
            "A safety alert for a patient was not acknowledged in time and is now yours.",
        )
    elif kind == "reminder":
        subject = gettext(lang, "Concord: a safety alert is still waiting")
        intro = gettext(lang, "A safety alert has still not been acknowledged by anyone.")
    elif kind == "no_owner":
        subject = gettext(lang, "Concord: a safety alert has no owner")
        intro = gettext(
            lang,
            "A safety alert was raised for a patient on your care team and nobody in its "
            "escalation chain could be found. Please take it.",
        )
    else:
        subject = gettext(lang, "Concord: a safety alert needs you")
        intro = gettext(lang, "A patient on your care team needs attention.")
    body = "\n\n".join(
        [
            intro,
            gettext(lang, "Please acknowledge it by %(deadline)s.", deadline=deadline),
            gettext(lang, "Sign in to see it: %(url)s", url=url),
            gettext(
                lang,
                "This message has no patient details on purpose. Do not reply to it.",
            ),
        ]
    )
    return subject, body

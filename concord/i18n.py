"""Translations (Babel). Catalogs live in concord/locale/<lang>/LC_MESSAGES/messages.po and are
compiled in memory when first used, so a checkout needs no build step.

Templates call `_()`, bound to the viewer's language through the template context (`lang`).
Python code marks strings with `N_()` (extracted, translated later) or builds a `Msg`, a str
that remembers its msgid and parameters so the page can translate it while the JSON API and
logs see plain English.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from gettext import NullTranslations
from io import BytesIO
from pathlib import Path
from typing import Any

from babel import Locale
from babel import dates as babel_dates
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
SUPPORTED = ("en", "es")
LANGUAGE_NAMES = {"en": "English", "es": "Español"}


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated where it is shown."""
    return message


class Msg(str):
    """An English message that can still be translated: str(msg) is the English text."""

    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, **params: Any) -> Msg:
        text = msgid % params if params else msgid
        obj = super().__new__(cls, text)
        obj.msgid = msgid
        obj.params = params
        return obj


@lru_cache(maxsize=8)
def translations(lang: str) -> NullTranslations:
    if lang not in SUPPORTED or lang == "en":
        return NullTranslations()
    po_path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not po_path.exists():
        return NullTranslations()
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    buffer = BytesIO()
    write_mo(buffer, catalog)  # fuzzy entries are left out, so they fall back to English
    buffer.seek(0)
    return Translations(fp=buffer)


def translate(message: str, lang: str) -> str:
    t = translations(lang)
    if isinstance(message, Msg):
        text = t.gettext(message.msgid)
        params = {k: _param(v, lang) for k, v in message.params.items()}
        return text % params if params else text
    return t.gettext(message)


def _param(value: Any, lang: str) -> Any:
    """A message's value as the reader writes it: a date in the locale's format (a date is
    already the organization's local date; an instant is formatted where its zone is known)."""
    if isinstance(value, Msg):
        return translate(value, lang)
    if isinstance(value, date) and not isinstance(value, datetime):
        return format_day(value, DATE_FORMAT, lang)
    return value


# The one way a date is written in each language: Babel's medium date ("Dec 6, 2026",
# "6 dic 2026"). "full" (with the weekday) heads a day's list; every other format a template
# asks for ("short", "medium") is this one, so a page never shows "12/6/26" beside "Dec 6".
DATE_FORMAT = "medium"
LONG_FORMATS = ("full", "long")


@lru_cache(maxsize=8)
def locale_of(lang: str) -> Locale:
    return Locale.parse(lang or "en")


@lru_cache(maxsize=8192)
def format_day(value: date, format: str, lang: str) -> str:
    """A date in the language's one format (concord.dates turns an instant into the
    organization's local date first, and says when a date is out of range)."""
    return babel_dates.format_date(value, format=format, locale=locale_of(lang))


def gettext(lang: str, message: str, **params: Any) -> str:
    text = translations(lang).gettext(message)
    return text % params if params else text


def ngettext(lang: str, singular: str, plural: str, n: int, **params: Any) -> str:
    text = translations(lang).ngettext(singular, plural, n)
    params.setdefault("num", n)
    return text % params


def best_language(accept_language: str | None, default: str = "en") -> str:
    """The first supported language in an Accept-Language header (for pages before sign-in)."""
    if not accept_language:
        return default
    for part in accept_language.split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in SUPPORTED:
            return code
    return default

"""Jinja2 environment and the page renderer.

A page handler builds a context dict and names its template; `render()` adds what every page
needs and, for an HTMX request that names a block, renders only that block of the same
template, so a page and its fragments never drift apart.
"""

from __future__ import annotations

import secrets
import uuid
from contextvars import ContextVar
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, pass_context, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from concord import dates, disclosure
from concord.careplans.labels import FIELD_LABELS, SECTION_LABELS
from concord.clock import now
from concord.consents.labels import sentence
from concord.disclosures.notice import notice_text
from concord.i18n import LANGUAGE_NAMES, N_, Msg, translate, translations
from concord.labels import ROLE_LABELS, VALUE_LABELS
from concord.registry.labels import LABELS

PACKAGE = Path(__file__).resolve().parent.parent
TEMPLATE_DIRS = [PACKAGE / "web" / "templates"] + sorted(
    p for p in PACKAGE.glob("*/templates") if p.parent.name != "web"
)


# The viewer's language and time zone, set by render() for the duration of one render, so
# macros and imported templates translate without being handed a context.
_lang: ContextVar[str] = ContextVar("concord_lang", default="en")
_tz: ContextVar[str] = ContextVar("concord_tz", default="UTC")


def _gettext(message: str) -> str:
    return translations(_lang.get()).gettext(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_lang.get()).ngettext(singular, plural, n)


@pass_context
def part2_badge(context: Any, row: Any, patient: Any = None) -> Markup:
    """ "Protected by 42 CFR Part 2" beside a record that carries the label (issue 18, ADR
    0021), nothing beside one that does not: one badge for every page, in the viewer's
    language; beside a series of scores (a progress card) when any score in it is labelled;
    beside a change in a plan's history when the read found its item labelled.
    `patient`: the record's patient where the page has none (a list across
    patients); the page's `patient` otherwise. The badge names the record's id
    (`data-part2`), so a test can tell which record it stands beside. The labels were loaded
    by the read that found the record (no query per row)."""
    text = _gettext(N_("Protected by 42 CFR Part 2"))
    if getattr(row, "points", None) is not None and hasattr(row, "part2"):
        # A series of scores (measures.InstrumentProgress): labelled when any score is.
        if not row.part2:
            return Markup("")
        return Markup(' <span class="badge warn part2" data-part2-series="{}">{}</span>').format(
            row.instrument.code, text
        )
    if hasattr(row, "item_id") and isinstance(getattr(row, "part2", None), bool):
        # A change in a plan's history (careplans.history.Change): labelled by the read.
        if not row.part2 or row.item_id is None:
            return Markup("")
        return Markup(' <span class="badge warn part2" data-part2="{}">{}</span>').format(
            row.item_id, text
        )
    patient = patient if patient is not None else context.get("patient")
    if row is None or patient is None or getattr(row, "id", None) is None:
        return Markup("")
    if not disclosure.is_part2(row, patient):
        return Markup("")
    return Markup(' <span class="badge warn part2" data-part2="{}">{}</span>').format(row.id, text)


def new_key() -> str:
    """A one-time key for a form, so a resubmission is recognised and not applied twice."""
    return uuid.uuid4().hex


def _make_env() -> Environment:
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader([str(d) for d in TEMPLATE_DIRS])]),
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["fdate"] = _fdate
    env.filters["fdatetime"] = _fdatetime
    env.filters["ftime"] = _ftime
    env.filters["fmonth"] = _fmonth
    env.filters["score"] = _score
    env.filters["localdate"] = _localdate
    env.filters["label"] = _label
    env.filters["role"] = _role
    env.filters["field"] = _field
    env.filters["section"] = _section
    env.filters["msg"] = _msg
    env.filters["iso"] = lambda d: d.isoformat() if d else ""
    env.filters["pick"] = _pick
    env.filters["langof"] = _langof
    env.globals["english_only"] = _english_only
    env.filters["tel"] = _tel
    env.filters["chainstep"] = _chainstep
    env.filters["duration"] = _duration
    env.filters["reg"] = _registry_label
    env.globals["LANGUAGE_NAMES"] = LANGUAGE_NAMES
    env.globals["new_key"] = new_key
    env.globals["part2_badge"] = part2_badge
    return env


def _fdate(value: date | str | None, format: str = "medium") -> str:
    # An instant's date is the organization's local date, never the UTC one.
    return dates.format_date(value, lang=_lang.get(), where=_tz.get(), format=format)


def _fdatetime(value: datetime | None, format: str = "medium") -> str:
    return dates.format_datetime(value, lang=_lang.get(), where=_tz.get(), format=format)


def _ftime(value: datetime | None) -> str:
    return dates.format_time(value, lang=_lang.get(), where=_tz.get())


def _fmonth(value: date | None) -> str:
    return dates.format_month(value, lang=_lang.get()) if value else ""


def _score(value: Any) -> str:
    return dates.score(value, _lang.get())


def _localdate(value: datetime | date | None) -> date | None:
    """The organization's local date of an instant (for a date field's default value)."""
    return dates.local_date(value, _tz.get())


def _label(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return _gettext("yes" if value else "no")
    key = str(getattr(value, "value", value))
    text = VALUE_LABELS.get(key)
    return _gettext(text) if text else key


def _role(value: Any) -> str:
    key = str(getattr(value, "value", value))
    text = ROLE_LABELS.get(key)
    return _gettext(text) if text else key


def _field(name: str) -> str:
    text = FIELD_LABELS.get(name)
    return _gettext(text) if text else name


def _section(name: str) -> str:
    text = SECTION_LABELS.get(name)
    return _gettext(text) if text else name


CHAIN_LABELS = {"lead": N_("team lead"), "on_call": N_("on-call clinician")}


def _duration(value: Any) -> str:
    """A time allowed, in words: "15 minutes", "4 hours", "2 days"."""
    from babel.dates import format_timedelta

    if value is None:
        return ""
    return format_timedelta(value, threshold=1, format="long", locale=_lang.get())


def _chainstep(step: str) -> str:
    """A step of an escalation chain in words."""
    text = CHAIN_LABELS.get(step)
    return _gettext(text) if text else _role(step)


def _registry_label(value: Any) -> str:
    key = str(getattr(value, "value", value) or "")
    text = LABELS.get(key)
    return _gettext(text) if text else key


def _tel(text: Any) -> str:
    """A tel: link for text that is a phone number, else empty."""
    import re

    value = str(text or "").strip()
    if not re.fullmatch(r"\+?[\d][\d\s\-().]{2,24}", value):
        return ""
    digits = re.sub(r"[^\d]", "", value)
    return f"tel:{'+' if value.startswith('+') else ''}{digits}" if len(digits) >= 3 else ""


def _pick(text: Any) -> str:
    """Text kept in several languages ({"en": ..., "es": ...}): the viewer's, else English."""
    if not text:
        return ""
    if isinstance(text, dict):
        return str(text.get(_lang.get()) or text.get("en") or "")
    return str(text)


def _langof(text: Any) -> Markup:
    """` lang="en"` for an element whose text `pick` shows in English on a page in another
    language (a screen reader then reads it with English pronunciation), else nothing."""
    lang = _lang.get()
    if lang == "en" or not text or not isinstance(text, dict) or text.get(lang):
        return Markup("")
    return Markup(' lang="en"')


def _english_only() -> Markup:
    """` lang="en"` for text kept only in English (citations, sources), on a page that is not."""
    return Markup("") if _lang.get() == "en" else Markup(' lang="en"')


def _msg(message: Any) -> str:
    if message is None:
        return ""
    return translate(message, _lang.get()) if isinstance(message, str) else str(message)


env = _make_env()
templates = Jinja2Templates(env=env)


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    block: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """Render a page; for an HTMX request with `block`, only that block."""
    actor = getattr(request.state, "actor", None)
    user = actor.user if actor else None
    ctx: dict[str, Any] = {
        "request": request,
        "lang": getattr(request.state, "lang", "en"),
        "user": user,
        "csrf_token": actor.web_session.csrf_token
        if actor and actor.web_session
        else getattr(request.state, "anon_csrf", ""),
        "timezone": user.organization.timezone if user else "UTC",
        "now_utc": now(),
        "banner": getattr(request.state, "banner", None),
        "tier_names": getattr(request.state, "tier_names", {}),
        "failing_messages": getattr(request.state, "failing_messages", 0),
        "unread_notices": getattr(request.state, "unread_notices", 0),
        "bell": getattr(request.state, "bell", 0),
        "privacy_notices": getattr(request.state, "privacy_notices", 0),
        "privacy_officer": getattr(request.state, "privacy_officer", False),
        # 42 CFR 2.32: the notice in the footer of a page that disclosed Part 2 records.
        "part2_notice": _part2_notice(request),
        # § 2.32(b): the consents the disclosure was made under, each explained beside it.
        "part2_consents": _part2_consents(request),
        "nonce": secrets.token_urlsafe(8),
        "Markup": Markup,
    }
    ctx.update(context)
    lang_token = _lang.set(ctx["lang"])
    tz_token = _tz.set(ctx["timezone"])
    try:
        htmx = request.headers.get("HX-Request") == "true"
        if block and htmx:
            tmpl = env.get_template(template)
            body = "".join(tmpl.blocks[block](tmpl.new_context(ctx)))
            return HTMLResponse(
                body + _fragment_notice(ctx), status_code=status_code, headers=headers
            )
        if htmx and ctx["part2_notice"] and not _is_page(template):
            # A fragment (no page footer) that disclosed Part 2 records: the notice goes with
            # it, swapped into the page's footer out of band (42 CFR 2.32).
            body = env.get_template(template).render(ctx) + _fragment_notice(ctx)
            return HTMLResponse(body, status_code=status_code, headers=headers)
        return templates.TemplateResponse(
            request, template, ctx, status_code=status_code, headers=headers
        )
    finally:
        _lang.reset(lang_token)
        _tz.reset(tz_token)


@lru_cache(maxsize=512)
def _is_page(template: str) -> bool:
    """A whole page (it extends the base, whose footer carries the notice), not a fragment."""
    source = env.loader.get_source(env, template)[0] if env.loader is not None else ""
    return 'extends "base.html"' in source


def _fragment_notice(ctx: dict[str, Any]) -> str:
    if not ctx.get("part2_notice"):
        return ""
    lang_token = _lang.set(ctx["lang"])
    try:
        return env.get_template("_part2_notice.html").render(ctx, oob=True)
    finally:
        _lang.reset(lang_token)


def _part2_consents(request: Request) -> list[dict[str, str]]:
    rows = getattr(request.state, "part2_consents", None) or []
    lang = getattr(request.state, "lang", "en")
    return [
        {"sentence": sentence(c, lang), "url": f"/patients/{c.patient_id}/consents"} for c in rows
    ]


def _part2_notice(request: Request) -> str | None:
    if not getattr(request.state, "part2_notice", False):
        return None
    return notice_text(getattr(request.state, "lang", "en"))


def message(request: Request, msg: str | Msg) -> str:
    return translate(msg, getattr(request.state, "lang", "en"))

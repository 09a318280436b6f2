"""Extracting translatable strings and checking catalogs (used by scripts/i18n.py and tests)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from concord.i18n import LOCALE_DIR, SUPPORTED

PACKAGE = Path(__file__).resolve().parent
# concord.i18n.gettext(lang, message, ...) takes the message second.
KEYWORDS = {"_": None, "gettext": (2,), "ngettext": (1, 2), "N_": None, "Msg": None}
METHODS = [
    ("**/migrations/**", "ignore"),
    ("**.py", "python"),
    ("**/templates/**.html", "jinja2"),
]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "false"}}


def extract() -> Catalog:
    catalog = Catalog(project="Concord", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(PACKAGE), METHODS, keywords=KEYWORDS, options_map=OPTIONS, strip_comment_tags=True
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"


def update(langs: Iterable[str] = SUPPORTED) -> None:
    """Write messages.pot and merge it into each language's catalog (keeping translations)."""
    template = extract()
    LOCALE_DIR.mkdir(parents=True, exist_ok=True)
    with (LOCALE_DIR / "messages.pot").open("wb") as handle:
        write_po(handle, template, omit_header=False, sort_output=True, width=100)
    for lang in langs:
        if lang == "en":
            continue
        path = po_path(lang)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with path.open("rb") as handle:
                catalog = read_po(handle, locale=lang)
            catalog.update(template, no_fuzzy_matching=True)
        else:
            catalog = Catalog(locale=lang, project="Concord", charset="utf-8")
            catalog.update(template)
        with path.open("wb") as handle:
            write_po(handle, catalog, sort_output=True, width=100, ignore_obsolete=True)


@dataclass
class CatalogReport:
    lang: str
    missing: list[str]
    fuzzy: list[str]
    bad_placeholders: list[str]


def check(lang: str) -> CatalogReport:
    """What the catalog lacks for the messages the code uses now."""
    import re

    template = extract()
    with po_path(lang).open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    missing, fuzzy, bad = [], [], []
    placeholder = re.compile(r"%\(\w+\)s")
    for message in template:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        found = catalog.get(message.id)
        if (
            found is None
            or not found.string
            or (isinstance(found.string, tuple) and not all(found.string))
        ):
            missing.append(key)
            continue
        if found.fuzzy:
            fuzzy.append(key)
        strings = found.string if isinstance(found.string, tuple) else (found.string,)
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        wanted = set(placeholder.findall(ids[-1]))
        for text in strings:
            if set(placeholder.findall(text)) != wanted:
                bad.append(key)
    return CatalogReport(lang, missing, fuzzy, bad)

"""Decision aids as data files, checked in full when they are loaded.

The format is in docs/decision-aid-format.md. A file that breaks a rule is refused with a
message naming the file and the place; nothing half-loaded is ever used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from concord.settings import get_settings

BUILT_IN = Path(__file__).parent / "aids"
LANGUAGES = ("en", "es")
ATTRIBUTES = ("involves", "works", "how_soon", "side_effects", "effort_cost", "if_stop")
FITS = ("good", "some", "poor")
CATEGORIES = (
    "medication",
    "psychotherapy",
    "psychosocial_support",
    "lifestyle",
    "peer_support",
    "referral",
    "education",
)
TOP_KEYS = {
    "kind",
    "id",
    "version",
    "last_reviewed",
    "title",
    "question",
    "for_whom",
    "not_for",
    "summary",
    "options",
    "values",
    "sources",
    "programs",
}
# The collaborative-care programs an aid is first offered for (concord.registry.models.Program).
PROGRAMS = {"depression", "anxiety", "ptsd", "substance_use", "co_occurring"}
AID_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,59}$")
ITEM_ID = re.compile(r"^[a-z0-9][a-z0-9_]{0,39}$")
DIGIT = re.compile(r"\d")

Text = Mapping[str, str]


class AidError(ValueError):
    """A decision-aid file that cannot be used, and why."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass(frozen=True)
class Source:
    id: str
    citation: str
    url: str
    licence: str | None = None


@dataclass(frozen=True)
class Option:
    id: str
    name: Text
    attributes: Mapping[str, Text]
    sources: Mapping[str, tuple[str, ...]]
    category: str
    intervention: Text
    # Other kinds of treatment the intervention includes ("do both": psychotherapy and
    # medication), so the plan's existing treatments of those kinds are shown beside it.
    also: tuple[str, ...] = ()

    @property
    def kinds(self) -> tuple[str, ...]:
        return (self.category, *self.also)


@dataclass(frozen=True)
class Fit:
    fit: str
    why: Text


@dataclass(frozen=True)
class Value:
    id: str
    label: Text
    fits: Mapping[str, Fit]


@dataclass(frozen=True)
class Aid:
    id: str
    version: str
    last_reviewed: date
    title: Text
    question: Text
    for_whom: Text
    not_for: Text | None
    summary: Text
    options: tuple[Option, ...]
    values: tuple[Value, ...]
    sources: Mapping[str, Source]
    path: str
    programs: tuple[str, ...] = ()

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)

    def value(self, value_id: str) -> Value | None:
        return next((v for v in self.values if v.id == value_id), None)

    def texts(self) -> Iterable[tuple[str, Text]]:
        """Every patient-facing text, with where it is (for the readability checks)."""
        yield "title", self.title
        yield "question", self.question
        yield "for_whom", self.for_whom
        if self.not_for:
            yield "not_for", self.not_for
        yield "summary", self.summary
        for i, option in enumerate(self.options):
            yield f"options[{i}].name", option.name
            for name in ATTRIBUTES:
                yield f"options[{i}].attributes.{name}", option.attributes[name]
        for i, value in enumerate(self.values):
            yield f"values[{i}].label", value.label
            for option_id, fit in value.fits.items():
                yield f"values[{i}].fits.{option_id}.why", fit.why


def _text(path: Path, where: str, raw: Any) -> Text:
    if not isinstance(raw, Mapping):
        raise AidError(path, f"{where}: must be a text in each language ({', '.join(LANGUAGES)})")
    for lang in LANGUAGES:
        value = raw.get(lang)
        if not isinstance(value, str) or not value.strip():
            raise AidError(path, f"{where}.{lang}: is missing (every text needs en and es)")
    extra = set(raw) - set(LANGUAGES)
    if extra:
        raise AidError(path, f"{where}: unknown language {sorted(extra)[0]}")
    return {lang: " ".join(str(raw[lang]).split()) for lang in LANGUAGES}


def _list(path: Path, where: str, raw: Any, low: int, high: int) -> list[Any]:
    if not isinstance(raw, list) or not low <= len(raw) <= high:
        raise AidError(path, f"{where}: must be a list of {low} to {high} entries")
    return raw


def _id(path: Path, where: str, raw: Any, pattern: re.Pattern[str], seen: set[str]) -> str:
    if not isinstance(raw, str) or not pattern.match(raw):
        raise AidError(path, f"{where}: must be lower-case letters, digits and underscores")
    if raw in seen:
        raise AidError(path, f"{where}: {raw} is used twice")
    seen.add(raw)
    return raw


def parse_aid(path: Path, data: Any) -> Aid:
    if not isinstance(data, Mapping):
        raise AidError(path, "must be a mapping (see docs/decision-aid-format.md)")
    if data.get("kind") != "decision_aid":
        raise AidError(path, "kind: must be decision_aid")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise AidError(path, f"{sorted(unknown)[0]}: unknown key")
    for key in (
        "id",
        "version",
        "last_reviewed",
        "title",
        "question",
        "for_whom",
        "summary",
        "options",
        "values",
        "sources",
    ):
        if key not in data:
            raise AidError(path, f"{key}: is missing")
    aid_id = data["id"]
    if not isinstance(aid_id, str) or not AID_ID.match(aid_id):
        raise AidError(path, "id: must be lower-case letters, digits and hyphens")
    reviewed = data["last_reviewed"]
    if isinstance(reviewed, str):
        try:
            reviewed = date.fromisoformat(reviewed)
        except ValueError:
            reviewed = None
    if not isinstance(reviewed, date):
        raise AidError(path, "last_reviewed: must be a date written as YYYY-MM-DD")

    sources: dict[str, Source] = {}
    seen: set[str] = set()
    for i, raw in enumerate(_list(path, "sources", data["sources"], 1, 50)):
        where = f"sources[{i}]"
        if not isinstance(raw, Mapping):
            raise AidError(path, f"{where}: must have id, citation and url")
        sid = raw.get("id")
        if not isinstance(sid, str) or not sid.strip() or sid in seen:
            raise AidError(path, f"{where}.id: must be a unique name")
        seen.add(sid)
        for key in ("citation", "url"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise AidError(path, f"{where}.{key}: is missing")
        if not str(raw["url"]).startswith(("https://", "http://")):
            raise AidError(path, f"{where}.url: must be a web address")
        sources[sid] = Source(sid, raw["citation"].strip(), raw["url"].strip(), raw.get("licence"))

    options: list[Option] = []
    option_ids: set[str] = set()
    for i, raw in enumerate(_list(path, "options", data["options"], 2, 6)):
        where = f"options[{i}]"
        if not isinstance(raw, Mapping):
            raise AidError(path, f"{where}: must be a mapping")
        oid = _id(path, f"{where}.id", raw.get("id"), ITEM_ID, option_ids)
        attributes_raw = raw.get("attributes")
        if not isinstance(attributes_raw, Mapping):
            raise AidError(path, f"{where}.attributes: is missing")
        extra = set(attributes_raw) - set(ATTRIBUTES)
        if extra:
            raise AidError(path, f"{where}.attributes.{sorted(extra)[0]}: unknown attribute")
        attributes = {
            name: _text(path, f"{where}.attributes.{name}", attributes_raw.get(name))
            for name in ATTRIBUTES
        }
        cited_raw = raw.get("sources") or {}
        if not isinstance(cited_raw, Mapping):
            raise AidError(path, f"{where}.sources: must map attributes to source ids")
        cited: dict[str, tuple[str, ...]] = {}
        for name, ids in cited_raw.items():
            if name not in ATTRIBUTES:
                raise AidError(path, f"{where}.sources.{name}: unknown attribute")
            ids = [ids] if isinstance(ids, str) else ids
            if not isinstance(ids, list) or not ids:
                raise AidError(path, f"{where}.sources.{name}: must list source ids")
            for sid in ids:
                if sid not in sources:
                    raise AidError(path, f"{where}.sources.{name}: {sid} is not under sources")
            cited[name] = tuple(ids)
        for name, text in attributes.items():
            if any(DIGIT.search(t) for t in text.values()) and name not in cited:
                raise AidError(
                    path,
                    f"{where}.attributes.{name}: states a figure but names no source "
                    f"(add {where}.sources.{name})",
                )
        intervention = raw.get("intervention")
        if not isinstance(intervention, Mapping):
            raise AidError(path, f"{where}.intervention: is missing")
        if intervention.get("category") not in CATEGORIES:
            raise AidError(
                path, f"{where}.intervention.category: must be one of {', '.join(CATEGORIES)}"
            )
        also = intervention.get("also") or []
        if not isinstance(also, list) or any(a not in CATEGORIES for a in also):
            raise AidError(
                path, f"{where}.intervention.also: must list kinds from {', '.join(CATEGORIES)}"
            )
        options.append(
            Option(
                id=oid,
                name=_text(path, f"{where}.name", raw.get("name")),
                attributes=attributes,
                sources=cited,
                category=intervention["category"],
                intervention=_text(
                    path, f"{where}.intervention.description", intervention.get("description")
                ),
                also=tuple(also),
            )
        )

    values: list[Value] = []
    value_ids: set[str] = set()
    for i, raw in enumerate(_list(path, "values", data["values"], 3, 10)):
        where = f"values[{i}]"
        if not isinstance(raw, Mapping):
            raise AidError(path, f"{where}: must be a mapping")
        vid = _id(path, f"{where}.id", raw.get("id"), ITEM_ID, value_ids)
        fits_raw = raw.get("fits")
        if not isinstance(fits_raw, Mapping):
            raise AidError(path, f"{where}.fits: is missing")
        fits: dict[str, Fit] = {}
        for option in options:
            fit = fits_raw.get(option.id)
            if not isinstance(fit, Mapping):
                raise AidError(path, f"{where}.fits.{option.id}: is missing (every option)")
            if fit.get("fit") not in FITS:
                raise AidError(path, f"{where}.fits.{option.id}.fit: must be good, some or poor")
            fits[option.id] = Fit(
                fit["fit"], _text(path, f"{where}.fits.{option.id}.why", fit.get("why"))
            )
        extra = set(fits_raw) - option_ids
        if extra:
            raise AidError(path, f"{where}.fits.{sorted(extra)[0]}: is not an option")
        values.append(Value(vid, _text(path, f"{where}.label", raw.get("label")), fits))

    return Aid(
        id=aid_id,
        version=str(data["version"]),
        last_reviewed=reviewed,
        title=_text(path, "title", data["title"]),
        question=_text(path, "question", data["question"]),
        for_whom=_text(path, "for_whom", data["for_whom"]),
        not_for=_text(path, "not_for", data["not_for"]) if data.get("not_for") else None,
        summary=_text(path, "summary", data["summary"]),
        options=tuple(options),
        values=tuple(values),
        sources=sources,
        path=str(path),
        programs=_programs(path, data.get("programs")),
    )


def _programs(path: Path, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise AidError(path, "programs: must be a list of program names")
    unknown = sorted(set(raw) - PROGRAMS)
    if unknown:
        raise AidError(path, f"programs: {unknown[0]} is not one of {', '.join(sorted(PROGRAMS))}")
    return tuple(raw)


def load_file(path: Path | str) -> Aid:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AidError(path, f"cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise AidError(path, f"is not valid YAML{where}") from None
    return parse_aid(path, data)


def files_in(folders: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            found.extend(sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")))
    return found


def load_aids(paths: Iterable[Path]) -> dict[str, Aid]:
    """Every file, or none: the first broken file or repeated id refuses the set."""
    aids: dict[str, Aid] = {}
    for path in paths:
        aid = load_file(path)
        if aid.id in aids:
            raise AidError(path, f"id {aid.id} is already used by {aids[aid.id].path}")
        aids[aid.id] = aid
    return aids


@lru_cache(maxsize=4)
def _aids(extra: str | None) -> dict[str, Aid]:
    aids = load_aids(files_in([BUILT_IN]))
    if extra:
        aids = {**aids, **load_aids(files_in([Path(extra)]))}  # a clinic's own, or its edit
    return aids


def all_aids() -> dict[str, Aid]:
    """The decision aids this installation offers (built in, plus CONCORD_DECISION_AIDS_DIR)."""
    extra = get_settings().decision_aids_dir
    return _aids(str(extra) if extra else None)


def get_aid(aid_id: str) -> Aid | None:
    return all_aids().get(aid_id)


def t(text: Text | None, lang: str) -> str:
    if not text:
        return ""
    return text.get(lang) or text["en"]

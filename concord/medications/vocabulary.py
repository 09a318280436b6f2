"""The curated drug vocabulary (issue 19): ingredients keyed by RxNorm ingredient RxCUI, each with
its names, the classes it belongs to and where both come from. Data, not code
(docs/medication-rules-format.md); Concord calls no outside service at run time.

A file that is malformed is refused with a message naming the file and the field; nothing of a
refused file is used. An ingredient whose RxCUI could not be confirmed is kept with
`code_check: unverified` so that the gap is visible, and matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DEFAULT_FILE = Path(__file__).parent / "vocabulary.yaml"
KIND = "medication-vocabulary"
RXCUI_RE = re.compile(r"^[1-9][0-9]{0,9}$")
KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,59}$")
CODE_CHECKS = ("confirmed", "corroborated", "unverified")
MIN_CITATION = 10

Text = Mapping[str, str]


class MedicationFileError(ValueError):
    """A vocabulary or rule file that cannot be used: `file` names it, `where` the field."""

    def __init__(self, file: str, where: str, problem: str) -> None:
        super().__init__(f"{file}: {where}: {problem}")
        self.file = file
        self.where = where
        self.problem = problem


@dataclass(frozen=True)
class Source:
    citation: str
    url: str


@dataclass(frozen=True)
class Ingredient:
    rxcui: str
    name: Text
    classes: frozenset[str]
    class_sources: tuple[str, ...]
    code_check: str
    code_sources: tuple[str, ...]

    @property
    def verified(self) -> bool:
        """Confirmed or corroborated: the checker uses it. Unverified matches nothing."""
        return self.code_check != "unverified"

    def label(self, lang: str = "en") -> str:
        return self.name.get(lang) or self.name["en"]


@dataclass(frozen=True)
class Vocabulary:
    version: str
    classes: Mapping[str, Text]
    sources: Mapping[str, Source]
    ingredients: tuple[Ingredient, ...]
    _index: Mapping[str, Ingredient] = field(repr=False, compare=False, default_factory=dict)

    def get(self, rxcui: str) -> Ingredient | None:
        """The ingredient with this RxCUI if it is usable (not unverified), else None."""
        found = self._index.get(str(rxcui))
        return found if found is not None and found.verified else None

    def entry(self, rxcui: str) -> Ingredient | None:
        """The entry with this RxCUI whatever its code check."""
        return self._index.get(str(rxcui))

    def members(self, cls: str) -> list[Ingredient]:
        return [i for i in self.ingredients if i.verified and cls in i.classes]

    @property
    def unverified(self) -> list[Ingredient]:
        return [i for i in self.ingredients if not i.verified]

    def extended(self, other: Vocabulary) -> Vocabulary:
        """This vocabulary with a clinic's additions (already checked against this one)."""
        return _build(
            version=f"{self.version}+{other.version}",
            classes={**self.classes, **other.classes},
            sources={**self.sources, **other.sources},
            ingredients=(*self.ingredients, *other.ingredients),
        )


def _build(
    *,
    version: str,
    classes: Mapping[str, Text],
    sources: Mapping[str, Source],
    ingredients: Iterable[Ingredient],
) -> Vocabulary:
    by_rxcui: dict[str, Ingredient] = {}
    for ingredient in ingredients:  # a later entry (a clinic's) replaces an earlier one
        by_rxcui[ingredient.rxcui] = ingredient
    items = tuple(by_rxcui.values())
    return Vocabulary(
        version=version,
        classes=dict(classes),
        sources=dict(sources),
        ingredients=items,
        _index={i.rxcui: i for i in items},
    )


# --- parsing -------------------------------------------------------------------------------


def read_yaml(text: str, file: str, kind: str) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise MedicationFileError(file, where, "is not valid YAML") from None
    if not isinstance(data, Mapping):
        raise MedicationFileError(file, "(file)", f"must be a YAML mapping with kind: {kind}")
    if data.get("kind") != kind:
        raise MedicationFileError(file, "kind", f"must be exactly {kind}")
    version = data.get("version")
    if not isinstance(version, str | int | float) or not str(version).strip():
        raise MedicationFileError(file, "version", "is required (any text, e.g. a date)")
    return data


def parse_text(value: Any, file: str, where: str) -> Text:
    """A name: text, or {en: ..., es: ...} with English."""
    if isinstance(value, str) and value.strip():
        return {"en": value.strip()}
    if isinstance(value, Mapping) and isinstance(value.get("en"), str) and value["en"].strip():
        out = {}
        for lang, text in value.items():
            if not isinstance(text, str) or not text.strip():
                raise MedicationFileError(file, f"{where}.{lang}", "must be non-empty text")
            out[str(lang)] = text.strip()
        return out
    raise MedicationFileError(file, where, "needs text, or {en: ..., es: ...} with English")


def parse_source(value: Any, file: str, where: str) -> Source:
    if not isinstance(value, Mapping):
        raise MedicationFileError(file, where, "needs a source: {citation: ..., url: https://...}")
    citation = value.get("citation")
    if not isinstance(citation, str) or len(citation.strip()) < MIN_CITATION:
        raise MedicationFileError(
            file, f"{where}.citation", "is required: who published it, what, and when"
        )
    url = value.get("url")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise MedicationFileError(file, f"{where}.url", "is required and must start https://")
    return Source(citation=" ".join(citation.split()), url=url.strip())


def _keys(value: Any, file: str, where: str, known: Mapping[str, Any], what: str) -> tuple:
    if not isinstance(value, list) or not value:
        raise MedicationFileError(file, where, f"must be a list of {what} (at least one)")
    out = []
    for item in value:
        key = str(item)
        if key not in known:
            raise MedicationFileError(
                file, where, f"{key} is not a known {what} (known: {', '.join(sorted(known))})"
            )
        if key in out:
            raise MedicationFileError(file, where, f"{key} is listed twice")
        out.append(key)
    return tuple(out)


def _mapping(data: Mapping[str, Any], key: str, file: str, required: bool) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping) or (required and not value):
        raise MedicationFileError(file, key, "must be a mapping (and not empty)")
    return value


def parse_vocabulary(
    text: str, *, name: str = "vocabulary.yaml", base: Vocabulary | None = None
) -> Vocabulary:
    """Parse and check a vocabulary file. With `base` (a clinic's file), the file adds to the
    base: it may name the base's classes and sources, and may not repeat a base RxCUI."""
    data = read_yaml(text, name, KIND)
    shipped = base is None
    known_sources = dict(base.sources) if base else {}
    known_classes = dict(base.classes) if base else {}

    sources: dict[str, Source] = {}
    for section in ("code_sources", "class_sources"):
        for key, raw in _mapping(data, section, name, shipped).items():
            where = f"{section}.{key}"
            if not KEY_RE.match(str(key)):
                raise MedicationFileError(name, where, "key: lower-case letters, digits, - or _")
            if str(key) in known_sources or str(key) in sources:
                raise MedicationFileError(name, where, "is defined twice")
            sources[str(key)] = parse_source(raw, name, where)
    known_sources.update(sources)

    classes: dict[str, Text] = {}
    for key, raw in _mapping(data, "classes", name, shipped).items():
        where = f"classes.{key}"
        if not KEY_RE.match(str(key)):
            raise MedicationFileError(name, where, "key: lower-case letters, digits, - or _")
        if str(key) in known_classes:
            raise MedicationFileError(name, where, "is defined twice")
        classes[str(key)] = parse_text(raw, name, where)
    known_classes.update(classes)

    raw_ingredients = data.get("ingredients")
    if not isinstance(raw_ingredients, list) or not raw_ingredients:
        raise MedicationFileError(name, "ingredients", "must be a list with at least one entry")
    ingredients: list[Ingredient] = []
    seen: dict[str, str] = {}
    for index, raw in enumerate(raw_ingredients, start=1):
        where = f"ingredients[{index}]"
        if not isinstance(raw, Mapping):
            raise MedicationFileError(name, where, "must be a mapping")
        rxcui = str(raw.get("rxcui") or "").strip()
        if not RXCUI_RE.match(rxcui):
            raise MedicationFileError(
                name, f"{where}.rxcui", "is required: an RxNorm ingredient RxCUI (digits), quoted"
            )
        where = f"ingredients[{index}] (rxcui {rxcui})"
        if rxcui in seen:
            raise MedicationFileError(name, f"{where}.rxcui", f"is used twice ({seen[rxcui]})")
        # A clinic may add new ingredients, or confirm one Concord ships as unverified (having
        # checked it itself); it may not redefine one Concord already uses.
        if base is not None and base.get(rxcui) is not None:
            raise MedicationFileError(
                name, f"{where}.rxcui", "is already in Concord's vocabulary; add only new ones"
            )
        ingredient_name = parse_text(raw.get("name"), name, f"{where}.name")
        seen[rxcui] = ingredient_name["en"]
        code_check = raw.get("code_check")
        if code_check not in CODE_CHECKS:
            raise MedicationFileError(
                name, f"{where}.code_check", f"must be one of {', '.join(CODE_CHECKS)}"
            )
        code_sources: tuple[str, ...] = ()
        if code_check != "unverified":
            code_sources = _keys(
                raw.get("code_sources"), name, f"{where}.code_sources", known_sources, "source"
            )
        elif raw.get("code_sources") is not None:
            code_sources = _keys(
                raw.get("code_sources"), name, f"{where}.code_sources", known_sources, "source"
            )
        ingredients.append(
            Ingredient(
                rxcui=rxcui,
                name=ingredient_name,
                classes=frozenset(
                    _keys(raw.get("classes"), name, f"{where}.classes", known_classes, "class")
                ),
                class_sources=_keys(
                    raw.get("class_sources"),
                    name,
                    f"{where}.class_sources",
                    known_sources,
                    "source",
                ),
                code_check=str(code_check),
                code_sources=code_sources,
            )
        )
    return _build(
        version=str(data["version"]).strip(),
        classes=classes,
        sources=sources,
        ingredients=ingredients,
    )


@lru_cache(maxsize=1)
def default_vocabulary() -> Vocabulary:
    return parse_vocabulary(DEFAULT_FILE.read_text(encoding="utf-8"), name=DEFAULT_FILE.name)


def load_clinic_vocabulary(text: str, *, name: str) -> Vocabulary:
    """Concord's vocabulary with a clinic's file added (refused whole if anything is wrong)."""
    base = default_vocabulary()
    return base.extended(parse_vocabulary(text, name=name, base=base))

"""The crisis phrase list (crisis-phrases.yaml, or a clinic's own): which rule, if any, a
patient's message matches. Case and accents are ignored, whitespace collapsed, and a phrase
matches only as whole words ("suicide" in "suicides"? no; "kill myself" in "I could kill
myself"? yes)."""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PHRASES_FILE = Path(__file__).with_name("crisis-phrases.yaml")


class PhraseFileError(ValueError):
    pass


@dataclass(frozen=True)
class PhraseRule:
    id: str
    sign: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class PhraseList:
    code: str
    version: str
    citation: str
    url: str
    rules: tuple[PhraseRule, ...]

    def match(self, text: str) -> str | None:
        """The id of the first rule the text matches, or None."""
        folded = fold(text)
        for rule in self.rules:
            if rule.pattern.search(folded):
                return rule.id
        return None


def fold(text: str) -> str:
    """Lower case, accents dropped, apostrophes made plain, whitespace collapsed."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("\u2019", "'").replace("\u2018", "'").casefold()
    return " ".join(text.split())


def parse(raw: Any) -> PhraseList:
    if not isinstance(raw, dict) or raw.get("kind") != "crisis-phrases":
        raise PhraseFileError("kind must be crisis-phrases")
    source = raw.get("source") or {}
    if not source.get("citation"):
        raise PhraseFileError("source.citation is required: say where the signs come from")
    rules = []
    seen = set()
    for i, item in enumerate(raw.get("rules") or []):
        rid = str(item.get("id") or "")
        if not rid or rid in seen:
            raise PhraseFileError(f"rules[{i}].id must be present and unique")
        seen.add(rid)
        phrases = [
            fold(str(p)) for words in (item.get("phrases") or {}).values() for p in words or []
        ]
        phrases = [p for p in phrases if p]
        if not phrases:
            raise PhraseFileError(f"rules[{i}].phrases must name at least one phrase")
        alternatives = "|".join(re.escape(p) for p in sorted(set(phrases), key=len, reverse=True))
        pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
        rules.append(PhraseRule(rid, str(item.get("sign") or ""), pattern))
    if not rules:
        raise PhraseFileError("rules must hold at least one rule")
    return PhraseList(
        code=str(raw.get("code") or ""),
        version=str(raw.get("version") or ""),
        citation=str(source["citation"]).strip(),
        url=str(source.get("url") or ""),
        rules=tuple(rules),
    )


@functools.lru_cache(maxsize=1)
def default_phrases() -> PhraseList:
    return parse(yaml.safe_load(PHRASES_FILE.read_text(encoding="utf-8")))


@functools.lru_cache(maxsize=32)
def _parsed(text: str) -> PhraseList:
    return parse(json.loads(text))


def phrases_for(raw: dict[str, Any] | None) -> PhraseList:
    """A clinic's own list (the same format as crisis-phrases.yaml, stored with the
    organization's messaging settings, checked when it was saved), or Concord's default."""
    if not raw:
        return default_phrases()
    return _parsed(json.dumps(raw, sort_keys=True))

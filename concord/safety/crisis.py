"""Crisis resources: the organization's list (or Concord's default), in the reader's language."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from concord.accounts.models import Organization

CRISIS_FILE = Path(__file__).parent / "crisis-resources.yaml"


@lru_cache(maxsize=1)
def default_crisis_resources() -> dict[str, Any]:
    return yaml.safe_load(CRISIS_FILE.read_text(encoding="utf-8"))


def crisis_resources(org: Organization, lang: str) -> list[dict[str, str]]:
    """The resources to show, in the person's language (English where none is given)."""
    data = org.crisis_resources or default_crisis_resources()
    shown = []
    for resource in data["resources"]:

        def pick(key: str, res: dict[str, Any] = resource) -> str:
            value = res.get(key) or {}
            return str(value.get(lang) or value.get("en") or "")

        shown.append(
            {
                "name": pick("name"),
                "contact": pick("contact"),
                "detail": pick("detail"),
                "href": str(resource.get("href") or ""),
            }
        )
    return shown

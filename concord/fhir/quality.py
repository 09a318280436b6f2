"""The FHIR door to the quality measures: Measure read and search, and
`$evaluate-measure` (GET with query parameters, POST with a Parameters resource). Parsing and
shaping only: concord.actions.quality reads the patients and decides."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from concord.accounts.models import User
from concord.accounts.tokens import token_scopes
from concord.actions import quality
from concord.errors import InvalidInput, NotFound
from concord.fhir.search import Query, page_of
from concord.i18n import Msg
from concord.quality import catalog

# Where a Parameters resource carries each $evaluate-measure parameter's value.
VALUE_KEYS = ("valueDate", "valueDateTime", "valueString", "valueCode", "valueUri")


def read_measure(ident: str) -> dict[str, Any]:
    try:
        return catalog.measure_resource(ident)
    except NotFound:
        raise NotFound(Msg("No such resource.")) from None


def search_measures(q: Query) -> tuple[list[dict[str, Any]], str | None, int]:
    found = [catalog.measure_resource(m) for m in catalog.measure_ids()]
    for group in q.groups("_id"):
        found = [r for r in found if any(t.system is None and t.code == r["id"] for t in group)]
    for group in q.groups("url"):
        found = [
            r
            for r in found
            if any(c.url == r["url"] and c.version in (None, r.get("version")) for c in group)
        ]
    page, next_cursor = page_of(found, q)
    return page, next_cursor, len(found)


def parameters_pairs(body: Any) -> list[tuple[str, str]]:
    """A Parameters resource's parameters as (name, value) pairs; anything else refused."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidInput.field("resourceType", Msg("must be Parameters"))
    pairs = []
    for index, item in enumerate(body.get("parameter") or []):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise InvalidInput.field(f"parameter[{index}].name", Msg("is required"))
        value: Any = next((item[k] for k in VALUE_KEYS if k in item), None)
        if value is None and isinstance(item.get("valueReference"), dict):
            value = item["valueReference"].get("reference")
        if not isinstance(value, str):
            raise InvalidInput.field(
                f"parameter[{index}].value", Msg("must be a date, string, code or reference")
            )
        pairs.append((name, value))
    return pairs


def evaluate(
    session: Session, *, by: User, token: Any, measure_id: str, pairs: list[tuple[str, str]]
) -> dict[str, Any]:
    return quality.evaluate_measure(
        session,
        by=by,
        scopes=token_scopes(token),
        measure_id=measure_id,
        pairs=[(n, v) for n, v in pairs if n != "_format"],
    )

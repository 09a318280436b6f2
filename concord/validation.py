"""Parsing input into schemas, for forms and the JSON API alike, with errors a person can act
on: each names the field and what is allowed."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    StringConstraints,
    ValidationError,
)

from concord.errors import InvalidInput
from concord.i18n import Msg

M = TypeVar("M", bound=BaseModel)

MIN_DATE = date(1900, 1, 1)
MAX_DATE = date(2200, 12, 31)


def blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def checkbox(value: Any) -> Any:
    """An HTML checkbox sends 'on' when ticked and nothing otherwise."""
    if value in ("on", "1", "true", "yes"):
        return True
    if value in (None, "", "off", "0", "false", "no"):
        return False
    return value


def _text(max_length: int) -> Any:
    return Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)
    ]


def _opt_text(max_length: int) -> Any:
    return Annotated[
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=max_length)] | None,
        BeforeValidator(blank_to_none),
    ]


Text200 = _text(200)
Text500 = _text(500)
Text1000 = _text(1000)
Text2000 = _text(2000)
OptText200 = _opt_text(200)
OptText500 = _opt_text(500)
OptText1000 = _opt_text(1000)
OptText2000 = _opt_text(2000)


def in_range(value: Any) -> Any:
    """A date or a date and time between 1900 and 2200: what Concord stores and shows. Year
    0001 is a valid ISO date, and one stored broke every page showing it (issue 16)."""
    if value is None:
        return None
    day = value
    if isinstance(value, datetime):
        try:
            day = (value.astimezone(UTC) if value.tzinfo is not None else value).date()
        except OverflowError:  # year 1 at +01:00 is year 0 in UTC
            raise ValueError(DATE_RANGE) from None
    if not (MIN_DATE <= day <= MAX_DATE):
        raise ValueError(DATE_RANGE)
    return value


DATE_RANGE = "must be a date between 1900 and 2200"
Date = Annotated[date, AfterValidator(in_range)]
OptDate = Annotated[date | None, BeforeValidator(blank_to_none), AfterValidator(in_range)]
OptDateTime = Annotated[datetime | None, BeforeValidator(blank_to_none), AfterValidator(in_range)]
Checkbox = Annotated[bool, BeforeValidator(checkbox)]


def _problem(error: Mapping[str, Any], annotation: Any) -> Msg:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return Msg("is required")
    if kind == "string_too_short":
        return (
            Msg("is required")
            if ctx.get("min_length") == 1
            else Msg("must be at least %(min)s characters", min=ctx.get("min_length"))
        )
    if kind == "string_too_long":
        return Msg("must be at most %(max)s characters", max=ctx.get("max_length"))
    if kind == "enum":
        return Msg("must be one of: %(allowed)s", allowed=ctx.get("expected", ""))
    if kind in (
        "date_from_datetime_parsing",
        "date_parsing",
        "date_type",
        "date_from_datetime_inexact",
    ):
        return Msg("must be a date written as YYYY-MM-DD")
    if kind in ("datetime_parsing", "datetime_from_date_parsing", "datetime_type"):
        return Msg("must be a date and time written as YYYY-MM-DDTHH:MM")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return Msg("must be a whole number")
    if kind in ("uuid_parsing", "uuid_type"):
        return Msg("must be the identifier of an existing item")
    if kind in ("bool_parsing", "bool_type"):
        return Msg("must be true or false")
    if kind in ("string_type",):
        return Msg("must be text")
    if kind == "extra_forbidden":
        return Msg("is not a field this accepts")
    if kind == "value_error":
        message = str(ctx.get("error", error.get("msg", "")))
        return Msg(message)
    return Msg("is not valid: %(detail)s", detail=error.get("msg", ""))


def errors_from(exc: ValidationError) -> dict[str, str]:
    return errors_from_fastapi(exc.errors())


def errors_from_fastapi(errors: Any) -> dict[str, str]:
    """Field -> problem, from pydantic's (or FastAPI's) list of errors."""
    fields: dict[str, str] = {}
    for error in errors:
        loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
        if len(loc) > 1 and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        name = ".".join(loc) or "body"
        fields.setdefault(name, _problem(error, None))
    return fields


def parse(schema: type[M], data: Mapping[str, Any]) -> M:
    """Validate `data` against `schema`, or raise InvalidInput naming every bad field."""
    try:
        return schema.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidInput(Msg("Some fields need attention."), errors=errors_from(exc)) from None


def check_date_range(value: date | datetime | None, field: str) -> None:
    """For a date parsed outside a schema (a form field read by hand, FHIR, the CLI)."""
    try:
        in_range(value)
    except (ValueError, OverflowError):
        raise InvalidInput.field(field, Msg("must be a date between 1900 and 2200")) from None


check_datetime_range = check_date_range


def parse_date(value: Any, field: str) -> date | None:
    """A date typed into a form or a query string (blank is None), checked like a schema's:
    YYYY-MM-DD, between 1900 and 2200, the field named."""
    text = blank_to_none(value)
    if text is None:
        return None
    try:
        parsed = date.fromisoformat(str(text).strip())
    except ValueError:
        raise InvalidInput.field(field, Msg("must be a date written as YYYY-MM-DD")) from None
    check_date_range(parsed, field)
    return parsed


def enum_values(enum: type[Enum]) -> str:
    return ", ".join(str(e.value) for e in enum)


# --- limits on any input, whatever its schema ------------------------------------------------

# Control characters other than tab, line feed and carriage return: NUL cannot be stored in a
# PostgreSQL text column at all, and none of them belongs in anything a person typed.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A FHIR QuestionnaireResponse with nested groups and extensions is some 15 levels deep.
MAX_JSON_DEPTH = 64
# The longest list any input needs (an instrument has at most a few dozen items).
MAX_JSON_ITEMS = 1000
# Longer than any text field Concord keeps (5,000); a field's own limit is checked by its schema.
MAX_JSON_STRING = 20000
# Stop after this many problems: the answer names enough to act on.
MAX_PROBLEMS = 20


def text_problem(value: str, limit: int | None = None) -> Msg | None:
    """What is wrong with one piece of text from outside, if anything."""
    if limit is not None and len(value) > limit:
        return Msg("must be at most %(max)s characters", max=limit)
    if CONTROL_CHARACTERS.search(value):
        return Msg("must not contain control characters (such as NUL)")
    return None


def _surely_fine(raw: bytes, value: object, shortest: int) -> bool:
    """A quick look that finds no body json_problems could object to (the usual case: the
    walk below, which names each problem's place, then runs only when this is unsure). JSON
    text holds no raw control character but DEL (the parser refuses the others), so without a
    backslash escape or a DEL byte no decoded text has one; beyond that, every key at most
    200 characters, every text at most `shortest` (the smallest limit for any path), no list
    longer than MAX_JSON_ITEMS and no nesting deeper than MAX_JSON_DEPTH."""
    if b"\\" in raw or b"\x7f" in raw:
        return False
    shortest = min(shortest, MAX_JSON_STRING)

    def fine(node: object, depth: int) -> bool:
        if depth >= MAX_JSON_DEPTH:
            return False  # its children would be too deep (the walk says where)
        if isinstance(node, dict):
            for key, child in node.items():
                if len(key) > 200:
                    return False
                if isinstance(child, str):
                    if len(child) > shortest:
                        return False
                elif isinstance(child, (dict, list)) and not fine(child, depth + 1):
                    return False
            return True
        if isinstance(node, list):
            if len(node) > MAX_JSON_ITEMS:
                return False
            for child in node:
                if isinstance(child, str):
                    if len(child) > shortest:
                        return False
                elif isinstance(child, (dict, list)) and not fine(child, depth + 1):
                    return False
            return True
        return not isinstance(node, str) or len(node) <= shortest

    return fine(value, 1)


def json_problems(
    raw: bytes, *, fhir: bool = False, max_lengths: Mapping[str, int] | None = None
) -> dict[str, str] | None:
    """Problems with a JSON body that no schema should have to meet: nesting deeper than
    MAX_JSON_DEPTH (Python's parser would fail with RecursionError, a 500), lists longer than
    MAX_JSON_ITEMS, text longer than MAX_JSON_STRING or than `max_lengths` gives for its path
    (dotted, without list positions, e.g. QuestionnaireResponse.identifier.value), or with
    control characters. Each problem is keyed by where it is (with list positions; for FHIR,
    a path from the resource type). None when the body is not JSON at all: the reader says
    so in its own words."""
    try:
        value = json.loads(raw)
    except RecursionError:
        return {"body": Msg("is nested too deeply: at most %(max)s levels", max=MAX_JSON_DEPTH)}
    except ValueError:
        return None
    limits = max_lengths or {}
    if _surely_fine(raw, value, min(limits.values(), default=MAX_JSON_STRING)):
        return {}
    root = ""
    if fhir and isinstance(value, dict):
        kind = value.get("resourceType")
        if isinstance(kind, str) and kind.isalpha() and len(kind) <= 64:
            root = kind
    problems: dict[str, str] = {}
    # Iterative, so the walk itself cannot run out of stack.
    stack: list[tuple[object, str, str, int]] = [(value, root, root, 1)]
    while stack and len(problems) < MAX_PROBLEMS:
        node, where, path, depth = stack.pop()
        name = where or "body"
        if depth > MAX_JSON_DEPTH:
            problems[name] = Msg("is nested too deeply: at most %(max)s levels", max=MAX_JSON_DEPTH)
        elif isinstance(node, dict):
            for key, child in node.items():
                key_problem = text_problem(key, 200)
                if key_problem is not None:
                    problems[name] = Msg("has a field name that is not allowed")
                    continue
                stack.append(
                    (
                        child,
                        f"{where}.{key}" if where else key,
                        f"{path}.{key}" if path else key,
                        depth + 1,
                    )
                )
        elif isinstance(node, list):
            if len(node) > MAX_JSON_ITEMS:
                problems[name] = Msg("must have at most %(max)s items", max=MAX_JSON_ITEMS)
                continue
            for index in range(len(node) - 1, -1, -1):
                stack.append((node[index], f"{where}[{index}]", path, depth + 1))
        elif isinstance(node, str):
            problem = text_problem(node, limits.get(path, MAX_JSON_STRING))
            if problem is not None:
                problems[name] = problem
    return problems

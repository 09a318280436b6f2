"""FHIR search and read parameters, parsed in one place for every resource type.

R4 search (https://hl7.org/fhir/R4/search.html) as Concord offers it:

- a comma inside a value means OR (`status=active,inactive`); a parameter given more than once
  means AND (`code=A&code=B`: both must hold, so a single-valued element matches neither);
- a token is `code`, `system|code`, `|code` (no system) or `system|` (any code of the system);
- a reference is `id`, `Type/id` or `[base]/Type/id`; a canonical is `url` or `url|version`;
- a string matches the start of a name, ignoring case (`:exact` the whole name, case and all;
  `:contains` any part of it);
- a date is `[prefix]YYYY[-MM[-DD[Thh:mm[:ss][zone]]]]`, prefixes eq ne lt gt le ge sa eb; a
  value without a zone is in the organization's zone;
- `_count`, `_summary` (true, false, data, count), `_elements`, `_total` (none, accurate),
  `_sort` (keys listed per type in SORTS, `-` for descending, commas for more keys),
  `_include` / `_revinclude` (those in INCLUDES / REVINCLUDES), `_format` (JSON only) and
  `_pretty` are understood; `_cursor` is this server's own paging parameter.

Anything else (an unknown parameter, another modifier, `ap`, `_total=estimate`...) is refused
with 400 and an OperationOutcome `not-supported`, never ignored: a client must not get a
different answer from the one it asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import and_, false, func, or_, true
from sqlalchemy.sql import ColumnElement

from concord.errors import InvalidInput, NotAcceptable, NotSupported
from concord.fhir.validators import VALIDATORS
from concord.i18n import Msg
from concord.paging import in_memory

MAX_COUNT = 200
DEFAULT_COUNT = 50
# Values one parameter may list with commas (each named patient is one access check).
MAX_VALUES = 100
JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}
SUMMARY_VALUES = {"true", "false", "data", "count"}
READ_PARAMS = ("_format", "_pretty", "_summary", "_elements")
RESULT_PARAMS = (
    "_count",
    "_cursor",
    "_total",
    "_totalMethod",
    "_sort",
    "_include",
    "_revinclude",
    *READ_PARAMS,
)
# `_totalMethod` is Aidbox's (fhirpy's count() sends _count=0&_totalMethod=count): Concord's
# totals are always counted, so count and estimate are answered exactly; nothing else is.
TOTAL_METHODS = ("count", "estimate")
TOTAL_VALUES = ("none", "accurate")
DATE_PREFIXES = ("eq", "ne", "lt", "gt", "le", "ge", "sa", "eb")
STRING_MODIFIERS = ("exact", "contains")
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}

# The parameters each resource type offers, and their R4 types (the CapabilityStatement lists
# exactly these). `canonical` is a reference to a canonical URL (`url|version` matches that
# version); the CapabilityStatement calls it `reference` (or `uri` for a Questionnaire's url).
SEARCH_PARAMS: dict[str, dict[str, str]] = {
    "Patient": {
        "_id": "token",
        "identifier": "token",
        "name": "string",
        "family": "string",
        "given": "string",
        "birthdate": "date",
        "gender": "token",
    },
    "Questionnaire": {"_id": "token", "url": "canonical", "code": "token"},
    "QuestionnaireResponse": {
        "patient": "reference",
        "subject": "reference",
        "questionnaire": "canonical",
        "identifier": "token",
    },
    "Observation": {
        "patient": "reference",
        "subject": "reference",
        "code": "token",
        "category": "token",
        "date": "date",
        "_lastUpdated": "date",
        "derived-from": "reference",
    },
    "CareTeam": {"patient": "reference", "subject": "reference", "status": "token"},
    "CarePlan": {
        "patient": "reference",
        "subject": "reference",
        "status": "token",
        "category": "token",
    },
    "Goal": {
        "patient": "reference",
        "subject": "reference",
        "lifecycle-status": "token",
        "category": "token",
    },
    "Task": {
        "patient": "reference",
        "subject": "reference",
        "status": "token",
        "owner": "reference",
    },
    "Flag": {"patient": "reference", "subject": "reference", "status": "token"},
    "Consent": {"patient": "reference", "status": "token"},
    "Communication": {"patient": "reference", "subject": "reference"},
    "MedicationRequest": {"patient": "reference", "subject": "reference", "status": "token"},
    "MedicationStatement": {"patient": "reference", "subject": "reference", "status": "token"},
    "Measure": {"_id": "token", "url": "canonical"},
    "Appointment": {
        "patient": "reference",
        "actor": "reference",
        "date": "date",
        "status": "token",
    },
}
# `_sort` keys each type offers (the first page's order otherwise: ids, or newest first for
# Observations). `-key` sorts descending; several keys are separated by commas.
SORTS: dict[str, tuple[str, ...]] = {
    "Patient": ("_id", "family", "given", "name", "birthdate", "gender", "identifier"),
    "Observation": ("date", "code", "_id"),
}
# `_include` each type offers: Type:param[:Target]; the included resource is read through the
# same access rules (and audited) as a read of it.
INCLUDES: dict[str, tuple[str, ...]] = {
    kind: (f"{kind}:patient", f"{kind}:subject", f"{kind}:subject:Patient")
    for kind in ("Observation", "CarePlan", "Goal", "CareTeam", "QuestionnaireResponse")
}
# `_revinclude` each type offers.
REVINCLUDES: dict[str, tuple[str, ...]] = {
    # The Provenance of each revision of the plan (the care team's, who see its history).
    "CarePlan": ("Provenance:target",),
    # The latest write of each, by a person (concord.fhir.provenance).
    "Goal": ("Provenance:target",),
    "Observation": ("Provenance:target",),
    "MedicationRequest": ("Provenance:target",),
    "MedicationStatement": ("Provenance:target",),
    "Patient": (
        "Observation:patient",
        "Observation:subject",
        "CarePlan:patient",
        "CarePlan:subject",
        "Goal:patient",
        "Goal:subject",
        "CareTeam:patient",
        "CareTeam:subject",
    ),
}
CAPABILITY_TYPES = {"canonical": "reference"}
CAPABILITY_OVERRIDES = {("Questionnaire", "url"): "uri", ("Measure", "url"): "uri"}


def capability_type(kind: str, name: str) -> str:
    declared = SEARCH_PARAMS[kind][name]
    return CAPABILITY_OVERRIDES.get((kind, name), CAPABILITY_TYPES.get(declared, declared))


@dataclass(frozen=True)
class Token:
    """system None: any system; system "": no system. code None: any code (`system|`)."""

    system: str | None
    code: str | None

    def matches(self, system: str | None, code: str | None) -> bool:
        if self.code is not None and code != self.code:
            return False
        if self.system is None:
            return True
        if self.system == "":
            return not system
        return system == self.system

    def clause(self, system_col: Any, code_col: Any) -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = []
        if self.code is not None:
            conditions.append(code_col == self.code)
        if self.system == "":
            conditions.append(or_(system_col.is_(None), system_col == ""))
        elif self.system is not None:
            conditions.append(system_col == self.system)
        return and_(true(), *conditions)

    def fixed_system_clause(self, system: str, code_col: Any) -> ColumnElement[bool]:
        """For a column whose values all carry the same `system`."""
        if not self.matches(system, self.code):
            return false()
        return code_col == self.code if self.code is not None else true()


@dataclass(frozen=True)
class Ref:
    """A reference: type None for a bare id; foreign for another server's URL."""

    type: str | None
    id: str
    foreign: bool = False

    def is_to(self, kind: str) -> bool:
        return not self.foreign and self.type in (None, kind)


DATE_PREFIXES = ("eq", "ne", "lt", "gt", "le", "ge", "sa", "eb")
_DATE = re.compile(
    r"^(?P<prefix>[a-z]{2})?(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(T(?P<time>\d{2}:\d{2}(:\d{2}(\.\d+)?)?)(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(frozen=True)
class Canonical:
    url: str
    version: str | None


@dataclass(frozen=True)
class Text:
    """A string search value: the start of a name, ignoring case (R4's default), or with
    `:exact` the whole name as written, or with `:contains` any part of it."""

    text: str
    modifier: str | None = None

    def matches(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.modifier == "exact":
            return value == self.text
        if self.modifier == "contains":
            return self.text.casefold() in value.casefold()
        return value.casefold().startswith(self.text.casefold())

    def clause(self, col: Any) -> ColumnElement[bool]:
        if self.modifier == "exact":
            return col == self.text  # type: ignore[no-any-return]
        # Lowered here, not by the database: SQLite's lower() knows ASCII letters only.
        lowered = func.lower(col)
        if self.modifier == "contains":
            return lowered.contains(self.text.lower(), autoescape=True)  # type: ignore[no-any-return]
        return lowered.startswith(self.text.lower(), autoescape=True)  # type: ignore[no-any-return]


_DATE = re.compile(
    r"^(?P<prefix>[a-z]{2})?(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,6})\d*)?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(frozen=True)
class When:
    """A date search value: the range its precision covers ([start, end)), and the prefix.
    A value with a time and no zone, or a date alone, is in the organization's zone."""

    prefix: str
    start: datetime  # naive unless the value gave a zone
    end: datetime
    has_time: bool

    def bounds(self, where: tzinfo) -> tuple[datetime, datetime]:
        if self.start.tzinfo is not None:
            return self.start, self.end
        return self.start.replace(tzinfo=where), self.end.replace(tzinfo=where)

    def _test(self, value: Any, lo: Any, hi: Any) -> Any:
        """The condition for a point in time (or a day) `value` against [lo, hi): R4's
        prefixes for a target with no extent of its own (sa is gt, eb is lt)."""
        if self.prefix == "eq":
            return and_(value >= lo, value < hi)
        if self.prefix == "ne":
            return or_(value < lo, value >= hi)
        if self.prefix in ("lt", "eb"):
            return value < lo
        if self.prefix in ("gt", "sa"):
            return value >= hi
        if self.prefix == "le":
            return value < hi
        return value >= lo  # ge

    def clause(self, col: Any, where: tzinfo) -> ColumnElement[bool]:
        """For a column holding an instant."""
        lo, hi = self.bounds(where)
        return self._test(col, lo, hi)  # type: ignore[no-any-return]

    def day_clause(self, col: Any) -> ColumnElement[bool]:
        """For a column holding a date (the value is a date: see `_when`)."""
        return self._test(col, self.start.date(), self.end.date())  # type: ignore[no-any-return]

    def matches_instant(self, value: datetime, where: tzinfo) -> bool:
        lo, hi = self.bounds(where)
        op = self.prefix
        if op == "eq":
            return lo <= value < hi
        if op == "ne":
            return value < lo or value >= hi
        if op in ("lt", "eb"):
            return value < lo
        if op in ("gt", "sa"):
            return value >= hi
        if op == "le":
            return value < hi
        return value >= lo


def _when(name: str, value: str, *, day_only: bool) -> When:
    found = _DATE.match(value)
    allowed = Msg(
        "must be a date or time, YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][zone], "
        "after a prefix (eq, ne, lt, gt, le, ge, sa, eb)"
    )
    if found is None:
        raise InvalidInput.field(name, allowed)
    prefix = found["prefix"] or "eq"
    if prefix == "ap":
        raise NotSupported.field(name, Msg("the prefix ap (approximately) is not supported"))
    if prefix not in DATE_PREFIXES:
        raise InvalidInput.field(name, allowed)
    if day_only and found["hour"] is not None:
        raise InvalidInput.field(name, Msg("is a date: YYYY, YYYY-MM or YYYY-MM-DD"))
    try:
        year = int(found["year"])
        if found["month"] is None:
            start, end = datetime(year, 1, 1), datetime(year + 1, 1, 1)
        elif found["day"] is None:
            month = int(found["month"])
            start = datetime(year, month, 1)
            end = datetime(year + month // 12, month % 12 + 1, 1)
        elif found["hour"] is None:
            start = datetime(year, int(found["month"]), int(found["day"]))
            end = start + timedelta(days=1)
        else:
            fraction = found["fraction"]
            start = datetime.combine(
                date(year, int(found["month"]), int(found["day"])),
                time(
                    int(found["hour"]),
                    int(found["minute"]),
                    int(found["second"] or 0),
                    int(fraction.ljust(6, "0")) if fraction else 0,
                ),
            )
            step = (
                timedelta(microseconds=1)
                if fraction
                else timedelta(seconds=1)
                if found["second"]
                else timedelta(minutes=1)
            )
            end = start + step
            if found["zone"]:
                offset = found["zone"]
                if offset == "Z":
                    zone: tzinfo = _UTC
                else:
                    sign = 1 if offset[0] == "+" else -1
                    hours, minutes = int(offset[1:3]), int(offset[4:6])
                    zone = _fixed(sign * timedelta(hours=hours, minutes=minutes))
                start, end = start.replace(tzinfo=zone), end.replace(tzinfo=zone)
    except (ValueError, OverflowError):
        raise InvalidInput.field(name, allowed) from None
    if not 1900 <= year <= 2200:
        raise InvalidInput.field(name, Msg("must be a year from 1900 to 2200"))
    return When(prefix, start, end, found["hour"] is not None)


def _fixed(offset: timedelta) -> tzinfo:
    from datetime import timezone

    return timezone(offset)


_UTC = _fixed(timedelta(0))


@dataclass
class Query:
    kind: str
    # name -> AND groups -> OR values (Token, Ref or Canonical)
    criteria: dict[str, list[list[Any]]]
    count: int = DEFAULT_COUNT
    cursor: str | None = None
    summary: str | None = None
    elements: tuple[str, ...] | None = None
    pretty: bool = False
    pairs: list[tuple[str, str]] = field(default_factory=list)
    # (key, descending) in order; empty: the type's own order.
    sort: tuple[tuple[str, bool], ...] = ()
    includes: tuple[str, ...] = ()
    revincludes: tuple[str, ...] = ()
    total: bool = True

    def has(self, name: str) -> bool:
        return name in self.criteria

    def groups(self, name: str) -> list[list[Any]]:
        return self.criteria.get(name, [])

    def ids(self, *names: str, target: str) -> set[str] | None:
        """The ids every group of `names` allows (AND of ORs), for references to `target`;
        None when none of `names` was given."""
        result: set[str] | None = None
        for name in names:
            for group in self.groups(name):
                allowed = {ref.id for ref in group if ref.is_to(target)}
                result = allowed if result is None else result & allowed
        return result

    def patient_ids(self) -> set[str] | None:
        return self.ids("patient", "subject", target="Patient")

    @property
    def only_count(self) -> bool:
        return self.summary == "count"


def offset_of(q: Query) -> int:
    """The cursor of a list built in memory: the offset of the next page (0 without one)."""
    if q.cursor is None:
        return 0
    if not q.cursor.isdigit():
        raise InvalidInput.field("_cursor", Msg("is not a cursor this server gave out"))
    return int(q.cursor)


def allowed_codes(groups: list[list[Token]], system: str, codes: Iterable[str]) -> set[str] | None:
    """For a single-valued coded element whose codes come from `system`: the codes that
    satisfy every group; None when there are no groups."""
    if not groups:
        return None
    result = set(codes)
    for group in groups:
        result &= {c for c in codes if any(t.matches(system, c) for t in group)}
    return result


def codings_match(groups: list[list[Token]], codings: Sequence[Mapping[str, Any]]) -> bool:
    """Every group has a token that one of the codings satisfies."""
    return all(
        any(t.matches(c.get("system"), c.get("code")) for t in group for c in codings)
        for group in groups
    )


def token_filter(
    groups: list[list[Token]], system_col: Any, code_col: Any
) -> list[ColumnElement[bool]]:
    """SQL conditions (to AND together) for a coded element stored as (system, code)."""
    return [or_(*(t.clause(system_col, code_col) for t in group)) for group in groups]


# --- parsing ------------------------------------------------------------------------------------


def _split(value: str, sep: str) -> list[str]:
    """Split on `sep` unless escaped with a backslash (other escapes are kept for later)."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            current.append(char if char == sep else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\,|$])", r"\1", value)


def _token(name: str, value: str) -> Token:
    pieces = [_unescape(p) for p in _split(value, "|")]
    if len(pieces) == 1:
        return Token(None, pieces[0])
    if len(pieces) > 2:
        raise InvalidInput.field(
            name, Msg("must be code, system|code, |code or system| (one | only)")
        )
    system, code = pieces
    if not system and not code:
        raise InvalidInput.field(name, Msg("must be code, system|code, |code or system|"))
    return Token(system, code or None)


def _reference(name: str, value: str, base: str) -> Ref:
    value = value.strip()
    if re.match(r"^[a-z][a-z0-9+.-]*:", value, re.IGNORECASE):
        prefix = base.rstrip("/") + "/"
        if not value.startswith(prefix):
            return Ref(None, value, foreign=True)  # another server's: nothing here matches
        value = value[len(prefix) :]
    parts = value.split("/")
    if len(parts) == 1 and parts[0]:
        return Ref(None, parts[0])
    if len(parts) == 2 and all(parts) and re.match(r"^[A-Z][A-Za-z]+$", parts[0]):
        return Ref(parts[0], parts[1])
    if len(parts) == 4 and parts[2] == "_history":
        raise NotSupported.field(name, Msg("a versioned reference is not supported"))
    raise InvalidInput.field(name, Msg("must be an id, Type/id or a URL ending in Type/id"))


def _canonical(name: str, value: str) -> Canonical:
    pieces = [_unescape(p) for p in _split(value, "|")]
    if len(pieces) > 2 or not pieces[0]:
        raise InvalidInput.field(name, Msg("must be a URL or URL|version"))
    return Canonical(pieces[0], pieces[1] if len(pieces) == 2 and pieces[1] else None)


def _value(kind: str, name: str, value: str, base: str, modifier: str | None = None) -> Any:
    declared = SEARCH_PARAMS[kind][name]
    if declared == "string":
        return Text(_unescape(value), modifier)
    if declared == "date":
        return _when(name, value, day_only=name == "birthdate")
    if declared == "token":
        return _token(name, value)
    if declared == "reference":
        return _reference(name, _unescape(value), base)
    return _canonical(name, value)


def check_accept(accept: str | None, pairs: Sequence[tuple[str, str]]) -> None:
    """406 for an Accept header that allows no JSON (a `_format` overrides the header)."""
    if not accept or any(name == "_format" for name, _ in pairs):
        return
    ranges = [r.split(";", 1)[0].strip().lower() for r in accept.split(",")]
    if not any(r in ("*/*", "application/*") or r in JSON_FORMATS for r in ranges):
        raise NotAcceptable.field(
            "Accept", Msg("only JSON is offered (json or application/fhir+json)")
        )


def _once(name: str, values: list[str]) -> str:
    if len(values) > 1:
        raise InvalidInput.field(name, Msg("may be given only once"))
    return values[0]


def _check_format(values: dict[str, list[str]]) -> None:
    if "_format" in values:
        wanted = _once("_format", values["_format"]).split(";", 1)[0].strip().lower()
        if wanted not in JSON_FORMATS:
            raise NotAcceptable.field(
                "_format", Msg("only JSON is offered (json or application/fhir+json)")
            )


def _common(values: dict[str, list[str]], query: Query, *, read: bool) -> None:
    _check_format(values)
    if "_pretty" in values:
        pretty = _once("_pretty", values["_pretty"])
        if pretty not in ("true", "false"):
            raise InvalidInput.field("_pretty", Msg("must be true or false"))
        query.pretty = pretty == "true"
    if "_summary" in values:
        summary = _once("_summary", values["_summary"])
        if summary == "text":
            raise NotSupported.field(
                "_summary",
                Msg("text is not supported (no narrative here); use true, false, data or count"),
            )
        allowed = SUMMARY_VALUES - ({"count"} if read else set())
        if summary not in allowed:
            raise InvalidInput.field(
                "_summary",
                Msg("must be one of: %(allowed)s", allowed=", ".join(sorted(allowed))),
            )
        query.summary = None if summary in ("false", "data") else summary
    if "_elements" in values:
        if "_summary" in values:
            raise InvalidInput.field("_elements", Msg("use either _elements or _summary"))
        names = [n.strip() for n in ",".join(values["_elements"]).split(",")]
        if not all(names):
            raise InvalidInput.field("_elements", Msg("must be element names separated by commas"))
        # resourceType is always there (fhirpy's elements() names it).
        query.elements = tuple(n for n in names if n != "resourceType")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control_characters(value: str) -> bool:
    return _CONTROL.search(value) is not None


def _collect(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        if _CONTROL.search(name) or _CONTROL.search(value):
            # PostgreSQL cannot compare text holding NUL; no identifier or code holds one.
            raise InvalidInput.field(
                _CONTROL.sub("?", name)[:80], Msg("must not contain control characters")
            )
        values.setdefault(name, []).append(value)
    return values


def parse(kind: str, pairs: Sequence[tuple[str, str]], *, base: str) -> Query:
    """A search's parameters (URL and form body together), checked against what `kind` offers."""
    supported = SEARCH_PARAMS[kind]
    values = _collect(pairs)
    query = Query(kind, {}, pairs=[(k, v) for k, v in pairs if k != "_cursor"])
    for name in values:
        if ":" in name:
            base_name, modifier = name.split(":", 1)
            if supported.get(base_name) == "string" and modifier in STRING_MODIFIERS:
                continue
            raise NotSupported.field(
                name,
                Msg(
                    "modifiers (:%(modifier)s) are not supported",
                    modifier=modifier[:40],
                ),
            )
        if name not in supported and name not in RESULT_PARAMS:
            raise NotSupported.field(
                name[:80],
                Msg(
                    "is not a search parameter for %(kind)s here (supported: %(supported)s)",
                    kind=kind,
                    supported=", ".join([*sorted(supported), *RESULT_PARAMS]),
                ),
            )
    _common(values, query, read=False)
    if "_count" in values:
        raw = _once("_count", values["_count"])
        if not raw.isdigit():
            raise InvalidInput.field(
                "_count", Msg("must be a whole number from 0 to %(max)s", max=MAX_COUNT)
            )
        if int(raw) == 0:
            # R4: _count=0 asks for the total alone, as _summary=count does.
            query.summary = "count"
        else:
            query.count = min(int(raw), MAX_COUNT)
    if "_cursor" in values:
        query.cursor = _once("_cursor", values["_cursor"])
    _results(kind, values, query)
    for full_name, given in values.items():
        name, _, modifier = full_name.partition(":")
        if name not in supported:
            continue
        for value in given:
            if value == "":
                raise InvalidInput.field(name, Msg("needs a value"))
            ors = _split(value, ",")
            if not all(ors):
                raise InvalidInput.field(name, Msg("has an empty value between commas"))
            if len(ors) > MAX_VALUES:
                raise InvalidInput.field(
                    name, Msg("may list at most %(max)s values", max=MAX_VALUES)
                )
            # Escapes other than \, are undone by each type's own parser.
            query.criteria.setdefault(name, []).append(
                [_value(kind, name, v, base, modifier or None) for v in ors]
            )
    return query


def _results(kind: str, values: dict[str, list[str]], query: Query) -> None:
    """_total, _sort, _include and _revinclude: what is offered for `kind`, or refused."""
    if "_totalMethod" in values:
        method = _once("_totalMethod", values["_totalMethod"])
        if method not in TOTAL_METHODS:
            raise NotSupported.field(
                "_totalMethod",
                Msg("only %(allowed)s are supported", allowed=", ".join(TOTAL_METHODS)),
            )
    if "_total" in values:
        total = _once("_total", values["_total"])
        if total not in (*TOTAL_VALUES, "estimate"):
            raise InvalidInput.field(
                "_total", Msg("must be one of: %(allowed)s", allowed=", ".join(TOTAL_VALUES))
            )
        # An accurate total is the best estimate there is.
        query.total = total != "none"
    if "_sort" in values:
        offered = SORTS.get(kind, ())
        keys = []
        for key in _once("_sort", values["_sort"]).split(","):
            key = key.strip()
            name = key.removeprefix("-")
            if name not in offered:
                raise NotSupported.field(
                    "_sort",
                    Msg(
                        "%(kind)s cannot be sorted by %(key)s here (offered: %(offered)s)",
                        kind=kind,
                        key=name[:40] or "''",
                        offered=", ".join(offered) or "-",
                    ),
                )
            if any(k == name for k, _ in keys):
                raise InvalidInput.field("_sort", Msg("names %(key)s twice", key=name))
            keys.append((name, key.startswith("-")))
        query.sort = tuple(keys)
    for param, table, target in (
        ("_include", INCLUDES, "includes"),
        ("_revinclude", REVINCLUDES, "revincludes"),
    ):
        if param not in values:
            continue
        offered = table.get(kind, ())
        found = []
        for value in values[param]:
            for one in value.split(","):
                if one not in offered:
                    raise NotSupported.field(
                        param,
                        Msg(
                            "%(value)s is not offered for %(kind)s (offered: %(offered)s)",
                            value=one[:80],
                            kind=kind,
                            offered=", ".join(offered) or "-",
                        ),
                    )
                found.append(one)
        setattr(query, target, tuple(dict.fromkeys(found)))


def parse_read(pairs: Sequence[tuple[str, str]]) -> Query:
    """A read's parameters: only _format, _pretty, _summary and _elements."""
    values = _collect(pairs)
    for name in values:
        if name not in READ_PARAMS:
            raise NotSupported.field(
                name[:80],
                Msg(
                    "is not supported on a read (supported: %(supported)s)",
                    supported=", ".join(READ_PARAMS),
                ),
            )
    query = Query("", {})
    _common(values, query, read=True)
    return query


def page_of(items: list[Any], q: Query) -> tuple[list[Any], str | None]:
    """A page of a list built in memory (searches that sort in Python); the cursor is the
    offset of the next page."""
    start = offset_of(q)
    page = in_memory(items, offset=start, limit=q.count, only_count=q.only_count)
    return page.rows, (str(start + q.count) if page.more else None)


# --- shaping what is returned --------------------------------------------------------------------


def _elements_of(resource_type: str) -> dict[str, tuple[bool, bool, str | None]]:
    """JSON name -> (in the summary, mandatory, choice group) for a resource type's elements."""
    model = VALIDATORS[resource_type]
    result = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if not isinstance(extra, dict) or not extra.get("element_property"):
            continue
        result[info.alias or name] = (
            bool(extra.get("summary_element_property")),
            info.is_required() or bool(extra.get("element_required")),
            extra.get("one_of_many"),  # type: ignore[arg-type]
        )
    return result


def _subsetted(resource: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    shaped = {
        k: v
        for k, v in resource.items()
        if k == "resourceType" or k in keep or (k.startswith("_") and k[1:] in keep)
    }
    meta = dict(shaped.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    shaped["meta"] = meta
    return shaped


def check_elements(resource_type: str, names: Iterable[str]) -> None:
    known = _elements_of(resource_type)
    choices = {c for _, _, c in known.values() if c}
    unknown = [n for n in names if n not in known and n not in choices]
    if unknown:
        raise InvalidInput.field(
            "_elements",
            Msg(
                "%(names)s: not an element of %(kind)s",
                names=", ".join(unknown)[:200],
                kind=resource_type,
            ),
        )


def shape(resource: dict[str, Any], query: Query) -> dict[str, Any]:
    """The resource as `_summary=true` or `_elements` asks (marked SUBSETTED), else unchanged."""
    if query.summary == "true":
        known = _elements_of(resource["resourceType"])
        return _subsetted(resource, {k for k, (summary, _, _) in known.items() if summary})
    if query.elements is not None:
        known = _elements_of(resource["resourceType"])
        wanted = set(query.elements) | {"id", "meta"}
        keep = {
            k
            for k, (_, mandatory, choice) in known.items()
            if k in wanted or mandatory or (choice is not None and choice in wanted)
        }
        return _subsetted(resource, keep)
    return resource


def patients_named(pairs: Sequence[tuple[str, str]]) -> set[str] | None:
    """The patient ids a search names by `patient` or `subject` (comma lists, with or without
    "Patient/"); None when it names none."""
    wanted = {
        v.strip().removeprefix("Patient/")
        for name, value in pairs
        if name in ("patient", "subject")
        for v in value.split(",")
        if v.strip()
    }
    return wanted or None

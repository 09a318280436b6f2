"""Pages of a query for the domain services' list_* functions: the rows after a cursor (in id
order), whether more follow, and the total the page was cut from, so a caller (the FHIR
searches) can say how many there are without a second copy of the query."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from concord.errors import InvalidInput
from concord.i18n import Msg

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    rows: list[T]
    more: bool
    total: int


class CodeCriterion(Protocol):
    """One value of a coded search (a FHIR token): the condition it puts on a (system, code)
    pair of columns, or on a code column whose values all carry one system."""

    def clause(self, system_col: Any, code_col: Any) -> ColumnElement[bool]: ...

    def fixed_system_clause(self, system: str, code_col: Any) -> ColumnElement[bool]: ...


class TextCriterion(Protocol):
    """One value of a string search (a FHIR string): the condition it puts on a column."""

    def clause(self, col: Any) -> ColumnElement[bool]: ...


class DateCriterion(Protocol):
    """One value of a date search (a FHIR date with its prefix)."""

    def clause(self, col: Any, where: Any) -> ColumnElement[bool]: ...

    def day_clause(self, col: Any) -> ColumnElement[bool]: ...


def any_of(groups: Sequence[Sequence[CodeCriterion]], system_col: Any, code_col: Any) -> list[Any]:
    """Conditions (to AND together) for groups of criteria (each group an OR)."""
    from sqlalchemy import or_

    return [or_(*(c.clause(system_col, code_col) for c in group)) for group in groups]


def count(session: Session, query: Select[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.order_by(None).subquery())))


def keyset(
    session: Session,
    query: Select[Any],
    id_col: Any,
    *,
    after: uuid.UUID | None,
    limit: int,
    only_count: bool = False,
) -> Page[Any]:
    """One page of `query` in id order after `after` (rows as the query gives them), and the
    total of the whole query; only the total when `only_count`."""
    if only_count:
        return Page([], False, count(session, query))
    rows = list(
        session.execute(
            (query.where(id_col > after) if after is not None else query)
            .order_by(id_col)
            .limit(limit + 1)
        )
    )
    return Page(rows[:limit], len(rows) > limit, total_of(session, query, rows, after, limit))


def ordered(
    session: Session,
    query: Select[Any],
    order_by: Sequence[Any],
    *,
    offset: int,
    limit: int,
    only_count: bool = False,
    with_total: bool = True,
) -> Page[Any]:
    """One page of `query` in the order a client asked for (`order_by` ends with a unique
    column, so pages neither repeat nor skip a row while nothing changes), from `offset`;
    the total is -1 when `with_total` is False and it would cost a count."""
    if only_count:
        return Page([], False, count(session, query))
    rows = list(session.execute(query.order_by(*order_by).offset(offset).limit(limit + 1)))
    if offset == 0 and len(rows) <= limit:
        total = len(rows)
    else:
        total = count(session, query) if with_total else -1
    return Page(rows[:limit], len(rows) > limit, total)


def total_of(
    session: Session, query: Select[Any], rows: Sequence[Any], after: Any, limit: int
) -> int:
    """The total of `query`, given the first page of it just read (`rows`: up to `limit` + 1
    from the start when `after` is None): a first page that holds the whole query is its
    total, so the count runs only when the page was cut (the same transaction: the same
    answer, one statement fewer for most searches)."""
    if after is None and len(rows) <= limit:
        return len(rows)
    return count(session, query)


def in_memory(items: list[T], *, offset: int, limit: int, only_count: bool = False) -> Page[T]:
    """A page of a list built in memory (the offset is the caller's cursor: one past the end
    of the list is no cursor this server gave out)."""
    if offset > len(items):
        raise InvalidInput.field("_cursor", Msg("is not a cursor this server gave out"))
    if only_count:
        return Page([], False, len(items))
    return Page(items[offset : offset + limit], offset + limit < len(items), len(items))

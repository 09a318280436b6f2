"""A page's form, read with the same Pydantic model as its /api/v1 twin (issue 17).

A page route that changes data declares the model its form is read with:

    form: Annotated[Posted[TaskIn], FormOf(TaskIn)]

and calls `form.read()` once it has checked access. A bad field raises InvalidInput naming
the field as the form names it, which the route turns into its page with the error beside
the field and everything typed kept (`form.values`); nothing is written. The model is the
one the JSON route takes as its body, so the two cannot drift (tests/test_api_twins.py).

How a form's fields become the model's input, the same for every form:
- the CSRF token and the one-time key (`idem`) are not input;
- only the fields the model declares are read (a page may carry other controls; the JSON
  API, which forbids unknown fields, is stricter);
- `<list>.<field>` sent several times (rows of a repeating group) become a list of objects
  under `<list>`, in order;
- with `prefix`, the form's `<prefix><field>` is the model's `<field>` (two forms on one page
  with a field of the same name), and errors name the form's field again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel

from concord.errors import InvalidInput, NotFound
from concord.i18n import Msg
from concord.validation import parse
from concord.web.deps import Form

M = TypeVar("M", bound=BaseModel)

NOT_INPUT = ("csrf_token", "idem")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def form_input(
    schema: type[BaseModel],
    form: Mapping[str, Any],
    *,
    prefix: str = "",
    shape: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """What the model is given from a posted form (see the module's note)."""
    source: Mapping[str, Any] = shape(form) if shape is not None else form
    names = set()
    for name, info in schema.model_fields.items():
        names.add(name)
        if isinstance(info.alias, str):
            names.add(info.alias)
    data: dict[str, Any] = {}
    rows: dict[str, dict[str, list[Any]]] = {}
    for raw_key, value in source.items():
        if raw_key in NOT_INPUT or not raw_key.startswith(prefix):
            continue
        key = raw_key[len(prefix) :]
        if key in names:
            data[key] = value
            continue
        head, dot, rest = key.partition(".")
        if dot and head in names and rest and "." not in rest:
            rows.setdefault(head, {})[rest] = _as_list(value)
    for head, columns in rows.items():
        length = max(len(v) for v in columns.values())
        data[head] = [
            {col: (values[i] if i < len(values) else "") for col, values in columns.items()}
            for i in range(length)
        ]
    return data


def read_form(
    schema: type[M],
    form: Mapping[str, Any],
    *,
    prefix: str = "",
    shape: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> M:
    """The form read with `schema`, or InvalidInput naming each bad field as the form does."""
    try:
        return parse(schema, form_input(schema, form, prefix=prefix, shape=shape))
    except InvalidInput as exc:
        if prefix:
            exc.errors = {f"{prefix}{k}": v for k, v in exc.errors.items()}
        raise


class Posted(Generic[M]):
    """A posted form and the model it is read with: `values` as typed (to show again),
    `read()` the model (or InvalidInput)."""

    def __init__(
        self,
        schema: type[M] | None,
        values: dict[str, Any],
        *,
        prefix: str = "",
        shape: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> None:
        self.schema = schema
        self.values = values
        self.prefix = prefix
        self.shape = shape

    def typed(self, name: str) -> str:
        """What was typed in one field, to show it again (not to act on: that is `read`)."""
        value = self.values.get(name)
        return value if isinstance(value, str) else ""

    def read(self) -> M:
        if self.schema is None:  # a path the route refuses before reading (see FormOf's `by`)
            raise NotFound(Msg("Not found"))
        return read_form(self.schema, self.values, prefix=self.prefix, shape=self.shape)


Shape = Callable[[Mapping[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class Reading:
    """How one form is read: its model, and the prefix or shape its fields need (see the
    module's note). For FormOf's models by path parameter, when they differ by model."""

    schema: type[BaseModel]
    prefix: str = ""
    shape: Shape | None = None


def FormOf(  # noqa: N802 - used like FastAPI's Depends, in an annotation
    schema: type[BaseModel] | Mapping[str, type[BaseModel] | Reading],
    *,
    by: str = "",
    prefix: str = "",
    shape: Shape | None = None,
) -> Any:
    """The dependency giving a route its posted form and the model to read it with: one
    model, or one per value of the path parameter `by` (a care plan's section, a decision's
    step; the route answers 404 for any other value before it reads the form). The models are
    kept on the dependency (`form_schemas`) so a test can compare them with the API twin's."""
    if isinstance(schema, Mapping):
        if not by:
            raise TypeError("FormOf with several models needs `by`, the path parameter")
        readings = {
            key: r if isinstance(r, Reading) else Reading(r, prefix, shape)
            for key, r in schema.items()
        }
    else:
        readings = {"": Reading(schema, prefix, shape)}

    def posted_form(request: Request, form: Form) -> Posted[Any]:
        chosen = readings.get(str(request.path_params.get(by, ""))) if by else readings[""]
        if chosen is None:
            return Posted(None, form)
        return Posted(chosen.schema, form, prefix=chosen.prefix, shape=chosen.shape)

    posted_form.form_schemas = tuple(r.schema for r in readings.values())  # type: ignore[attr-defined]
    return Depends(posted_form)


def back_to(values: Mapping[str, Any], default: str) -> str:
    """Where a form asks to go after it is done (`back`): a path on this site, or `default`."""
    back = values.get("back")
    if isinstance(back, str) and back.startswith("/") and not back.startswith("//"):
        return back
    return default

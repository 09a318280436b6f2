"""Find direct database access in source, for the "one read path" tests: export code (here,
tests/test_export_read_path.py) and FHIR (tests/test_read_path.py) must read through the domain
services' get_*/list_* functions, which take the actor, apply access and audit.

`direct_reads(node)` lists each call that builds or runs a query: select/update/insert/delete/
text(...), session.execute/scalar/scalars/get/query/add/merge/delete/flush, and an import of
sqlalchemy or of a domain's models module inside the node."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from pathlib import Path

QUERY_BUILDERS = {"select", "update", "insert", "delete", "text", "exists"}
SESSION_METHODS = {
    "execute",
    "scalar",
    "scalars",
    "get",
    "query",
    "add",
    "merge",
    "delete",
    "flush",
}


def _is_session(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ("session", "db", "s") or node.id.endswith("session")
    if isinstance(node, ast.Attribute):
        return node.attr in ("session", "db") or node.attr.endswith("session")
    return False


def direct_reads(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in QUERY_BUILDERS:
                found.append((node.lineno, f"{func.id}("))
            elif isinstance(func, ast.Attribute):
                if func.attr in SESSION_METHODS and _is_session(func.value):
                    found.append((node.lineno, f"session.{func.attr}("))
                elif (
                    func.attr in QUERY_BUILDERS
                    and isinstance(func.value, ast.Name)
                    and func.value.id in ("sa", "sqlalchemy")
                ):
                    found.append((node.lineno, f"{func.value.id}.{func.attr}("))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                names = [a.name for a in node.names]
            for name in names:
                if name.split(".")[0] == "sqlalchemy" or name.endswith(".models"):
                    found.append((node.lineno, f"import {name}"))
    return found


def module_reads(module: str) -> list[tuple[int, str]]:
    path = Path(importlib.import_module(module).__file__ or "")
    return direct_reads(ast.parse(path.read_text(), filename=str(path)))


def function_reads(module: str, name: str) -> list[tuple[int, str]]:
    func = getattr(importlib.import_module(module), name)
    source = textwrap.dedent(inspect.getsource(inspect.unwrap(func)))
    return direct_reads(ast.parse(source))


def routes_of(app: object) -> list[object]:
    """Every APIRoute of the app, through its included routers."""
    from fastapi.routing import APIRoute

    found: list[object] = []

    def walk(routes: list[object]) -> None:
        for route in routes:
            router = getattr(route, "original_router", None)
            if router is not None:
                walk(list(router.routes))
            elif isinstance(route, APIRoute):
                found.append(route)

    walk(list(getattr(app, "routes", [])))
    return found

"""The read path (issue 17): the FHIR API and the exports ask the domain services, which apply
the access rules and write the audit trail once; they never reach the database themselves.

Each module (or function) listed is parsed, not imported, and any direct database access in it
fails the test: building a query (`select(`), or running one on a session (`session.execute`,
`.scalar`, `.scalars`, `.get`, `.query`, and `object_session`). Mapping rows to resources and
building a Bundle or a file is what these modules do; a query belongs in a domain's get_/list_
function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FHIR = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "concord" / "fhir").glob("*.py"))

# The export code, as "path" (a whole module) or "path::function" (one function of a module
# that also holds other routes). When an export moves, move its entry with it.
EXPORT_CODE = (
    "concord/registry/routes.py::caseload_csv",
    "concord/registry/routes.py::minutes_csv",
    "concord/safety/pdf.py",
)

SESSION_CALLS = {"execute", "scalar", "scalars", "get", "query"}
SQL_IMPORTS = {"select", "text", "object_session"}


def _receiver(node: ast.expr) -> str:
    """The last name of what a method is called on: `session`, `self.session`, `db`..."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_session(name: str) -> bool:
    return "session" in name.lower() or name in {"db", "conn", "connection"}


def direct_access(tree: ast.AST) -> list[str]:
    """Each direct database access in `tree`, as "line: what"."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            for alias in node.names:
                if alias.name in SQL_IMPORTS:
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in {"select", "object_session"}:
            found.append(f"{node.lineno}: {func.id}(")
        elif isinstance(func, ast.Attribute):
            if func.attr in {"select", "object_session"} and _receiver(func.value) in {
                "sqlalchemy",
                "sa",
                "orm",
            }:
                found.append(f"{node.lineno}: {_receiver(func.value)}.{func.attr}(")
            elif func.attr in SESSION_CALLS and _is_session(_receiver(func.value)):
                found.append(f"{node.lineno}: {_receiver(func.value)}.{func.attr}(")
    return sorted(found, key=lambda s: int(s.split(":")[0]))


def _tree(target: str) -> ast.AST:
    path, _, function = target.partition("::")
    source = ROOT / path
    assert source.exists(), f"{path} is gone: update the lists in {Path(__file__).name}"
    module = ast.parse(source.read_text(), filename=path)
    if not function:
        return module
    for node in ast.walk(module):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            return node
    raise AssertionError(f"{path} has no {function}(): update EXPORT_CODE in {Path(__file__).name}")


@pytest.mark.parametrize("target", [*FHIR, *EXPORT_CODE])
def test_no_direct_database_access(target):
    found = direct_access(_tree(target))
    assert not found, (
        f"{target} reaches the database itself; ask the owning domain's service "
        f"(a get_/list_ function that applies access and audit) instead:\n  " + "\n  ".join(found)
    )


def test_the_fhir_package_is_all_covered():
    assert "concord/fhir/service.py" in FHIR
    assert "concord/fhir/safety.py" in FHIR
    assert len(FHIR) >= 8


@pytest.mark.parametrize(
    "source",
    [
        "from sqlalchemy import select\n",
        "def f(q):\n    return select(q)\n",
        "def f(session, q):\n    return session.execute(q)\n",
        "def f(session, q):\n    return session.scalar(q)\n",
        "def f(session, q):\n    return list(session.scalars(q))\n",
        "def f(session, model, i):\n    return session.get(model, i)\n",
        "def f(self, model):\n    return self.session.query(model)\n",
        "def f(row):\n    return object_session(row)\n",
        "import sqlalchemy\ndef f(m):\n    return sqlalchemy.select(m)\n",
    ],
)
def test_the_check_finds_each_kind_of_direct_access(source):
    assert direct_access(ast.parse(source))


def test_the_check_leaves_mapping_alone():
    source = (
        "def f(session, resource, groups):\n"
        "    plans.get_plan_record(session, by=None, ident='x')\n"
        "    return resource.get('id'), groups.get('code'), {}.get(1)\n"
    )
    assert direct_access(ast.parse(source)) == []

"""No concord import inside a function unless a comment says why (issue 17).

A function-local import hides a dependency from the reader (and, before import-linter counted
them, hid cycles). Each one left has `# local import: <why>` on its own line or in the comment
just above its run of imports: today only the command line's, for its start-up time (measured,
see docs/architecture.md); a new one elsewhere names the load-time cycle it avoids or the
start-up cost it saves. The count is printed by `python -m tests.test_local_imports`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MARK = "# local import:"


def _is_concord(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] == "concord"
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] == "concord" for alias in node.names)
    return False


def local_imports(path: Path) -> list[tuple[int, bool]]:
    """(line, justified) for each concord import inside a function of `path`: justified when
    the mark is on its first line, or in the comment just above the run of import statements it
    is in."""
    source = path.read_text()
    lines = source.splitlines()
    found: dict[int, bool] = {}

    def visit(holder: ast.AST, in_function: bool) -> None:
        # Each block once (walking every function's subtree would see a nested one's again).
        in_function = in_function or isinstance(holder, ast.FunctionDef | ast.AsyncFunctionDef)
        if in_function:
            for field in ("body", "orelse", "finalbody"):
                body = getattr(holder, field, None)
                if not isinstance(body, list):
                    continue
                for i, stmt in enumerate(body):
                    if not _is_concord(stmt):
                        continue
                    first = i
                    while first > 0 and isinstance(body[first - 1], ast.Import | ast.ImportFrom):
                        first -= 1
                    above = body[first].lineno - 2
                    comments = []
                    while above >= 0 and lines[above].lstrip().startswith("#"):
                        comments.append(lines[above])
                        above -= 1
                    justified = MARK in lines[stmt.lineno - 1] or any(MARK in c for c in comments)
                    found[stmt.lineno] = justified
        # Imports are statements: only statements and the blocks holding them are walked.
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            for child in getattr(holder, field, None) or ():
                if isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):
                    visit(child, in_function)

    visit(ast.parse(source), False)
    return sorted(found.items())


def all_local_imports() -> dict[str, list[tuple[int, bool]]]:
    return {
        str(path.relative_to(ROOT)): found
        for path in sorted((ROOT / "concord").rglob("*.py"))
        if (found := local_imports(path))
    }


def test_every_function_local_concord_import_says_why():
    unjustified = [
        f"{name}:{line}"
        for name, found in all_local_imports().items()
        for line, justified in found
        if not justified
    ]
    assert not unjustified, (
        "a concord import inside a function without a '# local import: <why>' comment above it "
        "(move it to the top of the module, or say why it cannot be): " + ", ".join(unjustified)
    )


def test_the_check_finds_an_unjustified_one_and_accepts_a_justified_one(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def bare():\n"
        "    from concord.db import Base\n"
        "    return Base\n"
        "\n"
        "\n"
        "def said():\n"
        "    # local import: a reason\n"
        "    # on two lines\n"
        "    from concord.db import Base\n"
        "    import concord.clock\n"
        "    if Base:\n"
        "        from concord.errors import NotFound  # local import: another\n"
        "    return concord.clock\n"
    )
    assert local_imports(sample) == [(2, False), (9, True), (10, True), (12, True)]


if __name__ == "__main__":
    counts = all_local_imports()
    for name, found in counts.items():
        print(len(found), name)
    print("total", sum(len(found) for found in counts.values()))

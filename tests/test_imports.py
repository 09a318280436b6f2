"""The import contract (`.importlinter`, issue 17): domains never import actions or doors, the
base imports nothing above it, and no cycle runs between the packages under concord, function-
local imports included. The known violations are listed in the contract as ignored imports
naming issue 17; a new one fails here."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

# In a process of its own: import-linter reconfigures logging, which later tests' caplog needs.
CHECK = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))"
)


def test_the_import_contract_holds():
    run = subprocess.run(
        [sys.executable, "-c", CHECK, str(ROOT / ".importlinter")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr

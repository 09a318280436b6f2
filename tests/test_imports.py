"""The import contract (`.importlinter`, issue 17): domains never import actions or doors, the
base imports nothing above it, and no cycle runs between the packages under concord, function-
local imports included. The known violations are listed in the contract as ignored imports
naming issue 17; a new one fails here."""

from __future__ import annotations

from importlinter.cli import lint_imports

from tests.conftest import ROOT


def test_the_import_contract_holds():
    assert lint_imports(config_filename=str(ROOT / ".importlinter"), no_cache=True) == 0

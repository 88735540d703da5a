"""No dead code: vulture finds nothing that nothing calls (names frameworks call are in tests/dead_code_whitelist.py).

Two scans: the shipped code alone, so that code only tests call counts as dead, and the
whole tree, so that dead test helpers and harness functions count too.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.processes import ROOT

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

SHIPPED = ["sentiment", "service.py", "train_or_import.py", "benchmark", "locustfile.py", "scripts"]
WHITELIST = "tests/dead_code_whitelist.py"


@pytest.mark.parametrize("paths", [SHIPPED, [*SHIPPED, "harness", "tests"]], ids=["shipped code", "with tests and harness"])
def test_nothing_is_dead(paths: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vulture", *paths, WHITELIST, "--min-confidence", "60"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0 and not result.stdout, f"dead code (or whitelist it with a reason):\n{result.stdout}{result.stderr}"


def test_the_check_finds_dead_code(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "module.py").write_text("def used():\n    return 1\n\n\ndef unused():\n    return used()\n")
    result = subprocess.run([sys.executable, "-m", "vulture", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0 and "unused function 'unused'" in result.stdout

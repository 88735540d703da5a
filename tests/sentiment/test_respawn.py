"""A dead model worker is respawned in the image too: BENTOML_CONTAINERIZED no longer turns that off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.processes import ROOT

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

WATCHER = """
import json, sys
from bentoml import serving
before = serving.create_watcher("probe", ["-c", "pass"], cmd=sys.executable).respawn
from sentiment import respawn
respawn.respawn_dead_workers()
respawn.check_respawn()
after = serving.create_watcher("probe", ["-c", "pass"], cmd=sys.executable).respawn
print(json.dumps({"before": before, "after": after}))
"""

STILL_SET = """
from sentiment import respawn
respawn.check_respawn()
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENTOML_CONTAINERIZED": "true", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_watchers_built_after_it_respawn_even_with_bentoml_containerized_set() -> None:
    result = run(WATCHER)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == '{"before": false, "after": true}'  # BentoML's rule, then ours


def test_the_tripwire_fails_while_the_variable_is_in_force() -> None:
    result = run(STILL_SET)
    assert result.returncode != 0 and "BENTOML_CONTAINERIZED is still set" in result.stderr

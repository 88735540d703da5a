"""Property-based run of schemathesis against the service's own OpenAPI document.

At least 1,000 generated requests to /predict: no 5xx, every response conforms to
the documented schema, status codes and content types. The server runs with small
text limits so that the valid requests schemathesis generates stay cheap.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.processes import start_server

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)


@pytest.fixture(scope="module")
def small_limits_server(bentoml_home, tmp_path_factory):  # noqa: ANN001, ANN201
    proc = start_server(
        bentoml_home, tmp_path_factory.mktemp("serve-fuzz"), env={"MAX_TEXTS": "8", "MAX_TEXT_CHARS": "200"}
    )
    yield proc
    proc.stop()


def test_documented_errors(small_limits_server) -> None:  # noqa: ANN001
    spec = httpx.get(f"{small_limits_server.url}/docs.json").json()
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert {"200", "400", "408", "413", "415", "503"} <= set(responses)
    assert "Retry-After" in responses["503"]["headers"]
    assert spec["paths"]["/predict"]["post"]["requestBody"]["required"] is True
    detail = spec["components"]["schemas"]["InvalidArgument"]["properties"]["detail"]
    assert {"type": "array", "items": {"type": "object"}} in detail["anyOf"]


def test_schemathesis_finds_no_server_error_or_schema_violation(small_limits_server, tmp_path: Path) -> None:  # noqa: ANN001
    result = subprocess.run(
        [str(Path(sys.executable).parent / "st"), "run", f"{small_limits_server.url}/docs.json",
         "--include-path", "/predict", "--checks", "all", "--max-examples", "1000", "--seed", "1",
         "--continue-on-failure", "--no-color"],
        capture_output=True, text=True, timeout=900,
    )
    print(result.stdout[-1500:])
    assert result.returncode == 0, result.stdout[-6000:]
    generated = int(re.search(r"(\d+) generated", result.stdout).group(1))
    assert generated >= 1000
    assert "No issues found" in result.stdout

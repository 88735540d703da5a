"""The k6 and Locust scripts run as documented against a live service (short, bounded runs)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.processes import ROOT

pytestmark = pytest.mark.load  # tier: load scripts and soak runs (pytest.ini)

BIN = Path(sys.executable).parent


def run(cmd: list[str], env: dict[str, str], timeout: int = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)


def test_k6_course_scenario(server, tmp_path: Path) -> None:  # noqa: ANN001
    summary = tmp_path / "summary.json"
    result = run(
        [str(BIN / "k6"), "run", "--quiet", '--summary-trend-stats=min,med,avg,max,p(99)', "--summary-export", str(summary), "k6/load.js"],
        {"BASE_URL": server.url, "RAMP": "2s", "DURATION": "4s"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads(summary.read_text())["metrics"]
    assert metrics["http_reqs"]["count"] > 20
    assert metrics["checks"]["fails"] == 0 and metrics["checks"]["passes"] > 0
    assert metrics["http_req_failed"]["value"] == 0
    assert metrics["http_req_duration"]["p(99)"] < 2000


def test_k6_saturation_scenario(server, tmp_path: Path) -> None:  # noqa: ANN001
    summary = tmp_path / "summary.json"
    result = run(
        [str(BIN / "k6"), "run", "--quiet", "--summary-export", str(summary), "k6/saturation.js"],
        {"BASE_URL": server.url, "DURATION": "5s", "START_RATE": "1", "PEAK_RATE": "10"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads(summary.read_text())["metrics"]
    assert metrics["sentences_classified"]["count"] >= 10 * 10
    assert metrics["checks"]["fails"] == 0


@pytest.mark.parametrize("user", ["CourseUser", "SaturationUser"])
def test_locust_workloads(server, tmp_path: Path, user: str) -> None:  # noqa: ANN001
    prefix = tmp_path / "locust"
    result = run(
        [str(BIN / "locust"), "-f", "locustfile.py", "--headless", "-u", "4", "-r", "4", "--run-time", "5s",
         "--host", server.url, "--csv", str(prefix), "--only-summary", user],
        {"TEXTS": "4"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["Name"]: row for row in csv.DictReader((tmp_path / "locust_stats.csv").open())}
    total = rows["Aggregated"]
    assert int(total["Request Count"]) > 10
    assert int(total["Failure Count"]) == 0


def test_k6_clients_offset_gives_a_run_texts_of_its_own(server, tmp_path: Path) -> None:  # noqa: ANN001
    """k6/clients.js: a run with another OFFSET finds none of an earlier run's texts in the cache; the same OFFSET finds them."""
    from harness.prometheus import metric_sum

    def hits_after(offset: int) -> float:
        result = run([str(BIN / "k6"), "run", "--quiet", "--iterations", "20", "k6/clients.js"],
                     {"BASE_URL": server.url, "VUS": "2", "TEXTS": "2", "OFFSET": str(offset)})
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return metric_sum(server.metrics(), "sentiment_cache_lookups_total", result="hit")

    first = hits_after(700_000_000)
    assert hits_after(800_000_000) == first  # other texts: no hit
    assert hits_after(700_000_000) > first  # the first run's texts again: from the cache

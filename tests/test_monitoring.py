"""The shipped monitoring works for real: Prometheus scrapes a running service and every dashboard query returns data."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from harness.processes import ROOT, RedisServer, free_port, start_server, wait_until

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

MONITORING = ROOT / "deployment" / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"


def dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p["targets"]]


def test_promtool_accepts_the_scrape_config() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed with Debian's prometheus package (scripts/test.sh)"
    result = subprocess.run([promtool, "check", "config", str(MONITORING / "prometheus.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_has_the_operator_panels() -> None:
    titles = " | ".join(t for t, _ in dashboard_queries()).lower()
    for needed in ("response code", "p50 / p99", "request size", "response size", "redis bytes",
                   "cache hit ratio", "batch size", "inference time"):
        assert needed in titles, needed


@pytest.fixture(scope="module")
def scraped_service(bentoml_home, tmp_path_factory):  # noqa: ANN001, ANN201
    tmp = tmp_path_factory.mktemp("monitoring")
    redis = RedisServer(free_port()).start()
    server = start_server(bentoml_home, tmp, env={"REDIS_URL": redis.url})
    port = free_port()
    config = tmp / "prometheus.yml"
    target = server.url.removeprefix("http://")
    # the shipped config, pointed at this test's service and scraping every second
    shipped = (MONITORING / "prometheus.yml").read_text()
    config.write_text(shipped.replace("127.0.0.1:3000", target).replace("scrape_interval: 15s", "scrape_interval: 1s"))
    prometheus = subprocess.Popen(
        [shutil.which("prometheus") or "prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
        server.stop()
        redis.kill()


def drive_traffic(url: str, seconds: float) -> None:
    end = time.monotonic() + seconds
    i = 0
    with httpx.Client(timeout=60) as client:
        while time.monotonic() < end:
            client.post(f"{url}/predict", json={"text": ["I love you!", "I hate you!", f"new text {i}"]})
            if i % 5 == 0:
                client.post(f"{url}/predict", json={"text": "not a list"})  # a 400
                client.get(f"{url}/health")
            i += 1
            time.sleep(0.02)


def test_every_dashboard_query_returns_data(scraped_service) -> None:  # noqa: ANN001
    server, prometheus = scraped_service
    def scraping() -> bool:
        try:
            response = httpx.get(f"{prometheus}/api/v1/targets", timeout=5)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:  # "Service Unavailable" until Prometheus has started
            return False
        targets = response.json()["data"]["activeTargets"]
        return bool(targets) and targets[0]["health"] == "up"

    wait_until(scraping, timeout=60, what="Prometheus up and scraping the service")

    traffic = threading.Thread(target=drive_traffic, args=(server.url, 20))
    traffic.start()
    traffic.join()

    empty = []
    for title, expr in dashboard_queries():
        query = re.sub(r"\$__rate_interval|\$__interval", "30s", expr)
        result = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=10).json()
        assert result["status"] == "success", (title, query, result)
        values = [float(s["value"][1]) for s in result["data"]["result"]]
        if not any(math.isfinite(v) for v in values):
            empty.append((title, query))
    assert not empty, empty

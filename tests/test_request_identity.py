"""X-Request-ID and timing headers on every API response of a real `bentoml serve`."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.helpers import wait_until

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)


def post(server, texts: list[str], headers: dict[str, str] | None = None) -> httpx.Response:  # noqa: ANN001
    return httpx.post(f"{server.url}/predict", json={"text": texts}, headers=headers or {}, timeout=60)


def test_request_id_is_the_client_s_or_generated_and_logged(server) -> None:  # noqa: ANN001
    mine = f"client-{uuid.uuid4().hex}"
    r = post(server, ["I love you"], {"X-Request-ID": mine})
    assert r.status_code == 200 and r.headers["x-request-id"] == mine
    generated = post(server, ["I love you"]).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    hostile = post(server, ["I love you"], {"X-Request-ID": "a b\tc" + "x" * 200}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", hostile)  # not echoed: replaced
    wait_until(lambda: f"request_id={mine}" in server.log() and f"request_id={generated}" in server.log(), 10, "the access lines")
    bad = httpx.post(f"{server.url}/predict", json={"txt": []}, headers={"X-Request-ID": "bad-1"}, timeout=30)
    assert bad.status_code == 400 and bad.headers["x-request-id"] == "bad-1"  # errors carry it too
    for path in ("/readyz", "/metrics", "/health"):  # every response, probes included
        assert re.fullmatch(r"[0-9a-f]{32}", httpx.get(f"{server.url}{path}", timeout=30).headers["x-request-id"])


def test_timing_headers_say_where_the_time_went(server) -> None:  # noqa: ANN001
    text = f"a fresh text {uuid.uuid4().hex}"
    first = post(server, [text]).headers
    total, queue, inference = (float(first[h]) for h in ("x-total-time", "x-queue-time", "x-inference-time"))
    assert inference > 0 and queue >= 0 and total >= inference + queue
    cached = post(server, [text]).headers
    assert float(cached["x-inference-time"]) == 0 and float(cached["x-queue-time"]) == 0
    assert float(cached["x-total-time"]) > 0

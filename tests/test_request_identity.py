"""X-Request-ID and timing headers on every API response of a real `bentoml serve`."""

from __future__ import annotations

import os
import re
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness.processes import wait_until
from harness.prometheus import metric_sum

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


def test_a_request_waiting_for_another_s_text_reports_the_model_time_it_waited(split_server) -> None:  # noqa: ANN001
    """B asks for the text A is computing: it waits for A's model call, and says so (not 0, as if cached).

    The model worker is paused so that A's call is still in flight when B arrives."""
    server = split_server
    text = f"a text two requests want {uuid.uuid4().hex}"
    queued = lambda: metric_sum(server.metrics(), "sentiment_queued_texts")  # noqa: E731
    coalesced = lambda: metric_sum(server.metrics(), "sentiment_cache_coalesced_texts_total")  # noqa: E731
    shared_before = coalesced()
    model_pid = server.worker_pid("sentiment_model")
    os.kill(model_pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(2) as pool:
            a = pool.submit(post, server, [text])
            wait_until(lambda: queued() == 1, 30, "A's text in flight")
            b = pool.submit(post, server, [text])
            wait_until(lambda: coalesced() == shared_before + 1, 30, "B waiting for A's text")
            os.kill(model_pid, signal.SIGCONT)
            first, second = a.result(), b.result()
    finally:
        os.kill(model_pid, signal.SIGCONT)
    assert first.status_code == second.status_code == 200 and first.json() == second.json()
    a_waited, b_waited = (float(r.headers["x-inference-time"]) for r in (first, second))
    assert b_waited > 0
    assert a_waited >= b_waited  # B arrived later, into the same call
    assert float(second.headers["x-total-time"]) >= b_waited

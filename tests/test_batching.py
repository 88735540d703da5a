"""Adaptive batching through a real `bentoml serve`: batches form across clients, stay exact, never fail, never stall."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness.clients import closed_loop
from harness.processes import wait_until
from harness.prometheus import metric_sum
from tests.helpers import batches_and_texts

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

USERS = 48
WORDS = "the film was a great awful boring moving story with fine acting and a dull ending".split()
REQUESTS_PER_USER = 10  # 480 requests, coalesced into well over 100 model-service calls: past BentoML's 100-call connection recycling


def _two_texts(u: int, i: int) -> list[str]:
    return [f"user {u} finds request {i} rather good", f"user {u} thinks {i} is bad"]


def test_concurrent_clients_share_batches_without_errors_and_scores_match(split_server) -> None:  # noqa: ANN001
    before = split_server.metrics()
    results = asyncio.run(closed_loop(split_server.url, USERS, _two_texts, requests_per_user=REQUESTS_PER_USER))
    statuses = [e.response.status_code for e in results]
    assert statuses.count(200) == len(statuses) == USERS * REQUESTS_PER_USER, {s: statuses.count(s) for s in set(statuses)}

    after = split_server.metrics()
    batches, texts = batches_and_texts(before, after)
    single_text_batches = after['sentiment_batch_texts_bucket{le="1.0"}'] - before.get('sentiment_batch_texts_bucket{le="1.0"}', 0)
    # BentoML's own histogram: one observation per batch, valued in model-service calls
    calls = metric_sum(after, "bentoml_service_adaptive_batch_size_sum") - metric_sum(before, "bentoml_service_adaptive_batch_size_sum")
    print(f"\n{texts:.0f} texts in {batches:.0f} batches ({texts / batches:.1f} texts/batch), {calls:.0f} model-service calls")
    assert texts == 2 * USERS * REQUESTS_PER_USER
    # requests waiting together leave as one call (see the test below), so calls <= requests
    assert 100 < calls <= USERS * REQUESTS_PER_USER
    assert batches <= calls
    assert single_text_batches < batches

    # Scores computed inside shared batches equal scores computed alone.
    sample = results[:: max(1, len(results) // 12)]
    worst = 0.0
    for exchange in sample:
        batched = exchange.response.json()["predictions"]
        for text, row in zip(exchange.texts, batched):
            alone = httpx.post(f"{split_server.url}/predict", json={"text": [text]}, timeout=60).json()["predictions"][0]
            worst = max(worst, *(abs(a["score"] - b["score"]) for a, b in zip(row, alone)))
    assert worst <= 1e-4


def test_texts_waiting_for_a_busy_model_leave_as_one_batch(split_server) -> None:  # noqa: ANN001
    """32 one-text clients arrive while the model is busy: the next batch holds all 31 that waited.

    The model worker is paused (SIGSTOP) so that "busy" does not depend on timing; the
    public worker's gauge of queued texts says when every request has arrived.
    """
    model_pid = split_server.worker_pid("sentiment_model")
    before = split_server.metrics()
    queued = lambda: metric_sum(split_server.metrics(), "sentiment_queued_texts")  # noqa: E731
    assert queued() == 0
    os.kill(model_pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(32) as pool:
            texts = [f"client {i} waits for a busy model" for i in range(32)]
            futures = [pool.submit(httpx.post, f"{split_server.url}/predict", json={"text": [t]}, timeout=60) for t in texts]
            wait_until(lambda: queued() == 32, timeout=30, what="32 texts queued for the paused model")
            os.kill(model_pid, signal.SIGCONT)
            responses = [f.result() for f in futures]
    finally:
        os.kill(model_pid, signal.SIGCONT)
    assert [r.status_code for r in responses] == [200] * 32
    after = split_server.metrics()
    new = {k: after[k] - before.get(k, 0.0) for k in after if k.startswith("sentiment_batch_texts")}
    # the first request's call was already on its way; the other 31 left together
    assert new["sentiment_batch_texts_sum"] == 32
    assert new["sentiment_batch_texts_count"] == 2
    assert new['sentiment_batch_texts_bucket{le="1.0"}'] == 1
    assert new['sentiment_batch_texts_bucket{le="16.0"}'] == 1 and new['sentiment_batch_texts_bucket{le="32.0"}'] == 2
    assert queued() == 0


def test_clients_that_send_again_at_once_fill_one_batch_not_two(server, real_model_dir) -> None:  # noqa: ANN001
    """32 closed-loop one-text clients, the model inline (the default): the next batch waits for the requests
    the last one answered (sentiment/batching/regroup.py), so batches hold most of the 32, not two cohorts of 16.

    Texts of about 150 tokens keep the model the busy part, as it is for the full-size model on short texts:
    with a model much faster than the HTTP path, nothing is worth waiting for (the wait ends after a tenth
    of a batch's time without an arrival) and batches stay small."""
    def text(u: int, i: int) -> list[str]:
        return [f"cohort user {u} request {i} " + " ".join(WORDS[(u * 7 + i * 3 + k) % len(WORDS)] for k in range(120))]

    before = server.metrics()
    results = asyncio.run(closed_loop(server.url, 32, text, requests_per_user=8))
    assert [e.response.status_code for e in results] == [200] * 32 * 8
    after = server.metrics()
    batches, texts = batches_and_texts(before, after)
    departures = {reason: metric_sum(after, "sentiment_batch_departures_total", reason=reason)
                  - metric_sum(before, "sentiment_batch_departures_total", reason=reason) for reason in ("regrouped", "gap", "bound")}
    print(f"\n{texts:.0f} texts in {batches:.0f} batches ({texts / batches:.1f} texts/batch); departures {departures}")
    assert texts == 32 * 8
    assert departures["regrouped"] >= batches / 2  # most batches left with every client expected back
    assert texts / batches > 16  # more than one cohort per batch


def _single_client_rate(url: str, n: int, tag: str) -> float:
    """Requests/s of one client sending `n` one-text requests one after another (each must answer 200)."""
    with httpx.Client(timeout=60) as client:
        start = time.perf_counter()
        for i in range(n):
            client.post(f"{url}/predict", json={"text": [f"{tag} sentence number {i}"]}).raise_for_status()
        return n / (time.perf_counter() - start)


def test_single_client_is_not_held_back_after_a_burst(split_server) -> None:  # noqa: ANN001
    """BentoML's batcher learns from a burst to hold batches back (a lone client got 11.9 req/s after a burst
    instead of 32.9): the batch policy lets it learn but holds batches for BATCH_WAIT_MS (0) at most.
    Asserted on the batcher's own waits (sentiment_batch_wait_seconds), not on time; the rates are printed."""
    before = _single_client_rate(split_server.url, 30, "before")
    # long enough for BentoML's batch optimizer to refresh (at most every 5 s) on burst data
    results = asyncio.run(closed_loop(split_server.url, 64, _two_texts, requests_per_user=1000, max_seconds=12))
    assert results and all(e.response.status_code == 200 for e in results)
    metrics = split_server.metrics()
    learned = metric_sum(metrics, "sentiment_batch_wait_seconds", kind="learned")
    applied = metric_sum(metrics, "sentiment_batch_wait_seconds", kind="applied")
    after = _single_client_rate(split_server.url, 30, "after")
    print(f"\nbatcher wait after a 64-client burst: learned {learned * 1000:.2f} ms, applied {applied * 1000:.2f} ms; "
          f"single client: {before:.1f} req/s before, {after:.1f} req/s after")
    assert learned > 0  # the burst taught the batcher to wait: what slowed lone clients down
    assert applied == 0.0

"""Overload and shutdown against a real `bentoml serve`: shed fast, stay bounded, recover; drain on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time

import httpx
import psutil
import pytest

from harness.clients import Exchange, closed_loop
from harness.processes import start_server, wait_until
from harness.prometheus import metric_sum, parse_metrics

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

QUEUE_BOUND = 64
PAUSABLE = {"MODEL_PLACEMENT": "service"}  # the model in its own worker, which a test pauses (SIGSTOP)


@pytest.fixture(scope="module")
def bounded_server(bentoml_home, tmp_path_factory):  # noqa: ANN001, ANN201
    proc = start_server(
        bentoml_home, tmp_path_factory.mktemp("serve-overload"),
        env={"MAX_QUEUED_TEXTS": str(QUEUE_BOUND), "CACHE_MAX_ENTRIES": "0"},
    )
    yield proc
    proc.stop()


def single_client_latency(url: str, n: int, tag: str) -> float:
    """Median seconds of sequential one-text requests."""
    times = []
    with httpx.Client(timeout=60) as client:
        for i in range(n):
            start = time.perf_counter()
            client.post(f"{url}/predict", json={"text": [f"{tag} {i} was a fine film"]}).raise_for_status()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def flood(url: str, clients: int, seconds: float) -> list[tuple[int, float, str | None]]:
    """Closed-loop clients sending 16 new texts per request, for a fixed time."""

    async def impatient(_: object, exchange: Exchange) -> None:
        if exchange.response.status_code == 503:
            await asyncio.sleep(0.05)  # a client that does not honour Retry-After

    exchanges = asyncio.run(closed_loop(url, clients, lambda u, i: [f"flood {u} {i} {j}" for j in range(16)],
                                        max_seconds=seconds, after_each=impatient, timeout=60))
    return [(e.response.status_code, e.seconds, e.response.headers.get("retry-after")) for e in exchanges]


def test_overload_is_shed_fast_and_service_recovers(bounded_server) -> None:  # noqa: ANN001
    """Counts, not times: shed requests never reach the model, every 503 is counted and says
    when to retry, and the queue drains to zero afterwards. How fast shedding answers is
    printed here and measured by the benchmark (a timing bound in a test would flake)."""
    url = bounded_server.url
    baseline = single_client_latency(url, 20, "before")
    before = bounded_server.metrics()
    results = flood(url, clients=64, seconds=10)
    statuses = {s for s, _, _ in results}
    accepted = sorted(t for s, t, _ in results if s == 200)
    shed = sorted(t for s, t, _ in results if s == 503)
    assert statuses <= {200, 503}, statuses
    assert accepted and shed
    assert all(retry == "1" for s, _, retry in results if s == 503)
    print(
        f"\n{len(results)} requests: {len(accepted)} accepted (p50 {statistics.median(accepted) * 1000:.0f} ms), "
        f"{len(shed)} shed (p50 {statistics.median(shed) * 1000:.1f} ms); single-client p50 before {baseline * 1000:.1f} ms"
    )
    # the queue drains completely, then: shed requests never reached the model (only the
    # accepted requests' 16 new texts each were computed) and every 503 was counted
    wait_until(lambda: metric_sum(bounded_server.metrics(), "sentiment_queued_texts") == 0, timeout=60)
    after = bounded_server.metrics()
    assert metric_sum(after, "sentiment_model_texts_total") - metric_sum(before, "sentiment_model_texts_total") == 16 * len(accepted)
    assert metric_sum(after, "sentiment_shed_requests_total") - metric_sum(before, "sentiment_shed_requests_total") == len(shed)

    recovered = single_client_latency(url, 20, "after")  # every one answered 200 (raise_for_status)
    print(f"single-client p50 after the flood {recovered * 1000:.1f} ms")


@pytest.mark.parametrize("placement", ["inline", "service"])
def test_sigterm_drains_in_flight_requests(bentoml_home, tmp_path, placement: str) -> None:  # noqa: ANN001
    server = start_server(bentoml_home, tmp_path, env={"MODEL_PLACEMENT": placement})
    processes = [psutil.Process(server.proc.pid), *psutil.Process(server.proc.pid).children(recursive=True)]

    async def scenario() -> tuple[list[int], str]:
        async with httpx.AsyncClient(timeout=120) as client:
            async def slow_request(i: int) -> int:
                texts = [f"request {i} text {j} " * 30 for j in range(32)]
                return (await client.post(f"{server.url}/predict", json={"text": texts})).status_code

            async def all_sent_to_the_model() -> None:  # every request admitted and on its way
                while metric_sum(parse_metrics((await client.get(f"{server.url}/metrics")).text), "sentiment_model_texts_total") < 8 * 32:
                    await asyncio.sleep(0.05)  # polling interval

            in_flight = [asyncio.create_task(slow_request(i)) for i in range(8)]
            await asyncio.wait_for(all_sent_to_the_model(), timeout=60)
            os.kill(server.proc.pid, signal.SIGTERM)  # what Kubernetes sends on a rolling update
            statuses = await asyncio.gather(*in_flight)
            try:  # no new work once draining: answered 503 at once, or refused once the worker is gone
                late = await client.post(f"{server.url}/predict", json={"text": ["new work"]})
                after = "refused" if late.status_code == 503 and late.headers.get("retry-after") else f"accepted: {late.status_code}"
            except httpx.TransportError:
                after = "refused"
        return statuses, after

    try:
        statuses, after = asyncio.run(scenario())
        assert statuses == [200] * 8  # every in-flight request finished
        assert after == "refused"  # no new work once draining
        server.proc.wait(timeout=60)
        assert not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    finally:
        server.stop()


@pytest.mark.parametrize("leaves_by", ["its timeout", "client disconnect"])
def test_a_request_that_goes_away_does_not_fail_another_waiting_for_the_same_text(bentoml_home, tmp_path, leaves_by) -> None:  # noqa: ANN001
    """A starts computing text X and goes away (its timeout fires, or its client hangs up);
    B, waiting for the same X, still gets it.

    The model worker is paused so that A's computation is still in flight when A goes
    away; B arrives later, so its own timeout is further away.
    """
    from concurrent.futures import ThreadPoolExecutor

    server = start_server(bentoml_home, tmp_path, env={"REQUEST_TIMEOUT_S": "4", "CACHE_MAX_ENTRIES": "0", **PAUSABLE})
    text = "a text that two requests want at once"
    queued = lambda: metric_sum(server.metrics(), "sentiment_queued_texts")  # noqa: E731
    coalesced = lambda: metric_sum(server.metrics(), "sentiment_cache_coalesced_texts_total")  # noqa: E731
    model_pid = server.worker_pid("sentiment_model")
    # A's client gives up after 1.5 s (hanging up) or waits past the service's 4 s timeout
    a_timeout = 1.5 if leaves_by == "client disconnect" else 60

    def request_a() -> int | str:
        try:
            return httpx.post(f"{server.url}/predict", json={"text": [text]}, timeout=a_timeout).status_code
        except httpx.TimeoutException:
            return "hung up"

    try:
        os.kill(model_pid, signal.SIGSTOP)
        with ThreadPoolExecutor(2) as pool:
            started = time.monotonic()
            first = pool.submit(request_a)
            wait_until(lambda: queued() == 1, 10, "A's text in flight")
            wait_until(lambda: time.monotonic() - started > 2, 5, "a gap between A and B")  # B's deadline is 2 s after A's
            second = pool.submit(httpx.post, f"{server.url}/predict", json={"text": [text]}, timeout=60)
            wait_until(lambda: coalesced() == 1, 10, "B waiting for the same text")
            assert queued() == 1  # B sends nothing itself: the text counts once against the bound
            a = first.result()
            os.kill(model_pid, signal.SIGCONT)
            b = second.result()
        if leaves_by == "client disconnect":
            assert a == "hung up"
        else:
            assert isinstance(a, int) and a != 200, a  # A's own timeout answered it
        assert b.status_code == 200, b.text
        again = httpx.post(f"{server.url}/predict", json={"text": [text]}, timeout=60)
        assert b.json() == again.json()  # the right scores
        assert metric_sum(server.metrics(), "sentiment_model_texts_total") == 1 + 1  # computed once, then again (no cache)
    finally:
        os.kill(model_pid, signal.SIGCONT)
        server.stop()


def test_texts_in_flight_count_once_against_the_queue_bound(bentoml_home, tmp_path) -> None:  # noqa: ANN001
    """Bound 8: A sends 4 texts, B the same 4, C 4 new ones, all while the model is paused.
    Counting B's texts again (as before) would have filled the queue and shed C."""
    from concurrent.futures import ThreadPoolExecutor

    server = start_server(bentoml_home, tmp_path, env={"MAX_QUEUED_TEXTS": "8", "CACHE_MAX_ENTRIES": "0", **PAUSABLE})
    queued = lambda: metric_sum(server.metrics(), "sentiment_queued_texts")  # noqa: E731
    coalesced = lambda: metric_sum(server.metrics(), "sentiment_cache_coalesced_texts_total")  # noqa: E731
    shared = [f"shared text {i}" for i in range(4)]
    model_pid = server.worker_pid("sentiment_model")
    post = lambda texts: httpx.post(f"{server.url}/predict", json={"text": texts}, timeout=60)  # noqa: E731
    try:
        os.kill(model_pid, signal.SIGSTOP)
        with ThreadPoolExecutor(3) as pool:
            a = pool.submit(post, shared)
            wait_until(lambda: queued() == 4, 10, "A's 4 texts in flight")
            b = pool.submit(post, list(reversed(shared)))
            wait_until(lambda: coalesced() == 4, 10, "B waiting for A's texts")
            assert queued() == 4
            c = pool.submit(post, [f"new text {i}" for i in range(4)])
            wait_until(lambda: queued() == 8, 10, "C's texts admitted")
            os.kill(model_pid, signal.SIGCONT)
            responses = [a.result(), b.result(), c.result()]
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert responses[1].json()["predictions"] == list(reversed(responses[0].json()["predictions"]))
        assert metric_sum(server.metrics(), "sentiment_shed_requests_total") == 0
        assert metric_sum(server.metrics(), "sentiment_model_texts_total") == 8
        wait_until(lambda: queued() == 0, 10, "the queue to drain")
    finally:
        os.kill(model_pid, signal.SIGCONT)
        server.stop()

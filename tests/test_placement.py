"""Where the model runs, through a real `bentoml serve`: inline in the public worker (the default), or in
its own model service (MODEL_PLACEMENT=service); batches shared across clients and the same answers either way."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from harness.clients import closed_loop
from harness.processes import start_server, wait_until
from harness.prometheus import metric_sum
from tests.helpers import batches_and_texts
from tests.test_startup import startup_gauges

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

USERS = 32
REQUESTS_PER_USER = 5


def test_by_default_the_model_runs_in_the_public_worker(server) -> None:  # noqa: ANN001
    server.worker_pid("sentiment")
    with pytest.raises(LookupError):
        server.worker_pid("sentiment_model")
    assert httpx.get(f"{server.url}/info", timeout=10).json()["served_by"]["placement"] == "inline"
    assert "placement=inline" in server.log()
    assert any(k.startswith("sentiment_model_info") and v == 1 for k, v in server.metrics().items())


def test_a_lone_requests_small_batch_runs_on_the_event_loop_and_any_other_on_the_engine_thread(server) -> None:  # noqa: ANN001
    """sentiment/batching/inline.py: no thread hop for a client that is alone, and never a long hold of the loop."""
    port = int(server.url.rsplit(":", 1)[1])

    def batches() -> tuple[float, float]:
        metrics = server.metrics()
        return tuple(metric_sum(metrics, "sentiment_inline_batches_total", thread=t) for t in ("event_loop", "engine"))

    def predict(texts: list[str]) -> None:
        response = httpx.post(f"{server.url}/predict", json={"text": texts}, timeout=60)
        assert response.status_code == 200, response.text

    before = batches()
    predict(["a lone client finds this one rather good"])
    assert batches() == (before[0] + 1, before[1])
    predict([f"a lone client sends text number {i} of eight, every one of them a fairly long sentence" for i in range(8)])
    assert batches() == (before[0] + 1, before[1] + 1)  # over ON_LOOP_MAX_TOKENS: the engine's thread
    # another request in the worker (its body still on its way): the loop must stay free for it
    body = b'{"text": ["I am still sending my body"]}'
    head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=60) as held:
        held.sendall(head.encode() + body[:10])
        wait_until(lambda: metric_sum(server.metrics(), "bentoml_service_request_in_progress", endpoint="/predict") == 1,
                   timeout=10, what="the server reading the held request's body")
        predict(["a client that is not alone finds this one rather good"])
        assert batches() == (before[0] + 1, before[1] + 2)
        held.sendall(body[10:])
        assert held.recv(4096).startswith(b"HTTP/1.1 200")
    assert batches() == (before[0] + 2, before[1] + 2)  # the held request, alone by then


def test_the_model_service_runs_in_its_own_worker_and_times_its_start(split_server) -> None:  # noqa: ANN001
    split_server.worker_pid("sentiment")
    split_server.worker_pid("sentiment_model")
    assert httpx.get(f"{split_server.url}/info", timeout=10).json()["served_by"]["placement"] == "service"
    metrics = split_server.metrics()
    engine = "openvino" if 'engine="openvino"' in " ".join(k for k, v in metrics.items() if v == 1) else "torch"
    model = startup_gauges(metrics, "sentiment_model")
    expected = {"imports", "threads", "model_load", "engine_read", "warm_up", "gc_freeze", "total"}
    assert set(model) == expected | ({"engine_compile"} if engine == "openvino" else set())
    assert model["engine_read"] + model.get("engine_compile", 0) <= model["model_load"]
    assert sum(model[s] for s in ("imports", "threads", "model_load", "warm_up", "gc_freeze")) <= model["total"]
    assert set(startup_gauges(metrics, "sentiment")) == {"imports", "model_load", "gc_freeze", "total"}  # tokenizer and config
    assert "start-up of sentiment_model: imports" in split_server.log()


def test_concurrent_clients_share_batches_and_get_the_same_answers_either_way(split_server, bentoml_home, tmp_path) -> None:  # noqa: ANN001
    before = split_server.metrics()

    def texts(u: int, i: int) -> list[str]:
        return [f"placement user {u} finds request {i} rather good"]

    results = asyncio.run(closed_loop(split_server.url, USERS, texts, requests_per_user=REQUESTS_PER_USER))
    statuses = [e.response.status_code for e in results]
    assert statuses.count(200) == len(statuses) == USERS * REQUESTS_PER_USER, {s: statuses.count(s) for s in set(statuses)}
    after = split_server.metrics()
    batches, texts_in = batches_and_texts(before, after)
    assert texts_in == USERS * REQUESTS_PER_USER
    assert batches < texts_in / 2  # 32 clients waiting: most batches carry several of their texts
    # the same texts with the model inline: same model, same pair
    inline = start_server(bentoml_home, tmp_path, env={"CACHE_MAX_ENTRIES": "0"})
    try:
        for exchange in results[:: len(results) // 8]:
            want = httpx.post(f"{inline.url}/predict", json={"text": exchange.texts}, timeout=60).json()["predictions"]
            for got_row, want_row in zip(exchange.response.json()["predictions"], want):
                assert [g["label"] for g in got_row] == [w["label"] for w in want_row]
                assert max(abs(g["score"] - w["score"]) for g, w in zip(got_row, want_row)) <= 1e-4
    finally:
        inline.stop()

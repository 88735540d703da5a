"""The prediction cache through a real `bentoml serve` over HTTP, with a real `redis-server`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable

import httpx
import pytest
import redis as redis_py

from harness.clients import BackgroundClients
from tests import tiny_models
from harness.processes import ROOT, RedisServer, free_port, home_sharing_models, start_server, wait_until
from harness.prometheus import metric_sum

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

TTL_S = 4


def predict(server, texts: list[str]) -> list:  # noqa: ANN001
    r = httpx.post(f"{server.url}/predict", json={"text": texts}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["predictions"]


def model_texts(server) -> float:  # noqa: ANN001
    return server.metrics().get("sentiment_model_texts_total", 0.0)


def hits(server) -> float:  # noqa: ANN001
    return metric_sum(server.metrics(), "sentiment_cache_lookups_total", result="hit")


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def redis_server():  # noqa: ANN201
    server = RedisServer(free_port()).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def redis_service(bentoml_home, redis_server, tmp_path_factory):  # noqa: ANN001, ANN201
    proc = start_server(
        bentoml_home, tmp_path_factory.mktemp("serve-redis"),
        # Redis alone: these tests read and write its entries; test_near_tier_* runs the tier in front of it
        env={"REDIS_URL": redis_server.url, "CACHE_TTL_S": str(TTL_S), "REDIS_BREAKER_RESET_S": "0.5", "CACHE_NEAR_ENTRIES": "0"},
    )
    yield proc
    proc.stop()


def test_repeated_text_is_a_hit_and_only_misses_reach_the_model(redis_service) -> None:  # noqa: ANN001
    a, b, c = unique("a great film"), unique("a dull film"), unique("an odd film")
    before = model_texts(redis_service)
    first = predict(redis_service, [a, b])
    assert model_texts(redis_service) == before + 2
    assert predict(redis_service, [a, b]) == first
    assert model_texts(redis_service) == before + 2  # all hits: model not called
    mixed = predict(redis_service, [b, c, a, c])
    assert model_texts(redis_service) == before + 3  # only c, once
    assert mixed[0] == first[1] and mixed[2] == first[0] and mixed[1] == mixed[3]


def test_case_variants_share_one_entry(redis_service) -> None:  # noqa: ANN001
    text = unique("what a wonderful day")
    predict(redis_service, [text])
    before = model_texts(redis_service)
    predict(redis_service, [text.upper(), "  " + text.title() + " "])
    assert model_texts(redis_service) == before


def test_entries_expire_after_ttl(redis_service, redis_server) -> None:  # noqa: ANN001
    text = unique("expiring sentence")
    predict(redis_service, [text])
    client = redis_py.Redis.from_url(redis_server.url)
    ttls = [client.ttl(k) for k in client.keys("sentiment:*")]
    assert ttls and all(0 < t <= TTL_S for t in ttls)
    keys = client.keys("sentiment:*")
    wait_until(lambda: client.exists(*keys) == 0, timeout=TTL_S + 10, what="Redis to expire the entries")
    before = model_texts(redis_service)
    predict(redis_service, [text])
    assert model_texts(redis_service) == before + 1


def test_corrupt_value_is_recomputed_and_replaced(redis_service, redis_server) -> None:  # noqa: ANN001
    client = redis_py.Redis.from_url(redis_server.url)
    client.flushdb()
    text = unique("the acting was superb")
    good = predict(redis_service, [text])
    wait_until(lambda: client.keys("sentiment:*"), timeout=10, what="the write-back")  # asynchronous
    (key,) = client.keys("sentiment:*")
    for garbage in (b"\x80\x04pickle?", b"[0.5]", b"{}"):
        client.set(key, garbage)
        before = model_texts(redis_service)
        assert predict(redis_service, [text]) == good
        assert model_texts(redis_service) == before + 1
        wait_until(lambda: client.get(key).startswith(b"[") and len(client.get(key).split(b",")) == 2,
                   timeout=10, what="the recomputed value to replace the corrupt one")
    assert metric_sum(redis_service.metrics(), "sentiment_cache_errors_total", kind="corrupt") >= 3


def test_concurrent_identical_texts_are_computed_once(redis_service) -> None:  # noqa: ANN001
    text = unique("everyone asks about this")

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            responses = await asyncio.gather(
                *(client.post(f"{redis_service.url}/predict", json={"text": [text, text]}) for _ in range(16))
            )
        return [r.status_code for r in responses]

    before = model_texts(redis_service)
    coalesced = redis_service.metrics().get("sentiment_cache_coalesced_texts_total", 0.0)
    assert asyncio.run(burst()) == [200] * 16
    assert model_texts(redis_service) == before + 1
    assert redis_service.metrics()["sentiment_cache_coalesced_texts_total"] > coalesced


def test_redis_killed_mid_stream_gives_no_errors_and_recovers(redis_service, redis_server) -> None:  # noqa: ANN001
    def texts(u: int, i: int) -> list[str]:  # half repeated (cache traffic), half new (model traffic)
        return [f"steady text {u}", unique(f"user {u} says {i}")]

    errors = lambda: metric_sum(redis_service.metrics(), "sentiment_cache_errors_total", backend="redis")  # noqa: E731
    with BackgroundClients(redis_service.url, 8, texts, timeout=60) as clients:
        def served_more(n: int) -> Callable[[], bool]:
            target = clients.answered() + n
            return lambda: clients.answered() >= target

        wait_until(served_more(50), timeout=60, what="traffic before the kill")
        before_kill = errors()
        redis_server.kill()
        wait_until(lambda: errors() > before_kill, timeout=60, what="the service to notice Redis is gone")
        wait_until(served_more(50), timeout=60, what="traffic without Redis")
        redis_server.start()
        wait_until(served_more(50), timeout=60, what="traffic after the restart")
    statuses = clients.statuses()
    assert statuses and set(statuses) == {200}, statuses
    assert errors() > 0

    # Back by itself (once the circuit breaker lets a call through): a repeated text is served from Redis again.
    def repeat_is_a_redis_hit() -> bool:
        text = unique("after the restart")
        predict(redis_service, [text])
        before = hits(redis_service)
        predict(redis_service, [text])
        return hits(redis_service) > before

    wait_until(repeat_is_a_redis_hit, timeout=60, what="cache hits to come back after Redis restarted")
    client = redis_py.Redis.from_url(redis_server.url)
    assert client.keys("sentiment:*")


def test_new_model_fingerprint_does_not_see_old_entries(bentoml_home, redis_server, redis_service, tmp_path_factory) -> None:  # noqa: ANN001
    text = unique("a film to remember")
    # a model that really differs from the served one (its own weights), with or without ../shared
    other_model = tiny_models.distilbert(tmp_path_factory.mktemp("other-model"), ["NEGATIVE", "POSITIVE"], seed=7)
    subprocess.run(
        [sys.executable, str(ROOT / "train_or_import.py"), "import", "--source", str(other_model), "--name", "other-sentiment"],
        check=True, cwd=ROOT, env={**os.environ, "BENTOML_HOME": str(bentoml_home)}, stdout=subprocess.DEVNULL,
    )
    other = start_server(
        bentoml_home, tmp_path_factory.mktemp("serve-other"),
        env={"REDIS_URL": redis_server.url, "MODEL_TAG": "other-sentiment:latest"},
    )
    try:
        client = redis_py.Redis.from_url(redis_server.url)
        cached = set(client.keys("sentiment:*"))
        predict(redis_service, [text])  # cached for the first model (short TTL: cache it now)
        wait_until(lambda: set(client.keys("sentiment:*")) - cached, timeout=10, what="the write-back")
        predict(other, [text])
        assert model_texts(other) == 1  # a miss: the first model's entry is not visible
        predict(other, [text])
        assert model_texts(other) == 1
    finally:
        other.stop()
    fingerprints = {k.split(b":")[1] for k in redis_py.Redis.from_url(redis_server.url).keys("sentiment:*")}
    assert len(fingerprints) == 2


def test_embedded_cache_hits_and_stays_bounded(bentoml_home, tmp_path_factory) -> None:  # noqa: ANN001
    server = start_server(bentoml_home, tmp_path_factory.mktemp("serve-embedded"), env={"CACHE_MAX_ENTRIES": "20"})
    try:
        first = unique("first text")
        predict(server, [first])
        predict(server, [first])
        samples = server.metrics()
        assert metric_sum(samples, "sentiment_cache_lookups_total", backend="memory", result="hit") == 1
        assert metric_sum(samples, "sentiment_cache_lookups_total", backend="memory", result="miss") == 1
        for i in range(5):
            predict(server, [unique(f"filler {i}-{j}") for j in range(10)])
        assert server.metrics()["sentiment_cache_memory_entries"] <= 20
        before = model_texts(server)
        predict(server, [first])  # evicted by 50 newer entries
        assert model_texts(server) == before + 1
    finally:
        server.stop()


def test_scores_of_one_engine_are_never_served_as_another_s(bentoml_home, redis_server, redis_service, tmp_path_factory) -> None:  # noqa: ANN001
    """Same model, same Redis: what the default pair computed is a miss for ENGINE=torch PRECISION=int8.

    The second server starts first: the default pair's entry lives TTL_S seconds, less than a start."""
    client = redis_py.Redis.from_url(redis_server.url)
    engine, precision = redis_service.log().split("loaded: engine=", 1)[1].split()[0:2]  # 'openvino', 'precision=fp32'
    default_pair = f"{engine}-{precision.removeprefix('precision=')}".encode()

    def pairs() -> set[bytes]:
        return {k.split(b":")[1].split(b"-", 1)[1] for k in client.keys("sentiment:*")}

    other = start_server(
        bentoml_home, tmp_path_factory.mktemp("serve-torch-int8"),
        env={"REDIS_URL": redis_server.url, "ENGINE": "torch", "PRECISION": "int8", "CACHE_TTL_S": str(TTL_S)},
    )
    try:
        assert "engine=torch precision=int8" in other.log()
        text = unique("a film for two engines")
        predict(redis_service, [text])
        wait_until(lambda: default_pair in pairs(), 10, "the default pair's write-back")
        predict(other, [text])
        assert default_pair in pairs()  # the default pair's entry was there to be (wrongly) found
        assert model_texts(other) == 1 and hits(other) == 0  # computed again, by torch int8
        wait_until(lambda: b"torch-int8" in pairs(), 10, "torch's entry")
        predict(other, [text])
        assert model_texts(other) == 1 and hits(other) == 1  # its own entry now
    finally:
        other.stop()


def redis_calls(server) -> float:  # noqa: ANN001
    return metric_sum(server.metrics(), "sentiment_redis_roundtrip_seconds_count", op="mget")


def test_near_tier_answers_repeats_without_redis_and_finds_other_replicas_scores(
    bentoml_home, redis_server, redis_service, tmp_path_factory,  # noqa: ANN001
) -> None:
    folder = tmp_path_factory.mktemp("serve-near")
    near = start_server(home_sharing_models(bentoml_home, folder), folder, env={"REDIS_URL": redis_server.url})
    try:
        text = unique("scored by the other replica")
        first = predict(redis_service, [text])  # another replica, same Redis
        client = redis_py.Redis.from_url(redis_server.url)
        wait_until(lambda: client.keys("sentiment:*"), timeout=10, what="the write-back")
        calls = redis_calls(near)
        assert predict(near, [text]) == first  # found through Redis, not computed
        assert model_texts(near) == 0 and hits(near) == 1 and redis_calls(near) == calls + 1
        for _ in range(3):  # repeats: answered by the worker itself, no round trip
            assert predict(near, [text]) == first
        after = near.metrics()
        assert hits(near) == 4 and redis_calls(near) == calls + 1 and model_texts(near) == 0
        assert after["sentiment_cache_near_hits_total"] == 3
        mine, entries = unique("computed here"), len(client.keys("sentiment:*"))
        answer = predict(near, [mine])
        wait_until(lambda: len(client.keys("sentiment:*")) == entries + 1, timeout=10, what="its write-back")
        computed = model_texts(redis_service)
        assert predict(redis_service, [mine]) == answer  # written through to Redis: shared as before
        assert model_texts(near) == 1 and model_texts(redis_service) == computed
    finally:
        near.stop()


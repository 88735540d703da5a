"""Cache backends: value parsing, the in-process LRU, the circuit breaker, Redis failures (a real redis-server)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis as redis_py
from prometheus_client import generate_latest

from harness.processes import RedisServer, free_port, wait_until
from harness.prometheus import metric_sum, parse_metrics
from sentiment.cache import backends
from sentiment.cache.backends import (
    CircuitBreaker, CircuitOpen, MemoryBackend, NearCache, RedisBackend, decode_scores, encode_scores,
)

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"\xff\xfe", b"[0.5]", b'{"a": 1}', b"[0.5, \"x\"]", b"[true, false]", b"[NaN, 0.5]", b"", b"[0.1,0.2,0.7]"],
)
def test_corrupt_values_are_misses(raw: bytes) -> None:
    assert decode_scores(raw, n_labels=2) is None


def test_values_round_trip_as_json() -> None:
    raw = encode_scores([0.25, 0.75])
    assert raw == b"[0.25,0.75]"
    assert decode_scores(raw, 2) == [0.25, 0.75]


class FakeClock:
    """Time for sentiment.cache.backends only (asyncio keeps the real clock): tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return time.perf_counter()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(backends, "time", fake)
    return fake


def open_circuit_skips() -> float:
    return metric_sum(parse_metrics(generate_latest().decode()), "sentiment_cache_errors_total", backend="redis", kind="circuit_open")


def connection_errors() -> float:
    samples = parse_metrics(generate_latest().decode())
    return sum(metric_sum(samples, "sentiment_cache_errors_total", backend="redis", kind=k) for k in ("connection", "timeout"))


def assert_open(breaker: CircuitBreaker) -> None:
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_memory_backend_is_bounded_lru_with_ttl(clock: FakeClock) -> None:
    async def scenario() -> None:
        backend = MemoryBackend(max_entries=3)
        await backend.set_many({"a": b"1", "b": b"2", "c": b"3"}, ttl_s=60)
        assert await backend.get_many(["a"]) == [b"1"]  # a is now most recent
        await backend.set_many({"d": b"4"}, ttl_s=60)
        assert len(backend) == 3
        assert await backend.get_many(["a", "b", "c", "d"]) == [b"1", None, b"3", b"4"]
        await backend.set_many({"e": b"5"}, ttl_s=1)
        clock.now += 0.95
        assert await backend.get_many(["e"]) == [b"5"]
        clock.now += 0.1
        assert await backend.get_many(["e"]) == [None]

    run(scenario())


class CountingBackend(MemoryBackend):
    """The shared tier, counting the keys asked of it."""

    name = "shared"

    def __init__(self) -> None:
        super().__init__(max_entries=100)
        self.asked: list[str] = []

    async def get_many(self, keys):  # noqa: ANN001, ANN201
        self.asked += keys
        return await super().get_many(keys)


def near_hits() -> float:
    return parse_metrics(generate_latest().decode()).get("sentiment_cache_near_hits_total", 0.0)


def test_near_tier_answers_repeats_without_asking_the_shared_one(clock: FakeClock) -> None:
    async def scenario() -> None:
        shared = CountingBackend()
        tiers = NearCache(MemoryBackend(max_entries=2), shared, near_ttl_s=10)
        assert tiers.name == "shared"  # lookups are counted as the shared cache's
        await shared.set_many({"other-replica": b"1"}, ttl_s=100)
        hits = near_hits()
        assert await tiers.get_many(["other-replica", "nowhere"]) == [b"1", None]
        assert shared.asked == ["other-replica", "nowhere"]
        assert await tiers.get_many(["other-replica", "nowhere"]) == [b"1", None]  # kept near: only the miss goes on
        assert shared.asked == ["other-replica", "nowhere", "nowhere"]
        assert near_hits() == hits + 1
        await tiers.set_many({"mine": b"2"}, ttl_s=100)  # written to both tiers
        assert await shared.get_many(["mine"]) == [b"2"]
        shared.asked.clear()
        assert await tiers.get_many(["mine"]) == [b"2"] and shared.asked == []
        clock.now += 10.5  # past the near TTL, within the shared one: asked again
        assert await tiers.get_many(["mine"]) == [b"2"] and shared.asked == ["mine"]
        await tiers.set_many({"short": b"3"}, ttl_s=1)  # never kept near longer than the shared tier keeps it
        clock.now += 1.5
        shared.asked.clear()
        assert await tiers.get_many(["short"]) == [None] and shared.asked == ["short"]
        await tiers.set_many({"x": b"4", "y": b"5", "z": b"6"}, ttl_s=100)  # the near tier stays bounded
        assert len(tiers.near) == 2

    run(scenario())


def test_circuit_breaker_opens_and_half_opens(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failures=2, reset_s=0.2)
    breaker.before_call()
    breaker.failure()
    breaker.before_call()  # one failure: still closed
    breaker.failure()
    assert_open(breaker)
    clock.now += 0.15
    assert_open(breaker)  # still open before reset_s
    clock.now += 0.1
    breaker.before_call()  # half-open: one trial allowed
    assert_open(breaker)  # ... and only one
    breaker.success()
    breaker.before_call()
    breaker.before_call()  # closed again: every call goes through


def test_redis_down_is_a_miss_and_breaker_skips_the_timeout() -> None:
    async def scenario() -> None:
        port = free_port()  # nothing listens here
        backend = RedisBackend(f"redis://127.0.0.1:{port}/0", timeout_ms=50, breaker=CircuitBreaker(2, 60))
        assert await backend.get_many(["a", "b"]) == [None, None]
        assert await backend.get_many(["a"]) == [None]
        assert_open(backend.breaker)
        errors, skips = connection_errors(), open_circuit_skips()
        for _ in range(100):
            assert await backend.get_many(["a"]) == [None]
        # no connection attempts while open: every call was skipped by the breaker
        assert connection_errors() == errors and open_circuit_skips() == skips + 100
        await backend.close()

    run(scenario())


def test_redis_round_trip_ttl_and_recovery(clock: FakeClock) -> None:
    redis = RedisServer(free_port()).start()
    try:
        async def scenario() -> None:
            backend = RedisBackend(redis.url, timeout_ms=200, breaker=CircuitBreaker(1, 0.2))
            await backend.set_many({"x": b"[0.1,0.9]", "y": b"[0.2,0.8]"}, ttl_s=1)
            assert await backend.get_many(["x", "y", "z"]) == [b"[0.1,0.9]", b"[0.2,0.8]", None]
            probe = redis_py.Redis.from_url(redis.url)
            wait_until(lambda: probe.exists("x") == 0, timeout=10, what="Redis to expire x")  # Redis' own clock
            assert await backend.get_many(["x"]) == [None]  # expired
            redis.kill()
            skips = open_circuit_skips()
            assert await backend.get_many(["x"]) == [None]
            assert await backend.get_many(["x"]) == [None]
            assert open_circuit_skips() == skips + 1  # one failure opened the breaker: the next call skipped Redis
            redis.start()
            clock.now += 0.3  # past the breaker's reset time: the next call is its trial
            await backend.set_many({"x": b"[0.3,0.7]"}, ttl_s=60)
            await backend.set_many({"x": b"[0.3,0.7]"}, ttl_s=60)
            assert await backend.get_many(["x"]) == [b"[0.3,0.7]"]
            assert 0 < probe.ttl("x") <= 60  # one key is a plain SET, with its TTL too
            skips = open_circuit_skips()
            assert await backend.get_many(["x"]) == [b"[0.3,0.7]"]
            assert open_circuit_skips() == skips  # closed again
            await backend.close()

        run(scenario())
    finally:
        redis.kill()


def test_a_redis_that_never_answers_costs_no_more_than_the_timeout() -> None:
    """A Redis gone from the network (no reset, no answer), and a client that takes long to give up:
    each call is a miss once the timeout has passed, however long the client's own clean-up takes."""
    async def scenario() -> None:
        backend = RedisBackend("redis://127.0.0.1:1/0", timeout_ms=50, breaker=CircuitBreaker(100, 60))
        stuck = asyncio.Event()

        async def never_answers(*_: object) -> None:
            try:
                await stuck.wait()
            except asyncio.CancelledError:
                await asyncio.sleep(30)  # a connection that takes its time to close (a vanished peer)
                raise

        backend._client.mget = never_answers
        errors = connection_errors()
        timeouts = metric_sum(parse_metrics(generate_latest().decode()), "sentiment_cache_errors_total", backend="redis", kind="timeout")
        answers = await asyncio.wait_for(asyncio.gather(*(backend.get_many(["a"]) for _ in range(5))), timeout=5)
        assert answers == [[None]] * 5  # every call answered (a miss) long before the client's clean-up ends
        assert connection_errors() == errors + 5
        assert metric_sum(parse_metrics(generate_latest().decode()), "sentiment_cache_errors_total", backend="redis", kind="timeout") == timeouts + 5

    run(scenario())

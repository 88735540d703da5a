"""Unit tests of the cache building blocks (no server): keys, value parsing, LRU, breaker, coalescing, Redis failures."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis as redis_py
from prometheus_client import generate_latest

from sentiment import cache as cache_module
from sentiment.admission import Overloaded, TextAdmission
from sentiment.cache import (
    CircuitBreaker,
    CircuitOpen,
    MemoryBackend,
    PredictionCache,
    RedisBackend,
    cache_key,
    decode_scores,
    encode_scores,
)
from tests.helpers import RedisServer, free_port, metric_sum, parse_metrics, wait_until

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


def test_key_depends_on_fingerprint_and_tokens() -> None:
    assert cache_key("fp1", [101, 7, 102]) == cache_key("fp1", [101, 7, 102])
    assert cache_key("fp1", [101, 7, 102]) != cache_key("fp2", [101, 7, 102])
    assert cache_key("fp1", [101, 7, 102]) != cache_key("fp1", [101, 71, 102])
    assert cache_key("fp1", [1, 23]) != cache_key("fp1", [12, 3])


def test_uncased_tokenizer_makes_case_variants_share_a_key(model_dir) -> None:  # noqa: ANN001
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok(["I LOVE YOU", "i love you", "  I love   you ", "I hate you"])["input_ids"]
    keys = [cache_key("fp", x) for x in ids]
    assert keys[0] == keys[1] == keys[2]
    assert keys[3] != keys[0]


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
    """Time for sentiment.cache only (asyncio keeps the real clock): tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return time.perf_counter()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(cache_module, "time", fake)
    return fake


def open_circuit_skips() -> float:
    return metric_sum(parse_metrics(generate_latest().decode()), "sentiment_cache_errors_total", backend="redis", kind="circuit_open")


def connection_errors() -> float:
    samples = parse_metrics(generate_latest().decode())
    return sum(metric_sum(samples, "sentiment_cache_errors_total", backend="redis", kind=k) for k in ("connection", "timeout"))


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


def test_circuit_breaker_opens_and_half_opens(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failures=2, reset_s=0.2)
    breaker.before_call()
    breaker.failure()
    breaker.before_call()  # one failure: still closed
    breaker.failure()
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.now += 0.15
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # still open before reset_s
    clock.now += 0.1
    breaker.before_call()  # half-open: one trial allowed
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # ... and only one
    breaker.success()
    breaker.before_call()
    assert not breaker.is_open


class Model:
    """A stand-in for the model service: computes on demand, when the test releases it."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = asyncio.Event()
        self.error: BaseException | None = None

    async def __call__(self, keys: list[str]) -> list[list[float]]:
        self.calls.append(list(keys))
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return [[0.25, 0.75] if k.startswith("pos") else [0.75, 0.25] for k in keys]


class GatedBackend(MemoryBackend):
    """A backend whose writes land only when the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(100)
        self.gate = asyncio.Event()

    async def set_many(self, items: dict[str, bytes], ttl_s: int) -> None:
        await self.gate.wait()
        await super().set_many(items, ttl_s)


def coalesced() -> float:
    return metric_sum(parse_metrics(generate_latest().decode()), "sentiment_cache_coalesced_texts_total")


async def until(predicate) -> None:  # noqa: ANN001
    """Let the event loop run until `predicate` holds (state, not time)."""
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def test_concurrent_requests_compute_each_text_once_and_admit_only_what_they_send() -> None:
    async def scenario() -> None:
        cache, model, admission = PredictionCache(MemoryBackend(10), n_labels=2, ttl_s=60), Model(), TextAdmission(100)
        first = asyncio.ensure_future(cache.get_or_compute(["pos-a", "neg-b", "pos-a"], model, admission.acquire))
        await until(lambda: model.calls)
        second = asyncio.ensure_future(cache.get_or_compute(["neg-b", "pos-c"], model, admission.acquire))
        await until(lambda: len(model.calls) == 2)
        assert model.calls == [["pos-a", "neg-b"], ["pos-c"]]  # neg-b is in flight: the second call waits for it
        assert admission.queued == 3  # a text in flight counts once against the bound
        model.release.set()
        assert await first == {"pos-a": [0.25, 0.75], "neg-b": [0.75, 0.25]}
        assert await second == {"neg-b": [0.75, 0.25], "pos-c": [0.25, 0.75]}
        assert admission.queued == 0
        await cache.flush()
        assert await cache.get_or_compute(["pos-a", "pos-c"], model, admission.acquire) == {"pos-a": [0.25, 0.75], "pos-c": [0.25, 0.75]}
        assert len(model.calls) == 2  # from the cache now

    run(scenario())


def test_a_text_stays_in_flight_until_its_write_back_lands() -> None:
    """A request arriving after the model answered but before the cache holds the value waits for it."""
    async def scenario() -> None:
        backend, model, admission = GatedBackend(), Model(), TextAdmission(100)
        cache = PredictionCache(backend, n_labels=2, ttl_s=60)
        model.release.set()
        assert await cache.get_or_compute(["pos-a"], model, admission.acquire) == {"pos-a": [0.25, 0.75]}
        assert len(backend) == 0  # the write-back has not landed
        assert await cache.get_or_compute(["pos-a"], model, admission.acquire) == {"pos-a": [0.25, 0.75]}
        assert len(model.calls) == 1  # not computed again
        backend.gate.set()
        await cache.flush()
        assert len(backend) == 1 and not cache._inflight

    run(scenario())


def test_a_caller_that_goes_away_does_not_fail_the_others_waiting_for_its_texts() -> None:
    async def scenario() -> None:
        cache, model, admission = PredictionCache(MemoryBackend(10), n_labels=2, ttl_s=60), Model(), TextAdmission(100)
        leaving = asyncio.ensure_future(cache.get_or_compute(["pos-a"], model, admission.acquire))
        await until(lambda: model.calls)
        before = coalesced()
        staying = asyncio.ensure_future(cache.get_or_compute(["pos-a"], model, admission.acquire))
        await until(lambda: coalesced() > before)  # staying waits for the text leaving started
        leaving.cancel()  # its client went away, or its timeout fired
        with pytest.raises(asyncio.CancelledError):
            await leaving
        model.release.set()
        assert await staying == {"pos-a": [0.25, 0.75]}
        assert model.calls == [["pos-a"]] and admission.queued == 0

    run(scenario())


def test_a_failed_computation_reaches_its_waiters_and_a_later_request_computes_again() -> None:
    async def scenario() -> None:
        cache, model, admission = PredictionCache(MemoryBackend(10), n_labels=2, ttl_s=60), Model(), TextAdmission(100)
        model.error = RuntimeError("model down")
        first = asyncio.ensure_future(cache.get_or_compute(["pos-a"], model, admission.acquire))
        await until(lambda: model.calls)
        before = coalesced()
        second = asyncio.ensure_future(cache.get_or_compute(["pos-a"], model, admission.acquire))
        await until(lambda: coalesced() > before)
        model.release.set()
        for call in (first, second):
            with pytest.raises(RuntimeError, match="model down"):
                await call
        assert admission.queued == 0 and not cache._inflight
        model.error = None
        assert await cache.get_or_compute(["pos-a"], model, admission.acquire) == {"pos-a": [0.25, 0.75]}

    run(scenario())


def test_an_overloaded_request_leaves_nothing_claimed() -> None:
    async def scenario() -> None:
        cache, model, admission = PredictionCache(MemoryBackend(10), n_labels=2, ttl_s=60), Model(), TextAdmission(2)
        busy = asyncio.ensure_future(cache.get_or_compute(["pos-a", "pos-b"], model, admission.acquire))
        await until(lambda: model.calls)
        with pytest.raises(Overloaded):
            await cache.get_or_compute(["pos-c"], model, admission.acquire)
        # a request for texts already in flight needs no queue space: it is not refused
        before = coalesced()
        waiting = asyncio.ensure_future(cache.get_or_compute(["pos-a"], model, admission.acquire))
        await until(lambda: coalesced() > before)
        model.release.set()
        await busy
        assert await waiting == {"pos-a": [0.25, 0.75]}
        assert "pos-c" not in cache._inflight
        assert await cache.get_or_compute(["pos-c"], model, admission.acquire) == {"pos-c": [0.25, 0.75]}

    run(scenario())


def test_redis_down_is_a_miss_and_breaker_skips_the_timeout() -> None:
    async def scenario() -> None:
        port = free_port()  # nothing listens here
        backend = RedisBackend(f"redis://127.0.0.1:{port}/0", timeout_ms=50, breaker=CircuitBreaker(2, 60))
        assert await backend.get_many(["a", "b"]) == [None, None]
        assert await backend.get_many(["a"]) == [None]
        assert backend.breaker.is_open
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
            assert await backend.get_many(["x"]) == [None]
            assert backend.breaker.is_open
            redis.start()
            clock.now += 0.3  # past the breaker's reset time: the next call is its trial
            await backend.set_many({"x": b"[0.3,0.7]"}, ttl_s=60)
            await backend.set_many({"x": b"[0.3,0.7]"}, ttl_s=60)
            assert await backend.get_many(["x"]) == [b"[0.3,0.7]"]
            assert not backend.breaker.is_open
            await backend.close()

        run(scenario())
    finally:
        redis.kill()


def test_cache_keys_match_tokenizer_and_memo_is_bounded(model_dir) -> None:  # noqa: ANN001
    from transformers import AutoTokenizer

    from sentiment.cache import CacheKeys
    from sentiment.tokenization import load_tokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)  # the reference for the serving path's tokenizer
    keys = CacheKeys(load_tokenizer(model_dir), "fp", 512, memo_entries=3, memo_max_chars=20)
    texts = ["I love you", "I LOVE YOU", "a" * 50, "I hate you", "great", "I love you"]
    expected = [cache_key("fp", ids) for ids in tok(texts, truncation=True, max_length=512)["input_ids"]]
    assert keys(texts) == expected
    assert keys(texts) == expected  # from the memo, same answer
    assert len(keys._memo) == 3 and ("right", "a" * 50) not in keys._memo
    # the other end of a long text is another key; the ids are what the tokenizer gives
    long_text = "good " * 600 + "bad " * 600
    right, left = keys.encode([long_text], "right")[0], keys.encode([long_text], "left")[0]
    assert right[0] != left[0] and len(right[1]) == len(left[1]) == 512
    tok.truncation_side = "left"
    assert left[1] == tok([long_text], truncation=True, max_length=512)["input_ids"][0]

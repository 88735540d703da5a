"""Shared Redis calls: the lookups of one event-loop pass as one call, the write-backs of one batch as one (sentiment/cache/merged.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from prometheus_client import generate_latest

from harness.processes import RedisServer, free_port
from harness.prometheus import metric_sum, parse_metrics
from sentiment.cache.backends import CircuitBreaker, RedisBackend
from sentiment.cache.merged import MergedCalls

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


class CountingBackend:
    """A backend that records each call it gets; `fail` makes the next call raise."""

    name = "counting"

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.gets: list[list[str]] = []
        self.sets: list[tuple[dict[str, bytes], int]] = []
        self.fail: Exception | None = None
        self.closed = False

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.gets.append(list(keys))
        await asyncio.sleep(0)  # a round trip: other callers run meanwhile
        if self.fail:
            raise self.fail
        return [self.data.get(key) for key in keys]

    async def set_many(self, items: dict[str, bytes], ttl_s: int) -> None:
        self.sets.append((dict(items), ttl_s))
        await asyncio.sleep(0)
        self.data.update(items)

    async def close(self) -> None:
        self.closed = True


def test_lookups_of_one_pass_share_one_call_and_each_gets_its_own_values() -> None:
    async def scenario() -> None:
        backend = CountingBackend()
        backend.data = {"a": b"1", "c": b"3"}
        merged = MergedCalls(backend)
        answers = await asyncio.gather(merged.get_many(["a", "b"]), merged.get_many(["c"]), merged.get_many(["b", "a", "x"]))
        assert answers == [[b"1", None], [b"3"], [None, b"1", None]]
        assert backend.gets == [["a", "b", "c", "x"]]  # one call, each distinct key once
        assert await merged.get_many(["c"]) == [b"3"]  # a lone lookup, later: a call of its own
        assert len(backend.gets) == 2

    asyncio.run(scenario())


def test_writes_of_one_batch_share_one_call_and_each_returns_once_its_items_landed() -> None:
    async def scenario() -> None:
        backend = CountingBackend()
        merged = MergedCalls(backend)

        async def write(key: str) -> bool:
            await merged.set_many({key: key.encode()}, ttl_s=60)
            return key in backend.data  # landed when the writer goes on

        assert await asyncio.gather(*(write(key) for key in "abcd")) == [True] * 4
        assert backend.sets == [({"a": b"a", "b": b"b", "c": b"c", "d": b"d"}, 60)]
        await merged.set_many({"e": b"e"}, ttl_s=30)  # another TTL, later: its own call, with its own TTL
        assert backend.sets[1] == ({"e": b"e"}, 30)

    asyncio.run(scenario())


def test_a_caller_that_goes_away_cancels_only_its_own_wait() -> None:
    async def scenario() -> None:
        backend = CountingBackend()
        backend.data = {"a": b"1"}
        merged = MergedCalls(backend)
        leaving = asyncio.ensure_future(merged.get_many(["a"]))
        staying = asyncio.ensure_future(merged.get_many(["a"]))
        writing = asyncio.ensure_future(merged.set_many({"w": b"w"}, ttl_s=60))
        await asyncio.sleep(0)  # both lookups joined the call, the write is waiting for its delay
        leaving.cancel()
        writing.cancel()
        assert await staying == [b"1"]
        assert leaving.cancelled()
        await merged.flush()
        assert backend.data["w"] == b"w"  # the write went on without its caller

    asyncio.run(scenario())


def test_an_error_of_the_shared_call_reaches_every_caller_and_the_next_call_is_fresh() -> None:
    async def scenario() -> None:
        backend = CountingBackend()
        backend.fail = ConnectionError("gone")
        merged = MergedCalls(backend)
        answers = await asyncio.gather(merged.get_many(["a"]), merged.get_many(["b"]), return_exceptions=True)
        assert [type(a) for a in answers] == [ConnectionError, ConnectionError]
        backend.fail = None
        assert await merged.get_many(["a"]) == [None]

    asyncio.run(scenario())


def test_close_writes_what_waits_then_closes_the_backend() -> None:
    async def scenario() -> None:
        backend = CountingBackend()
        merged = MergedCalls(backend, write_delay_s=60)  # the timer would not fire before the test ends
        writer = asyncio.ensure_future(merged.set_many({"k": b"v"}, ttl_s=60))
        await asyncio.sleep(0)
        await merged.close()
        assert backend.data == {"k": b"v"} and backend.closed
        await writer

    asyncio.run(scenario())


def redis_calls(op: str) -> float:
    return metric_sum(parse_metrics(generate_latest().decode()), "sentiment_redis_roundtrip_seconds_count", op=op)


def test_eight_concurrent_requests_cost_one_redis_lookup_and_one_write() -> None:
    """With a real redis-server: what 8 requests of one pass look up and write back travels as one call each way."""
    redis = RedisServer(free_port()).start()
    try:
        async def scenario() -> None:
            merged = MergedCalls(RedisBackend(redis.url, timeout_ms=500, breaker=CircuitBreaker(5, 5)))
            await merged.set_many({"k0": b"[0.5,0.5]"}, ttl_s=60)
            lookups, writes = redis_calls("mget"), redis_calls("set")
            found = await asyncio.gather(*(merged.get_many([f"k{i}"]) for i in range(8)))
            assert redis_calls("mget") == lookups + 1
            assert found == [[b"[0.5,0.5]"]] + [[None]] * 7
            await asyncio.gather(*(merged.set_many({f"k{i}": b"[0.1,0.9]"}, ttl_s=60) for i in range(1, 8)))
            assert redis_calls("set") == writes + 1
            assert await merged.get_many([f"k{i}" for i in range(8)]) == [b"[0.5,0.5]"] + [b"[0.1,0.9]"] * 7
            await merged.close()

        asyncio.run(scenario())
    finally:
        redis.kill()

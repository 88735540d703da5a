"""Where cached scores live: Redis when configured, an in-process LRU otherwise.

With Redis, a small in-process LRU sits in front of it (`NearCache`): a text this
worker has just answered is answered again without a network round trip, and Redis
still shares every score between replicas. A key names the model's fingerprint, engine
and precision, so an entry never goes stale; the near tier's short TTL only bounds how
long it outlives Redis's own expiry.

The cache is an optimisation, never a dependency: every backend failure
(timeout, refused connection, a value that does not parse) is a miss, counted
and logged at most once per interval, and a circuit breaker stops paying the
Redis timeout on every request while Redis is down.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from .. import metrics

logger = logging.getLogger(f"bentoml.{__name__}")  # under BentoML's log handlers

Scores = list[float]
T = TypeVar("T")


def encode_scores(scores: Scores) -> bytes:
    return json.dumps(scores, separators=(",", ":")).encode()


def decode_scores(raw: bytes | str | None, n_labels: int) -> Scores | None:
    """Parse a cached value; anything malformed is a miss (None), never an error."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if (
        isinstance(value, list)
        and len(value) == n_labels
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value)
    ):
        return [float(x) for x in value]
    return None


class RateLimitedLog:
    """Log a recurring problem at most once per interval, with the count since the last line."""

    def __init__(self, interval_s: float = 30.0) -> None:
        self.interval_s = interval_s
        self._last = -math.inf
        self._suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self.interval_s:
            self._suppressed += 1
            return
        suffix = f" ({self._suppressed} more since last report)" if self._suppressed else ""
        logger.warning(msg + suffix, *args)
        self._last, self._suppressed = now, 0


class CacheBackend(Protocol):
    name: str

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def set_many(self, items: dict[str, bytes], ttl_s: int) -> None: ...

    async def close(self) -> None: ...


class MemoryBackend:
    """In-process LRU bounded by entry count, with per-entry expiry."""

    name = "memory"

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: collections.OrderedDict[str, tuple[float, bytes]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = time.monotonic()
        out: list[bytes | None] = []
        for key in keys:
            entry = self._data.get(key)
            if entry is None or entry[0] <= now:
                if entry is not None:
                    del self._data[key]
                out.append(None)
                continue
            self._data.move_to_end(key)
            out.append(entry[1])
        return out

    async def set_many(self, items: dict[str, bytes], ttl_s: int) -> None:
        if self.max_entries <= 0:
            return
        expires = time.monotonic() + ttl_s
        for key, value in items.items():
            self._data[key] = (expires, value)
            self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
        metrics.CACHE_ENTRIES.set(len(self._data))

    async def close(self) -> None:
        self._data.clear()


class NearCache:
    """An in-process LRU in front of a shared backend; metrics and errors are the shared backend's."""

    def __init__(self, near: MemoryBackend, far: CacheBackend, near_ttl_s: int) -> None:
        self.near, self.far, self.near_ttl_s = near, far, near_ttl_s
        self.name = far.name  # a hit is a hit of the shared cache, whichever tier answered

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        values = await self.near.get_many(keys)
        missing = [i for i, value in enumerate(values) if value is None]
        metrics.CACHE_NEAR_HITS.inc(len(values) - len(missing))
        if missing:
            far = await self.far.get_many([keys[i] for i in missing])
            found = {keys[i]: value for i, value in zip(missing, far) if value is not None}
            if found:  # kept near no longer than Redis keeps it at most
                await self.near.set_many(found, self.near_ttl_s)
            for i, value in zip(missing, far):
                values[i] = value
        return values

    async def set_many(self, items: dict[str, bytes], ttl_s: int) -> None:
        await self.near.set_many(items, min(ttl_s, self.near_ttl_s))
        await self.far.set_many(items, ttl_s)

    async def close(self) -> None:
        await self.near.close()
        await self.far.close()


class CircuitOpen(Exception):
    """Redis is being skipped for a while after repeated failures."""


class CircuitBreaker:
    """Closed -> open after N consecutive failures -> one trial call after `reset_s`."""

    def __init__(self, failures: int, reset_s: float) -> None:
        self.failures_to_open = failures
        self.reset_s = reset_s
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    def before_call(self) -> None:
        if self._opened_at is None:
            return
        if self._trial_in_flight or time.monotonic() - self._opened_at < self.reset_s:
            raise CircuitOpen
        self._trial_in_flight = True  # half-open: let exactly one call through

    def success(self) -> None:
        if self._opened_at is not None:
            logger.info("Redis is answering again: cache re-enabled")
        self._failures, self._opened_at, self._trial_in_flight = 0, None, False

    def failure(self) -> None:
        self._failures += 1
        self._trial_in_flight = False
        if self._opened_at is not None or self._failures >= self.failures_to_open:
            self._opened_at = time.monotonic()


class RedisBackend:
    """redis-py asyncio client with a pooled connection, a short timeout and a breaker."""

    name = "redis"

    def __init__(
        self, url: str, timeout_ms: float, breaker: CircuitBreaker, max_connections: int = 32, password: str | None = None,
    ) -> None:
        import redis.asyncio as redis

        timeout = timeout_ms / 1000.0
        self._client = redis.Redis.from_url(
            url,
            **({"password": password} if password else {}),  # else whatever the URL says
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=max_connections,
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._timeout = timeout
        self.breaker = breaker
        self._log = RateLimitedLog()
        for kind in ("timeout", "connection", "circuit_open"):  # export zeros before the first error
            metrics.CACHE_ERRORS.labels(backend=self.name, kind=kind)

    async def _guarded(self, op: str, coro_factory: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        """Run one Redis call under the breaker and timeout: (succeeded, result)."""
        try:
            self.breaker.before_call()
        except CircuitOpen:
            metrics.CACHE_ERRORS.labels(backend=self.name, kind="circuit_open").inc()
            return False, None
        start = time.perf_counter()
        try:
            result = await self._within_timeout(coro_factory())
        except Exception as exc:  # noqa: BLE001 - any Redis trouble degrades to a miss
            self.breaker.failure()
            kind = "timeout" if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) else "connection"
            metrics.CACHE_ERRORS.labels(backend=self.name, kind=kind).inc()
            self._log.warning("Redis %s failed (%s: %s); serving from the model", op, type(exc).__name__, exc)
            return False, None
        metrics.REDIS_SECONDS.labels(op=op).observe(time.perf_counter() - start)
        self.breaker.success()
        return True, result

    async def _within_timeout(self, call: Awaitable[T]) -> T:
        """The call's result, or TimeoutError once the timeout has passed: never later.

        asyncio.wait_for would wait for the cancelled call to finish, and a call to a Redis
        that vanished from the network (a killed pod: no reset, no answer) can take that
        long to close its connection. The call is cancelled and left to finish on its own."""
        task = asyncio.ensure_future(call)
        done, _ = await asyncio.wait({task}, timeout=self._timeout)
        if task in done:
            return task.result()
        task.cancel()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: asyncio stays quiet
        raise TimeoutError(f"no answer within {self._timeout * 1000:.0f} ms")

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        ok, values = await self._guarded("mget", lambda: self._client.mget(list(keys)))
        if not ok or values is None:
            return [None] * len(keys)
        metrics.REDIS_BYTES.labels(direction="sent").inc(sum(len(k) for k in keys))
        metrics.REDIS_BYTES.labels(direction="received").inc(sum(len(v) for v in values if v))
        return list(values)

    async def set_many(self, items: dict[str, bytes], ttl_s: int) -> None:
        if not items:
            return

        async def write() -> None:
            if len(items) == 1:  # one text, as most requests: a plain SET, without a pipeline's objects
                ((key, value),) = items.items()
                await self._client.set(key, value, ex=ttl_s)
                return
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, ex=ttl_s)
                await pipe.execute()

        ok, _ = await self._guarded("set", write)
        if ok:
            metrics.REDIS_BYTES.labels(direction="sent").inc(sum(len(k) + len(v) for k, v in items.items()))

    async def close(self) -> None:
        await self._client.aclose()

"""Prediction cache: one entry per text, Redis when configured, in-process LRU otherwise.

The cache is an optimisation, never a dependency: every backend failure
(timeout, refused connection, a value that does not parse) is a miss, counted
and logged at most once per interval, and a circuit breaker stops paying the
Redis timeout on every request while Redis is down.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from . import metrics
from .admission import Permit
from .tokenization import Tokenizer

logger = logging.getLogger(f"bentoml.{__name__}")  # under BentoML's log handlers

Scores = list[float]
T = TypeVar("T")


def cache_key(fingerprint: str, token_ids: Sequence[int]) -> str:
    """Key on the model's fingerprint and the token ids the model will see.

    Texts the model cannot tell apart (case for an uncased model, extra
    whitespace, anything past the truncation point) share one entry.
    """
    digest = hashlib.blake2b(",".join(map(str, token_ids)).encode(), digest_size=16).hexdigest()
    return f"sentiment:{fingerprint}:{digest}"


class CacheKeys:
    """Texts -> (cache key, token ids) through the model's tokenizer, remembering recent short texts.

    Tokenizing is the costliest step of a cache hit; traffic repeats itself, so
    the keys and ids of recent texts (up to `memo_max_chars` long) are kept in a
    small LRU. The ids are what the model service gets: a text is tokenized once.
    `truncation` says which end of a long text is kept ("right" keeps the start).
    """

    def __init__(
        self, tokenizer: Tokenizer, fingerprint: str, max_length: int,
        memo_entries: int = 10_000, memo_max_chars: int = 512,
    ) -> None:
        self.tokenizer = tokenizer
        self.fingerprint = fingerprint
        self.max_length = max_length
        self.memo_entries = memo_entries
        self.memo_max_chars = memo_max_chars
        self._memo: collections.OrderedDict[tuple[str, str], tuple[str, list[int]]] = collections.OrderedDict()

    def __call__(self, texts: Sequence[str], truncation: str = "right") -> list[str]:
        return [key for key, _ in self.encode(texts, truncation)]

    def encode(self, texts: Sequence[str], truncation: str = "right") -> list[tuple[str, list[int]]]:
        found: list[tuple[str, list[int]] | None] = [self._memo.get((truncation, t)) for t in texts]
        todo = [i for i, k in enumerate(found) if k is None]
        if todo:
            ids = self.tokenizer.encode([texts[i] for i in todo], self.max_length, truncation)
            for i, token_ids in zip(todo, ids):
                found[i] = entry = (cache_key(self.fingerprint, token_ids), list(token_ids))
                if len(texts[i]) <= self.memo_max_chars:
                    self._memo[(truncation, texts[i])] = entry
        for text in texts:
            if (truncation, text) in self._memo:
                self._memo.move_to_end((truncation, text))
        while len(self._memo) > self.memo_entries:
            self._memo.popitem(last=False)
        return found  # type: ignore[return-value]


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

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

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

    def __init__(self, url: str, timeout_ms: float, breaker: CircuitBreaker, max_connections: int = 32) -> None:
        import redis.asyncio as redis

        timeout = timeout_ms / 1000.0
        self._client = redis.Redis.from_url(
            url,
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
            result = await asyncio.wait_for(coro_factory(), timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001 - any Redis trouble degrades to a miss
            self.breaker.failure()
            kind = "timeout" if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) else "connection"
            metrics.CACHE_ERRORS.labels(backend=self.name, kind=kind).inc()
            self._log.warning("Redis %s failed (%s: %s); serving from the model", op, type(exc).__name__, exc)
            return False, None
        metrics.REDIS_SECONDS.labels(op=op).observe(time.perf_counter() - start)
        self.breaker.success()
        return True, result

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
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, ex=ttl_s)
                await pipe.execute()

        ok, _ = await self._guarded("set", write)
        if ok:
            metrics.REDIS_BYTES.labels(direction="sent").inc(sum(len(k) + len(v) for k, v in items.items()))

    async def close(self) -> None:
        await self._client.aclose()


class PredictionCache:
    """Per-text cache in front of the model, with coalescing of identical in-flight texts."""

    def __init__(self, backend: CacheBackend, n_labels: int, ttl_s: int) -> None:
        self.backend = backend
        self.n_labels = n_labels
        self.ttl_s = ttl_s
        self._inflight: dict[str, asyncio.Future[Scores]] = {}
        metrics.CACHE_ERRORS.labels(backend=backend.name, kind="corrupt")
        for result in ("hit", "miss"):
            metrics.CACHE_LOOKUPS.labels(backend=backend.name, result=result)
        self._jobs: set[asyncio.Future[None]] = set()  # referenced until done

    async def lookup(self, keys: Sequence[str]) -> dict[str, Scores]:
        """One round trip for all distinct keys; returns only the hits."""
        unique = list(dict.fromkeys(keys))
        raw = await self.backend.get_many(unique)
        hits: dict[str, Scores] = {}
        corrupt = 0
        for key, value in zip(unique, raw):
            scores = decode_scores(value, self.n_labels)
            if scores is not None:
                hits[key] = scores
            elif value is not None:
                corrupt += 1
        metrics.CACHE_LOOKUPS.labels(backend=self.backend.name, result="hit").inc(len(hits))
        metrics.CACHE_LOOKUPS.labels(backend=self.backend.name, result="miss").inc(len(unique) - len(hits))
        if corrupt:
            metrics.CACHE_ERRORS.labels(backend=self.backend.name, kind="corrupt").inc(corrupt)
        return hits

    async def get_or_compute(
        self,
        keys: Sequence[str],
        compute: Callable[[list[str]], Awaitable[Sequence[Scores]]],
        admit: Callable[[int], Permit],
    ) -> dict[str, Scores]:
        """Scores for every distinct key: from the cache, from a computation in flight, or computed now.

        The whole protocol, in one place:
        lookup (one round trip) -> claim the missed keys nobody computes yet -> `admit`
        them (a permit for exactly the texts this call sends to the model, or Overloaded)
        -> compute them as their own task -> publish to every waiter -> write back ->
        forget the in-flight entries only once the write-back has landed, so a request
        arriving meanwhile waits for the value instead of computing it again.

        No caller owns a computation: each one, the one that started it included, only
        waits for it (shielded). A caller that goes away (its client left, its timeout
        fired) cancels its own wait, never the scores other callers are waiting for.
        """
        with metrics.stage("cache_lookup"):
            found = await self.lookup(keys)
        missed = [k for k in dict.fromkeys(keys) if k not in found]
        if not missed:
            return found
        with metrics.stage("model"):
            mine, waiting = self._claim(missed)
            if mine:
                try:
                    permit = admit(len(mine))
                except BaseException:
                    self._abandon(mine)  # claimed a moment ago: nobody waits for them yet
                    raise
                job = asyncio.ensure_future(self._compute(mine, compute, permit))
                self._jobs.add(job)
                job.add_done_callback(self._job_done)
                waiting.update((key, self._inflight[key]) for key in mine)
            values = await asyncio.gather(*(asyncio.shield(future) for future in waiting.values()))
        found.update(zip(waiting, values))
        return found

    def _claim(self, keys: Sequence[str]) -> tuple[list[str], dict[str, asyncio.Future[Scores]]]:
        """Split missed keys into those this call computes and those already in flight."""
        mine: list[str] = []
        waiting: dict[str, asyncio.Future[Scores]] = {}
        loop = asyncio.get_running_loop()
        for key in dict.fromkeys(keys):
            future = self._inflight.get(key)
            if future is None:
                self._inflight[key] = loop.create_future()
                mine.append(key)
            else:
                waiting[key] = future
        if waiting:
            metrics.CACHE_COALESCED.inc(len(waiting))
        return mine, waiting

    def _abandon(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._inflight.pop(key).cancel()

    async def _compute(self, keys: list[str], compute: Callable[[list[str]], Awaitable[Sequence[Scores]]], permit: Permit) -> None:
        try:
            with permit:  # the texts leave the queue bound when the model has answered
                rows = await compute(keys)
        except BaseException as exc:
            for key in keys:
                future = self._inflight.pop(key)
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
                    future.exception()  # retrieved: every waiter, if any, gets it from the future
            raise
        results = dict(zip(keys, rows))
        for key in keys:
            self._inflight[key].set_result(results[key])
        try:
            await self.backend.set_many({k: encode_scores(v) for k, v in results.items()}, self.ttl_s)
        finally:
            for key in keys:
                self._inflight.pop(key, None)

    def _job_done(self, job: asyncio.Future[None]) -> None:
        """Its waiters read the outcome from the futures; read it here too, or asyncio complains."""
        self._jobs.discard(job)
        if not job.cancelled():
            job.exception()

    async def flush(self) -> None:
        """Wait for computations and write-backs in flight."""
        if self._jobs:
            await asyncio.gather(*list(self._jobs), return_exceptions=True)

    async def close(self) -> None:
        await self.flush()
        await self.backend.close()

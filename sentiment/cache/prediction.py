"""The prediction cache in front of the model: one entry per text, and one owner of a request's way to the model.

`get_or_compute` is the whole protocol: look the texts up (one round trip), share
a text another request is already computing, admit exactly the texts this request
sends to the model, compute them, publish the logits to every waiter, write them
back. Results come back as values with what this request waited for the model
(`Found.waits`), so the timing headers are right for a request that waited for
another request's text, too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from .. import metrics, tracing
from ..batching.admission import Permit, TextAdmission
from ..batching.merging import Answer, CallTimes, Waits
from .backends import CacheBackend, Scores, decode_scores, encode_scores
from .keys import Encoded

# What computes logits for token ids: the call merger in front of the model service.
Model = Callable[[list[list[int]]], Awaitable[Answer[Scores]]]


@dataclass(frozen=True)
class Found:
    """Logits of every distinct key of a request, which came from the cache, and what the request waited for the model."""

    logits: dict[str, Scores]
    waits: Waits = field(default_factory=Waits)
    hits: frozenset[str] = frozenset()


class PredictionCache:
    """Per-text cache in front of the model; identical texts in flight are computed once (coalesced)."""

    def __init__(self, backend: CacheBackend, n_labels: int, ttl_s: int) -> None:
        self.backend = backend
        self.n_labels = n_labels
        self.ttl_s = ttl_s
        self._inflight: dict[str, asyncio.Future[tuple[Scores, CallTimes]]] = {}
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

    async def get_or_compute(self, texts: Sequence[Encoded], model: Model, admission: TextAdmission) -> Found:
        """Logits for every distinct key: from the cache, from a computation in flight, or computed now.

        lookup (one round trip) -> claim the missed keys nobody computes yet -> admit
        them (a permit for exactly the texts this call sends to the model, or
        Overloaded) -> compute them as their own task -> publish to every waiter ->
        write back -> forget the in-flight entries only once the write-back has landed,
        so a request arriving meanwhile waits for the value instead of computing it again.

        No caller owns a computation: each one, the one that started it included, only
        waits for it (shielded). A caller that goes away (its client left, its timeout
        fired) cancels its own wait, never the logits other callers are waiting for.
        """
        since = time.perf_counter()
        with metrics.stage("cache_lookup"):
            found = await self.lookup([text.key for text in texts])
        hits = frozenset(found)
        missed = {text.key: text.ids for text in texts if text.key not in found}
        if not missed:
            return Found(found, hits=hits)
        with metrics.stage("model"):
            mine, waiting = self._claim(list(missed))
            if mine:
                try:
                    permit = admission.acquire(len(mine))
                except BaseException:
                    self._abandon(mine)  # claimed a moment ago: nobody waits for them yet
                    raise
                job = asyncio.ensure_future(self._compute({key: missed[key] for key in mine}, model, permit))
                self._jobs.add(job)
                job.add_done_callback(self._job_done)
                waiting.update((key, self._inflight[key]) for key in mine)
            answers = await asyncio.gather(*(asyncio.shield(future) for future in waiting.values()))
            waits = Waits()
            for key, (logits, times) in zip(waiting, answers):
                found[key] = logits
                waits |= times.waited(since)
            calls = {(t.span.trace_id, t.span.span_id): t.span for _, t in answers if t.span}.values()  # each call, once
            for call in calls:
                tracing.link_to(call)
            tracing.annotate(computed=len(mine), shared=len(waiting) - len(mine), model_calls=len(calls),
                             queue_ms=round(waits.queue_s * 1000, 3), inference_ms=round(waits.inference_s * 1000, 3))
        return Found(found, waits, hits)

    def _claim(self, keys: Sequence[str]) -> tuple[list[str], dict[str, asyncio.Future[tuple[Scores, CallTimes]]]]:
        """Split missed keys into those this call computes and those already in flight."""
        mine: list[str] = []
        waiting: dict[str, asyncio.Future[tuple[Scores, CallTimes]]] = {}
        loop = asyncio.get_running_loop()
        for key in keys:
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

    async def _compute(self, ids_of: dict[str, list[int]], model: Model, permit: Permit) -> None:
        keys = list(ids_of)
        try:
            with permit:  # the texts leave the queue bound when the model has answered
                answer = await model(list(ids_of.values()))
        except BaseException as exc:
            for key in keys:
                future = self._inflight.pop(key)
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
                    future.exception()  # retrieved: every waiter, if any, gets it from the future
            raise
        for key, row in zip(keys, answer.rows):
            self._inflight[key].set_result((row, answer.times))
        try:
            await self.backend.set_many({key: encode_scores(row) for key, row in zip(keys, answer.rows)}, self.ttl_s)
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

"""The prediction cache's protocol (no server): texts in flight computed once, admission of what is sent,
waiters that go away, failures, write-back, and what each request waited for the model."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import generate_latest

from harness.prometheus import metric_sum, parse_metrics
from sentiment.batching.admission import Overloaded, TextAdmission
from sentiment.batching.merging import Answer, CallTimes
from sentiment.cache.backends import MemoryBackend
from sentiment.cache.keys import Encoded
from sentiment.cache.prediction import PredictionCache

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

# a text's token ids carry its key here, so the stand-in model can answer by key
POSITIVE, NEGATIVE = [0.25, 0.75], [0.75, 0.25]


def texts(*keys: str) -> list[Encoded]:
    return [Encoded(key, [ord(c) for c in key]) for key in keys]


def key_of(ids: list[int]) -> str:
    return "".join(map(chr, ids))


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


class Model:
    """A stand-in for the call merger: computes on demand, when the test releases it."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = asyncio.Event()
        self.error: BaseException | None = None

    async def __call__(self, ids: list[list[int]]) -> Answer[list[float]]:
        keys = [key_of(x) for x in ids]
        self.calls.append(keys)
        queued = sent = time.perf_counter()
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return Answer([POSITIVE if k.startswith("pos") else NEGATIVE for k in keys], CallTimes(queued, sent, time.perf_counter()))


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


def new_cache(backend: MemoryBackend | None = None) -> PredictionCache:
    return PredictionCache(MemoryBackend(10) if backend is None else backend, n_labels=2, ttl_s=60)


def test_concurrent_requests_compute_each_text_once_and_admit_only_what_they_send() -> None:
    async def scenario() -> None:
        cache, model, admission = new_cache(), Model(), TextAdmission(100)
        first = asyncio.ensure_future(cache.get_or_compute(texts("pos-a", "neg-b", "pos-a"), model, admission))
        await until(lambda: model.calls)
        second = asyncio.ensure_future(cache.get_or_compute(texts("neg-b", "pos-c"), model, admission))
        await until(lambda: len(model.calls) == 2)
        assert model.calls == [["pos-a", "neg-b"], ["pos-c"]]  # neg-b is in flight: the second call waits for it
        assert admission.queued == 3  # a text in flight counts once against the bound
        model.release.set()
        assert (await first).logits == {"pos-a": POSITIVE, "neg-b": NEGATIVE}
        assert (await second).logits == {"neg-b": NEGATIVE, "pos-c": POSITIVE}
        assert admission.queued == 0
        await cache.flush()
        cached = await cache.get_or_compute(texts("pos-a", "pos-c"), model, admission)
        assert cached.logits == {"pos-a": POSITIVE, "pos-c": POSITIVE}
        assert len(model.calls) == 2  # from the cache now
        assert cached.waits.queue_s == cached.waits.inference_s == 0  # nothing waited for the model

    run(scenario())


def test_a_request_waiting_for_another_s_text_reports_the_inference_it_waited_through() -> None:
    async def scenario() -> None:
        cache, model, admission = new_cache(), Model(), TextAdmission(100)
        started = asyncio.ensure_future(cache.get_or_compute(texts("pos-a"), model, admission))
        await until(lambda: model.calls)
        before = coalesced()
        waiting = asyncio.ensure_future(cache.get_or_compute(texts("pos-a"), model, admission))
        await until(lambda: coalesced() > before)
        model.release.set()
        first, second = await started, await waiting
        assert model.calls == [["pos-a"]]
        assert second.waits.inference_s > 0  # not 0 as if it came from the cache
        assert first.waits.inference_s >= second.waits.inference_s  # it waited through less of the call

    run(scenario())


def test_a_text_stays_in_flight_until_its_write_back_lands() -> None:
    """A request arriving after the model answered but before the cache holds the value waits for it."""
    async def scenario() -> None:
        backend, model, admission = GatedBackend(), Model(), TextAdmission(100)
        cache = new_cache(backend)
        model.release.set()
        assert (await cache.get_or_compute(texts("pos-a"), model, admission)).logits == {"pos-a": POSITIVE}
        assert len(backend) == 0  # the write-back has not landed
        assert (await cache.get_or_compute(texts("pos-a"), model, admission)).logits == {"pos-a": POSITIVE}
        assert len(model.calls) == 1  # not computed again
        backend.gate.set()
        await cache.flush()
        assert len(backend) == 1 and not cache._inflight

    run(scenario())


def test_a_caller_that_goes_away_does_not_fail_the_others_waiting_for_its_texts() -> None:
    async def scenario() -> None:
        cache, model, admission = new_cache(), Model(), TextAdmission(100)
        leaving = asyncio.ensure_future(cache.get_or_compute(texts("pos-a"), model, admission))
        await until(lambda: model.calls)
        before = coalesced()
        staying = asyncio.ensure_future(cache.get_or_compute(texts("pos-a"), model, admission))
        await until(lambda: coalesced() > before)  # staying waits for the text leaving started
        leaving.cancel()  # its client went away, or its timeout fired
        with pytest.raises(asyncio.CancelledError):
            await leaving
        model.release.set()
        assert (await staying).logits == {"pos-a": POSITIVE}
        assert model.calls == [["pos-a"]] and admission.queued == 0

    run(scenario())


def test_a_failed_computation_reaches_its_waiters_and_a_later_request_computes_again() -> None:
    async def scenario() -> None:
        cache, model, admission = new_cache(), Model(), TextAdmission(100)
        model.error = RuntimeError("model down")
        first = asyncio.ensure_future(cache.get_or_compute(texts("pos-a"), model, admission))
        await until(lambda: model.calls)
        before = coalesced()
        second = asyncio.ensure_future(cache.get_or_compute(texts("pos-a"), model, admission))
        await until(lambda: coalesced() > before)
        model.release.set()
        for call in (first, second):
            with pytest.raises(RuntimeError, match="model down"):
                await call
        assert admission.queued == 0 and not cache._inflight
        model.error = None
        assert (await cache.get_or_compute(texts("pos-a"), model, admission)).logits == {"pos-a": POSITIVE}

    run(scenario())


def test_an_overloaded_request_leaves_nothing_claimed() -> None:
    async def scenario() -> None:
        cache, model, admission = new_cache(), Model(), TextAdmission(2)
        busy = asyncio.ensure_future(cache.get_or_compute(texts("pos-a", "pos-b"), model, admission))
        await until(lambda: model.calls)
        with pytest.raises(Overloaded):
            await cache.get_or_compute(texts("pos-c"), model, admission)
        # a request for texts already in flight needs no queue space: it is not refused
        before = coalesced()
        waiting = asyncio.ensure_future(cache.get_or_compute(texts("pos-a"), model, admission))
        await until(lambda: coalesced() > before)
        model.release.set()
        await busy
        assert (await waiting).logits == {"pos-a": POSITIVE}
        assert "pos-c" not in cache._inflight
        assert (await cache.get_or_compute(texts("pos-c"), model, admission)).logits == {"pos-c": POSITIVE}

    run(scenario())

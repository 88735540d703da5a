"""Call merging: concurrent requests' texts leave as shared model-service calls, with their times as values."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import generate_latest

from harness.prometheus import metric_sum, parse_metrics
from sentiment.batching.merging import CallMerger, CallTimes, Waits
from sentiment.batching.regroup import Regroup

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


class FakeModel:
    """Stands in for the model service's client: doubles numbers, one call at a time, released by the test."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.gate = asyncio.Event()
        self.fail_next = False

    async def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(items)
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("model service said no")
        return [2 * x for x in items]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_texts_waiting_behind_a_call_leave_together() -> None:
    async def scenario() -> None:
        model = FakeModel()
        caller = CallMerger(model, max_items=64)
        first = asyncio.create_task(caller([1]))
        await _settle()
        others = [asyncio.create_task(caller([10 + i, 100 + i])) for i in range(31)]
        await _settle()
        assert len(model.calls) == 1  # 31 requests wait for the call in flight
        model.gate.set()
        assert (await first).rows == [2]
        answers = await asyncio.gather(*others)
        assert [a.rows for a in answers] == [[2 * (10 + i), 2 * (100 + i)] for i in range(31)]
        assert len({(a.times.sent_at, a.times.answered_at) for a in answers}) == 1  # one call for all of them
        assert [len(c) for c in model.calls] == [1, 62]  # one call for all 31 of them

    asyncio.run(scenario())


def test_calls_are_bounded_in_items() -> None:
    async def scenario() -> None:
        model = FakeModel()
        caller = CallMerger(model, max_items=8)
        first = asyncio.create_task(caller([0]))
        await _settle()
        waiting = [asyncio.create_task(caller([i] * 3)) for i in range(5)]
        await _settle()
        model.gate.set()
        await asyncio.gather(first, *waiting)
        assert [len(c) for c in model.calls] == [1, 6, 6, 3]  # never more than 8 items, requests never split

    asyncio.run(scenario())


def test_a_caller_that_goes_away_does_not_cancel_the_others() -> None:
    async def scenario() -> None:
        model = FakeModel()
        caller = CallMerger(model, max_items=64)
        leaving = asyncio.create_task(caller([1]))
        staying = asyncio.create_task(caller([2]))
        await _settle()
        leaving.cancel()
        await _settle()
        model.gate.set()
        assert (await staying).rows == [4]
        with pytest.raises(asyncio.CancelledError):
            await leaving

    asyncio.run(scenario())


def test_an_error_reaches_every_caller_of_that_call_only() -> None:
    async def scenario() -> None:
        model = FakeModel()
        caller = CallMerger(model, max_items=64)
        model.fail_next = True
        first = asyncio.create_task(caller([1]))
        await _settle()
        second = asyncio.create_task(caller([2]))
        await _settle()
        model.gate.set()
        with pytest.raises(RuntimeError, match="said no"):
            await first
        assert (await second).rows == [4]  # the next call is unaffected

    asyncio.run(scenario())


def test_an_empty_call_never_reaches_the_model() -> None:
    async def scenario() -> None:
        model = FakeModel()
        assert (await CallMerger(model, max_items=64)([])).rows == []
        assert model.calls == []  # the model service answers an empty batch with a 500

    asyncio.run(scenario())


def test_times_say_what_each_waiter_waited_through() -> None:
    times = CallTimes(queued_at=10.0, sent_at=12.0, answered_at=15.0)
    assert times.waited(since=9.0) == Waits(2.0, 3.0)  # the caller: queued at 10, sent at 12
    assert times.waited(since=11.0) == Waits(1.0, 3.0)  # a request sharing the text from 11
    assert times.waited(since=14.0) == Waits(0.0, 1.0)  # ... from 14, while the model ran
    assert Waits(1.0, 3.0) | Waits(2.0, 1.0) == Waits(2.0, 3.0)  # waiting for two calls at once


class Clock:
    """The merger's clock, moved by the test: a call lasts as long as the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_with_regroup_the_requests_just_answered_join_the_next_call() -> None:
    """Two cohorts of closed-loop clients merge: the next call waits for the last one's requests to come back."""
    async def scenario() -> None:
        model, clock = FakeModel(), Clock()
        caller = CallMerger(model, max_items=64, regroup=Regroup(max_wait=2.0), clock=clock)
        first = asyncio.create_task(caller([0]))  # leaves at once: nothing in flight
        await _settle()
        cohort = [asyncio.create_task(caller([10 + i])) for i in range(4)]  # arrive while it is computed
        await _settle()
        before = metric_sum(parse_metrics(generate_latest().decode()), "sentiment_batch_departures_total", reason="regrouped")
        clock.now += 1.0  # the call takes a second: the next one may wait 0.1 s without an arrival, 2 s in all
        model.gate.set()
        await first
        await _settle()
        assert len(model.calls) == 1  # the 4 wait for the request just answered to come back
        again = asyncio.create_task(caller([1]))  # its client sends again
        await asyncio.gather(again, *cohort)
        assert [len(c) for c in model.calls] == [1, 5]  # together
        after = metric_sum(parse_metrics(generate_latest().decode()), "sentiment_batch_departures_total", reason="regrouped")
        assert after == before + 1

    asyncio.run(scenario())


def test_with_regroup_a_lone_caller_never_waits() -> None:
    async def scenario() -> None:
        model, clock = FakeModel(), Clock()
        model.gate.set()
        caller = CallMerger(model, max_items=64, regroup=Regroup(max_wait=2.0), clock=clock)
        for i in range(3):
            task = asyncio.create_task(caller([i]))
            await _settle()
            assert len(model.calls) == i + 1  # sent at once, though the last call "took" 100 s
            clock.now += 100.0
            await task
        assert [len(c) for c in model.calls] == [1, 1, 1]

    asyncio.run(scenario())

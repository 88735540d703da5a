"""The model inline in the public worker: which thread runs a batch, and the answers either way."""

from __future__ import annotations

import asyncio
import threading

import pytest
from prometheus_client import REGISTRY

from sentiment.batching.inline import InlineModel

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def batches(thread: str) -> float:
    return REGISTRY.get_sample_value("sentiment_inline_batches_total", {"thread": thread}) or 0.0


class Engine:
    """Stands in for run_batch: one logits row per text, and the name of the thread each batch ran on."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def __call__(self, ids: list[list[int]]) -> list[list[float]]:
        self.threads.append(threading.current_thread().name)
        return [[float(len(x)), -float(len(x))] for x in ids]


def run(model: InlineModel, ids: list[list[int]]) -> tuple[list[list[float]], str]:
    async def call() -> tuple[list[list[float]], str]:
        return list(await model(ids)), threading.current_thread().name

    return asyncio.run(call())


def test_a_lone_requests_small_batch_runs_on_the_event_loop_without_a_thread_hop() -> None:
    engine = Engine()
    model = InlineModel(engine, alone=lambda: True, on_loop_max_tokens=8)
    before = (batches("event_loop"), batches("engine"))
    try:
        rows, loop_thread = run(model, [[101, 7, 102], [101, 102]])  # 5 tokens
        assert rows == [[3.0, -3.0], [2.0, -2.0]]
        assert engine.threads == [loop_thread]
        assert (batches("event_loop"), batches("engine")) == (before[0] + 1, before[1])
    finally:
        model.close()


@pytest.mark.parametrize(("alone", "ids"), [
    (False, [[101, 7, 102]]),  # another request is in the worker: the loop goes on serving it
    (True, [[101, *range(10), 102]]),  # 12 tokens, over the budget: the forward would hold the loop too long
])
def test_a_batch_beside_other_requests_or_over_the_budget_runs_on_the_engine_thread(alone: bool, ids: list[list[int]]) -> None:
    engine = Engine()
    model = InlineModel(engine, alone=lambda: alone, on_loop_max_tokens=8)
    before = (batches("event_loop"), batches("engine"))
    try:
        rows, loop_thread = run(model, ids)
        assert rows == [[float(len(ids[0])), -float(len(ids[0]))]]
        assert engine.threads[0].startswith("engine") and engine.threads[0] != loop_thread
        assert (batches("event_loop"), batches("engine")) == (before[0], before[1] + 1)
    finally:
        model.close()


def test_an_engine_error_reaches_the_caller_on_either_thread() -> None:
    def broken(ids: list[list[int]]) -> list[list[float]]:
        raise RuntimeError("engine failed")

    for alone in (True, False):
        model = InlineModel(broken, alone=lambda alone=alone: alone)
        try:
            with pytest.raises(RuntimeError, match="engine failed"):
                run(model, [[101, 102]])
        finally:
            model.close()

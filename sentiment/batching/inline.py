"""The model in the public worker (MODEL_PLACEMENT=inline): a call is a batch on the engine's own thread.

The call merger in front of it (sentiment/batching/merging.py) keeps one call in
flight, so batches form as they do in the model service: the texts of the requests
that arrive while one batch runs leave together as the next. The engine runs on one
thread of its own; OpenVINO and torch release the GIL while they compute, so the
event loop goes on reading, tokenizing and answering requests meanwhile.

A lone request's small batch runs on the event loop itself. Handing a batch to the
engine's thread and back wakes two threads, and on a VM whose idle vCPUs halt each wake
is slow: 0.35 ms a round trip measured on a 2-core VM, 6% of a batch-1 forward there,
paid by every request of a client that is alone. With no other request in the worker the
loop has nothing to do meanwhile; a request that arrives during that forward waits for
it (at most one forward of `ON_LOOP_MAX_TOKENS` tokens) before it is read, which is why
bigger batches, or batches while other requests are in the worker, keep the hop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from .. import metrics

ON_LOOP_MAX_TOKENS = 64  # a batch-1 forward of this many tokens holds the loop for a few ms on 2 cores


class InlineModel:
    """`await model(ids)` runs `run(ids)` (token ids -> logits rows) on the engine's thread, or on the
    event loop when `alone()` (no other request in the worker) and the batch is small."""

    def __init__(
        self, run: Callable[[list[list[int]]], Sequence[Sequence[float]]], alone: Callable[[], bool],
        on_loop_max_tokens: int = ON_LOOP_MAX_TOKENS,
    ) -> None:
        self._run = run
        self._alone = alone
        self.on_loop_max_tokens = on_loop_max_tokens
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        # both series from the start, at 0
        self._on_loop, self._on_engine = (metrics.INLINE_BATCHES.labels(thread=t) for t in ("event_loop", "engine"))

    async def __call__(self, items: list[list[int]]) -> Sequence[Sequence[float]]:
        # One call at a time (the merger's max_in_flight=1): the engine thread is idle here.
        if sum(map(len, items)) <= self.on_loop_max_tokens and self._alone():
            self._on_loop.inc()
            return self._run(items)
        self._on_engine.inc()
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._run, items)

    def close(self) -> None:
        self._thread.shutdown(wait=True)  # a batch already running finishes

"""One call to the model service for the texts of many concurrent requests.

Why: the model service's adaptive batcher only batches what it has already
received and parsed. With one HTTP call per request, 32 concurrent clients cost
the model process 32 request parses per batch, on the cores the model needs, and
most calls arrived too late for the batch that was starting: the model ran
batches of 4.5 texts while 32 were waiting. Here the public worker keeps at most
`max_in_flight` calls open; texts that arrive meanwhile wait in one list and
leave together, as one call, as soon as a call returns. A lone request still
leaves at once (nothing is in flight), so batch 1 pays nothing.

The model service keeps its batchable API, so calls from several public workers
or replicas are still merged there.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from .request_identity import record

T = TypeVar("T")
R = TypeVar("R")


class CoalescingCaller(Generic[T, R]):
    """`await caller(items)` returns `call(items)`'s results, sharing calls with concurrent callers."""

    def __init__(
        self, call: Callable[[list[T]], Awaitable[Sequence[R]]], max_items: int, max_in_flight: int = 1
    ) -> None:
        self._call = call
        self.max_items = max_items
        self.max_in_flight = max_in_flight
        self._pending: deque[tuple[list[T], asyncio.Future[Any], float]] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, items: Sequence[T]) -> list[R]:
        """Results for `items`; the time spent waiting for a call and in it goes to request_identity's timings."""
        if not items:
            return []
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((list(items), future, time.perf_counter()))
        self._dispatch()
        # A caller that goes away cancels only its own future: the call it shares
        # goes on for the others.
        results, queued_s, call_s = await future
        record("queue", queued_s)
        record("inference", call_s)
        return results

    def _dispatch(self) -> None:
        while self._pending and self._in_flight < self.max_in_flight:
            taken: list[tuple[list[T], asyncio.Future[Any], float]] = []
            count = 0
            now = time.perf_counter()
            while self._pending and (not taken or count + len(self._pending[0][0]) <= self.max_items):
                items, future, enqueued = self._pending.popleft()
                if future.done():  # its caller went away while it waited
                    continue
                taken.append((items, future, now - enqueued))
                count += len(items)
            if not taken:
                return
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run(taken))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, taken: list[tuple[list[T], asyncio.Future[Any], float]]) -> None:
        released = False
        start = time.perf_counter()

        def release() -> None:
            # The next call leaves before the waiters of this one are woken: their
            # responses are written while the model already runs the next batch.
            nonlocal released
            if not released:
                released = True
                self._in_flight -= 1
                self._dispatch()

        try:
            results = await self._call([item for items, _, _ in taken for item in items])
            call_s = time.perf_counter() - start
            release()
            if len(results) != sum(len(items) for items, _, _ in taken):
                raise RuntimeError(f"model call returned {len(results)} results for {sum(len(i) for i, _, _ in taken)} items")
            offset = 0
            for items, future, queued_s in taken:
                if not future.done():
                    future.set_result((list(results[offset : offset + len(items)]), queued_s, call_s))
                offset += len(items)
        except asyncio.CancelledError:
            for _, future, _ in taken:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - every waiter gets the call's own error
            for _, future, _ in taken:
                if not future.done():
                    future.set_exception(exc)
        finally:
            release()

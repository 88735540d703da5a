"""Call merging: one call to the model service for the texts of many concurrent requests.

Why: the model service's adaptive batcher only batches what it has already
received and parsed. With one HTTP call per request, 32 concurrent clients cost
the model process 32 request parses per batch, on the cores the model needs, and
most calls arrived too late for the batch that was starting: the model ran
batches of 4.5 texts while 32 were waiting. Here the public worker keeps at most
`max_in_flight` calls open; texts that arrive meanwhile wait in one list and
leave together, as one call, as soon as a call returns. A lone request still
leaves at once (nothing is in flight), so batch 1 pays nothing.

When the next call leaves is `regroup.py`'s decision: at once, or, for clients that
send again as soon as they are answered, once the requests the last call answered
are back, so that batches do not split into two cohorts.

The model service keeps its batchable API, so calls from several public workers
or replicas are still merged there.

Each caller gets its rows back with the call's `CallTimes` (when its texts were
queued here, sent, answered), as a value: whoever waits for those rows, the caller
or another request sharing them, works out from them how long it waited.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .. import metrics, tracing
from .regroup import REASONS, Regroup

# A hold's timer this late means the event loop was busy (reading, answering requests) when it was due.
LOOP_BUSY_S = 0.001  # uvloop's timers have a resolution of 1 ms
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Waits:
    """What one request waited for the model: for a call to leave (queue) and for its answer (inference)."""

    queue_s: float = 0.0
    inference_s: float = 0.0

    def __or__(self, other: Waits) -> Waits:
        """Waiting for several calls at once: the longest wait of each kind."""
        return Waits(max(self.queue_s, other.queue_s), max(self.inference_s, other.inference_s))


@dataclass(frozen=True)
class CallTimes:
    """One model-service call's texts: queued here, sent, answered (time.perf_counter), and its span."""

    queued_at: float
    sent_at: float
    answered_at: float
    span: Any = None  # the call's trace span context (sentiment/tracing.py), for the requests that shared it

    def waited(self, since: float) -> Waits:
        """The part of this call a request that started waiting at `since` waited through."""
        start = max(since, self.queued_at)
        return Waits(max(0.0, self.sent_at - start), max(0.0, self.answered_at - max(start, self.sent_at)))


@dataclass(frozen=True)
class Answer(Generic[R]):
    rows: list[R]
    times: CallTimes


@dataclass
class _Pending:
    items: list[Any]
    future: asyncio.Future[Any]
    queued_at: float
    context: contextvars.Context  # the caller's (its trace): the call runs in the first caller's


class CallMerger(Generic[T, R]):
    """`await merger(items)` returns `call(items)`'s rows and times, sharing calls with concurrent callers."""

    def __init__(
        self, call: Callable[[list[T]], Awaitable[Sequence[R]]], max_items: int, max_in_flight: int = 1,
        regroup: Regroup | None = None, clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """`regroup`: when a call may wait for more requests (regroup.py); None: never."""
        self._call = call
        self._clock = clock
        self.max_items = max_items
        self.max_in_flight = max_in_flight
        self.regroup = regroup
        self._pending: deque[_Pending] = deque()
        self._items = 0  # texts in _pending
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._hold: asyncio.TimerHandle | None = None  # a held call's next look at the queue
        self._held = False  # the texts waiting now have been held back
        if regroup:
            for reason in REASONS:  # every series from the start, at 0
                metrics.BATCH_DEPARTURES.labels(reason=reason)

    async def __call__(self, items: Sequence[T]) -> Answer[R]:
        if not items:  # never an empty call: the model service answers one with a 500
            now = self._clock()
            return Answer([], CallTimes(now, now, now))
        future: asyncio.Future[Answer[R]] = asyncio.get_running_loop().create_future()
        now = self._clock()
        self._pending.append(_Pending(list(items), future, now, contextvars.copy_context()))
        self._items += len(items)
        if self.regroup:
            self.regroup.activity(now)
        self._dispatch()
        # A caller that goes away cancels only its own future: the call it shares
        # goes on for the others.
        return await future

    def _dispatch(self) -> None:
        while self._pending and self._in_flight < self.max_in_flight:
            reason = self._departure()
            if reason is None:
                return
            taken: list[_Pending] = []
            count = 0
            while self._pending and (not taken or count + len(self._pending[0].items) <= self.max_items):
                pending = self._pending.popleft()
                self._items -= len(pending.items)
                if pending.future.done():  # its caller went away while it waited
                    continue
                taken.append(pending)
                count += len(pending.items)
            if not taken:
                return
            if reason:
                metrics.BATCH_DEPARTURES.labels(reason=reason).inc()
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run(taken), context=taken[0].context)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _departure(self) -> str | None:
        """Why the next call leaves now ("" without a regroup policy), or None: it waits, and a timer looks again."""
        if self.regroup is None:
            return ""
        now = self._clock()
        wait = self.regroup.wait_s(len(self._pending), self._items, self.max_items, now)
        if wait > 0:
            if self._hold is None:
                self._held = True
                self._hold = asyncio.get_running_loop().call_later(wait, self._look_again, now + wait)
            return None
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        reason = self.regroup.departure(len(self._pending), self._items, self.max_items, now, self._held)
        self._held = False
        return reason

    def _look_again(self, due: float) -> None:
        self._hold = None
        now = self._clock()
        if now - due > LOOP_BUSY_S:  # the event loop was busy past the deadline: requests are being handled
            self.regroup.activity(now)  # type: ignore[union-attr] - only held with a regroup policy
        self._dispatch()

    async def _run(self, taken: list[_Pending]) -> None:
        released = False
        sent_at = self._clock()
        items = [item for pending in taken for item in pending.items]

        def release() -> None:
            # The next call leaves (or starts waiting for the requests of this one to
            # come back, regroup.py) before the waiters of this one are woken.
            nonlocal released
            if not released:
                released = True
                self._in_flight -= 1
                self._dispatch()

        try:
            metrics.MODEL_TEXTS.inc(len(items))
            with tracing.span("model_call", texts=len(items), requests=len(taken)) as call_span:
                results = await self._call(items)
            answered_at = self._clock()
            if self.regroup:
                self.regroup.call_returned(len(taken), len(self._pending), answered_at - sent_at, answered_at)
            release()
            if len(results) != len(items):
                raise RuntimeError(f"model call returned {len(results)} results for {len(items)} items")
            offset = 0
            for pending in taken:
                if not pending.future.done():
                    times = CallTimes(pending.queued_at, sent_at, answered_at, call_span.get_span_context())
                    pending.future.set_result(Answer(list(results[offset : offset + len(pending.items)]), times))
                offset += len(pending.items)
        except asyncio.CancelledError:
            for pending in taken:
                pending.future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - every waiter gets the call's own error
            for pending in taken:
                if not pending.future.done():
                    pending.future.set_exception(exc)
        finally:
            release()

"""Shutdown in order: the public worker refuses new work at once, finishes what it took, then
the model service, which outlives its callers.

`bentoml serve` stops every service at once (circus' `Arbiter._stop_watchers`
signals all watchers together; BentoML sets no order for dependencies, and no
upstream issue tracks it; bentoml/BentoML#5024 made each worker's own shutdown
graceful, not the order between services). The public service then still has requests in flight
whose texts wait for their turn to be sent (`sentiment/batching/merging.py`): if the
model service had already closed its socket they would fail, although they were
accepted. So the model worker defers its SIGTERM until it is idle: no batch
running and no call for `idle_s`, or `max_wait_s` at most. In Kubernetes the
preStop sleep already lets traffic stop first; this covers `docker stop`,
Ctrl-C and a SIGTERM without preStop.

The public worker defers its SIGTERM the same way, until the requests it accepted are
answered, and meanwhile answers every new request 503 with Retry-After and
`Connection: close` at once (sentiment/http/draining.py). Without that, uvicorn stops
accepting at SIGTERM while circus keeps the listening socket open: a request that
arrived after the signal sat in the backlog and was reset seconds later, when the
server exited.

Relies on uvicorn installing `Server.handle_exit` with `signal.signal` around
`serve()` (uvicorn 0.54 `capture_signals`) and on BentoML creating the service
instance inside it; `defer_sigterm_until_idle` checks both and refuses to start
otherwise, so an upgrade that changes them fails loudly instead of silently
dropping requests at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

logger = logging.getLogger(f"bentoml.{__name__}")  # under BentoML's log handlers


class ActivityTracker:
    """Counts calls in progress and remembers when the last one ended (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active = 0
        self.last_end = time.monotonic()

    def __enter__(self) -> ActivityTracker:
        with self._lock:
            self.active += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.active -= 1
            self.last_end = time.monotonic()

    def idle_for(self, seconds: float) -> bool:
        with self._lock:
            return self.active == 0 and time.monotonic() - self.last_end >= seconds


def defer_sigterm_until_idle(
    is_idle: Callable[[], bool], max_wait_s: float, poll_s: float = 0.1, on_sigterm: Callable[[], None] | None = None,
) -> None:
    """Replace the server's SIGTERM handler with one that calls it once `is_idle()` (or after `max_wait_s`);
    `on_sigterm` runs (on the event loop) as soon as the signal arrives."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("the shutdown drain must be installed from the main thread (BentoML changed how it creates services)")
    original = signal.getsignal(signal.SIGTERM)
    if not callable(original) or getattr(original, "__qualname__", "") != "Server.handle_exit":
        raise RuntimeError(
            f"SIGTERM is handled by {original!r}, not uvicorn's Server.handle_exit: the shutdown drain of "
            "sentiment/drain.py cannot work with this BentoML/uvicorn version"
        )
    loop = asyncio.get_running_loop()

    def handle(signum: int, frame: FrameType | None) -> None:
        deadline = time.monotonic() + max_wait_s
        logger.info("SIGTERM: finishing the work already accepted before shutting down")
        if on_sigterm is not None:
            loop.call_soon_threadsafe(on_sigterm)

        def check() -> None:
            if is_idle() or time.monotonic() >= deadline:
                original(signum, frame)
            else:
                loop.call_later(poll_s, check)

        loop.call_soon_threadsafe(check)

    signal.signal(signal.SIGTERM, handle)

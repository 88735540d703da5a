"""Shutdown, as the client sees it: after SIGTERM a new request is answered 503 at once, never left to be reset.

Counts the requests in progress (the probes and scrapes aside) so that the public
worker's SIGTERM waits for them (sentiment/drain.py), and, once `Drain.start` has run,
answers every new request 503 with Retry-After and `Connection: close`, `/readyz`
included, while the ones accepted before finish.
"""

from __future__ import annotations

from typing import Any

from .errors import ErrorReply


class Drain:
    """Requests in progress in one public worker, and whether it is shutting down."""

    def __init__(self) -> None:
        self.in_progress = 0
        self.draining = False

    def start(self) -> None:
        self.draining = True

    def idle(self) -> bool:
        return self.in_progress == 0


class DrainMiddleware:
    def __init__(self, app: Any, drain: Drain, retry_after_s: int, uncounted: frozenset[str]) -> None:  # noqa: ANN401
        """`uncounted`: paths a shutdown never waits for (probes, scrapes)."""
        self.app = app
        self.drain = drain
        self.retry_after = str(retry_after_s)
        self.uncounted = uncounted

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.drain.draining and scope.get("path") != "/livez":  # alive, and finishing its work
            reply = ErrorReply("shutting_down", "the server is shutting down: retry on another", (("Retry-After", self.retry_after),))
            await reply.send(send, close=True)
            return
        if scope.get("path") in self.uncounted:
            await self.app(scope, receive, send)
            return
        self.drain.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.in_progress -= 1

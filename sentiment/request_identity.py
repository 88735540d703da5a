"""Request identity and timing: `X-Request-ID` on every response and in the API's access line, and where the time went.

A client's own `X-Request-ID` (up to 128 visible ASCII characters) is kept,
otherwise one is generated. Timing headers, in milliseconds, as
text-embeddings-inference sends them:

    x-total-time      the whole request in this service
    x-queue-time      waiting for a call to the model service to leave (sentiment/coalescing.py)
    x-inference-time  the model-service call that computed this request's texts
                      (its batch queue and the forward pass); 0 when all came from the cache
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from typing import Any

logger = logging.getLogger("bentoml.sentiment.access")  # under BentoML's log handlers

# The timings of the request being handled; predict() fills them in.
TIMINGS: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar("sentiment_timings", default=None)


def _client_id(raw: bytes | None) -> str | None:
    if raw and len(raw) <= 128 and all(0x21 <= b <= 0x7E for b in raw):
        return raw.decode()
    return None


def record(name: str, seconds: float) -> None:
    timings = TIMINGS.get()
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + seconds


class RequestIdentityMiddleware:
    def __init__(self, app: Any, api_routes: frozenset[str]) -> None:  # noqa: ANN401
        self.app = app
        self.api_routes = api_routes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope.get("path") in self.api_routes  # probes and scrapes get the headers, not a log line
        request_id = _client_id(dict(scope.get("headers") or []).get(b"x-request-id")) or uuid.uuid4().hex
        timings: dict[str, float] = {}
        token = TIMINGS.set(timings)
        start = time.perf_counter()
        status = 0

        async def send_with_identity(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                total = time.perf_counter() - start
                message = {**message, "headers": [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                    (b"x-total-time", f"{total * 1000:.2f}".encode()),
                    (b"x-queue-time", f"{timings.get('queue', 0.0) * 1000:.2f}".encode()),
                    (b"x-inference-time", f"{timings.get('inference', 0.0) * 1000:.2f}".encode()),
                ]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_identity)
        finally:
            TIMINGS.reset(token)
            client = scope.get("client") or ("-", 0)
            if api:
                logger.info(
                    "%s:%s %s %s %d %.1fms request_id=%s",
                    client[0], client[1], scope.get("method"), scope.get("path"), status,
                    (time.perf_counter() - start) * 1000, request_id,
                )

"""Request identity and timing: `X-Request-ID` on every response and in the access line, and where the time went.

The access line (`bentoml.sentiment.access`) replaces BentoML's own, which writes the
raw request path and can be forged with an encoded newline (sentiment/logs.py): every
request but the probes and scrapes gets one, its path escaped and cut to 200 characters.

A client's own `X-Request-ID` (up to 128 visible ASCII characters) is kept,
otherwise one is generated. Timing headers, in milliseconds, as
text-embeddings-inference sends them:

    x-total-time      the whole request in this service (this middleware)
    x-queue-time      waiting for a call to the model service to leave (sentiment/batching/merging.py)
    x-inference-time  waiting for the model-service call that computed this request's texts
                      (its batch queue and the forward pass), whoever started it;
                      0 when every text came from the cache

`predict` sets the last two from the values the cache hands back (`timing_headers`);
every other response gets them as 0.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from .. import tracing
from ..batching.merging import Waits
from ..logs import escape

logger = logging.getLogger("bentoml.sentiment.access")  # under BentoML's log handlers

QUEUE_TIME, INFERENCE_TIME = "x-queue-time", "x-inference-time"


def timing_headers(waits: Waits) -> dict[str, str]:
    return {QUEUE_TIME: f"{waits.queue_s * 1000:.2f}", INFERENCE_TIME: f"{waits.inference_s * 1000:.2f}"}


_NO_WAIT = [(name.encode(), value.encode()) for name, value in timing_headers(Waits()).items()]


def _client_id(raw: bytes | None) -> str | None:
    if raw and len(raw) <= 128 and all(0x21 <= b <= 0x7E for b in raw):
        return raw.decode()
    return None


class RequestIdentityMiddleware:
    def __init__(self, app: Any, quiet_paths: frozenset[str]) -> None:  # noqa: ANN401
        """`quiet_paths`: probes and scrapes, which get the headers but no access line."""
        self.app = app
        self.quiet_paths = quiet_paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        logged = scope.get("path") not in self.quiet_paths
        request_id = _client_id(dict(scope.get("headers") or []).get(b"x-request-id")) or uuid.uuid4().hex
        tracing.annotate(request_id=request_id)  # on BentoML's span of this request
        start = time.perf_counter()
        status = 0

        async def send_with_identity(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                named = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in _NO_WAIT if name not in named]
                headers += [
                    (b"x-request-id", request_id.encode()),
                    (b"x-total-time", f"{(time.perf_counter() - start) * 1000:.2f}".encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_identity)
        finally:
            client = scope.get("client") or ("-", 0)
            if logged:
                logger.info(
                    "%s:%s %s %s %d %.1fms request_id=%s",
                    client[0], client[1], escape(str(scope.get("method"))), escape(str(scope.get("path"))), status,
                    (time.perf_counter() - start) * 1000, request_id,
                )

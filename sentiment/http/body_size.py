"""ASGI middleware that records request and response body sizes of the API routes."""

from __future__ import annotations

from typing import Any

from .. import metrics


class BodySizeMiddleware:
    """Records body sizes of `paths` only: a fixed label set, whatever paths clients make up."""

    def __init__(self, app: Any, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in self.paths:
            await self.app(scope, receive, send)
            return
        received = sent = 0

        async def counting_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def counting_send(message: dict[str, Any]) -> None:
            nonlocal sent
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            metrics.REQUEST_BYTES.labels(endpoint=path).observe(received)
            metrics.RESPONSE_BYTES.labels(endpoint=path).observe(sent)

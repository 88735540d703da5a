"""ASGI middleware that protects the API routes from hostile or overwhelming HTTP traffic.

- A body over `MAX_BODY_BYTES` is refused with 413 (at once when Content-Length
  says so, else as soon as that many bytes arrived), so memory never grows by more
  than the limit per request.
- A body that does not arrive within `BODY_TIMEOUT_S` (slow or stalled clients)
  is refused with 408 instead of holding a worker slot.
- While the model queue is full (sentiment/batching/admission.py), API requests
  are refused with 503 before their body is read.
- A body that is not declared as JSON is refused with 415 (form and multipart
  parsers are never reached).
- Every 503/429 of an API route carries `Retry-After`, so clients back off.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..batching.admission import Overloaded, TextAdmission
from . import errors


class RequestLimitsMiddleware:
    def __init__(
        self, app: Any, paths: frozenset[str], shed_paths: frozenset[str],  # noqa: ANN401
        max_body_bytes: int, body_timeout_s: float, retry_after_s: int, admission: TextAdmission,
    ) -> None:
        """Limits requests to `paths`; sheds those to `shed_paths` (the ones that reach the model) when the queue is full."""
        self.app = app
        self.paths = paths
        self.shed_paths = shed_paths
        self.admission = admission
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.retry_after_s = retry_after_s
        self.retry_after = str(retry_after_s).encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        if scope["type"] != "http" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.shed_paths:
            try:
                self.admission.refuse_while_full()
            except Overloaded as exc:
                await errors.reply_for(exc, self.retry_after_s).send(send, close=True)
                return
        headers = dict(scope.get("headers") or [])
        media_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if media_type not in (b"application/json", b"*/*") and not media_type.endswith(b"+json"):
            await errors.ErrorReply("not_json", "send the body as JSON with Content-Type: application/json").send(send, close=True)
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send)
            return

        body = await self._read_body(receive, send)
        if body is None:
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the client's disconnect

        async def send_with_retry_after(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] in (429, 503):
                headers = list(message.get("headers") or [])
                if not any(k.lower() == b"retry-after" for k, _ in headers):
                    message = {**message, "headers": [*headers, (b"retry-after", self.retry_after)]}
            await send(message)

        await self.app(scope, replay, send_with_retry_after)

    async def _read_body(self, receive: Any, send: Any) -> bytes | None:  # noqa: ANN401
        """The whole body, or None after answering 408/413 (or on disconnect)."""
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                message = f"request body not received within {self.body_timeout_s:g} s"
                await errors.ErrorReply("body_timeout", message).send(send, close=True)
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, send: Any) -> None:  # noqa: ANN401
        await errors.ErrorReply("body_too_large", f"request body over {self.max_body_bytes} bytes").send(send, close=True)

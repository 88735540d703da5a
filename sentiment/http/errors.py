"""Every error the service answers itself: one table from error kind to HTTP status, one JSON body.

    {"error": "<what is wrong, never the request's text>"}

The middlewares send these before the request reaches the API; `service.py`
returns one from `predict`. Validation errors (400) are BentoML's, documented in
the OpenAPI document (`sentiment/http/openapi.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from ..batching.admission import Overloaded
from ..batching.connection import ModelUnavailable

STATUS = {
    "several_credentials": 400,  # more than one Authorization header (sentiment/http/auth.py)
    "unauthorized": 401,  # missing, malformed or invalid API key (sentiment/http/auth.py)
    "body_timeout": 408,  # the body did not arrive within BODY_TIMEOUT_S (sentiment/http/limits.py)
    "body_too_large": 413,  # over MAX_BODY_BYTES
    "not_json": 415,  # a Content-Type other than JSON
    "overloaded": 503,  # too many texts waiting for the model (sentiment/batching/admission.py), with Retry-After
    "starting": 503,  # asked before the service finished starting (sentiment/http/info.py)
    "keys_unavailable": 503,  # the API key file cannot be read: the API is closed until it can
    "shutting_down": 503,  # asked after SIGTERM: the worker finishes what it accepted (sentiment/http/draining.py)
    "model_unavailable": 503,  # the model service dropped the call and did not come back in time, with Retry-After
    "client_gone": 499,  # nginx's "client closed request": no one reads it, the logs and metrics do (sentiment/http/unanswered.py)
    "no_answer": 500,  # a route returned without answering: a bug, logged (sentiment/http/unanswered.py)
}
# What the request path raises that is an answer, not a failure, and its kind.
KIND_OF: dict[type[Exception], str] = {Overloaded: "overloaded", ModelUnavailable: "model_unavailable"}
ANSWERABLE = tuple(KIND_OF)


@dataclass(frozen=True)
class ErrorReply:
    kind: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def status(self) -> int:
        return STATUS[self.kind]

    @property
    def body(self) -> bytes:
        return json.dumps({"error": self.message}).encode()

    async def send(self, send: Any, close: bool = False, extra_headers: dict[str, str] | None = None) -> None:  # noqa: ANN401 - an ASGI send
        """As an ASGI response; `close` for a request whose body was not read."""
        body = self.body
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if close:
            headers.append((b"connection", b"close"))
        headers += [(name.lower().encode(), value.encode()) for name, value in (*self.headers, *(extra_headers or {}).items())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def response(self) -> Response:
        """As the return value of an API method."""
        return Response(self.body, status_code=self.status, headers=dict(self.headers), media_type="application/json")


def reply_for(exc: Exception, retry_after_s: int) -> ErrorReply:
    """The answer to an ANSWERABLE exception: each is a 503 a client should retry after a while."""
    return ErrorReply(KIND_OF[type(exc)], str(exc), (("Retry-After", str(retry_after_s)),))

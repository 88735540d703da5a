"""`POST /predict` over HTTP, answered without BentoML's per-API machinery.

Why: for every call, BentoML's API route builds a request context and a Starlette
request, runs its serde and IO descriptor, binds the method's signature and builds a
response object: about 0.35 ms of CPU a request more than a plain route on the same
server, which a lone request pays beside the model and 32 clients pay on the cores the
model needs. Here the body (already read by the limits middleware) is validated by
pydantic-core in one pass against the same `PredictRequest`, handed to the service's
`classify`, and the answer written as JSON bytes.

The service's `predict` (`@bentoml.api`) stays the API's declaration: the OpenAPI
document, the Swagger UI and BentoML's clients know the API from it, and it runs the
same `classify`. `PredictRoute` is the innermost of the service's middlewares, so a
request passes every check before it (drain, API keys, limits, identity) and BentoML's
own middlewares around them (timeout, traffic metrics, traces). A validation error is
a 400 with BentoML's body, `{"error": "N validation error for PredictRequest", "detail": [...]}`,
and one log line without values (sentiment/logs.py); traced, the answer carries BentoML's
`X-BentoML-Request-ID` (the request span's id) as BentoML's route would.
`tests/test_service_api.py` checks that BentoML's client and this route agree.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from .. import logs, tracing
from . import routes
from .errors import ErrorReply
from .schemas import PredictRequest, PredictResponse

logger = logging.getLogger("bentoml.sentiment.predict")  # under BentoML's log handlers

# what the service answers a valid request with: the response, or an error, and its extra headers
Classify = Callable[[PredictRequest], Awaitable[tuple["PredictResponse | ErrorReply", dict[str, str]]]]


class PredictEndpoint:
    """The route's link to the service: `classify` is set when the public service has started."""

    def __init__(self) -> None:
        self.classify: Classify | None = None


class PredictRoute:
    """ASGI middleware answering `POST /predict` itself; every other request goes on to the app."""

    def __init__(self, app: Any, endpoint: PredictEndpoint) -> None:  # noqa: ANN401
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        if scope["type"] != "http" or scope.get("path") != routes.PREDICT or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        body = await _body(receive)
        if body is None:
            return  # the client went away
        classify = self.endpoint.classify
        if classify is None:
            await ErrorReply("starting", "the service is starting").send(send)
            return
        try:
            request = PredictRequest.model_validate_json(body)
        except ValidationError as exc:
            logger.warning("%s", logs.refused(exc))
            await _send(send, 400, _validation_error(exc))
            return
        reply, headers = await classify(request)
        if (span_id := tracing.request_span_id()) is not None:  # traced: BentoML's header for the request's span
            headers = {**headers, "x-bentoml-request-id": span_id}
        if isinstance(reply, ErrorReply):
            await reply.send(send, extra_headers=headers)
        else:
            await _send(send, 200, reply.model_dump_json().encode(), headers)


async def _body(receive: Any) -> bytes | None:  # noqa: ANN401
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _validation_error(exc: ValidationError) -> bytes:
    """BentoML's 400 body for the same error (`_bentoml_impl/server/app.py`, api_endpoint_wrapper)."""
    import json

    return json.dumps({
        "error": f"{exc.error_count()} validation error for {exc.title}",
        "detail": exc.errors(include_context=False, include_input=False),
    }).encode()


async def _send(send: Any, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:  # noqa: ANN401
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})

"""Every request gets an answer, even one whose client went away before it was answered.

Why: BentoML's TimeoutMiddleware (`bentoml/_internal/server/http/traffic.py`, around
every app of a service) waits for the first message the app sends, not for the app
to return. A request the app leaves without an answer holds its task, BentoML's
`request_in_progress` gauge and, at SIGTERM, uvicorn's shutdown until `traffic.timeout`
has passed. This service leaves a request unanswered when its client closes the
connection before the body has arrived (sentiment/http/limits.py, predict.py).
Measured: after 64 clients went away mid-request, the public worker took 60 s to stop
instead of 1 s. No upstream issue tracks it.

Here such a request is answered 499 (nginx's "client closed request"): uvicorn drops
it, and the access line and the traffic metrics show it. A request left unanswered
while its client is still there is a bug: it is logged and answered 500.
"""

from __future__ import annotations

import logging
from typing import Any

from ..logs import escape
from .errors import ErrorReply

logger = logging.getLogger("bentoml.sentiment.unanswered")  # under BentoML's log handlers


class AnswerEveryRequest:
    def __init__(self, app: Any) -> None:  # noqa: ANN401
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = gone = False

        async def receive_noting_disconnect() -> dict[str, Any]:
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
            return message

        async def send_noting_start(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, receive_noting_disconnect, send_noting_start)
        if started:
            return
        if gone:
            await ErrorReply("client_gone", "the client closed the connection before it was answered").send(send, close=True)
            return
        logger.error("%s %s returned without an answer", escape(str(scope.get("method"))), escape(str(scope.get("path"))))
        await ErrorReply("no_answer", "the service returned without an answer").send(send, close=True)

"""A request a route leaves unanswered is answered anyway: 499 when its client went away, 500 otherwise."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from sentiment.http.unanswered import AnswerEveryRequest

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

SCOPE = {"type": "http", "method": "POST", "path": "/predict"}


def served(app: Any, client: list[dict[str, Any]]) -> list[dict[str, Any]]:  # noqa: ANN401
    """The messages `app`, behind AnswerEveryRequest, sends to a client whose messages are `client`."""
    sent: list[dict[str, Any]] = []
    messages = iter(client)

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(AnswerEveryRequest(app)(SCOPE, receive, send))
    return sent


async def reads_the_body(scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
    """What sentiment/http/limits.py does: read the body, give up when the client goes away."""
    while (message := await receive())["type"] == "http.request" and message.get("more_body"):
        pass
    if message["type"] == "http.disconnect":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def test_a_client_that_went_away_is_answered_499() -> None:
    sent = served(reads_the_body, [{"type": "http.request", "body": b'{"te', "more_body": True}, {"type": "http.disconnect"}])
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 499 and (b"connection", b"close") in sent[0]["headers"]


def test_an_answered_request_is_left_as_it_is() -> None:
    sent = served(reads_the_body, [{"type": "http.request", "body": b"{}", "more_body": False}])
    assert [(m["type"], m.get("status")) for m in sent] == [("http.response.start", 200), ("http.response.body", None)]


def test_a_route_that_forgets_to_answer_a_client_still_there_gets_500_and_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    async def forgets(scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        await receive()

    with caplog.at_level(logging.ERROR, logger="bentoml.sentiment.unanswered"):
        sent = served(forgets, [{"type": "http.request", "body": b"{}", "more_body": False}])
    assert sent[0]["status"] == 500
    assert "POST /predict returned without an answer" in caplog.text


def test_an_error_is_not_answered_twice() -> None:
    async def fails(scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):  # Starlette's error middleware, outside, answers it 500
        served(fails, [{"type": "http.request", "body": b"{}", "more_body": False}])

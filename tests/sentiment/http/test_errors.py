"""Every error the service writes itself: one JSON shape, the status from one table."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sentiment.batching.admission import Overloaded, TextAdmission
from sentiment.http import errors

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def sent(reply: errors.ErrorReply, close: bool = False) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(reply.send(send, close))
    return messages


def test_every_kind_has_a_status_and_the_same_body_shape() -> None:
    for kind, status in errors.STATUS.items():
        start, body = sent(errors.ErrorReply(kind, f"about {kind}"))
        assert start["status"] == status and 400 <= status < 600
        assert json.loads(body["body"]) == {"error": f"about {kind}"}
        assert dict(start["headers"])[b"content-type"] == b"application/json"


def test_the_asgi_answer_and_the_api_answer_are_the_same() -> None:
    admission = TextAdmission(0)
    with pytest.raises(Overloaded) as refused:
        admission.refuse_while_full()
    reply = errors.reply_for(refused.value, retry_after_s=3)
    start, body = sent(reply, close=True)
    response = reply.response()
    assert start["status"] == response.status_code == 503
    assert body["body"] == response.body
    assert dict(start["headers"])[b"retry-after"] == b"3" == response.headers["retry-after"].encode()
    assert dict(start["headers"])[b"connection"] == b"close"

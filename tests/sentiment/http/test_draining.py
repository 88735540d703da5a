"""After SIGTERM: new requests answered 503 at once, the ones in progress counted until they finish."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sentiment.http.draining import Drain, DrainMiddleware

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def test_a_draining_worker_refuses_new_requests_and_waits_for_the_old_ones() -> None:
    async def scenario() -> None:
        release = asyncio.Event()
        answered: list[str] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
            await release.wait()
            answered.append(scope["path"])

        drain = Drain()
        middleware = DrainMiddleware(app, drain, retry_after_s=2, uncounted=frozenset({"/metrics"}))
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        old = asyncio.create_task(middleware({"type": "http", "path": "/predict"}, None, send))
        await asyncio.sleep(0)
        assert drain.in_progress == 1 and not drain.idle()
        drain.start()  # SIGTERM
        await middleware({"type": "http", "path": "/predict"}, None, send)  # a new one: answered at once
        await middleware({"type": "http", "path": "/readyz"}, None, send)  # not ready any more
        start = [m for m in sent if m["type"] == "http.response.start"]
        assert [m["status"] for m in start] == [503, 503]
        assert all(dict(m["headers"])[b"retry-after"] == b"2" and dict(m["headers"])[b"connection"] == b"close" for m in start)
        release.set()
        await old
        assert answered == ["/predict"] and drain.idle()  # the one accepted before finished

    asyncio.run(scenario())

"""The OpenAPI amendment's start-up check: the server refuses to start when the document is not where it is amended."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sentiment.http import page, routes
from sentiment.http.openapi import OpenAPIDocMiddleware

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


ASSETS = [f"/{page.STATIC}/{name}" for name in page.ASSETS]


class App:
    """An ASGI app that completes its lifespan start-up and serves `document` at `path`, and `assets`."""

    def __init__(self, path: str, document: dict[str, Any], assets: list[str] = ASSETS) -> None:
        self.files = {path: json.dumps(document).encode(), **{asset: b"..." for asset in assets}}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            return
        body = self.files.get(scope["path"])
        await send({"type": "http.response.start", "status": 404 if body is None else 200, "headers": []})
        await send({"type": "http.response.body", "body": body or b'{"error": "not found"}'})


def start_up(app: App) -> dict[str, Any]:
    """What the server hears back when it starts the middleware over `app`."""
    said: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        said.append(message)

    asyncio.run(OpenAPIDocMiddleware(app)({"type": "lifespan"}, receive, send))
    (message,) = said
    return message


SPEC = {"openapi": "3.0.2", "paths": {routes.PREDICT: {"post": {"responses": {}}}}}


def test_starts_when_the_document_is_where_it_is_amended() -> None:
    assert start_up(App(routes.OPENAPI_DOC, SPEC)) == {"type": "lifespan.startup.complete"}


@pytest.mark.parametrize(
    "app",
    [App("/openapi.json", SPEC), App(routes.OPENAPI_DOC, {"paths": {}}), App(routes.OPENAPI_DOC, {"openapi": "3.0.2"})],
    ids=["document moved", "no predict operation", "not an OpenAPI document"],
)
def test_refuses_to_start_when_it_is_not(app: App) -> None:
    message = start_up(app)
    assert message["type"] == "lifespan.startup.failed"
    assert routes.OPENAPI_DOC in message["message"] and "sentiment/http/openapi.py" in message["message"]


def test_refuses_to_start_when_the_page_s_files_are_gone() -> None:
    message = start_up(App(routes.OPENAPI_DOC, SPEC, assets=ASSETS[1:]))
    assert message["type"] == "lifespan.startup.failed" and ASSETS[0] in message["message"]

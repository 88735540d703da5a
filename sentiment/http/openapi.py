"""Make the OpenAPI document at /docs.json describe this API and what /predict really answers.

BentoML titles the document with the service's name, gives "None" as its version
(outside a built Bento), a description for BentoML itself with badge images from the
internet, and BentoML's contact; here the document gets this product's title, its
version with the served model's tag, a description written for a caller
(`sentiment/http/info.py`), and `GET /info`.

BentoML documents its 400 body's `detail` as a string while its validation errors
send a list of pydantic errors, leaves the request body optional although an
empty body is refused, and cannot know the statuses this service adds
(408, 413, 415, 503 with Retry-After). Clients generated from the document, and
schema-checking tools such as schemathesis, need the truth, so the document is
amended on its way out.

Start-up check: when the server starts (ASGI lifespan), the middleware asks the
app below it for `routes.OPENAPI_DOC` and refuses to start unless that is the
OpenAPI document describing `routes.PREDICT`, and unless the Swagger UI's files the
page loads are served. BentoML serves both (`/docs.json` and `/static_content/` in
`_bentoml_impl/server/app.py`, not documented paths); an upgrade that moves them
would otherwise leave the amendment silently unapplied, or the page blank.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from . import info as info_route
from . import page, routes
from .schemas import ServiceInfo

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "title": "Message"}},
}
EXTRA_RESPONSES = {
    "408": ("Request body not received in time (BODY_TIMEOUT_S)", {}),
    "413": ("Request body over MAX_BODY_BYTES", {}),
    "415": ("Content-Type is not JSON", {}),
    "503": (
        "Overloaded: too many texts waiting for the model; retry after the given seconds",
        {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait before retrying"}},
    ),
}


def amend(
    spec: dict[str, Any], api_keys: bool = False, info: ServiceInfo | None = None, info_needs_key: bool = False,
) -> dict[str, Any]:
    if info is not None:
        spec["info"] = {"title": info_route.TITLE, "version": f"{info.version} (model {info.model.tag})",
                        "description": info_route.describe(info)}
    for tag in spec.get("tags", []):
        if tag.get("name") == "Service APIs":  # BentoML's tag for the API routes
            tag["description"] = "Classify texts, and ask which model does"
    spec.setdefault("paths", {})[routes.INFO] = info_route.openapi_path(spec.setdefault("components", {}).setdefault("schemas", {}))
    invalid = spec.get("components", {}).get("schemas", {}).get("InvalidArgument")
    if invalid is not None:
        invalid["properties"]["detail"] = {
            "title": "Error Detail",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
        }
    for operation in _api_operations(spec):
        operation.get("requestBody", {})["required"] = True  # an empty body is a 400
        _prefill_example(spec, operation)
        for status, (description, headers) in EXTRA_RESPONSES.items():
            response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": ERROR}}}
            if headers:
                response["headers"] = headers
            operation["responses"].setdefault(status, response)
    if api_keys:  # the Swagger UI then shows "Authorize" and sends the key
        spec.setdefault("components", {}).setdefault("securitySchemes", {})["bearerAuth"] = {"type": "http", "scheme": "bearer"}
        for operation in _api_operations(spec) + ([spec["paths"][routes.INFO]["get"]] if info_needs_key else []):
            operation["security"] = [{"bearerAuth": []}]
            operation["responses"].setdefault("401", {
                "description": "Missing, malformed or invalid API key",
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                "content": {"application/json": {"schema": ERROR}},
            })
    return spec


def _prefill_example(spec: dict[str, Any], operation: dict[str, Any]) -> None:
    """The request body's example, made of each field's own example (schemas.py).

    OpenAPI 3.0's Swagger UI reads neither JSON Schema's `examples` nor a null default
    as an example: without this its "Try it out" body is `{"text": ["string"], "top_k": null}`,
    which the API refuses."""
    media = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if media is None:
        return
    schema = media.get("schema", {})
    if "$ref" in schema:
        schema = spec.get("components", {}).get("schemas", {}).get(schema["$ref"].rsplit("/", 1)[-1], {})
    example = {name: prop["examples"][0] for name, prop in schema.get("properties", {}).items() if prop.get("examples")}
    if example:
        media["example"] = example


def _api_operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The POST operations: the API routes (probes, metrics and docs are GET and stay open)."""
    return [ops["post"] for ops in spec.get("paths", {}).values() if "post" in ops]


class OpenAPIDocMiddleware:
    def __init__(  # noqa: ANN401
        self, app: Any, api_keys: bool = False, info: info_route.InfoEndpoint | None = None, info_needs_key: bool = False,
    ) -> None:
        self.app = app
        self.api_keys = api_keys
        self.info = info
        self.info_needs_key = info_needs_key

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._checked_startup(send))
            return
        if scope["type"] != "http" or scope.get("path") != routes.OPENAPI_DOC:
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body = b"".join(chunks)
                    if start.get("status") == 200:
                        body = json.dumps(amend(json.loads(body), self.api_keys, self.info and self.info.info, self.info_needs_key)).encode()
                    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                    headers.append((b"content-length", str(len(body)).encode()))
                    await send({**start, "headers": headers})
                    await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)

    def _checked_startup(self, send: Any) -> Any:  # noqa: ANN401
        """`send` of the lifespan, reporting a failed start-up unless the document is where it is amended."""

        async def checked(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                problem = await self._document_problem()
                if problem:
                    message = {"type": "lifespan.startup.failed", "message": problem}
            await send(message)

        return checked

    async def _document_problem(self) -> str | None:
        status, body = await self._get(routes.OPENAPI_DOC)
        try:
            operations = json.loads(body)["paths"][routes.PREDICT]
        except (ValueError, KeyError, TypeError):
            operations = {}
        if status != 200 or "post" not in operations:
            return (f"the OpenAPI document is not served at {routes.OPENAPI_DOC} (status {status}, no POST {routes.PREDICT}): "
                    "BentoML moved it; sentiment/http/routes.py's OPENAPI_DOC and sentiment/http/openapi.py must follow")
        for asset in page.ASSETS:
            status, _ = await self._get(f"/{page.STATIC}/{asset}")
            if status != 200:
                return (f"BentoML no longer serves the Swagger UI's /{page.STATIC}/{asset} (status {status}): "
                        "the page of sentiment/http/page.py would be blank")
        return None

    async def _get(self, path: str) -> tuple[int, bytes]:
        """GET `path` from the app below, in process."""
        status, chunks = 0, []
        answered = asyncio.Event()
        asked = False

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await answered.wait()  # then the client "leaves", as a real one would
            return {"type": "http.disconnect"}

        async def collect(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    answered.set()

        await self.app({
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
            "headers": [], "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0), "state": {},
        }, receive, collect)
        return status, b"".join(chunks)

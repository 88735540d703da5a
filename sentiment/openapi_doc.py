"""Make the OpenAPI document at /docs.json describe what /predict really answers.

BentoML documents its 400 body's `detail` as a string while its validation errors
send a list of pydantic errors, leaves the request body optional although an
empty body is refused, and cannot know the statuses this service adds
(408, 413, 415, 503 with Retry-After). Clients generated from the document, and
schema-checking tools such as schemathesis, need the truth, so the document is
amended on its way out.
"""

from __future__ import annotations

import json
from typing import Any

from . import routes

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


def amend(spec: dict[str, Any], api_keys: bool = False) -> dict[str, Any]:
    invalid = spec.get("components", {}).get("schemas", {}).get("InvalidArgument")
    if invalid is not None:
        invalid["properties"]["detail"] = {
            "title": "Error Detail",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
        }
    for operation in _api_operations(spec):
        operation.get("requestBody", {})["required"] = True  # an empty body is a 400
        for status, (description, headers) in EXTRA_RESPONSES.items():
            response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": ERROR}}}
            if headers:
                response["headers"] = headers
            operation["responses"].setdefault(status, response)
    if api_keys:  # the Swagger UI then shows "Authorize" and sends the key
        spec.setdefault("components", {}).setdefault("securitySchemes", {})["bearerAuth"] = {"type": "http", "scheme": "bearer"}
        for operation in _api_operations(spec):
            operation["security"] = [{"bearerAuth": []}]
            operation["responses"].setdefault("401", {
                "description": "Missing, malformed or invalid API key",
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                "content": {"application/json": {"schema": ERROR}},
            })
    return spec


def _api_operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The POST operations: the API routes (probes, metrics and docs are GET and stay open)."""
    return [ops["post"] for ops in spec.get("paths", {}).values() if "post" in ops]


class OpenAPIDocMiddleware:
    def __init__(self, app: Any, api_keys: bool = False) -> None:  # noqa: ANN401
        self.app = app
        self.api_keys = api_keys

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
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
                        body = json.dumps(amend(json.loads(body), self.api_keys)).encode()
                    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                    headers.append((b"content-length", str(len(body)).encode()))
                    await send({**start, "headers": headers})
                    await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)

"""GET /info and the API's description: what a caller is talking to, computed once at start-up.

The public service fills `InfoEndpoint.info` when it starts (no model call); until
then /info answers 503. The same facts describe the API on its page and in the
OpenAPI document (`describe`), so the page never says something /info does not.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import routes
from .errors import ErrorReply
from .schemas import ServiceInfo

TITLE = "Sentiment API"


class InfoEndpoint:
    """The `GET /info` route; one per public worker, shared with the OpenAPI amendment and the page."""

    def __init__(self) -> None:
        self.info: ServiceInfo | None = None

    async def respond(self, request: Request) -> Response:
        if self.info is None:
            return ErrorReply("starting", "the service is starting").response()
        return JSONResponse(self.info.model_dump())

    def version(self) -> str:
        """The service's version and the served model's tag, as the page and the document show them."""
        return f"{self.info.version} · model {self.info.model.tag}" if self.info else "starting"


_SCORES = {
    "softmax": "probabilities that sum to 1 (softmax)",
    "sigmoid": "an independent probability per label (sigmoid: a multi-label model)",
    "none": "the model's raw output (a regression model)",
}


def describe(info: ServiceInfo) -> str:
    """The API's description for a caller (markdown; links are relative: nothing needs the internet)."""
    model, limits = info.model, info.limits
    auth = (
        "Every call to `POST /predict` needs `Authorization: Bearer <key>`: press **Authorize**, paste your key, "
        "then **Try it out**. Without it the answer is 401."
        if info.api_keys_required
        else "This server asks for no API key."
    )
    example = ", ".join(f'{{"label": "{label}", "score": …}}' for label in model.labels)
    return f"""\
Classifies texts with **{model.tag}** ({", ".join(model.labels)}), served on {info.served_by.engine}/{info.served_by.precision}.

**`POST {routes.PREDICT}`** takes `{{"text": ["...", ...]}}`: up to {limits.max_texts} texts of at most \
{limits.max_text_chars:,} characters each (a body of at most {limits.max_body_bytes:,} bytes); a text longer than the \
model's window ({model.max_tokens} tokens) is truncated. It answers
`{{"predictions": [[{example}], ...]}}`: one list per text, in input order, each with every label in label-id order; \
the scores are {_SCORES[model.score_function]}.

Options: `top_k` (only the k best labels, best first), `raw_scores` (logits instead of scores), \
`truncation` (`"right"` keeps a long text's start, `"left"` its end).

**Authorization.** {auth}

**Errors** are JSON, `{{"error": "..."}}`: 400 names the field that is wrong, 401 a missing or wrong key, \
413 a body too large, 415 a body that is not JSON, 503 an overloaded server (retry after `Retry-After` seconds).

**More:** [{routes.INFO}](.{routes.INFO}) says which model, labels, engine and limits serve; \
[/metrics](./metrics) is Prometheus; [/readyz](./readyz) and [/livez](./livez) are the probes.
"""


def openapi_path(schemas: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI operation of GET /info; its schemas are added to `schemas` (the document's components)."""
    schema = ServiceInfo.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas["ServiceInfo"] = schema
    return {
        "get": {
            "tags": ["Service APIs"],
            "summary": "Which model answers, and how it is served",
            "description": "Computed at start-up; no model call. Open unless INFO_REQUIRES_KEY is set.",
            "operationId": "info",
            "responses": {
                "200": {
                    "description": "The served model, engine, batching and request limits",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceInfo"}}},
                },
                "503": {"description": "The service is starting"},
            },
        }
    }

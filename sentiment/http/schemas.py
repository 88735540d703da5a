"""The public API contract: what `POST /predict` takes and gives.

Limits come from settings so that operators change them with env vars; the
examples pre-fill the Swagger UI.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import bentoml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_serializer

from ..settings import get_settings

_settings = get_settings()

EXAMPLE_TEXTS = ["I love you", "I hate you", "Count to 1234"]

Text = Annotated[str, StringConstraints(strict=True, max_length=_settings.max_text_chars)]


class PredictRequest(bentoml.IODescriptor):
    """Texts to classify, answered in the same order."""

    # Unknown keys are an error, not silently ignored (old clients with typos
    # would otherwise get answers for the wrong request).
    model_config = ConfigDict(extra="forbid")

    text: list[Text] = Field(
        ...,
        max_length=_settings.max_texts,
        description=(
            f"Texts to classify (at most {_settings.max_texts} texts, "
            f"{_settings.max_text_chars} characters each; longer texts are "
            "truncated to the model's window)."
        ),
        examples=[EXAMPLE_TEXTS],
    )
    # Per-request options; a request without them is answered as before.
    top_k: Annotated[int, Field(strict=True, ge=1)] = Field(  # absent = every label (null is not an integer)
        None, description="Only the k best labels per text, best first (default: every label, in label-id order).",
        examples=[2],
    )
    raw_scores: Annotated[bool, Field(strict=True)] = Field(
        False, description="Logits instead of probabilities (softmax or sigmoid, as the model's config says).",
        examples=[False],
    )
    truncation: Literal["right", "left"] = Field(
        "right", description='Which end of a text longer than the model\'s window is cut: "right" keeps the start, "left" the end.',
        examples=["right"],
    )
    long_text: Literal["truncate", "chunk"] = Field(
        "truncate",
        description='A text longer than the model\'s window: "truncate" cuts it (see truncation); "chunk" scores '
        "overlapping windows of it (each batched and cached like a text) and answers with the most confident one "
        "(per label for a multi-label model, the mean for regression).",
        examples=["truncate"],
    )
    window: Annotated[int, Field(strict=True, ge=32, le=_settings.chunk_window)] = Field(
        None, description=f"With chunk: tokens per window (default and most {_settings.chunk_window}, never more than the model's window).",
        examples=[_settings.chunk_window],
    )
    stride: Annotated[int, Field(strict=True, ge=1)] = Field(
        None, description=f"With chunk: tokens of text between the starts of two windows (default {_settings.chunk_stride}; "
        "at most the window less 8: a larger stride is taken as that, so that no text is skipped).",
        examples=[_settings.chunk_stride],
    )
    details: Annotated[bool, Field(strict=True)] = Field(
        False, description="Add `details`: per text, the tokens the model saw, whether it was truncated, the windows "
        "scored, and whether the answer came from the cache.", examples=[False],
    )



class LabelScore(BaseModel):
    label: str
    score: float


class TextDetails(BaseModel):
    tokens: int = Field(description="Tokens the model saw, special tokens included (every window's, once).")
    truncated: bool = Field(description="Whether the text was cut to the model's window (long_text: truncate).")
    windows: int = Field(description="Windows scored: 1 unless the text was chunked.")
    cached: bool = Field(description="Whether every window's answer came from the cache.")


class PredictResponse(BaseModel):
    predictions: list[list[LabelScore]] = Field(
        ...,
        description="One list per input text, in input order: every label of the model "
        "in label-id order (or the top_k best, best first). Scores follow the model's config: "
        "softmax for single-label classifiers (they sum to 1), a sigmoid per label for "
        "multi-label ones, the raw value for regression; logits with raw_scores.",
    )
    details: list[TextDetails] | None = Field(None, description="With details: one entry per input text, in input order.")

    @model_serializer(mode="wrap")
    def _details_only_when_asked(self, handler):  # noqa: ANN001, ANN202
        data = handler(self)
        if data.get("details") is None:
            data.pop("details", None)  # a request without details is answered exactly as before
        return data


class Health(BaseModel):
    status: str = "healthy"


class ModelInfo(BaseModel):
    tag: str = Field(description="The model's tag in the BentoML store (name:version).")
    fingerprint: str = Field(description="Content hash of the stored model files; part of every cache key.")
    labels: list[str] = Field(description="The model's labels, in label-id order (as in every answer).")
    problem_type: Literal["single_label_classification", "multi_label_classification", "regression"]
    score_function: Literal["softmax", "sigmoid", "none"] = Field(description="How scores are made from logits.")
    max_tokens: int = Field(description="The model's window: longer texts are truncated to it.")


class ServedBy(BaseModel):
    engine: Literal["torch", "openvino"]
    precision: Literal["fp32", "bf16", "int8"]
    why: str = Field(description="Why this pair serves: the accuracy guard's verdict, a named setting, or unguarded fp32.")
    guard: dict[str, Any] | None = Field(description="The accuracy guard's record for this pair, when one was made at import.")
    placement: Literal["service", "inline"] = Field(
        description="Where the model runs (MODEL_PLACEMENT): its own model service, or inline in the public worker.")


class BatchingLimits(BaseModel):
    max_batch_size: int = Field(description="Texts per adaptive batch (MAX_BATCH_SIZE).")
    max_latency_ms: int = Field(description="Longest a text may wait in the batch queue (MAX_LATENCY_MS).")
    batch_wait_ms: float = Field(description="Longest the batcher holds texts back to grow a batch (BATCH_WAIT_MS).")
    regroup_wait: float = Field(description="Longest the next batch waits for the requests the last one answered, "
                                "in multiples of the last batch's time (BATCH_REGROUP_WAIT; 0: never).")
    max_queued_texts: int = Field(description="Texts that may wait for the model per worker before 503 (MAX_QUEUED_TEXTS).")


class RequestLimits(BaseModel):
    max_texts: int = Field(description="Texts per request (MAX_TEXTS).")
    max_text_chars: int = Field(description="Characters per text (MAX_TEXT_CHARS).")
    max_body_bytes: int = Field(description="Request body size (MAX_BODY_BYTES).")
    max_tokenizing_chars: int = Field(description="Characters a worker tokenizes at once before 503 (MAX_TOKENIZING_CHARS).")
    request_timeout_s: float = Field(description="Longest a request may take (REQUEST_TIMEOUT_S).")


class ServiceInfo(BaseModel):
    """GET /info: which model answers and how, computed once at start-up."""

    version: str = Field(description="The service's version.")
    model: ModelInfo
    served_by: ServedBy
    batching: BatchingLimits
    limits: RequestLimits
    api_keys_required: bool = Field(description="Whether POST /predict needs Authorization: Bearer <key>.")

"""The public API contract: what `POST /predict` takes and gives.

Limits come from settings so that operators change them with env vars; the
examples pre-fill the Swagger UI.
"""

from __future__ import annotations

from typing import Annotated, Literal

import bentoml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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
        None, description="Only the k best labels per text, best first (default: every label, in label-id order)."
    )
    raw_scores: Annotated[bool, Field(strict=True)] = Field(
        False, description="Logits instead of probabilities (softmax or sigmoid, as the model's config says)."
    )
    truncation: Literal["right", "left"] = Field(
        "right", description='Which end of a text longer than the model\'s window is cut: "right" keeps the start, "left" the end.'
    )


class LabelScore(BaseModel):
    label: str
    score: float


class PredictResponse(BaseModel):
    predictions: list[list[LabelScore]] = Field(
        ...,
        description="One list per input text, in input order: every label of the model "
        "in label-id order (or the top_k best, best first). Scores follow the model's config: "
        "softmax for single-label classifiers (they sum to 1), a sigmoid per label for "
        "multi-label ones, the raw value for regression; logits with raw_scores.",
    )


class Health(BaseModel):
    status: str = "healthy"

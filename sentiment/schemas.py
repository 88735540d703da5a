"""The public API contract: what `POST /predict` takes and gives.

Limits come from settings so that operators change them with env vars; the
examples pre-fill the Swagger UI.
"""

from __future__ import annotations

from typing import Annotated

import bentoml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .settings import get_settings

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


class LabelScore(BaseModel):
    label: str
    score: float


class PredictResponse(BaseModel):
    predictions: list[list[LabelScore]] = Field(
        ...,
        description="One list per input text, in input order; every label of the "
        "model in label-id order with softmax scores that sum to 1.",
    )


class Health(BaseModel):
    status: str = "healthy"

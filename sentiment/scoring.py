"""How a model's logits become the scores a client gets: the model's own config decides.

    problem_type "multi_label_classification"  -> sigmoid per label (independent)
    one label (num_labels == 1)                -> the raw value (regression)
    otherwise (single-label, 2+ labels)        -> softmax over the labels

Labels come from `id2label`, in label-id order. The model service returns logits
and the cache stores logits, so `raw_scores` and `top_k` are views of the same
cached numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Function = Literal["softmax", "sigmoid", "none"]


@dataclass(frozen=True)
class Scoring:
    labels: tuple[str, ...]
    function: Function

    @classmethod
    def from_model_dir(cls, model_dir: str) -> Scoring:
        """From a stored model's config.json, without importing transformers."""
        from .tokenization import read_model_config

        config = read_model_config(model_dir)
        labels = tuple(config["id2label"][i] for i in range(config["num_labels"]))
        problem_type = config.get("problem_type")
        if len(labels) == 1 or problem_type == "regression":
            return cls(labels, "none")
        if problem_type == "multi_label_classification":
            return cls(labels, "sigmoid")
        return cls(labels, "softmax")

    @property
    def is_classifier(self) -> bool:
        return self.function != "none"

    def scores(self, logits: Sequence[float]) -> list[float]:
        if self.function == "softmax":
            top = max(logits)
            exps = [math.exp(x - top) for x in logits]
            total = sum(exps)
            return [e / total for e in exps]
        if self.function == "sigmoid":
            return [_sigmoid(x) for x in logits]
        return [float(x) for x in logits]

    def top_label(self, logits: Sequence[float]) -> int:
        """The predicted class (for accuracy and the guard): the largest score."""
        return max(range(len(logits)), key=logits.__getitem__)


def _sigmoid(x: float) -> float:
    # split by sign: exp never overflows
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)

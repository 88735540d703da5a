"""What a model's own config says about its outputs: labels, the score function, the predicted class.

    problem_type "multi_label_classification"  -> sigmoid per label (independent)
    one label (num_labels == 1)                -> the raw value (regression)
    otherwise (single-label, 2+ labels)        -> softmax over the labels

Labels come from `config.json`'s `id2label`, in label-id order, read here and
nowhere else (without importing transformers). The model service returns logits
and the cache stores logits, so `raw_scores` and `top_k` are views of the same
cached numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Function = Literal["softmax", "sigmoid", "none"]


def read_model_config(model_dir: str | Path) -> dict[str, Any]:
    """config.json with what transformers' PretrainedConfig derives from it: `num_labels`
    and an `id2label` with int keys (default labels LABEL_i, two of them, as transformers)."""
    raw = json.loads((Path(model_dir) / "config.json").read_text())
    id2label = {int(k): str(v) for k, v in (raw.get("id2label") or {}).items()}
    if not id2label:
        id2label = {i: f"LABEL_{i}" for i in range(int(raw.get("num_labels", 2)))}
    return {**raw, "id2label": id2label, "num_labels": len(id2label)}


def predicted_class(row: Sequence[float]) -> int:
    """The label id with the largest value; the same for logits and for any score function here
    (all are monotonic), so accuracy and the accuracy guard compare classes with it."""
    return max(range(len(row)), key=row.__getitem__)


@dataclass(frozen=True)
class Scoring:
    labels: tuple[str, ...]
    function: Function

    @classmethod
    def from_model_dir(cls, model_dir: str | Path) -> Scoring:
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

    @property
    def problem_type(self) -> str:
        """As transformers names it."""
        return {"softmax": "single_label_classification", "sigmoid": "multi_label_classification"}.get(self.function, "regression")

    def aggregate(self, windows: Sequence[Sequence[float]]) -> list[float]:
        """One text's logits from its windows' (`long_text: "chunk"`); a text of one window keeps its own.

        Chosen by measurement (`python -m benchmark.long_reviews`, README "Long texts"):
        for a softmax model the most confident window answers for the text (the window
        whose best label has the highest probability: 88.8-91.9% on long reviews, against
        84.4-86.2% for the mean of the windows' logits, 80.6-81.2% for the mean of their
        probabilities and 70-72% for either truncation). A sigmoid model takes, label by
        label, its most confident window the same way (the largest logit: a label any
        window finds); a regression model the mean of its windows. Those two could not be
        measured here (no long multi-label or regression data).
        """
        if len(windows) == 1:
            return list(windows[0])
        if self.function == "softmax":
            return list(max(windows, key=lambda w: max(self.scores(w))))
        if self.function == "sigmoid":
            return [max(label) for label in zip(*windows)]
        return [sum(v) / len(windows) for v in zip(*windows)]

    def answer(self, logits: Sequence[float], top_k: int | None = None, raw_scores: bool = False) -> list[tuple[str, float]]:
        """(label, score) in label-id order, or the `top_k` best, best first (as transformers' pipeline)."""
        pairs = list(zip(self.labels, list(logits) if raw_scores else self.scores(logits)))
        if top_k is not None:
            pairs = sorted(pairs, key=lambda pair: pair[1], reverse=True)[:top_k]
        return pairs

    def scores(self, logits: Sequence[float]) -> list[float]:
        if self.function == "softmax":
            top = max(logits)
            exps = [math.exp(x - top) for x in logits]
            total = sum(exps)
            return [e / total for e in exps]
        if self.function == "sigmoid":
            return [_sigmoid(x) for x in logits]
        return [float(x) for x in logits]


def _sigmoid(x: float) -> float:
    # split by sign: exp never overflows
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)

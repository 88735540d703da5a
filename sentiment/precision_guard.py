"""Accuracy guard for the fast inference paths, and the `PRECISION=auto` choice.

A precision passes when its labels agree with fp32 on at least 99.5% of a labelled
set and its accuracy is at most 0.3 point below fp32's. `train_or_import.py guard`
measures this (and the speed of each precision on this CPU) and records it in the
stored model's metadata; `PRECISION=auto` then serves the fastest recorded
precision that passed and that this CPU can run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

MIN_AGREEMENT = 0.995
MAX_ACCURACY_DROP = 0.003


@dataclass(frozen=True)
class GuardResult:
    precision: str
    agreement: float  # share of texts whose label equals fp32's
    accuracy: float
    fp32_accuracy: float
    max_score_diff: float
    texts_per_s: float  # batched throughput measured while scoring the set

    @property
    def passed(self) -> bool:
        # accuracies are ratios of counts: compare with a tolerance for float rounding
        return self.agreement >= MIN_AGREEMENT and self.fp32_accuracy - self.accuracy <= MAX_ACCURACY_DROP + 1e-9

    def as_metadata(self) -> dict[str, Any]:
        return {**{k: round(v, 5) if isinstance(v, float) else v for k, v in asdict(self).items()}, "passed": self.passed}


def _argmax(row: Sequence[float]) -> int:
    return max(range(len(row)), key=row.__getitem__)


def score_all(
    predict: Callable[[list[str]], list[list[float]]], texts: Sequence[str], batch_size: int = 32
) -> tuple[list[list[float]], float]:
    """Scores for every text, and the throughput (texts/s) it took."""
    rows: list[list[float]] = []
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        rows.extend(predict(list(texts[i : i + batch_size])))
    return rows, len(texts) / (time.perf_counter() - start)


def compare(
    precision: str, reference: Sequence[Sequence[float]], rows: Sequence[Sequence[float]],
    labels: Sequence[int], texts_per_s: float,
) -> GuardResult:
    """Judge `rows` (scores at `precision`) against fp32 `reference` scores and gold `labels`."""
    n = len(labels)
    ref_labels = [_argmax(r) for r in reference]
    got_labels = [_argmax(r) for r in rows]
    return GuardResult(
        precision=precision,
        agreement=sum(a == b for a, b in zip(ref_labels, got_labels)) / n,
        accuracy=sum(a == y for a, y in zip(got_labels, labels)) / n,
        fp32_accuracy=sum(a == y for a, y in zip(ref_labels, labels)) / n,
        max_score_diff=max(abs(a - b) for r, g in zip(reference, rows) for a, b in zip(r, g)),
        texts_per_s=texts_per_s,
    )


def choose_precision(recorded: dict[str, dict[str, Any]] | None, supported: Sequence[str]) -> str:
    """The fastest precision that passed the guard and that this CPU supports; fp32 otherwise."""
    candidates = [
        (result.get("texts_per_s", 0.0), precision)
        for precision, result in (recorded or {}).items()
        if result.get("passed") and precision in supported
    ]
    return max(candidates)[1] if candidates else "fp32"

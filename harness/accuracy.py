"""Accuracy as a client of `POST /predict` sees it, and as `train_or_import.py eval` prints it:
one way to measure both, for the accuracy test and the benchmark."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from sentiment.model.scoring import predicted_class
from sentiment.store.data import Example

CHUNK = 64  # texts per request


def served_accuracy(url: str, examples: Sequence[Example], chunk: int = CHUNK) -> float:
    """The share of `examples` whose top label from the service at `url` is their own."""
    correct = 0
    with httpx.Client(timeout=120) as client:
        for start in range(0, len(examples), chunk):
            part = examples[start : start + chunk]
            r = client.post(f"{url}/predict", json={"text": [e.sentence for e in part]})
            assert r.status_code == 200, r.text
            for example, row in zip(part, r.json()["predictions"]):
                correct += predicted_class([label["score"] for label in row]) == example.label
    return correct / len(examples)


def eval_accuracy(stdout: str) -> float:
    """The accuracy `train_or_import.py eval` printed ("accuracy: 0.8979 (783/872) ...")."""
    return float(stdout.split("accuracy:")[1].split()[0])

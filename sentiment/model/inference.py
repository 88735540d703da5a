"""Running the classifier on token ids, as cheaply as the CPU allows.

One batch from the adaptive batcher (token ids, tokenized by the public service):
sort by token length and cut into groups (`sentiment/batching/groups.py`) -> pad
each group only to its own longest text -> forward pass (the engine's: torch, or
OpenVINO on the stored export, `sentiment/model/engines.py`) -> logits in label-id
order, put back in input order. Scores from logits: `sentiment/model/scoring.py`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..batching.groups import plan_groups
from .cpu import engine_threads
from .engines import Engine, load_engine
from .scoring import Scoring
from .tokenization import load_tokenizer


@dataclass
class BatchStats:
    """What one call of `logits` did, for metrics."""

    texts: int = 0
    padded_tokens: int = 0  # tokens fed to the model, padding included
    groups: int = 0
    infer_s: float = 0.0
    rechecked: int = 0  # texts int8 recomputed in fp32 (sentiment/model/recheck.py)


class Classifier:
    """A sequence classifier from a stored `save_pretrained` folder, run by one engine at one precision."""

    def __init__(
        self,
        path: str | Path,
        engine: str = "torch",
        precision: str = "fp32",
        max_length: int = 512,
        group_max_texts: int = 32,
        group_max_tokens: int = 8192,
        threads: int = 0,  # engine threads; 0 = the cores this process may use
    ) -> None:
        self.path = str(path)
        self.max_length = max_length
        self.group_max_texts = group_max_texts
        self.group_max_tokens = group_max_tokens
        # refuses a pair this machine cannot run (bf16 without the instructions), never falls back
        self.engine: Engine = load_engine(self.path, engine, precision, engine_threads(threads))
        self.tokenizer = load_tokenizer(self.path)
        self.pad_id = self.tokenizer.pad_token_id
        self.scoring = Scoring.from_model_dir(self.path)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer.encode(texts, self.max_length)

    def scores(self, texts: Sequence[str], stats: BatchStats | None = None) -> list[list[float]]:
        """What a client gets per text, in label-id order and input order: softmax, sigmoid or the
        raw value, as the model's config says (`Scoring`)."""
        if not texts:
            return []
        return [self.scoring.scores(row) for row in self.logits(self.token_ids(texts), stats)]

    def logits(self, ids: Sequence[Sequence[int]], stats: BatchStats | None = None) -> list[list[float]]:
        """Logits for texts already tokenized (token ids with special tokens), in input order."""
        stats = stats if stats is not None else BatchStats()
        if not ids:
            return []
        start = time.perf_counter()
        ids = [list(x)[: self.max_length] for x in ids]
        out: list[list[float]] = [[] for _ in ids]
        rechecked = self.engine.rechecked
        for group in plan_groups([len(x) for x in ids], self.group_max_texts, self.group_max_tokens):
            input_ids, mask = self._padded([ids[i] for i in group])
            for i, row in zip(group, self.engine.logits(input_ids, mask).tolist()):
                out[i] = row
            stats.groups += 1
            stats.padded_tokens += input_ids.size
        stats.texts += len(ids)
        stats.rechecked += self.engine.rechecked - rechecked
        stats.infer_s += time.perf_counter() - start
        return out

    def _padded(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        longest = max(len(x) for x in ids)
        input_ids = np.full((len(ids), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        return input_ids, mask

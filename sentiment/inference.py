"""Running the classifier on a batch of texts, as cheaply as the CPU allows.

Stages inside one batch: tokenize (no padding) -> sort by token length ->
split into groups bounded in texts and padded tokens -> pad each group only to
its own longest text -> forward pass (the engine's: torch, or OpenVINO on the
stored export, see `sentiment/engines.py`) -> logits in label-id order, put back in
input order. Scores from logits: `sentiment/scoring.py`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .engines import Engine, cpu_supports_bf16, load_engine
from .scoring import Scoring
from .tokenization import Tokenizer, load_tokenizer

logger = logging.getLogger(f"bentoml.{__name__}")  # under BentoML's log handlers


def available_cpus() -> int:
    """Cores this process may really use: CPU affinity, capped by a cgroup CPU quota."""
    cpus = len(os.sched_getaffinity(0))
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def _cgroup_cpu_quota() -> float | None:
    try:  # cgroup v2
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def cpu_share(requested: int = 0, processes_sharing: int = 1) -> int:
    """Threads for this process's engine: `requested`, else its share of the cores it may use."""
    return requested or max(1, available_cpus() // max(1, processes_sharing))


def configure_torch_threads(requested: int = 0, processes_sharing: int = 1) -> int:
    """Set torch's intra-op threads to this process's share of the cores.

    BentoML's new-style services set no OMP_NUM_THREADS, so without this torch
    would start one thread per host core in every worker and oversubscribe.
    """
    import torch

    threads = cpu_share(requested, processes_sharing)
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # only settable before first parallel work
        torch.set_num_interop_threads(1)
    return threads


def plan_groups(
    lengths: Sequence[int], max_texts: int, max_tokens: int, overhead_tokens: int = 48
) -> list[list[int]]:
    """Indices sorted by length, cut into groups that minimise padded work.

    The cost of running a group is about `overhead_tokens` (fixed cost of one
    forward pass, measured on DistilBERT/CPU as roughly 50 tokens' worth) plus
    count x longest. Over texts sorted by length the best cut is found exactly by
    dynamic programming; a group holds at most `max_texts` texts and at most
    `max_tokens` padded tokens (a single longer text still forms its own group).
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    sizes = [lengths[i] for i in order]
    n = len(sizes)
    best = [0.0] + [float("inf")] * n  # best[i]: cost of the first i texts
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        longest = sizes[end - 1]  # sorted ascending: the last text is the longest
        for start in range(end - 1, max(-1, end - 1 - max_texts), -1):
            count = end - start
            if count > 1 and count * longest > max_tokens:
                break
            cost = best[start] + overhead_tokens + count * longest
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups: list[list[int]] = []
    end = n
    while end > 0:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]


@dataclass
class BatchStats:
    """What one call of `predict_proba` did, for metrics."""

    texts: int = 0
    tokens: int = 0  # real tokens, special tokens included
    padded_tokens: int = 0  # tokens fed to the model, padding included
    groups: int = 0
    tokenize_s: float = 0.0
    infer_s: float = 0.0


@dataclass
class Classifier:
    """A sequence classifier from a stored `save_pretrained` folder, run by one engine at one precision."""

    path: str
    precision: str = "fp32"
    engine: str = "torch"
    max_length: int = 512
    group_max_texts: int = 32
    group_max_tokens: int = 8192
    group_overhead_tokens: int = 48
    threads: int = 0  # engine threads; 0 = this process's share of the cores
    runner: Engine = field(init=False, repr=False)
    tokenizer: Tokenizer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.precision == "bf16" and not cpu_supports_bf16():
            logger.warning("bf16 requested but this CPU has no AVX512-BF16/AMX: using fp32")
            self.precision = "fp32"
        self.tokenizer = load_tokenizer(self.path)
        self.runner = load_engine(self.path, self.engine, self.precision, self.threads or available_cpus())
        self.pad_id = self.tokenizer.pad_token_id
        self.scoring = Scoring.from_model_dir(self.path)
        self.labels = list(self.scoring.labels)

    def _padded(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        longest = max(len(x) for x in ids)
        input_ids = np.full((len(ids), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        return input_ids, mask

    def groups(self, ids: list[list[int]]) -> Iterator[list[int]]:
        yield from plan_groups(
            [len(x) for x in ids], self.group_max_texts, self.group_max_tokens, self.group_overhead_tokens
        )

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer.encode(texts, self.max_length)

    def predict_proba(self, texts: Sequence[str], stats: BatchStats | None = None) -> list[list[float]]:
        """Scores in label-id order (softmax, sigmoid or raw, as the model's config says), in input order."""
        stats = stats if stats is not None else BatchStats()
        if not texts:
            return []
        t0 = time.perf_counter()
        ids = self.token_ids(texts)
        stats.tokenize_s += time.perf_counter() - t0
        return [self.scoring.scores(row) for row in self.logits_for_ids(ids, stats)]

    def logits_for_ids(self, ids: Sequence[Sequence[int]], stats: BatchStats | None = None) -> list[list[float]]:
        """Logits for texts already tokenized (token ids with special tokens), in input order."""
        stats = stats if stats is not None else BatchStats()
        if not ids:
            return []
        t1 = time.perf_counter()
        ids = [list(x)[: self.max_length] for x in ids]
        out: list[list[float]] = [[] for _ in ids]
        for group in self.groups(ids):
            input_ids, mask = self._padded([ids[i] for i in group])
            for i, row in zip(group, self.runner.logits(input_ids, mask).tolist()):
                out[i] = row
            stats.groups += 1
            stats.padded_tokens += input_ids.size
        stats.texts += len(ids)
        stats.tokens += sum(len(x) for x in ids)
        stats.infer_s += time.perf_counter() - t1
        return out

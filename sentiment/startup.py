"""Start-up, stage by stage: logged once and exported on /metrics.

How long a pod takes from start to ready decides how fast autoscaling can add
capacity and what the startupProbe must allow; these figures are where the
manifests' probe timings come from (docs/deployment.md).

    imports         process start -> the service's constructor runs (Python, BentoML, our modules)
    threads         the model service's share of the cores (imports torch when torch serves)
    tokenizer_load  tokenizer and config in the public service, when the model runs inline
    model_load      tokenizer, config and engine (the model service, or inline the public one), which includes
      engine_read     reading the weights or the OpenVINO IR
      engine_compile  OpenVINO compiling the graph for this CPU
    warm_up         the first batches (kernels picked, memory allocated)
    gc_freeze       a last collection, then the start-up objects leave the collector's sight
    total           process start -> ready
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import psutil

from . import metrics

logger = logging.getLogger("bentoml.sentiment.startup")  # under BentoML's log handlers


class StartupTimer:
    """Times the named stages of one service's start-up; `imports` is measured from process start."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.stages: dict[str, float] = {}
        self._started = time.time()
        self._record("imports", max(0.0, self._started - psutil.Process().create_time()))

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._record(name, time.perf_counter() - start)

    def record(self, stages: dict[str, float]) -> None:
        """Stages timed elsewhere (the engine's read and compile)."""
        for name, seconds in stages.items():
            self._record(name, seconds)

    def _record(self, name: str, seconds: float) -> None:
        self.stages[name] = self.stages.get(name, 0.0) + seconds
        metrics.STARTUP_SECONDS.labels(service=self.service, stage=name).set(self.stages[name])

    def done(self) -> float:
        """Log the stages and the total since the process started; returns the total."""
        total = self.stages["imports"] + (time.time() - self._started)
        self._record("total", total)
        parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.stages.items() if name != "total")
        logger.info("start-up of %s: %s; ready %.2f s after the process started", self.service, parts, total)
        return total

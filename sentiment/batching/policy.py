"""Batch policy of the model service: when BentoML's adaptive batcher releases a batch.

BentoML's dispatcher learns how long to hold requests back from the average
wait of recent batches. After a burst that average is large (requests queued
behind running batches), and since each held request feeds its own wait back
into the average, a lone client afterwards keeps waiting for batches that no
longer come (measured: 11.9 req/s instead of 32.9 for one client after a burst;
README, "Adaptive batching").

On a CPU the model runs one batch at a time, so holding requests while it is
idle only adds latency: batches form by themselves from what queues up while
the previous batch runs. The policy here caps the learned wait at
`BATCH_WAIT_MS` (default 0: dispatch as soon as the model is free), and reports
both waits as `sentiment_batch_wait_seconds{kind="learned"|"applied"}`.

BentoML (pinned in requirements.txt) exposes no setting for this, so the
dispatcher's optimizer class is replaced before the service app creates its
dispatchers (no upstream issue asks for a setting; the behaviour is BentoML's
`Optimizer.trigger_refresh` in `bentoml/_internal/marshal/dispatcher.py`, and the
closest upstream discussion of the learned wait is bentoml/BentoML#3664).
`verify_batch_policy()` is the tripwire: the model service runs it at start-up and
refuses to start if an upgrade made the patch ineffective; `tests/sentiment/batching/test_policy.py`
checks it, `tests/test_batching.py` the behaviour end to end.
"""

from __future__ import annotations

from bentoml._internal.marshal import dispatcher as _dispatcher

from .. import metrics

_OriginalOptimizer = _dispatcher.Optimizer


class BoundedWaitOptimizer(_OriginalOptimizer):
    """BentoML's optimizer whose learned wait never exceeds `max_wait_s`."""

    max_wait_s: float = 0.0

    @property
    def wait(self) -> float:
        return self._wait

    @wait.setter
    def wait(self, value: float) -> None:
        self.learned = max(0.0, value)
        self._wait = min(self.learned, self.max_wait_s)

    def trigger_refresh(self) -> None:
        """BentoML's refresh from recent batches (never run by the start-up probe), then both waits as metrics."""
        super().trigger_refresh()
        metrics.BATCH_WAIT.labels(kind="learned").set(self.learned)
        metrics.BATCH_WAIT.labels(kind="applied").set(self._wait)


def install_batch_policy(max_wait_ms: float) -> None:
    """Make every dispatcher created from now on use the bounded wait."""
    BoundedWaitOptimizer.max_wait_s = max_wait_ms / 1000.0
    _dispatcher.Optimizer = BoundedWaitOptimizer


def verify_batch_policy() -> None:
    """Fail loudly unless a dispatcher built the way BentoML builds them clamps its wait."""
    import inspect

    from _bentoml_impl.server import app as _app

    if getattr(_app, "CorkDispatcher", None) is not _dispatcher.CorkDispatcher:
        raise RuntimeError("BentoML's service app no longer uses bentoml._internal.marshal.dispatcher.CorkDispatcher: "
                           "the batch policy of sentiment/batching/policy.py has no effect; revisit it for this BentoML version")
    if "Optimizer(" not in inspect.getsource(_dispatcher.CorkDispatcher.__init__):
        raise RuntimeError("CorkDispatcher no longer creates its optimizer from the module's Optimizer: "
                           "the batch policy of sentiment/batching/policy.py has no effect")
    if "self.wait =" not in inspect.getsource(_OriginalOptimizer.trigger_refresh):
        raise RuntimeError("BentoML's Optimizer no longer learns its wait in trigger_refresh: "
                           "sentiment_batch_wait_seconds would not follow it (sentiment/batching/policy.py)")
    probe = _dispatcher.CorkDispatcher(max_latency_in_ms=10_000, max_batch_size=4, fallback=lambda: None)
    probe.optimizer.wait = 5.0
    if not isinstance(probe.optimizer, BoundedWaitOptimizer) or probe.optimizer.wait > BoundedWaitOptimizer.max_wait_s:
        raise RuntimeError("the dispatcher's optimizer does not clamp its wait: install_batch_policy() did not take effect")

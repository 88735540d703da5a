"""The batch policy's tripwire: a dispatcher built the way BentoML builds them clamps its learned wait."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def test_batch_policy_tripwire(monkeypatch) -> None:  # noqa: ANN001
    """A dispatcher built after install_batch_policy clamps its wait; undoing the patch fails loudly."""
    from bentoml._internal.marshal import dispatcher

    from sentiment.batching import policy

    policy.install_batch_policy(0)
    policy.verify_batch_policy()
    probe = dispatcher.CorkDispatcher(max_latency_in_ms=10_000, max_batch_size=4, fallback=lambda: None)
    probe.optimizer.wait = 3.0
    assert probe.optimizer.wait == 0.0
    monkeypatch.setattr(dispatcher, "Optimizer", policy._OriginalOptimizer)  # an upgrade that undoes the patch
    with pytest.raises(RuntimeError, match="does not clamp"):
        policy.verify_batch_policy()


def test_a_refresh_reports_the_learned_and_the_applied_wait() -> None:
    """BentoML's refresh learns the mean wait of recent batches; the metric shows it beside the capped one."""
    from bentoml._internal.marshal import dispatcher
    from prometheus_client import REGISTRY

    from sentiment.batching import policy

    policy.install_batch_policy(2)  # BATCH_WAIT_MS=2
    try:
        optimizer = dispatcher.CorkDispatcher(max_latency_in_ms=10_000, max_batch_size=4, fallback=lambda: None).optimizer
        for n, duration, wait in ((1, 0.010, 0.040), (4, 0.025, 0.080)):  # batches that queued behind others
            optimizer.o_stat.append((n, duration, wait))
        optimizer.trigger_refresh()
        assert optimizer.wait == 0.002
        wait = lambda kind: REGISTRY.get_sample_value("sentiment_batch_wait_seconds", {"kind": kind})  # noqa: E731
        assert wait("learned") == pytest.approx(0.060) and wait("applied") == 0.002
    finally:
        policy.install_batch_policy(0)

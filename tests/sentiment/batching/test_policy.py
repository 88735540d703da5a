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

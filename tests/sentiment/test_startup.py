"""The start-up timer (both services' stages through a real serve: tests/test_startup.py)."""

from __future__ import annotations

import pytest

from sentiment.startup import StartupTimer

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def test_timer_sums_repeated_stages_and_records_outside_ones() -> None:
    timer = StartupTimer("unit")
    with timer.stage("warm_up"):
        pass
    with timer.stage("warm_up"):
        pass
    timer.record({"engine_read": 0.25})
    total = timer.done()
    assert set(timer.stages) == {"imports", "warm_up", "engine_read", "total"}
    assert timer.stages["engine_read"] == 0.25 and total == timer.stages["total"] >= timer.stages["imports"]

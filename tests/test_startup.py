"""Start-up stages are timed, logged and exported (sentiment/startup.py)."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)


def startup_gauges(metrics: dict[str, float], service: str) -> dict[str, float]:
    found = {}
    for name, value in metrics.items():
        match = re.fullmatch(r'sentiment_startup_seconds\{(.*)\}', name)
        if match and f'service="{service}"' in match.group(1):
            found[re.search(r'stage="([^"]+)"', match.group(1)).group(1)] = value
    return found


def test_every_stage_of_both_services_is_on_metrics_and_in_the_log(server) -> None:  # noqa: ANN001
    metrics = server.metrics()
    engine = re.search(r'sentiment_model_info\{[^}]*engine="(\w+)"', "\n".join(k for k, v in metrics.items() if v == 1)).group(1)
    model = startup_gauges(metrics, "sentiment_model")
    expected = {"imports", "threads", "model_load", "engine_read", "warm_up", "gc_freeze", "total"} | ({"engine_compile"} if engine == "openvino" else set())
    assert set(model) == expected
    assert all(value >= 0 for value in model.values()) and model["total"] > 0
    # the engine's stages are inside model_load; everything is inside the total
    assert model["engine_read"] + model.get("engine_compile", 0) <= model["model_load"]
    assert sum(model[s] for s in ("imports", "threads", "model_load", "warm_up", "gc_freeze")) <= model["total"]
    public = startup_gauges(metrics, "sentiment")
    assert set(public) == {"imports", "model_load", "gc_freeze", "total"}
    log = server.log()
    assert "start-up of sentiment_model: imports" in log and "start-up of sentiment: imports" in log

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


def test_every_stage_is_on_metrics_and_in_the_log(server) -> None:  # noqa: ANN001
    """The default placement: the model loads in the public worker (tests/test_placement.py has the model service's)."""
    metrics = server.metrics()
    engine = re.search(r'sentiment_model_info\{[^}]*engine="(\w+)"', "\n".join(k for k, v in metrics.items() if v == 1)).group(1)
    public = startup_gauges(metrics, "sentiment")
    expected = {"imports", "tokenizer_load", "threads", "model_load", "engine_read", "warm_up", "gc_freeze", "total"}
    assert set(public) == expected | ({"engine_compile"} if engine == "openvino" else set())
    assert all(value >= 0 for value in public.values()) and public["total"] > 0
    # the engine's stages are inside model_load; everything is inside the total
    assert public["engine_read"] + public.get("engine_compile", 0) <= public["model_load"]
    assert sum(public[s] for s in ("imports", "tokenizer_load", "threads", "model_load", "warm_up", "gc_freeze")) <= public["total"]
    assert not startup_gauges(metrics, "sentiment_model")  # no model service
    assert "start-up of sentiment: imports" in server.log()

"""BentoML's traffic metrics label only the paths the services serve; anything else is `other`
(end to end, with BentoML's own metrics: tests/test_hardening.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bentoml._internal.server.http import instruments
from sentiment.http import traffic

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def test_unknown_paths_are_labelled_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traffic.BoundedTrafficMetrics, "known", frozenset({"/predict", "/livez"}))
    monkeypatch.setattr(traffic.BoundedTrafficMetrics, "prefixes", ("/static_content/",))
    label = traffic.BoundedTrafficMetrics.label
    assert [label(p) for p in ("/predict", "/livez", "/static_content/swagger-ui.css")] == ["/predict", "/livez", "/static_content/swagger-ui.css"]
    assert {label(p) for p in ("/x\n2026 [INFO] forged", "/" + "a" * 4000, "/predict/", "/PREDICT", "")} == {"other"}


def test_the_app_below_sees_the_real_path() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        seen.append(scope["path"])

    below = traffic._RealPath(app)
    asyncio.run(below({"type": "http", "path": traffic.OTHER, traffic._REAL_PATH: "/made-up"}, None, None))
    asyncio.run(below({"type": "http", "path": "/predict"}, None, None))
    assert seen == ["/made-up", "/predict"]


def test_the_tripwire_sees_the_patch_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    traffic.install_bounded_traffic_metrics(frozenset({"/predict"}))
    traffic.verify_bounded_traffic_metrics()
    monkeypatch.setattr(instruments, "RunnerTrafficMetricsMiddleware", traffic._Original)  # an upgrade that undoes it
    with pytest.raises(RuntimeError, match="has not taken effect"):
        traffic.verify_bounded_traffic_metrics()

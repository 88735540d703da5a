"""The benchmark's report writer, fed a small synthetic run (the real run is `python -m benchmark`)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.report import figures, peak_window_rate, write_report


def synthetic_run() -> dict:
    def metrics(t: float, texts: float, batches: float, hits: float, misses: float, ok: float, shed: float) -> tuple[float, dict[str, float]]:
        return t, {
            "sentiment_batch_texts_sum": texts, "sentiment_batch_texts_count": batches,
            'sentiment_cache_lookups_total{backend="redis",result="hit"}': hits,
            'sentiment_cache_lookups_total{backend="redis",result="miss"}': misses,
            'bentoml_service_request_total{endpoint="/predict",http_response_code="200",service_name="sentiment"}': ok,
            'bentoml_service_request_total{endpoint="/predict",http_response_code="503",service_name="sentiment"}': shed,
        }

    samples = [metrics(1000 + i, 150.0 * i, 3.0 * i, 10.0 * i, 2.0 * i, 20.0 * i, float(i // 5)) for i in range(20)]

    def scenario(start: float, ms: list[float], status: int = 200) -> dict:
        return {"started": start, "points": [(i * 0.1, m, status) for i, m in enumerate(ms)],
                "metrics": {"checks": {"passes": len(ms), "fails": 0}}}

    return {
        "precision": "bf16", "quick": True, "started": "now", "model": "synthetic",
        "raw": {"fp32": {"batch_1": 30.0, "batch_32": 100.0}, "bf16": {"batch_1": 50.0, "batch_32": 160.0}},
        "saturation": scenario(1000, [500.0] * 50), "course": scenario(1010, [3.0] * 98 + [40.0, 45.0]),
        "cached": scenario(1015, [1.5] * 100), "metrics": samples,
    }


def test_peak_rate_and_targets() -> None:
    run = synthetic_run()
    assert peak_window_rate(run["metrics"], "sentiment_batch_texts_sum") == 150.0
    f = figures(run)
    assert f["http_uncached_texts_per_s"] == 150.0
    assert f["http_vs_raw"] == 150.0 / 160.0
    assert f["course"]["p50_ms"] == 3.0 and f["course"]["p99_ms"] == 40.0 and f["course"]["errors"] == 0
    assert f["cached"]["p50_ms"] == 1.5


def test_report_folder_has_summary_charts_and_results(tmp_path: Path) -> None:
    write_report(synthetic_run(), tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    for chart in ("latency.png", "throughput.png", "batch_sizes.png", "cache_hit_ratio.png", "errors.png"):
        assert (tmp_path / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({chart})" in summary
    assert "| Uncached HTTP throughput ≥ 150 sentences/s (default precision) | 150.0 sentences/s (bf16) | met |" in summary
    assert "≥ 90% of raw batched (same precision) | 94%" in summary
    assert json.loads((tmp_path / "results.json").read_text())["cached"]["p50_ms"] == 1.5

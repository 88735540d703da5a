"""Turn one benchmark run's raw results into figures, PNG charts and a Markdown summary."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tests.helpers import metric_sum  # noqa: E402

Samples = list[tuple[float, dict[str, float]]]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def rates(samples: Samples, name: str, **labels: str) -> list[tuple[float, float]]:
    """Per-second rate of a counter between consecutive samples: [(time, rate)]."""
    out = []
    for (t0, s0), (t1, s1) in zip(samples, samples[1:]):
        out.append((t1, max(0.0, metric_sum(s1, name, **labels) - metric_sum(s0, name, **labels)) / (t1 - t0)))
    return out


def peak_window_rate(samples: Samples, name: str, window_s: float = 5.0) -> float:
    """Highest average rate of a counter over any `window_s` stretch."""
    best = 0.0
    for i, (t0, s0) in enumerate(samples):
        for t1, s1 in samples[i + 1 :]:
            if t1 - t0 >= window_s:
                best = max(best, (metric_sum(s1, name) - metric_sum(s0, name)) / (t1 - t0))
                break
    return best


def latency_figures(run: dict[str, Any]) -> dict[str, float]:
    points = run.get("points", [])
    ok = [ms for _, ms, status in points if status == 200]
    return {
        "requests": len(points),
        "errors": sum(1 for _, _, status in points if status != 200) + run["metrics"]["checks"].get("fails", 0),
        "p50_ms": percentile(ok, 0.5),
        "p99_ms": percentile(ok, 0.99),
    }


def figures(results: dict[str, Any]) -> dict[str, Any]:
    precision = results["precision"]
    raw_batched = results["raw"].get(precision, {}).get("batch_32", float("nan"))
    samples: Samples = results["metrics"]
    sat_start = results["saturation"]["started"]
    sat_end = sat_start + max((t for t, _, _ in results["saturation"]["points"]), default=0)
    during = [(t, s) for t, s in samples if sat_start - 1 <= t <= sat_end + 1]
    http_peak = peak_window_rate(during, "sentiment_batch_texts_sum")
    return {
        "raw": results["raw"],
        "precision": precision,
        "http_uncached_texts_per_s": http_peak,
        "http_vs_raw": http_peak / raw_batched if raw_batched == raw_batched else float("nan"),
        "saturation": latency_figures(results["saturation"]),
        "course": latency_figures(results["course"]),
        "cached": latency_figures(results["cached"]),
    }


def _over_time(points: list[tuple[float, float, int]]) -> tuple[list[int], list[float], list[float]]:
    buckets: dict[int, list[float]] = defaultdict(list)
    for t, ms, status in points:
        if status == 200:
            buckets[int(t)].append(ms)
    seconds = sorted(buckets)
    return seconds, [statistics.median(buckets[s]) for s in seconds], [percentile(buckets[s], 0.99) for s in seconds]


def charts(results: dict[str, Any], out: Path) -> list[str]:
    samples: Samples = results["metrics"]
    t0 = samples[0][0] if samples else 0.0
    names = []

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, scenario in zip(axes, ("saturation", "course", "cached")):
        seconds, p50, p99 = _over_time(results[scenario]["points"])
        ax.plot(seconds, p50, label="p50")
        ax.plot(seconds, p99, label="p99")
        ax.set_title(f"{scenario}: latency of POST /predict")
        ax.set_xlabel("s")
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=90)
    names.append("latency.png")

    def timeline(filename: str, title: str, series: list[tuple[str, list[tuple[float, float]]]], ylabel: str) -> None:
        fig, ax = plt.subplots(figsize=(10, 3.5))
        for label, data in series:
            ax.plot([t - t0 for t, _ in data], [v for _, v in data], label=label)
        ax.set_title(title)
        ax.set_xlabel("s since the service started taking load")
        ax.set_ylabel(ylabel)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / filename, dpi=90)
        names.append(filename)

    timeline("throughput.png", "Throughput", [
        ("texts/s through the model", rates(samples, "sentiment_batch_texts_sum")),
        ("requests/s", rates(samples, "bentoml_service_request_total", endpoint="/predict", service_name="sentiment")),
    ], "per second")
    batches = rates(samples, "sentiment_batch_texts_count")
    texts = rates(samples, "sentiment_batch_texts_sum")
    timeline("batch_sizes.png", "Adaptive batch size (texts per batch)", [
        ("mean texts per batch", [(t, x / b) for (t, x), (_, b) in zip(texts, batches) if b > 0]),
    ], "texts")
    hits, misses = rates(samples, "sentiment_cache_lookups_total", result="hit"), rates(samples, "sentiment_cache_lookups_total", result="miss")
    timeline("cache_hit_ratio.png", "Cache hit ratio", [
        ("hits / lookups", [(t, h / (h + m)) for (t, h), (_, m) in zip(hits, misses) if h + m > 0]),
    ], "ratio")
    total = rates(samples, "bentoml_service_request_total", endpoint="/predict", service_name="sentiment")
    ok = rates(samples, "bentoml_service_request_total", endpoint="/predict", service_name="sentiment", http_response_code="200")
    timeline("errors.png", "Non-200 answers (503 = load shed at saturation)", [
        ("non-200/s", [(t, a - b) for (t, a), (_, b) in zip(total, ok)]),
    ], "per second")
    plt.close("all")
    return names


def summary_markdown(f: dict[str, Any], results: dict[str, Any], chart_names: list[str]) -> str:
    precision = f["precision"]
    raw_rows = "\n".join(
        f"| {p} | {v.get('batch_1', float('nan')):.1f} | {v.get('batch_32', float('nan')):.1f} |" for p, v in f["raw"].items()
    )
    default_http = f["http_uncached_texts_per_s"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    targets = [
        ("Uncached HTTP throughput ≥ 90% of raw batched (same precision)", f"{f['http_vs_raw']:.0%} ({default_http:.1f} vs {f['raw'][precision]['batch_32']:.1f} sentences/s, {precision})", f["http_vs_raw"] >= 0.9),
        ("Uncached HTTP throughput ≥ 150 sentences/s (default precision)", f"{default_http:.1f} sentences/s ({precision})", default_http >= 150),
        ("Course scenario p99 ≤ 50 ms", f"{f['course']['p99_ms']:.1f} ms (p50 {f['course']['p50_ms']:.1f} ms)", f["course"]["p99_ms"] <= 50),
        ("Course scenario: zero errors", f"{f['course']['errors']} errors in {f['course']['requests']} requests", f["course"]["errors"] == 0),
        ("Cached texts p50 ≤ 3 ms end to end", f"{f['cached']['p50_ms']:.2f} ms (p99 {f['cached']['p99_ms']:.2f} ms)", f["cached"]["p50_ms"] <= 3),
    ]
    target_rows = "\n".join(f"| {name} | {value} | {verdict(ok)} |" for name, value, ok in targets)
    sat = f["saturation"]
    images = "\n\n".join(f"![{n}]({n})" for n in chart_names)
    return f"""# Benchmark report

Run {results['started']}{' (quick)' if results['quick'] else ''}; model: {results['model']};
serving precision {precision}; one machine: the service, Redis and the k6 load generator share its cores.

## Targets

| target | measured | |
| --- | --- | --- |
{target_rows}

## Raw model throughput (in process, the saturation run's kind of sentence, ~18 tokens)

| precision | batch 1 | batch 32 |
| --- | --- | --- |
{raw_rows}

## HTTP scenarios

| scenario | requests | non-200 | p50 | p99 |
| --- | --- | --- | --- | --- |
| saturation (unique texts, 10 per request, rising rate) | {sat['requests']} | {sat['errors']} | {sat['p50_ms']:.0f} ms | {sat['p99_ms']:.0f} ms |
| course (10 VUs, 95% cached payload) | {f['course']['requests']} | {f['course']['errors']} | {f['course']['p50_ms']:.1f} ms | {f['course']['p99_ms']:.1f} ms |
| cached only (1 VU) | {f['cached']['requests']} | {f['cached']['errors']} | {f['cached']['p50_ms']:.2f} ms | {f['cached']['p99_ms']:.2f} ms |

Uncached HTTP throughput is the best 5-second rate of texts through the model during
the saturation run; past it the service sheds load with 503 (counted as non-200 above).

## Charts

{images}
"""


def write_report(results: dict[str, Any], out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    f = figures(results)
    names = charts(results, out)
    (out / "summary.md").write_text(summary_markdown(f, results, names))
    (out / "results.json").write_text(json.dumps(f, indent=2, default=float))
    return f

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

from harness.prometheus import metric_sum  # noqa: E402

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


def closed_loop_figures(run: dict[str, Any]) -> dict[str, float]:
    """A k6/clients.js run: rates from k6's own counters, batch fill from the server's metrics."""
    m = run["metrics"]
    f = latency_figures(run)
    f["requests_per_s"] = m.get("http_reqs", {}).get("rate", 0.0)
    f["sentences_per_s"] = m.get("sentences_classified", {}).get("rate", 0.0)
    server = run.get("server_metrics", {})
    batches = server.get("sentiment_batch_texts_count", 0.0)
    f["mean_batch_texts"] = server.get("sentiment_batch_texts_sum", 0.0) / batches if batches else float("nan")
    return f


def figures(results: dict[str, Any]) -> dict[str, Any]:
    raw = results["raw"]
    fp32 = raw.get("torch/fp32", {})
    samples: Samples = results["metrics"]
    sat_start = results["saturation"]["started"]
    sat_end = sat_start + max((t for t, _, _ in results["saturation"]["points"]), default=0)
    during = [(t, s) for t, s in samples if sat_start - 1 <= t <= sat_end + 1]
    f: dict[str, Any] = {
        "raw": raw,
        "guard": results.get("guard", {}),
        "served": results["served"],
        "baseline": results["baseline"],
        "http_uncached_texts_per_s": peak_window_rate(during, "sentiment_batch_texts_sum"),
        "saturation": latency_figures(results["saturation"]),
        "course": latency_figures(results["course"]),
        "course_baseline": latency_figures(results["course_baseline"]),
    }
    for name in ("w1", "w2", "w3", "cached", "noop"):
        f[name] = closed_loop_figures(results[name])
    nan = float("nan")
    f["ratios"] = {
        "w1_vs_raw_fp32_a": f["w1"]["requests_per_s"] / fp32["a"] if fp32 else nan,
        "w3_vs_raw_fp32_b": f["w3"]["requests_per_s"] / fp32["b"] if fp32 else nan,
        "w2_vs_raw_fp32_a": f["w2"]["sentences_per_s"] / fp32["a"] if fp32 else nan,
        "cached_vs_noop": f["cached"]["requests_per_s"] / f["noop"]["requests_per_s"] if f["noop"]["requests_per_s"] else nan,
    }
    return f


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
    r = f["ratios"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    errors = {name: f[name]["errors"] for name in ("w1", "w2", "w3", "course", "cached", "course_baseline")}
    targets = [
        ("W1 requests/s ≥ 1.8x raw torch fp32 batch 32 (a)", f"{r['w1_vs_raw_fp32_a']:.2f}x ({f['w1']['requests_per_s']:.1f} req/s)", r["w1_vs_raw_fp32_a"] >= 1.8),
        ("W3 requests/s ≥ 3.5x raw torch fp32 batch 1 (b)", f"{r['w3_vs_raw_fp32_b']:.2f}x ({f['w3']['requests_per_s']:.1f} req/s)", r["w3_vs_raw_fp32_b"] >= 3.5),
        ("W2 sentences/s ≥ 2.5x raw torch fp32 batch 32 (a)", f"{r['w2_vs_raw_fp32_a']:.2f}x ({f['w2']['sentences_per_s']:.1f} sentences/s)", r["w2_vs_raw_fp32_a"] >= 2.5),
        ("Cached requests/s ≥ 90% of the no-op BentoML endpoint", f"{r['cached_vs_noop']:.0%} ({f['cached']['requests_per_s']:.0f} vs {f['noop']['requests_per_s']:.0f} req/s)", r["cached_vs_noop"] >= 0.9),
        (f"Course p99 lower than on today's path ({f['baseline']})", f"{f['course']['p99_ms']:.1f} ms vs {f['course_baseline']['p99_ms']:.1f} ms", f["course"]["p99_ms"] < f["course_baseline"]["p99_ms"]),
        ("Zero failed requests in every scenario", ", ".join(f"{k} {v}" for k, v in errors.items()), not any(errors.values())),
    ]
    target_rows = "\n".join(f"| {name} | {value} | {verdict(ok)} |" for name, value, ok in targets)
    raw_rows = "\n".join(
        f"| {pair} | {v['a']:.1f} | {v['b']:.1f} | {v['c']:.1f} | "
        + (f"{f['guard'][pair]['agreement']:.2%} | {f['guard'][pair]['accuracy']:.2%} | {'pass' if f['guard'][pair]['passed'] else 'FAIL'} |" if pair in f["guard"] else "– | – | – |")
        for pair, v in f["raw"].items()
    )
    scenario_rows = "\n".join(
        f"| {label} | {f[n]['requests_per_s']:.1f} | {f[n]['sentences_per_s']:.1f} | {f[n]['mean_batch_texts']:.1f} | {f[n]['p50_ms']:.1f} ms | {f[n]['p99_ms']:.1f} ms | {f[n]['errors']} |"
        for n, label in (("w1", "W1: 32 clients x 1 unique text"), ("w2", "W2: 16 clients x 8 unique texts"), ("w3", "W3: 1 client x 1 text"),
                         ("cached", "cached: 10 clients, cached text"), ("noop", "no-op BentoML endpoint, same load"))
    )
    sat = f["saturation"]
    images = "\n\n".join(f"![{n}]({n})" for n in chart_names)
    return f"""# Benchmark report

Run {results['started']}{' (quick)' if results['quick'] else ''}; model: {results['model']};
served as {f['served']} (what ENGINE=auto PRECISION=auto chose for the substitute model after
`import --eval`); one machine: the service, Redis and the k6 load generator share its cores.

## Targets

| target | measured | |
| --- | --- | --- |
{target_rows}

## Engines (in process, sentences/s) and the accuracy guard (substitute model, SST-2 dev)

a = batch 32 of 16-token sentences, b = batch 1 of 16 tokens, c = SST-2 dev in
length-sorted batches of 32; agreement is with torch fp32's labels.

| engine/precision | a | b | c | agreement | accuracy | guard |
| --- | --- | --- | --- | --- | --- | --- |
{raw_rows}

## End to end (k6, closed loop)

| workload | requests/s | sentences/s | texts per batch | p50 | p99 | failed |
| --- | --- | --- | --- | --- | --- | --- |
{scenario_rows}

| scenario | requests | non-200 | p50 | p99 |
| --- | --- | --- | --- | --- |
| saturation (unique texts, 10 per request, rising rate) | {sat['requests']} | {sat['errors']} | {sat['p50_ms']:.0f} ms | {sat['p99_ms']:.0f} ms |
| course (10 VUs, 95% cached payload), {f['served']} | {f['course']['requests']} | {f['course']['errors']} | {f['course']['p50_ms']:.1f} ms | {f['course']['p99_ms']:.1f} ms |
| course, today's path {f['baseline']} | {f['course_baseline']['requests']} | {f['course_baseline']['errors']} | {f['course_baseline']['p50_ms']:.1f} ms | {f['course_baseline']['p99_ms']:.1f} ms |

Uncached throughput at saturation (best 5-second rate of texts through the model):
{f['http_uncached_texts_per_s']:.1f} sentences/s; past it the service sheds load with 503.
{long_reviews_section(results)}
## Charts

{images}
"""


def long_reviews_section(results: dict[str, Any]) -> str:
    """The long-review accuracy table (benchmark/long_reviews.py), when the run measured it."""
    if not results.get("long_reviews"):
        return ""
    from benchmark.long_reviews import table

    return f"\n## Long texts: truncation and chunking (substitute model)\n\n{table(results['long_reviews'])}\n"


def write_report(results: dict[str, Any], out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    f = figures(results)
    names = charts(results, out)
    (out / "summary.md").write_text(summary_markdown(f, results, names))
    (out / "results.json").write_text(json.dumps(f, indent=2, default=float))
    return f

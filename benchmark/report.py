"""Turn one benchmark run's raw results into figures, PNG charts and a Markdown summary."""

from __future__ import annotations

import json
import math
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


UNSAMPLED_S = 5.0  # samples further apart than this: the sampler was paused (benchmark/run.py)


def rates(samples: Samples, name: str, **labels: str) -> list[tuple[float, float]]:
    """Per-second rate of a counter between consecutive samples: [(time, rate)]; NaN (a break in
    the charts' lines) across a stretch the sampler was paused."""
    out = []
    for (t0, s0), (t1, s1) in zip(samples, samples[1:]):
        if t1 - t0 > UNSAMPLED_S:
            out.append((t1, math.nan))
            continue
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
        **({"rounds": run["rounds"]} if run.get("rounds") else {}),
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
    f["cache_hits"] = metric_sum(server, "sentiment_cache_lookups_total", result="hit")  # 0 for unique texts
    requests = m.get("http_reqs", {}).get("count", 0.0)
    redis_calls = metric_sum(server, "sentiment_redis_roundtrip_seconds_count")  # lookups and writes (cache/merged.py)
    f["redis_calls_per_request"] = redis_calls / requests if requests and server else float("nan")
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
        "int8_recipe": results.get("int8_recipe"),
        "int8_recheck": results.get("int8_recheck"),
        "engine_in_rounds": results.get("engine_in_rounds"),
        "served_accuracy": results.get("served_accuracy"),
        "cpu": results.get("cpu", {}),
        "served": results["served"],
        "baseline": results["baseline"],
        "http_uncached_texts_per_s": peak_window_rate(during, "sentiment_batch_texts_sum"),
        "saturation": latency_figures(results["saturation"]),
        "course": latency_figures(results["course"]),
        "course_baseline": latency_figures(results["course_baseline"]),
    }
    f["request_work"] = results.get("request_work", {})
    f["batch_curve"] = results.get("batch_curve", {})
    f["profiles"] = results.get("profiles", {})
    for name in ("w1", "w2", "w3", "cached", "noop", "noop_w1", "noop_w3", "noop_untraced", "noop_untraced_w3",
                 "service_w1", "service_w2", "service_w3"):
        if name in results:
            f[name] = closed_loop_figures(results[name])
    f["stages"] = {name: stage_breakdown(results[name]) for name in STAGE_RUNS if name in results}
    f["ceilings"] = ceilings(f)
    f["ratios"] = ratios(f)
    return f


def dash_nan(value: float, digits: int) -> str:
    """A figure, or a dash where the run had no such series (the no-op endpoint has no batches, no Redis)."""
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def ceilings(f: dict[str, Any]) -> dict[str, float]:
    """What this machine can do, measured in the same run.

    E_a, E_b: the served pair in process (batch 32, batch 1); H_32, H_1: a no-op BentoML
    endpoint under W1's and W3's load. The service does both kinds of work on the same
    cores, so its ceilings are L1 = 1 / (1/E_a + 1/H_32) and L3 = 1 / (1/E_b + 1/H_1).
    """
    nan = float("nan")
    # measured between the W1 (and W2) and W3 rounds when the run alternated them (benchmark/run.py, side_by_side)
    served = {**f["raw"].get(f["served"], {}), **(f.get("engine_in_rounds") or {})}
    e_a, e_b = served.get("a", nan), served.get("b", nan)
    h_32 = f.get("noop_w1", {}).get("requests_per_s", nan)
    h_1 = f.get("noop_w3", {}).get("requests_per_s", nan)
    return {"E_a": e_a, "E_b": e_b, "H_32": h_32, "H_1": h_1,
            "L1": 1 / (1 / e_a + 1 / h_32) if e_a and h_32 else nan, "L3": 1 / (1 / e_b + 1 / h_1) if e_b and h_1 else nan}


def ratios(f: dict[str, Any]) -> dict[str, float]:
    nan = float("nan")
    passing_other = [v["a"] for pair, v in f["raw"].items()
                     if not pair.endswith("/int8") and f["guard"].get(pair, {}).get("passed")]
    int8 = f["raw"].get("openvino/int8", {}).get("a", nan)
    return {
        **_topology_ratios(f, ""),
        **(_topology_ratios(f, "service_") if "service_w1" in f else {}),
        "cached_vs_noop": f["cached"]["requests_per_s"] / f["noop"]["requests_per_s"] if f["noop"]["requests_per_s"] else nan,
        "int8_vs_fastest_other_a": int8 / max(passing_other) if passing_other else nan,
        "int8_targets": int8_targets(f["cpu"]),
    }


def int8_targets(cpu: dict[str, Any]) -> list[float]:
    """int8's speed targets against the fastest other passing pair: 1.5x on a CPU without bf16 (that pair is fp32),
    1.25x with AMX (bf16 on AMX tiles); a CPU with AVX512-BF16 and no AMX is neither case, so it is held to both."""
    flags = set(cpu.get("flags", []))
    if cpu.get("amx") or "amx_bf16" in flags:
        return [1.25]
    return [1.25, 1.5] if "avx512_bf16" in flags else [1.5]


def _topology_ratios(f: dict[str, Any], prefix: str) -> dict[str, float]:
    nan = float("nan")
    c = f["ceilings"]
    return {
        f"{prefix}w1_vs_L1": f[f"{prefix}w1"]["requests_per_s"] / c["L1"] if c["L1"] else nan,
        f"{prefix}w3_vs_L3": f[f"{prefix}w3"]["requests_per_s"] / c["L3"] if c["L3"] else nan,
        f"{prefix}w2_vs_E_a": f[f"{prefix}w2"]["sentences_per_s"] / c["E_a"] if c["E_a"] else nan,
    }


def stage_breakdown(run: dict[str, Any]) -> dict[str, float]:
    """Milliseconds per request in each stage the public service times (sentiment_stage_duration_seconds),
    the model worker's time per batch, and what is left of the client's mean latency: HTTP, JSON,
    validation, middlewares and the call between the services."""
    server = run.get("server_metrics", {})
    requests = metric_sum(server, "sentiment_stage_duration_seconds_count", stage="tokenize")
    if not requests:
        return {}
    out = {stage: 1000 * metric_sum(server, "sentiment_stage_duration_seconds_sum", stage=stage) / requests
           for stage in STAGES}
    batches = metric_sum(server, "sentiment_batch_texts_count")
    inference = metric_sum(server, "sentiment_inference_duration_seconds_sum", stage="forward")
    out["engine per batch"] = 1000 * inference / batches if batches else float("nan")
    out["batches"] = batches
    out["batches on the event loop"] = metric_sum(server, "sentiment_inline_batches_total", thread="event_loop")
    out["client mean"] = run["metrics"].get("http_req_duration", {}).get("avg", float("nan"))
    out["outside the stages"] = out["client mean"] - sum(out[stage] for stage in STAGES)
    return out


STAGES = ("tokenize", "cache_lookup", "model", "respond")
STAGE_RUNS = ("w1", "w3", "service_w1", "service_w3")


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
        ("mean texts per batch", [(t, x / b) for (t, x), (_, b) in zip(texts, batches) if b > 0 or math.isnan(b)]),
    ], "texts")
    hits, misses = rates(samples, "sentiment_cache_lookups_total", result="hit"), rates(samples, "sentiment_cache_lookups_total", result="miss")
    timeline("cache_hit_ratio.png", "Cache hit ratio", [
        ("hits / lookups", [(t, h / (h + m)) for (t, h), (_, m) in zip(hits, misses) if h + m > 0 or math.isnan(h + m)]),
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

    errors = {name: f[name]["errors"] for name in ("w1", "w2", "w3", "course", "cached", "course_baseline",
                                                   "service_w1", "service_w2", "service_w3") if name in f}
    c = f["ceilings"]
    int8_guard = f["guard"].get("openvino/int8", {})
    targets = []
    for prefix, where in (("", "model inline, the default"), ("service_", "model service")):
        if f"{prefix}w1" not in f:
            continue
        w1, w2, w3 = f[f"{prefix}w1"], f[f"{prefix}w2"], f[f"{prefix}w3"]
        targets += [
            (f"W1 req/s ≥ 0.85 x L1, mean batch ≥ 24 texts ({where})", f"{r[prefix + 'w1_vs_L1']:.2f} x L1 ({w1['requests_per_s']:.1f} vs {c['L1']:.1f} req/s), "
             f"{w1['mean_batch_texts']:.1f} texts per batch", r[prefix + "w1_vs_L1"] >= 0.85 and w1["mean_batch_texts"] >= 24),
            (f"W3 req/s ≥ 0.85 x L3 ({where})", f"{r[prefix + 'w3_vs_L3']:.2f} x L3 ({w3['requests_per_s']:.1f} vs {c['L3']:.1f} req/s)", r[prefix + "w3_vs_L3"] >= 0.85),
            (f"W2 sentences/s ≥ 0.85 x E_a ({where})", f"{r[prefix + 'w2_vs_E_a']:.2f} x E_a ({w2['sentences_per_s']:.1f} vs {c['E_a']:.1f})", r[prefix + "w2_vs_E_a"] >= 0.85),
        ]
    targets += [
        ("Cached req/s ≥ 0.95 x the no-op endpoint (same load)", f"{r['cached_vs_noop']:.0%} ({f['cached']['requests_per_s']:.0f} vs {f['noop']['requests_per_s']:.0f} req/s)"
         + (f"; {f['cached']['requests_per_s'] / f['noop_untraced']['requests_per_s']:.0%} of the no-op with tracing off" if "noop_untraced" in f else ""),
         r["cached_vs_noop"] >= 0.95),
        ("openvino/int8 passes the guard (substitute, SST-2 dev)", f"agreement {int8_guard.get('agreement', float('nan')):.2%}, accuracy {int8_guard.get('accuracy', float('nan')):.2%}"
         + (f", recipe {f['int8_recipe']}" if f.get("int8_recipe") else ""), bool(int8_guard.get("passed"))),
        *((f"openvino/int8 ≥ {target}x the fastest other passing pair at batch 32", f"{r['int8_vs_fastest_other_a']:.2f}x"
           + recheck_note(f), r["int8_vs_fastest_other_a"] >= target) for target in r["int8_targets"]),
        (f"Course p99 lower than on today's path ({f['baseline']})", f"{f['course']['p99_ms']:.1f} ms vs {f['course_baseline']['p99_ms']:.1f} ms", f["course"]["p99_ms"] < f["course_baseline"]["p99_ms"]),
        *served_accuracy_target(f.get("served_accuracy")),
        ("Zero failed requests in every scenario", ", ".join(f"{k} {v}" for k, v in errors.items()), not any(errors.values())),
    ]
    target_rows = "\n".join(f"| {name} | {value} | {verdict(ok)} |" for name, value, ok in targets)
    raw_rows = "\n".join(
        f"| {pair} | {v['a']:.1f} | {v['b']:.1f} | {v['c']:.1f} | "
        + (f"{f['guard'][pair]['agreement']:.2%} | {f['guard'][pair]['accuracy']:.2%} | {'pass' if f['guard'][pair]['passed'] else 'FAIL'} |" if pair in f["guard"] else "– | – | – |")
        for pair, v in f["raw"].items()
    )
    scenario_rows = "\n".join(
        f"| {label} | {f[n]['requests_per_s']:.1f} | {f[n]['sentences_per_s']:.1f} | {dash_nan(f[n]['mean_batch_texts'], 1)} | {f[n]['p50_ms']:.1f} ms | {f[n]['p99_ms']:.1f} ms | {f[n]['errors']} | {f[n]['cache_hits']:.0f} | {dash_nan(f[n]['redis_calls_per_request'], 2)} |"
        for n, label in (("w1", "W1: 32 clients x 1 unique text"), ("w2", "W2: 16 clients x 8 unique texts"), ("w3", "W3: 1 client x 1 text"),
                         ("service_w1", "W1, model service"), ("service_w2", "W2, model service"), ("service_w3", "W3, model service"),
                         ("cached", "cached: 10 clients, cached text"), ("noop", "no-op BentoML endpoint, same load"),
                         ("noop_w1", "no-op BentoML endpoint, W1's load (H_32)"), ("noop_w3", "no-op BentoML endpoint, W3's load (H_1)"),
                         ("noop_untraced", "no-op endpoint, tracing off, cached load"), ("noop_untraced_w3", "no-op endpoint, tracing off, W3's load"))
        if n in f
    )
    sat = f["saturation"]
    course_rounds = f", {f['course']['rounds']} rounds alternating with today's path" if f["course"].get("rounds") else ""
    images = "\n\n".join(f"![{n}]({n})" for n in chart_names)
    return f"""# Benchmark report

Run {results['started']}{' (quick)' if results['quick'] else ''}; model: {results['model']};
CPU: {cpu_line(f['cpu'])};
served as {f['served']} ({served_why(results)}); one machine: the service, Redis and the k6 load generator
share its cores.

## Targets

| target | measured | |
| --- | --- | --- |
{target_rows}

## Ceilings measured in this run

| | | sentences or requests/s |
| --- | --- | --- |
| E_a | {f['served']} in process, batch 32{rounds_note(f, 'w1', 'w2')} | {c['E_a']:.1f} |
| E_b | {f['served']} in process, batch 1{rounds_note(f, 'w3')} | {c['E_b']:.1f} |
| H_32 | no-op BentoML endpoint, W1's load (32 clients){rounds_note(f, 'w1')} | {c['H_32']:.1f} |
| H_1 | no-op BentoML endpoint, W3's load (1 client){rounds_note(f, 'w3')} | {c['H_1']:.1f} |
| L1 | 1 / (1/E_a + 1/H_32): model and HTTP work on the same cores | {c['L1']:.1f} |
| L3 | 1 / (1/E_b + 1/H_1) | {c['L3']:.1f} |
{untraced_rows(f)}
The service's `/metrics` is not scraped while the course rounds, W1, W2 and W3 run (today's path, the
no-op endpoint and the engine in process are not either); the charts' samples, once a second, come from
the other scenarios.
{stages_section(f)}
## Engines (in process, sentences/s) and the accuracy guard (substitute model, SST-2 dev)

a = batch 32 of 16-token sentences, b = batch 1 of 16 tokens, c = SST-2 dev in
length-sorted batches of 32; agreement is with torch fp32's labels.

| engine/precision | a | b | c | agreement | accuracy | guard |
| --- | --- | --- | --- | --- | --- | --- |
{raw_rows}

## End to end (k6, closed loop)

| workload | requests/s | sentences/s | texts per batch | p50 | p99 | failed | cache hits | Redis calls per request |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
{scenario_rows}

| scenario | requests | non-200 | p50 | p99 |
| --- | --- | --- | --- | --- |
| saturation (unique texts, 10 per request, rising rate) | {sat['requests']} | {sat['errors']} | {sat['p50_ms']:.0f} ms | {sat['p99_ms']:.0f} ms |
| course (10 VUs, 95% cached payload), {f['served']}{course_rounds} | {f['course']['requests']} | {f['course']['errors']} | {f['course']['p50_ms']:.1f} ms | {f['course']['p99_ms']:.1f} ms |
| course, today's path {f['baseline']} | {f['course_baseline']['requests']} | {f['course_baseline']['errors']} | {f['course_baseline']['p50_ms']:.1f} ms | {f['course_baseline']['p99_ms']:.1f} ms |

Uncached throughput at saturation (best 5-second rate of texts through the model):
{f['http_uncached_texts_per_s']:.1f} sentences/s; past it the service sheds load with 503.
{long_reviews_section(results)}
## Charts

{images}
"""


def served_accuracy_target(acc: dict[str, Any] | None) -> list[tuple[str, str, bool]]:
    """SST-2 dev through POST /predict after `import --eval` equals `eval` of the served pair within 0.1 point."""
    if not acc:
        return []
    same_pair = acc["served_by"] == acc["pair"]
    value = (f"served {acc['served']:.2%} ({acc['served_by']}), eval {acc['eval']:.2%} ({acc['pair']})"
             + ("" if same_pair else ": /info names another pair than auto's choice"))
    return [("SST-2 dev through POST /predict = eval of the served pair, within 0.1 point (substitute, after import --eval)",
             value, same_pair and abs(acc["served"] - acc["eval"]) <= 0.001 + 1e-9)]


def rounds_note(f: dict[str, Any], workload: str, *also: str) -> str:
    """Where a ceiling was measured: between the workload's rounds (and those of `also` run in them), when the run
    alternated them."""
    rounds = f.get(workload, {}).get("rounds")
    beside = "".join(f" and {other.upper()}" for other in also if f.get(other, {}).get("rounds") == rounds)
    split = ", the service with its model service" if f.get(f"service_{workload}", {}).get("rounds") == rounds else ""
    return f", between the {workload.upper()}{beside} rounds ({rounds}, alternating with the service{split} and the no-op endpoint)" if rounds else ""


def recheck_note(f: dict[str, Any]) -> str:
    """What the int8 figure includes: its fp32 rechecks, at the share the trained substitute had on SST-2 dev."""
    recheck = f.get("int8_recheck") or {}
    if not recheck:
        return ""
    return (f" (with its fp32 recheck: the substitute rechecked {recheck['share']:.1%} of SST-2 dev, "
            f"the full-size model {recheck['rechecked']} of the 32 texts timed)")


def cpu_line(cpu: dict[str, Any]) -> str:
    if not cpu:
        return "not recorded"
    return f"{cpu.get('model', '?')}, {cpu.get('cores', '?')} cores, flags {' '.join(cpu.get('flags', [])) or 'none of note'}"


def untraced_rows(f: dict[str, Any]) -> str:
    """The no-op endpoint as the service runs BentoML with tracing off: context for the targets, which use H as it comes."""
    rows = [(label, f[name]["requests_per_s"]) for name, label in (
        ("noop_untraced_w3", "no-op endpoint with tracing off (no span per request, as the service runs), W3's load"),
        ("noop_untraced", "the same, the cached run's load (10 clients)"),
    ) if name in f]
    return "".join(f"| | {label} | {value:.1f} |\n" for label, value in rows)


def request_work_line(f: dict[str, Any]) -> str:
    work = f.get("request_work") or {}
    if not work:
        return ""
    return (f"\nTokenizing one text into its cache key and ids costs {work['alone_us']:.0f} µs of CPU in a loop of its own and "
            f"{work['after_forward_us']:.0f} µs right after a batch-1 forward of {f['served']} on the same cores "
            f"({work['after_forward_us'] / work['alone_us']:.1f}x): the forward leaves the caches cold for the request's own work, "
            "so a lone request's HTTP and Python path costs more than the no-op endpoint's, measured on its own, and L3 "
            "(ceilings added as if measured together) is not reached by that much.\n")


def batch_curve_line(f: dict[str, Any]) -> str:
    """Why W1's batch size matters less than its target says: the engine's rate by batch size, beside W1's batches."""
    curve = f.get("batch_curve") or {}
    if not curve or "w1" not in f:
        return ""
    rates = ", ".join(f"{size}: {rate:.0f}" for size, rate in curve.items())
    batch = f["w1"]["mean_batch_texts"]
    why = (": the clients split into two cohorts, one computed while the other is answered and sends again, "
           "so a batch holds about half of them" if batch <= 0.6 * 32 else "")
    return (f"\n{f['served']} in process by batch size (texts: sentences/s): {rates}. Under W1 (32 clients, one call to the "
            f"model in flight) batches held {batch:.1f} texts{why}.\n")


PROFILE_RUNS = (("w1", "W1"), ("w3", "W3"), ("service_w1", "W1, model service"), ("service_w3", "W3, model service"))


def profiles_section(f: dict[str, Any]) -> str:
    """CPU ms per request by layer, per worker (benchmark/profile.py): one column per run and worker."""
    columns = [(f"{label}: {worker}", layers) for run, label in PROFILE_RUNS
               for worker, layers in (f.get("profiles", {}).get(run) or {}).get("workers", {}).items() if layers]
    if not columns:
        return ""
    layers = list(dict.fromkeys(layer for _, by in columns for layer in by if layer != "total")) + ["total"]
    head = " | ".join(name for name, _ in columns)
    rows = "\n".join(f"| {layer} | " + " | ".join(f"{by.get(layer, 0.0):.2f}" for _, by in columns) + " |" for layer in layers)
    return f"""
### CPU per request by layer (ms; py-spy of each worker, short extra runs)

Samples of running threads only, charged to the innermost frame's library; the raw
stacks are beside this report (`profile-*.txt`, flamegraph.pl's format).

| layer | {head} |
| --- | {" | ".join("---" for _ in columns)} |
{rows}
"""


def stages_section(f: dict[str, Any]) -> str:
    """Where a request's milliseconds go, from the service's own stage timings (means per request)."""
    if not any(f.get("stages", {}).values()):
        return ""
    names = [*STAGES, "outside the stages", "client mean", "engine per batch"]
    rows = "\n".join(f"| {name} | " + " | ".join(f"{f['stages'].get(w, {}).get(name, float('nan')):.2f}" for w in STAGE_RUNS) + " |"
                     for name in names)
    return f"""
## Where a request's time goes (ms, mean per request; the service's stage timings)

`model` is the call to the model (inline, or the model service): waiting for a batch, the engine,
and for the model service the hop both ways; `outside the stages` is what remains of the client's mean latency: HTTP parsing,
JSON, validation, the middlewares and k6 itself; `engine per batch` is the model
worker's forward pass for one adaptive batch.

| stage | W1 (32 clients) | W3 (1 client) | W1, model service | W3, model service |
| --- | --- | --- | --- | --- |
{rows}
{on_loop_line(f)}{request_work_line(f)}{batch_curve_line(f)}{profiles_section(f)}"""


def served_why(results: dict[str, Any]) -> str:
    """Why the run served its pair: auto's choice for the substitute model, or named with --serve."""
    auto = results.get("auto_chose", results["served"])
    if auto == results["served"]:
        return "what ENGINE=auto PRECISION=auto chose for the substitute model after `import --eval`"
    return f"named with --serve; auto chose {auto} for the substitute model after `import --eval`"


def on_loop_line(f: dict[str, Any]) -> str:
    """How many of the inline model's batches ran on the event loop (a lone request's small batch, no thread hop)."""
    runs = [(label, f["stages"][run]) for run, label in (("w1", "W1"), ("w3", "W3")) if f["stages"].get(run, {}).get("batches")]
    if not runs:
        return ""
    from sentiment.batching.inline import ON_LOOP_MAX_TOKENS

    counts = ", ".join(f"{label} {stages['batches on the event loop']:.0f} of {stages['batches']:.0f}" for label, stages in runs)
    return (f"\nBatches the model inline ran on the event loop itself, without the hop to the engine's thread and back "
            f"(a request alone in the worker, at most {ON_LOOP_MAX_TOKENS} tokens; sentiment/batching/inline.py): {counts}.\n")


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

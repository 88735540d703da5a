"""The benchmark's report writer, fed a small synthetic run (the real run is `python -m benchmark`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmark.report import figures, peak_window_rate, rates, summary_markdown, write_report

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


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

    def scenario(start: float, ms: list[float], status: int = 200, rate: float = 0.0, texts: int = 1, batch: float = 0.0,
                 on_loop: float = 0.0) -> dict:
        server = {"sentiment_batch_texts_sum": batch * 10, "sentiment_batch_texts_count": 10.0} if batch else {}
        if on_loop:  # of the 10 batches, those the model inline ran on the event loop
            server['sentiment_inline_batches_total{thread="event_loop"}'] = on_loop
            server['sentiment_inline_batches_total{thread="engine"}'] = 10.0 - on_loop
        if batch:  # 10 batches of `batch` requests; per request 0.5 ms tokenize, 3 ms model, 0.25 ms respond
            requests = batch * 10
            for stage, ms_each in (("tokenize", 0.5), ("cache_lookup", 0.0), ("model", 3.0), ("respond", 0.25)):
                server[f'sentiment_stage_duration_seconds_sum{{stage="{stage}"}}'] = requests * ms_each / 1000
                server[f'sentiment_stage_duration_seconds_count{{stage="{stage}"}}'] = requests
            server['sentiment_inference_duration_seconds_sum{stage="forward"}'] = 10 * 0.002
        return {"started": start, "points": [(i * 0.1, m, status) for i, m in enumerate(ms)],
                "metrics": {"checks": {"passes": len(ms), "fails": 0}, "http_reqs": {"rate": rate},
                            "sentences_classified": {"rate": rate * texts}, "http_req_duration": {"avg": sum(ms) / len(ms)}},
                "server_metrics": server}

    return {
        "quick": True, "started": "now", "model": "synthetic", "served": "openvino/int8", "baseline": "torch/bf16",
        "raw": {"torch/fp32": {"a": 100.0, "b": 40.0, "c": 80.0}, "openvino/bf16": {"a": 400.0, "b": 200.0, "c": 250.0},
                "openvino/int8": {"a": 500.0, "b": 260.0, "c": 300.0}},
        "guard": {"torch/fp32": {"agreement": 1.0, "accuracy": 0.8979, "passed": True},
                  "openvino/bf16": {"agreement": 0.9989, "accuracy": 0.8991, "passed": True},
                  "openvino/int8": {"agreement": 0.9954, "accuracy": 0.8968, "passed": True}},
        "int8_recipe": "transformer, FFN output and head in float",
        "cpu": {"model": "Some CPU", "cores": 2, "amx": False, "flags": ["avx2", "avx512_vnni"]},
        "saturation": scenario(1000, [500.0] * 50), "course": scenario(1010, [3.0] * 98 + [40.0, 45.0]),
        "course_baseline": scenario(1030, [3.0] * 98 + [60.0, 70.0]),
        "w1": scenario(1040, [80.0] * 100, rate=200.0, batch=24.0), "w2": scenario(1050, [90.0] * 100, rate=30.0, texts=8, batch=60.0),
        "w3": scenario(1060, [6.0] * 100, rate=150.0, batch=1.0, on_loop=9.0),
        "cached": scenario(1015, [1.5] * 100, rate=880.0), "noop": scenario(1070, [1.2] * 100, rate=950.0),
        "noop_w1": scenario(1080, [30.0] * 100, rate=1000.0), "noop_w3": scenario(1090, [1.0] * 100, rate=800.0),
        "noop_untraced": scenario(1095, [1.0] * 100, rate=1100.0), "noop_untraced_w3": scenario(1096, [0.8] * 100, rate=900.0),
        "profiles": {"w3": {"clients": 1, "requests_per_s": 100.0, "workers": {
            "sentiment": {"this service's code": 0.5, "BentoML and its HTTP stack (batcher, uvicorn, h11, Starlette, OpenTelemetry)": 1.0, "total": 1.5},
            "sentiment_model": {"engine (OpenVINO, torch, numpy; the calling thread)": 4.0, "total": 4.0}}}},
        "request_work": {"alone_us": 40.0, "after_forward_us": 120.0}, "batch_curve": {"1": 260.0, "12": 450.0, "32": 500.0},
        "service_w1": scenario(1100, [70.0] * 100, rate=300.0, batch=28.0),
        "service_w2": scenario(1110, [80.0] * 100, rate=55.0, texts=8, batch=60.0),
        "service_w3": scenario(1120, [4.0] * 100, rate=180.0, batch=1.0),
        "metrics": samples,
    }


def test_peak_rate_ceilings_ratios_and_batch_fill() -> None:
    run = synthetic_run()
    assert peak_window_rate(run["metrics"], "sentiment_batch_texts_sum") == 150.0
    f = figures(run)
    assert f["http_uncached_texts_per_s"] == 150.0
    c = f["ceilings"]  # served openvino/int8: E_a 500, E_b 260; H_32 1000, H_1 800
    assert (c["E_a"], c["E_b"], c["H_32"], c["H_1"]) == (500.0, 260.0, 1000.0, 800.0)
    assert c["L1"] == pytest.approx(1 / (1 / 500 + 1 / 1000)) and c["L3"] == pytest.approx(1 / (1 / 260 + 1 / 800))
    assert f["ratios"]["w1_vs_L1"] == pytest.approx(200.0 / c["L1"])
    assert f["ratios"]["w3_vs_L3"] == pytest.approx(150.0 / c["L3"])
    assert f["ratios"]["w2_vs_E_a"] == 240.0 / 500.0
    assert f["ratios"]["cached_vs_noop"] == 880.0 / 950.0
    assert f["ratios"]["int8_vs_fastest_other_a"] == 500.0 / 400.0 and f["ratios"]["int8_targets"] == [1.5]
    assert f["w1"]["mean_batch_texts"] == 24.0
    assert f["course"]["p50_ms"] == 3.0 and f["course"]["p99_ms"] == 40.0 and f["course"]["errors"] == 0
    w3 = f["stages"]["w3"]  # W3's client mean is 6 ms: 0.5 + 0 + 3 + 0.25 in the stages
    assert w3["tokenize"] == pytest.approx(0.5) and w3["model"] == pytest.approx(3.0)
    assert w3["outside the stages"] == pytest.approx(6.0 - 3.75) and w3["engine per batch"] == pytest.approx(2.0)
    assert f["ratios"]["service_w1_vs_L1"] == pytest.approx(300.0 / c["L1"])
    assert f["ratios"]["service_w3_vs_L3"] == pytest.approx(180.0 / c["L3"])


def test_a_stretch_the_sampler_was_paused_is_a_break_in_the_rates_not_an_average() -> None:
    samples = [(t, {"x_total": n}) for t, n in ((0.0, 0), (1.0, 10), (31.0, 3010), (32.0, 3030))]
    got = rates(samples, "x_total")
    assert [t for t, _ in got] == [1.0, 31.0, 32.0]
    assert got[0][1] == 10 and math.isnan(got[1][1]) and got[2][1] == 20


def test_report_folder_has_summary_charts_and_results(tmp_path: Path) -> None:
    write_report(synthetic_run(), tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    for chart in ("latency.png", "throughput.png", "batch_sizes.png", "cache_hit_ratio.png", "errors.png"):
        assert (tmp_path / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({chart})" in summary
    assert "CPU: Some CPU, 2 cores, flags avx2 avx512_vnni" in summary
    assert ("| W1 req/s ≥ 0.85 x L1, mean batch ≥ 24 texts (model inline, the default) | 0.60 x L1 (200.0 vs 333.3 req/s), "
            "24.0 texts per batch | **not met** |") in summary
    assert "| W2 sentences/s ≥ 0.85 x E_a (model inline, the default) | 0.48 x E_a (240.0 vs 500.0) | **not met** |" in summary
    # the same targets with the model in its own service
    assert ("| W1 req/s ≥ 0.85 x L1, mean batch ≥ 24 texts (model service) | 0.90 x L1 (300.0 vs 333.3 req/s), "
            "28.0 texts per batch | met |") in summary
    assert "| W2 sentences/s ≥ 0.85 x E_a (model service) | 0.88 x E_a (440.0 vs 500.0) | met |" in summary
    assert ("| Cached req/s ≥ 0.95 x the no-op endpoint (same load) | 93% (880 vs 950 req/s); "
            "80% of the no-op with tracing off | **not met** |") in summary
    assert "| | no-op endpoint with tracing off (no span per request, as the service runs), W3's load | 900.0 |" in summary
    noop_row = next(line for line in summary.splitlines() if line.startswith("| no-op BentoML endpoint, same load |"))
    assert noop_row.split(" | ")[3] == "–" and noop_row.endswith("| – |")  # no batches, no Redis: dashes, not nan
    assert "openvino/int8 in process by batch size (texts: sentences/s): 1: 260, 12: 450, 32: 500. Under W1" in summary
    assert "| layer | W3: sentiment | W3: sentiment_model |" in summary
    assert "| engine (OpenVINO, torch, numpy; the calling thread) | 0.00 | 4.00 |" in summary and "| total | 1.50 | 4.00 |" in summary
    assert "costs 40 µs of CPU in a loop of its own and 120 µs right after a batch-1 forward of openvino/int8 on the same cores (3.0x)" in summary
    assert ("| openvino/int8 passes the guard (substitute, SST-2 dev) | agreement 99.54%, accuracy 89.68%, "
            "recipe transformer, FFN output and head in float | met |") in summary
    assert "| openvino/int8 ≥ 1.5x the fastest other passing pair at batch 32 | 1.25x | **not met** |" in summary
    assert "| Course p99 lower than on today's path (torch/bf16) | 40.0 ms vs 60.0 ms | met |" in summary
    assert "| L1 | 1 / (1/E_a + 1/H_32): model and HTTP work on the same cores | 333.3 |" in summary
    assert "| tokenize | 0.50 | 0.50 | 0.50 | 0.50 |" in summary
    assert "(a request alone in the worker, at most 64 tokens; sentiment/batching/inline.py): W1 0 of 10, W3 9 of 10." in summary
    assert "| openvino/int8 | 500.0 | 260.0 | 300.0 | 99.54% | 89.68% | pass |" in summary
    assert json.loads((tmp_path / "results.json").read_text())["served"] == "openvino/int8"


def test_workloads_run_beside_their_ceilings_are_judged_against_the_ceilings_of_their_rounds() -> None:
    from benchmark.run import merge_runs

    def k6_run(requests: int, rate: float, mean_ms: float, texts_in_batches: float) -> dict:
        return {"started": 1000.0, "points": [(i / rate, mean_ms, 200) for i in range(requests)], "thresholds_passed": True,
                "metrics": {"http_reqs": {"count": requests, "rate": rate}, "sentences_classified": {"count": requests, "rate": rate},
                            "http_req_duration": {"avg": mean_ms}, "checks": {"passes": requests, "fails": 0}},
                "server_metrics": {"sentiment_batch_texts_sum": texts_in_batches, "sentiment_batch_texts_count": 10.0}}

    rounds = [k6_run(100, 200.0, 80.0, 240.0), k6_run(300, 300.0, 60.0, 300.0)]
    merged = merge_runs(rounds)
    # 100 requests at 200/s (0.5 s) and 300 at 300/s (1 s): 400 in 1.5 s
    assert merged["metrics"]["http_reqs"]["count"] == 400 and merged["metrics"]["http_reqs"]["rate"] == pytest.approx(400 / 1.5)
    assert merged["metrics"]["http_req_duration"]["avg"] == pytest.approx((80.0 * 100 + 60.0 * 300) / 400)
    assert len(merged["points"]) == 400 and merged["points"][100][0] >= 0.5  # the second round after the first
    assert merged["server_metrics"]["sentiment_batch_texts_sum"] == sum(r["server_metrics"]["sentiment_batch_texts_sum"] for r in rounds)
    run = synthetic_run()
    run["w1"], run["engine_in_rounds"] = merged, {"a": 450.0, "b": 240.0}
    f = figures(run)
    assert (f["ceilings"]["E_a"], f["ceilings"]["E_b"]) == (450.0, 240.0)  # not the raw table's 500 / 260
    assert f["ratios"]["w1_vs_L1"] == pytest.approx((400 / 1.5) / (1 / (1 / 450 + 1 / 1000)))
    assert "| E_a | openvino/int8 in process, batch 32, between the W1 rounds (2, alternating with the service and the no-op endpoint) | 450.0 |" \
        in summary_markdown(f, run, [])
    # W2 in W1's rounds: judged against the same E_a, which says so
    run["w2"] = merge_runs([k6_run(10, 40.0, 400.0, 80.0)] * 2)
    f = figures(run)
    assert f["ratios"]["w2_vs_E_a"] == pytest.approx(f["w2"]["sentences_per_s"] / 450.0)
    assert "| E_a | openvino/int8 in process, batch 32, between the W1 and W2 rounds (2, alternating with the service and the no-op endpoint) | 450.0 |" \
        in summary_markdown(f, run, [])
    # the model service's W1 in the same rounds: judged against the same ceilings, which say so
    run["service_w1"] = merge_runs([k6_run(50, 100.0, 90.0, 120.0)] * 2)
    f = figures(run)
    assert f["ratios"]["service_w1_vs_L1"] == pytest.approx(100.0 / (1 / (1 / 450 + 1 / 1000)))
    assert ("| H_32 | no-op BentoML endpoint, W1's load (32 clients), between the W1 rounds (2, alternating with the service, "
            "the service with its model service and the no-op endpoint) | 1000.0 |") in summary_markdown(f, run, [])


def test_the_course_scenario_alternates_with_todays_path_each_round_from_an_empty_cache(monkeypatch: pytest.MonkeyPatch,
                                                                                     tmp_path: Path) -> None:
    from benchmark import run as bench

    calls: list[str] = []

    def k6(script: str, env: dict, out_dir: Path, name: str, metrics_url: str | None = None) -> dict:
        assert script == "k6/load.js" and env["VUS"] == "10" and metrics_url == env["BASE_URL"]
        calls.append(f"{name}@{env['BASE_URL']}")
        ms = 2.0 if env["BASE_URL"] == "http://served" else 3.0
        return {"started": 0.0, "points": [(i / 100, ms, 200) for i in range(100)], "thresholds_passed": True,
                "metrics": {"http_reqs": {"count": 100, "rate": 100.0}, "http_req_duration": {"avg": ms}, "checks": {"fails": 0}}}

    monkeypatch.setattr(bench, "k6", k6)
    monkeypatch.setattr(bench, "redis_flush", lambda redis: calls.append("flush"))
    served, baseline = bench.course_side_by_side(None, "http://served", "http://baseline", {"VUS": "10"}, 2, tmp_path)
    assert calls == ["flush", "course-1@http://served", "flush", "course-baseline-1@http://baseline",
                     "flush", "course-2@http://served", "flush", "course-baseline-2@http://baseline"]
    assert (served["rounds"], len(served["points"]), baseline["rounds"], len(baseline["points"])) == (2, 200, 2, 200)
    run = synthetic_run()
    run["course"], run["course_baseline"] = served, baseline
    f = figures(run)
    assert (f["course"]["p99_ms"], f["course_baseline"]["p99_ms"]) == (2.0, 3.0)
    summary = summary_markdown(f, run, [])
    assert "| course (10 VUs, 95% cached payload), openvino/int8, 2 rounds alternating with today's path | 200 | 0 |" in summary
    assert "| Course p99 lower than on today's path (torch/bf16) | 2.0 ms vs 3.0 ms | met |" in summary


def test_the_model_service_runs_its_workloads_in_the_rounds_of_their_ceilings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from benchmark import run as bench

    calls: list[str] = []

    def k6(script: str, env: dict, out_dir: Path, name: str, metrics_url: str | None = None) -> dict:
        calls.append(f"{name}@{env['BASE_URL']} {env['VUS']}x{env['TEXTS']}")
        return {"started": 0.0, "points": [(0.0, 5.0, 200)], "thresholds_passed": True,
                "metrics": {"http_reqs": {"count": 10, "rate": 10.0}, "http_req_duration": {"avg": 5.0}, "checks": {"fails": 0}}}

    def batch_rate(classifier, inputs, batch: int, seconds: float) -> float:  # noqa: ANN001
        calls.append(f"engine batch {batch}")
        return 300.0

    class Classifier:
        def token_ids(self, texts: list[str]) -> list[list[int]]:
            return [[101, *range(20), 102] for _ in texts]

    monkeypatch.setattr(bench, "k6", k6)
    monkeypatch.setattr(bench, "batch_rate", batch_rate)
    runs, engine = bench.side_by_side(Classifier(), 32, "http://inline", "http://noop", 32, 2, "10s", tmp_path, "w1", ("w2",),
                                      "http://split")
    one_round = ["engine batch 32", "w1-{}@http://inline 32x1", "noop-w1-{}@http://noop 32x1", "w2-{}@http://inline 16x8",
                 "service-w1-{}@http://split 32x1", "service-w2-{}@http://split 16x8"]
    assert calls == [step.format(r) for r in (1, 2) for step in one_round]
    assert sorted(runs) == ["noop_w1", "service_w1", "service_w2", "w1", "w2"] and engine == 300.0
    assert all(run["rounds"] == 2 for run in runs.values())


def test_a_run_starts_by_removing_what_an_earlier_run_wrote_into_its_folder(tmp_path: Path) -> None:
    from benchmark.run import clear_previous_report

    earlier = ["w2-points.csv", "w2-summary.json", "profile-w1-sentiment.txt", "latency.png", "summary.md", "results.json"]
    kept = ["notes.md", "my-data.csv"]
    for name in earlier + kept:
        (tmp_path / name).write_text("x")
    clear_previous_report(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_int8_is_held_to_the_target_of_its_cpu_kind() -> None:
    from benchmark.report import int8_targets

    assert int8_targets({"amx": False, "flags": ["avx2"]}) == [1.5]  # no bf16: the fastest other pair is fp32
    assert int8_targets({"amx": True, "flags": ["avx2", "avx512_bf16", "amx_bf16", "amx_int8"]}) == [1.25]
    assert int8_targets({"amx": False, "flags": ["avx2", "avx512_vnni", "avx512_bf16"]}) == [1.25, 1.5]  # neither case: both
    run = synthetic_run()
    run["cpu"] = {"model": "Some CPU", "cores": 2, "amx": False, "flags": ["avx2", "avx512_vnni", "avx512_bf16"]}
    run["int8_recheck"] = {"share": 0.034, "rechecked": 1, "recheck_below": 0.2}
    summary = summary_markdown(figures(run), run, [])
    for target, verdict in ((1.25, "met"), (1.5, "**not met**")):
        assert (f"| openvino/int8 ≥ {target}x the fastest other passing pair at batch 32 | 1.25x (with its fp32 recheck: "
                f"the substitute rechecked 3.4% of SST-2 dev, the full-size model 1 of the 32 texts timed) | {verdict} |") in summary


def test_the_long_review_table_is_in_the_report(tmp_path: Path) -> None:
    from benchmark.long_reviews import fresh_tokens, methods

    run = synthetic_run()
    run["long_reviews"] = {
        "reviews": 3, "seed": 7, "window": 512, "stride": 384, "engine": "openvino/fp32",
        "tokens": {"min": 600, "median": 1500, "max": 3000}, "windows": {"min": 2, "max": 8, "total": 15},
        "counts": {"all": 3, "start": 1, "middle": 1, "end": 1},
        "accuracy": {"mean of window logits": {"all": 2 / 3, "start": 1.0, "middle": 1.0}},
    }
    write_report(run, tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert "## Long texts: truncation and chunking" in summary
    assert "| mean of window logits | 66.7% | 100.0% | 100.0% | 0.0% |" in summary
    assert "python -m benchmark.long_reviews --reviews 3 --seed 7" in summary
    # the methods, on two windows: the first says negative mildly, the second positive strongly
    chosen = methods([[0.2, -0.2], [-3.0, 3.0]], fresh_tokens(700, 2, 510, 384))
    assert chosen["right truncation (first window)"] == 0 and chosen["left truncation (last window)"] == 1
    assert chosen["mean of window logits"] == 1 and chosen["most confident window"] == 1
    assert fresh_tokens(700, 2, 510, 384) == [510, 190]


@pytest.mark.parametrize(
    ("served", "served_by", "verdict"),
    [
        (0.8979, "openvino/bf16", "met"),  # within 0.1 point of eval: 0.8971
        (0.8956, "openvino/bf16", "**not met**"),  # 0.23 point apart
        (0.8979, "torch/fp32", "**not met**"),  # /info says another pair served than auto's choice
    ],
)
def test_served_accuracy_is_judged_against_eval_of_the_served_pair(tmp_path: Path, served: float, served_by: str, verdict: str) -> None:
    run = synthetic_run()
    run["served_accuracy"] = {"served": served, "eval": 0.8971, "pair": "openvino/bf16", "served_by": served_by}
    write_report(run, tmp_path)
    rows = [line for line in (tmp_path / "summary.md").read_text().splitlines() if line.startswith("| SST-2 dev through POST /predict")]
    assert len(rows) == 1 and rows[0].endswith(f"| {verdict} |"), rows


def test_profile_samples_are_charged_to_the_innermost_frame_of_a_known_layer() -> None:
    from benchmark.profile import by_layer

    raw = "\n".join([
        # the engine under our code: the engine's
        "_run (asyncio/events.py:80);run_batch (service.py:170);InferRequest.infer (openvino/_ov_api.py:202) 50",
        # a metric update inside our middleware: the metrics library's
        "__call__ (sentiment/http/identity.py:60);inc (prometheus_client/values.py:104) 10",
        # our code called from BentoML's: ours
        "api_endpoint (_bentoml_impl/server/app.py:600);predict (service.py:300) 25",
        "select (selectors.py:468) 15",  # nothing known: the rest
        "not a sample line",
    ])
    layers = by_layer(raw, rate_hz=100, requests=10)  # 1 sample = 10 ms of CPU; per request: / 10
    assert layers["engine (OpenVINO, torch, numpy; the calling thread)"] == pytest.approx(50.0)
    assert layers["metrics (prometheus_client)"] == pytest.approx(10.0)
    assert layers["this service's code"] == pytest.approx(25.0)
    assert layers["asyncio and the rest"] == pytest.approx(15.0)
    assert layers["total"] == pytest.approx(100.0)


def test_the_report_says_whether_the_served_pair_was_auto_s_choice_or_named(tmp_path: Path) -> None:
    run = synthetic_run()
    write_report(run, tmp_path)
    assert "served as openvino/int8 (what ENGINE=auto PRECISION=auto chose for the substitute model" in (tmp_path / "summary.md").read_text()
    write_report({**run, "auto_chose": "openvino/bf16"}, tmp_path)
    assert ("served as openvino/int8 (named with --serve; auto chose openvino/bf16 for the substitute model"
            in (tmp_path / "summary.md").read_text())

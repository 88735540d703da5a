"""Measure everything in one run and write the report.

    .venv/bin/python -m benchmark [--quick] [--model DIR] [--out reports/latest] [--course-full]

Starts what it needs (model stores in a temporary BENTOML_HOME, `redis-server`,
`bentoml serve`), runs bounded scenarios one after another, stops everything,
writes `summary.md`, `results.json` and PNG charts into the output folder.

1. guard: `train_or_import.py import --eval dev.tsv --calibrate train.tsv` of the
   substitute model (../shared): int8 of activations calibrated and its recipe chosen on
   SST-2 train, then agreement and accuracy per pair on dev, and the pair `auto` chooses;
   SST-2 dev through `POST /predict` of that model served with ENGINE=auto, against
   `train_or_import.py eval` of the pair auto chose;
   then (not with --quick) the long-review table: right and left truncation and the ways
   to aggregate a long text's windows (benchmark/long_reviews.py).
2. raw: every engine/precision this CPU runs, in process, full-size model (int8 by the
   recipe chosen in 1): a = batch 32 of 16-token sentences, b = batch 1 of 16 tokens,
   c = SST-2 dev in length-sorted batches of 32 (token ids prepared beforehand).
3. end to end, full-size model served with that pair, Redis cache, k6 on the same cores:
   W1 32 clients x 1 unique text, W2 16 clients x 8 unique texts, W3 1 client x 1 text,
   saturation (rising arrival rate), the course scenario (first, on fresh servers, in
   alternating rounds with today's path: ENGINE=torch, PRECISION=bf16 where the CPU has
   it, else fp32), cached requests (10 clients), all with the model inline in the public
   worker (the default); W1 and W3 in alternating rounds with their ceilings (the served
   pair in process, and a no-op BentoML service under the same load: side_by_side), W2
   in W1's rounds (judged against the same E_a), and in the same rounds W1, W2 and W3
   with the model in its own service (MODEL_PLACEMENT=service); the no-op service under
   the cached run's load.
The report's targets are ratios to ceilings measured in the same run, beside the
workloads they judge (E_a, E_b: the served pair in process; H_32, H_1: the no-op
endpoint; L1, L3: engine and HTTP work sharing the cores), with the CPU model and flags
it ran on.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmark.report import served_why, write_report
from harness.accuracy import eval_accuracy, served_accuracy
from harness.processes import RedisServer, ServerProcess, free_port, start_server
from harness.prometheus import parse_metrics

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
OFFICIAL_CONFIG = SHARED / "models" / "distilbert-sst2-official-config"
SUBSTITUTE = SHARED / "models" / "distilbert-sst2-minilm"
SST2_DEV = SHARED / "data" / "sst2" / "dev.tsv"
SST2_TRAIN = SHARED / "data" / "sst2" / "train.tsv"
WORKLOADS = (("w1", 32, 1), ("w2", 16, 8), ("w3", 1, 1))  # name, clients, unique texts per request
# W1 and W3 beside their ceilings, in alternating rounds: (name, clients, the engine's batch size, workloads
# judged against the same ceiling, in the same rounds: W2 against E_a)
SIDE_BY_SIDE = (("w1", 32, 32, ("w2",)), ("w3", 1, 1, ()))
NOTABLE_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
K6 = Path(sys.executable).parent / "k6"
WORDS = ("the a film movie story plot acting cast ending music was is felt seemed great awful dull "
         "brilliant moving boring clever tired warm cold funny sad long short").split()


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def full_size_model(config_dir: Path, out: Path) -> Path:
    """DistilBERT with the official model's config and random weights: the real model's compute cost."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, DistilBertForSequenceClassification

    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(AutoConfig.from_pretrained(config_dir)).eval()
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(config_dir).save_pretrained(out)
    return out


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    # the same shape as k6/saturation.js sentences: ~18 tokens each
    return [" ".join(rng.choices(WORDS, k=12)) + f" {rng.randrange(99991)}{i % 10}" for i in range(n)]


def import_model(source: Path, home: Path, *extra: str) -> str:
    out = subprocess.run(
        [sys.executable, str(ROOT / "train_or_import.py"), "import", "--source", str(source), *extra],
        check=True, cwd=ROOT, env={**os.environ, "BENTOML_HOME": str(home)}, capture_output=True, text=True,
    ).stdout
    return out


def calibrate_arguments(recipe: str | None = None, selection: int | None = None) -> list[str]:
    """`import` options for int8 of activations, calibrated on SST-2 train (never the guard's dev file)."""
    if not SST2_TRAIN.is_file():
        return []
    return ["--calibrate", str(SST2_TRAIN), *(["--int8-recipe", recipe] if recipe else []),
            *(["--selection-size", str(selection)] if selection else [])]


def served_and_eval_accuracy(home: Path, work: Path, pair: tuple[str, str]) -> dict:
    """SST-2 dev through `POST /predict` of `bentoml serve` with ENGINE=auto PRECISION=auto, and
    `train_or_import.py eval` of the pair auto should serve: the two accuracies, and what /info says it served."""
    from sentiment.store.data import read_labelled

    server = start_server(home, work, env={"ENGINE": "auto", "PRECISION": "auto"})
    try:
        info = httpx.get(f"{server.url}/info", timeout=10).json()["served_by"]
        served = served_accuracy(server.url, read_labelled(SST2_DEV))
    finally:
        server.stop()
    out = subprocess.run(
        [sys.executable, str(ROOT / "train_or_import.py"), "eval", "--data", str(SST2_DEV), "--engine", pair[0], "--precision", pair[1]],
        check=True, cwd=ROOT, env={**os.environ, "BENTOML_HOME": str(home)}, capture_output=True, text=True,
    ).stdout
    return {"served": served, "eval": eval_accuracy(out),
            "pair": f"{pair[0]}/{pair[1]}", "served_by": f"{info['engine']}/{info['precision']}"}


def cpu_description() -> dict:
    from sentiment.model.cpu import available_cpus, cpu_flags

    model = next((line.partition(":")[2].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    flags = cpu_flags()
    return {"model": model, "cores": available_cpus(), "amx": "amx_int8" in flags,
            "flags": [f for f in NOTABLE_FLAGS if f in flags]}


def stored(home: Path) -> tuple[str, dict]:
    code = "import bentoml, json; m = bentoml.models.get('distilbert-sst2:latest'); print(json.dumps([m.path, m.info.metadata]))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, "BENTOML_HOME": str(home)}).stdout
    path, meta = json.loads(out.strip().splitlines()[-1])
    return path, meta


def sixteen_tokens(classifier) -> list[list[int]]:  # noqa: ANN001 - a Classifier (imported where torch may load)
    """64 sentences of 16 tokens each, the raw figures' input."""
    return [ids[:15] + ids[-1:] for ids in classifier.token_ids(sentences(64, seed=1))]


def match_recheck_share(model_dir: str, share: float) -> dict:
    """Random weights have no realistic decision margins (the full-size model's sit near 0, so its own
    recheck margin would send most texts, or none, to fp32): set the full-size int8 IR's recheck margin so
    that, of the 32 texts the raw table runs, it rechecks the share the trained substitute rechecked on
    SST-2 dev in the guard (sentiment/model/recheck.py). The raw table then times the served code path at
    the share real data gives."""
    import numpy as np

    from sentiment.model.engines import store_recheck_margin
    from sentiment.model.inference import Classifier
    from sentiment.model.recheck import decision_margins

    store_recheck_margin(model_dir, 0.0)  # int8 alone
    classifier = Classifier(model_dir, engine="openvino", precision="int8")
    margins = np.sort(decision_margins(np.array(classifier.logits(sixteen_tokens(classifier)[:32])), classifier.scoring.function))
    del classifier
    k = round(share * 32)
    below = 0.0 if k == 0 else float((margins[k - 1] + margins[k]) / 2) if k < 32 else float(margins[-1] + 1)
    store_recheck_margin(model_dir, below)
    return {"share": share, "rechecked": k, "recheck_below": below}


def batch_rate(classifier, inputs: list[list[int]], batch: int, seconds: float) -> float:  # noqa: ANN001
    """Sentences/s of back-to-back forward passes of `batch` of `inputs` (after one warm-up pass)."""
    classifier.logits(inputs[:batch])
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        classifier.logits(inputs[done % 32 : done % 32 + batch])
        done += batch
    return done / (time.perf_counter() - start)


def raw_throughput(model_dir: str, seconds: float, rounds: int = 3) -> dict[str, dict[str, float]]:
    """Forward passes (token ids prepared beforehand) per engine/precision: a, b and c in sentences/s.

    Every pair is loaded first, then timed in `rounds` interleaved rounds (each pair in turn), keeping each
    pair's best, as the guard times them: the machine's speed drifts, and a slow stretch then costs one
    round, not one pair's figure (int8 against bf16 moved from 1.52x to 1.27x between two runs timed
    pair after pair)."""
    from sentiment.model.cpu import engine_threads
    from sentiment.model.engines import supported_pairs
    from sentiment.model.inference import Classifier
    from sentiment.store.data import read_labelled

    threads = engine_threads()
    dev = [e.sentence for e in read_labelled(SST2_DEV)] if SST2_DEV.is_file() else sentences(872, seed=2)
    classifiers = {f"{engine}/{precision}": Classifier(model_dir, engine=engine, precision=precision, threads=threads)
                   for engine, precision in supported_pairs(model_dir)}
    results: dict[str, dict[str, float]] = {pair: {"a": 0.0, "b": 0.0, "c": 0.0} for pair in classifiers}
    first = next(iter(classifiers.values()))  # one tokenizer: the stored model's
    sixteen, by_length = sixteen_tokens(first), sorted(first.token_ids(dev), key=len)
    for round_ in range(rounds):
        for pair, classifier in classifiers.items():
            row = results[pair]
            for name, batch in (("a", 32), ("b", 1)):
                row[name] = max(row[name], batch_rate(classifier, sixteen, batch, seconds))
            if round_ == 0:  # c takes seconds per pair and judges nothing: once
                start = time.perf_counter()
                for i in range(0, len(by_length), 32):
                    classifier.logits(by_length[i : i + 32])
                row["c"] = len(by_length) / (time.perf_counter() - start)
    for pair, row in results.items():
        progress(f"raw {pair}: a {row['a']:.1f}, b {row['b']:.1f} (best of {rounds} rounds), c {row['c']:.1f} sentences/s")
    return results


def request_work_after_forward(classifier, model_dir: str, texts: int = 400) -> dict[str, float]:  # noqa: ANN001
    """CPU time (µs) of one request-path step, tokenizing a text into its cache key and ids, on its
    own and right after a batch-1 forward of the served pair on the same cores.

    Why: a lone request alternates the two, and the forward streams the weights through
    the caches the interpreter's code and objects were in, so the request's own work runs
    slower than it does in a loop of its own (and than the no-op endpoint's does): L3 adds
    ceilings measured apart, on warm caches.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from sentiment.cache.keys import CacheKeys
    from sentiment.model.tokenization import load_tokenizer

    keys = CacheKeys(load_tokenizer(model_dir), "benchmark", 512)
    one = classifier.token_ids(sentences(1, seed=4))
    engine = ThreadPoolExecutor(max_workers=1)  # as the model inline (the default) runs it

    async def measure(after_forward: bool, seed: int) -> float:
        loop, cpu = asyncio.get_running_loop(), 0.0
        for text in sentences(texts, seed=seed):
            if after_forward:
                await loop.run_in_executor(engine, classifier.logits, one)
            start = time.thread_time()
            await keys.encode([text])
            cpu += time.thread_time() - start
        return 1e6 * cpu / texts

    async def both() -> dict[str, float]:
        await measure(True, seed=5)  # warm-up
        return {"alone_us": await measure(False, seed=6), "after_forward_us": await measure(True, seed=7)}

    try:
        return asyncio.run(both())
    finally:
        engine.shutdown()


def batch_curve(classifier, seconds: float, sizes: tuple[int, ...] = (1, 4, 8, 12, 16, 24, 32)) -> dict[str, float]:  # noqa: ANN001
    """The served pair's rate (sentences/s, in process) by batch size: what a bigger batch would gain."""
    sixteen = sixteen_tokens(classifier)
    return {str(size): batch_rate(classifier, sixteen, size, seconds) for size in sizes}


class MetricsSampler(threading.Thread):
    """Scrapes /metrics every second while scenarios run, except while `paused`."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.samples, self._halt, self._paused = url, [], threading.Event(), threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._halt.is_set():
                if not self._paused.is_set():
                    try:
                        self.samples.append((time.time(), parse_metrics(client.get(f"{self.url}/metrics").text)))
                    except httpx.HTTPError:
                        pass
                self._halt.wait(1.0)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No scrape meanwhile. Why: a scrape of BentoML's multiprocess metrics costs the worker about 10 ms of
        CPU (about 1% of W3's), once a second here against once in 15-30 s from a real Prometheus, and the no-op
        endpoint a ratio compares the service with is not scraped at all."""
        self._paused.set()
        try:
            yield
        finally:
            self._paused.clear()

    def stop(self) -> list[tuple[float, dict[str, float]]]:
        self._halt.set()
        self.join()
        return self.samples


def wait_idle(url: str, timeout: float = 120.0) -> None:
    """Until no text waits for the model: a scenario never starts behind the previous one's backlog."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples = parse_metrics(httpx.get(f"{url}/metrics", timeout=10).text)
        if sum(v for k, v in samples.items() if k.startswith("sentiment_queued_texts")) == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} still has texts queued after {timeout}s")


# what a scenario records from the server: batch fill, and the stages of the request path
SERVER_METRICS = ("sentiment_batch_texts_", "sentiment_stage_duration_seconds_sum", "sentiment_stage_duration_seconds_count",
                  "sentiment_inference_duration_seconds_sum", "sentiment_cache_lookups_total", "sentiment_redis_roundtrip_seconds_count",
                  "sentiment_inline_batches_total")


_RUNS = itertools.count(1)


def k6(script: str, env: dict[str, str], out_dir: Path, name: str, metrics_url: str | None = None) -> dict:
    """One k6 run; its unique texts are its own (k6/clients.js OFFSET): a later run against the same cache
    (another round, another workload) never finds the earlier one's texts there."""
    env = {"OFFSET": str(next(_RUNS) * 100_000_000), **env}
    summary, points = out_dir / f"{name}-summary.json", out_dir / f"{name}-points.csv"
    if metrics_url:
        wait_idle(metrics_url)
    before = parse_metrics(httpx.get(f"{metrics_url}/metrics", timeout=10).text) if metrics_url else {}
    result = subprocess.run(
        [str(K6), "run", "--quiet", "--summary-trend-stats=min,med,avg,max,p(90),p(99)",
         "--summary-export", str(summary), "--out", f"csv={points}", script],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
    )
    data = json.loads(summary.read_text())
    data["thresholds_passed"] = result.returncode == 0
    data["started"], data["points"] = _points(points)
    if metrics_url:
        after = parse_metrics(httpx.get(f"{metrics_url}/metrics", timeout=10).text)
        data["server_metrics"] = {k: after[k] - before.get(k, 0.0) for k in after if k.startswith(SERVER_METRICS)}
    return data


def _points(path: Path) -> tuple[float, list[tuple[float, float, int]]]:
    """(start time, [(seconds since start, duration ms, status)]) of every /predict request."""
    rows: list[tuple[float, float, int]] = []
    with path.open() as fh:
        for row in csv.DictReader(fh):
            if row["metric_name"] == "http_req_duration" and row.get("method") == "POST":  # POST /predict
                rows.append((float(row["timestamp"]), float(row["metric_value"]), int(row.get("status") or 0)))
    start = min((r[0] for r in rows), default=0.0)
    return start, [(t - start, ms, status) for t, ms, status in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter runs, two rounds instead of three")
    parser.add_argument("--course-full", action="store_true", help="the course scenario at full length (30 s ramps, 60 s hold)")
    parser.add_argument("--model", type=Path, help="a local save_pretrained model dir (default: full-size random DistilBERT)")
    parser.add_argument("--serve", help="engine/precision to serve (default: what auto chooses for the substitute model)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "latest")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    clear_previous_report(args.out)
    work = Path(tempfile.mkdtemp(prefix="sentiment-bench-"))  # model stores and exports: about 1 GB
    try:
        return measure_all(args, work)
    finally:  # the servers' logs stay beside the report
        logs = args.out / "logs"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir()
        for log in work.glob("serve-*.log"):
            shutil.copy2(log, logs / log.name)
        shutil.rmtree(work, ignore_errors=True)


# what a run writes into its output folder (k6's files per run, py-spy's stacks, the report, its charts)
REPORT_FILES = ("*-points.csv", "*-summary.json", "profile-*.txt", "*.png", "summary.md", "results.json")


def clear_previous_report(out: Path) -> None:
    """Remove what an earlier run wrote there, so every file beside the report is this run's (runs differ in the
    files they write: rounds, scenarios); anything else in the folder stays."""
    for pattern in REPORT_FILES:
        for path in out.glob(pattern):
            path.unlink()


def measure_all(args: argparse.Namespace, work: Path) -> int:
    """One run of everything the module's docstring lists; `work` holds its model stores and servers' files."""
    from sentiment.model.cpu import supports_bf16
    from sentiment.model.engines import supported_pairs
    from sentiment.store.guard import choose, pair_key

    scale = 0.5 if args.quick else 1.0
    rounds = 2 if args.quick else 3
    seconds = lambda s: f"{max(5, int(s * scale))}s"  # noqa: E731
    results: dict = {"quick": args.quick, "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    results["cpu"] = cpu_description()
    results["guard"], served, recipe = {}, ("torch", "fp32"), None
    if SUBSTITUTE.is_dir() and SST2_DEV.is_file():
        progress("guard: import --eval of the substitute model (SST-2 dev), int8 calibrated on SST-2 train")
        sub_home = work / "substitute-home"
        import_model(SUBSTITUTE, sub_home, "--eval", str(SST2_DEV), *calibrate_arguments())
        sub_path, meta = stored(sub_home)
        results["guard"] = meta.get("precision_guard", {})
        results["int8_recipe"] = recipe = meta.get("exports", {}).get("openvino_int8", {}).get("recipe")
        served = choose(results["guard"], supported_pairs(sub_path))
        progress(f"SST-2 dev through POST /predict of what auto serves ({pair_key(*served)}), and eval of that pair")
        results["served_accuracy"] = served_and_eval_accuracy(sub_home, work, served)
        if not args.quick:  # a few minutes: the long-review accuracy table (benchmark/long_reviews.py)
            from benchmark import long_reviews

            progress("long reviews: truncation and chunking, 160 reviews from SST-2 dev")
            results["long_reviews"] = long_reviews.measure(SUBSTITUTE, 160, 7)

    model_dir = args.model or full_size_model(OFFICIAL_CONFIG, work / "model")
    results["model"] = str(args.model) if args.model else "DistilBERT (official config, random weights)"
    home = work / "bentoml-home"
    # the OpenVINO IR the raw table and the service use; int8 by the recipe chosen for the substitute
    # model (a recipe cannot be chosen on random weights), so its speed is what that recipe costs
    import_model(model_dir, home, *calibrate_arguments(recipe, selection=64))
    stored_path, _ = stored(home)
    share = results["guard"].get("openvino/int8", {}).get("rechecked")
    if share is not None and recipe:
        results["int8_recheck"] = match_recheck_share(stored_path, share)
        progress(f"full-size int8 rechecks {results['int8_recheck']['rechecked']} of 32 texts in fp32 "
                 f"(the substitute rechecked {share:.1%} of SST-2 dev)")
    progress(f"model: {results['model']}")
    results["raw"] = raw_throughput(stored_path, seconds=2 * scale + 1, rounds=rounds)

    results["auto_chose"] = pair_key(*served)
    if args.serve:
        served = tuple(args.serve.split("/"))  # type: ignore[assignment]
    results["served"] = pair_key(*served)
    from sentiment.model.cpu import engine_threads
    from sentiment.model.inference import Classifier

    served_classifier = Classifier(stored_path, engine=served[0], precision=served[1], threads=engine_threads())
    results["batch_curve"] = batch_curve(served_classifier, seconds=2 * scale)
    progress("engine by batch size: " + ", ".join(f"{k}: {v:.0f}" for k, v in results["batch_curve"].items()))
    results["request_work"] = request_work_after_forward(served_classifier, stored_path)
    progress(f"tokenizing one text: {results['request_work']['alone_us']:.0f} µs CPU alone, "
             f"{results['request_work']['after_forward_us']:.0f} µs right after a forward")
    baseline = ("torch", "bf16" if supports_bf16() else "fp32")
    results["baseline"] = pair_key(*baseline)
    progress(f"serving {results['served']} ({served_why(results)}); baseline {results['baseline']}")

    redis = RedisServer(free_port()).start()
    env = {"REDIS_URL": redis.url, "ENGINE": served[0], "PRECISION": served[1]}
    servers = [server := start_server(home, work, env=env)]
    sampler = MetricsSampler(server.url)
    clients = "k6/clients.js"
    try:
        # BentoML's HTTP ceiling, and the model in its own service (MODEL_PLACEMENT=service), up from the start: W1
        # and W3 alternate with the no-op endpoint, the split service's W1, W2 and W3 run in the same rounds
        # (side_by_side). Homes of their own (see linked_home)
        noop_home = work / "noop-home"
        noop_home.mkdir(exist_ok=True)
        servers.append(noop := start_server(noop_home, work, service="benchmark.noop_service:Noop"))
        split_env = {**env, "MODEL_PLACEMENT": "service"}
        servers.append(split := start_server(linked_home(home, work / "split-home"), work, env=split_env))
        sampler.start()
        progress(f"course scenario: 10 virtual users, 95% cached payload (k6/load.js), {rounds} rounds alternating "
                 f"with today's path ({results['baseline']})")
        course_env = {"VUS": "10"} if args.course_full else {"VUS": "10", "RAMP": seconds(5), "DURATION": seconds(20)}
        base = start_server(linked_home(home, work / "baseline-home"), work, env={**env, "ENGINE": baseline[0], "PRECISION": baseline[1]})
        try:
            with sampler.paused():  # as for W1-W3: today's path has no sampler either (MetricsSampler.paused)
                results["course"], results["course_baseline"] = course_side_by_side(
                    redis, server.url, base.url, course_env, rounds, args.out)
        finally:
            base.stop()
        results["engine_in_rounds"] = {}
        for name, vus, batch, also in SIDE_BY_SIDE:
            progress(f"{name}: {vus} clients x 1 unique text, beside the engine in process (batch {batch}) and the no-op "
                     f"endpoint, {rounds} alternating rounds" + "".join(f", {other} in the same rounds" for other in also)
                     + ", and the same with the model in its own service")
            with sampler.paused():  # each side of a ratio unscraped, as the no-op endpoint is
                runs, results["engine_in_rounds"]["a" if batch > 1 else "b"] = side_by_side(
                    served_classifier, batch, server.url, noop.url, vus, rounds, seconds(10), args.out, name, also, split.url)
            results.update(runs)
        del served_classifier
        progress("saturation: unique sentences at a rising arrival rate (k6/saturation.js)")
        results["saturation"] = k6("k6/saturation.js", {
            "BASE_URL": server.url, "START_RATE": "5", "PEAK_RATE": "40", "DURATION": seconds(30), "TEXTS": "10",
        }, args.out, "saturation", metrics_url=server.url)
        progress("cached: 10 clients, cached texts only (k6/clients.js CACHED=1)")
        cached_env = {"VUS": "10", "TEXTS": "1", "CACHED": "1", "DURATION": seconds(15)}
        results["cached"] = k6(clients, {"BASE_URL": server.url, **cached_env}, args.out, "cached", metrics_url=server.url)
        progress("HTTP ceiling: the no-op BentoML service under the cached run's load")
        results["noop"] = k6(clients, {"BASE_URL": noop.url, **cached_env}, args.out, "noop")
        progress("profiles: py-spy of each worker under W1's and W3's load (extra short runs, not the measured ones)")
        results["profiles"] = {"w1": profiled(server, 32, args.out, "profile-w1"), "w3": profiled(server, 1, args.out, "profile-w3"),
                               "service_w1": profiled(split, 32, args.out, "profile-service-w1"),
                               "service_w3": profiled(split, 1, args.out, "profile-service-w3")}
    finally:
        try:
            results["metrics"] = sampler.stop() if sampler.is_alive() else []
        finally:
            for started in servers:
                started.stop()
    try:
        progress("the no-op service with tracing off as this service runs BentoML (no span built), W3's and the cached load")
        untraced = start_server(noop_home, work, service="benchmark.noop_service:NoopUntraced")
        try:
            results["noop_untraced"] = k6(clients, {"BASE_URL": untraced.url, **cached_env}, args.out, "noop-untraced")
            results["noop_untraced_w3"] = k6(clients, {"BASE_URL": untraced.url, "VUS": "1", "TEXTS": "1",
                                                       "DURATION": seconds(20)}, args.out, "noop-untraced-w3")
        finally:
            untraced.stop()
    finally:
        redis.kill()
    write_report(results, args.out)
    progress(f"report: {args.out / 'summary.md'}")
    return 0


def linked_home(home: Path, path: Path) -> Path:
    """A BENTOML_HOME of its own over `home`'s model store, for a second server from that store: `bentoml serve`
    empties its home's Prometheus directory, and with it the metrics of a server already running from there."""
    path.mkdir(exist_ok=True)
    (path / "models").symlink_to(home / "models")
    return path


def course_side_by_side(redis: RedisServer, url: str, baseline_url: str, env: dict[str, str], rounds: int,
                        out_dir: Path) -> tuple[dict, dict]:
    """The course scenario on the service and on today's path, both servers up, in `rounds` alternating rounds,
    each from an empty cache; returns each side's rounds as one run.

    Why: run once each, minutes apart, with only the service scraped once a second (MetricsSampler), the service
    had the higher p50 and p99 in three of four runs; both up, unscraped and alternating, the two pairs answered
    alike (p99 7.4 and 6.9 ms against 8.5 and 9.9 ms)."""
    runs: dict[str, list[dict]] = {"course": [], "course-baseline": []}
    for round_ in range(1, rounds + 1):
        for name, target in (("course", url), ("course-baseline", baseline_url)):
            redis_flush(redis)
            runs[name].append(k6("k6/load.js", {"BASE_URL": target, **env}, out_dir, f"{name}-{round_}", metrics_url=target))
    return merge_runs(runs["course"]), merge_runs(runs["course-baseline"])


def side_by_side(classifier, batch: int, url: str, noop_url: str, vus: int, rounds: int, duration: str,  # noqa: ANN001
                 out_dir: Path, name: str, also: tuple[str, ...] = (), split_url: str | None = None) -> tuple[dict[str, dict], float]:
    """A workload and its ceilings measured in alternation: the served pair in process at `batch`, the service under
    `vus` one-text clients, the no-op endpoint under the same load, and the service under each workload of `also`
    (WORKLOADS' names) judged against the same engine figure, then the workload and those of `also` on the service
    at `split_url` (the model in its own service), `rounds` times. Returns each side's rounds as one run (`name`,
    `noop_<name>`, each of `also`, and `service_<workload>` for each on the split service), and the engine's mean rate.

    Why: this machine's speed drifts (the no-op endpoint went from 374 to 649 requests/s within minutes on one
    afternoon), so a target measured minutes away from its ceiling compares two machines. Side by side, each
    ratio compares figures taken under the same conditions."""
    inputs = sixteen_tokens(classifier)
    engine: list[float] = []
    runs: dict[str, list[dict]] = {name: [], f"noop_{name}": [], **{other: [] for other in also}}
    split = (name, *also) if split_url else ()
    runs.update({f"service_{workload}": [] for workload in split})
    shapes = {workload: (clients, texts) for workload, clients, texts in WORKLOADS}
    for round_ in range(1, rounds + 1):
        engine.append(batch_rate(classifier, inputs, batch, seconds=3))
        env = {"VUS": str(vus), "TEXTS": "1", "DURATION": duration}
        runs[name].append(k6("k6/clients.js", {"BASE_URL": url, **env}, out_dir, f"{name}-{round_}", metrics_url=url))
        runs[f"noop_{name}"].append(k6("k6/clients.js", {"BASE_URL": noop_url, **env}, out_dir, f"noop-{name}-{round_}"))
        for other in also:
            clients, texts = shapes[other]
            runs[other].append(k6("k6/clients.js", {"BASE_URL": url, "VUS": str(clients), "TEXTS": str(texts), "DURATION": duration},
                                  out_dir, f"{other}-{round_}", metrics_url=url))
        for workload in split:
            clients, texts = shapes[workload]
            runs[f"service_{workload}"].append(k6("k6/clients.js", {"BASE_URL": split_url, "VUS": str(clients), "TEXTS": str(texts),
                                                                    "DURATION": duration}, out_dir, f"service-{workload}-{round_}",
                                                  metrics_url=split_url))
    return {run: merge_runs(parts) for run, parts in runs.items()}, sum(engine) / len(engine)


def merge_runs(runs: list[dict]) -> dict:
    """k6 runs of one workload as one: counts and rates over their summed durations, every request's point (each
    run after the one before), the server's metric deltas summed, the mean latency weighted by requests."""
    def count(run: dict, metric: str) -> float:
        return float(run["metrics"].get(metric, {}).get("count", 0))

    durations = [count(run, "http_reqs") / run["metrics"]["http_reqs"]["rate"] for run in runs]
    seconds = sum(durations)
    requests = sum(count(run, "http_reqs") for run in runs)
    sentences = sum(count(run, "sentences_classified") for run in runs)
    points, offset = [], 0.0
    for run, duration in zip(runs, durations):
        points += [(t + offset, ms, status) for t, ms, status in run["points"]]
        offset += duration
    server: dict[str, float] = {}
    for run in runs:
        for key, value in run.get("server_metrics", {}).items():
            server[key] = server.get(key, 0.0) + value
    mean_ms = sum(run["metrics"]["http_req_duration"]["avg"] * count(run, "http_reqs") for run in runs) / max(requests, 1)
    return {
        "metrics": {
            "http_reqs": {"count": requests, "rate": requests / seconds},
            "sentences_classified": {"count": sentences, "rate": sentences / seconds},
            "http_req_duration": {"avg": mean_ms},
            "checks": {"fails": sum(run["metrics"].get("checks", {}).get("fails", 0) for run in runs)},
        },
        "points": points, "started": runs[0]["started"], "rounds": len(runs),
        "thresholds_passed": all(run["thresholds_passed"] for run in runs),
        **({"server_metrics": server} if any("server_metrics" in run for run in runs) else {}),
    }


def profiled(server: ServerProcess, vus: int, out_dir: Path, name: str, seconds: int = 8) -> dict:
    """CPU ms per request by layer in each worker (benchmark/profile.py), under `vus` one-text clients."""
    from benchmark import profile

    if not profile.PY_SPY.is_file():
        return {}
    started = profile.start(profile.workers(server.proc.pid), seconds, out_dir, name)
    run = k6("k6/clients.js", {"BASE_URL": server.url, "VUS": str(vus), "TEXTS": "1", "DURATION": f"{seconds + 2}s"}, out_dir, name)
    rate = run["metrics"]["http_reqs"]["rate"]
    return {"clients": vus, "requests_per_s": rate, "workers": profile.finish(started, round(rate * seconds))}


def redis_flush(redis: RedisServer) -> None:
    """Every course round starts from an empty cache."""
    import redis as redis_py

    redis_py.Redis.from_url(redis.url).flushall()


if __name__ == "__main__":
    sys.exit(main())

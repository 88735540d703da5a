"""Measure everything in one run and write the report.

    .venv/bin/python -m benchmark [--quick] [--model DIR] [--out reports/latest] [--course-full]

Starts what it needs (a model store in a temporary BENTOML_HOME, `redis-server`,
`bentoml serve`), runs bounded scenarios, stops everything, writes
`summary.md`, `results.json` and PNG charts into the output folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from benchmark.report import write_report
from tests.helpers import RedisServer, free_port, parse_metrics, start_server

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_CONFIG = ROOT.parent / "shared" / "models" / "distilbert-sst2-official-config"
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


def raw_throughput(model_dir: Path, seconds: float) -> dict[str, dict[str, float]]:
    """In-process Classifier throughput (sentences/s) at batch 1 and 32 for each precision."""
    from sentiment.inference import Classifier, configure_torch_threads, cpu_supports_bf16

    configure_torch_threads()
    texts = sentences(512, seed=1)
    results: dict[str, dict[str, float]] = {}
    for precision in ["fp32", "bf16", "int8"]:
        if precision == "bf16" and not cpu_supports_bf16():
            continue
        classifier = Classifier(str(model_dir), precision=precision)
        results[precision] = {}
        for batch in (1, 32):
            classifier.predict_proba(texts[:batch])
            done, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                classifier.predict_proba(texts[done % 480 : done % 480 + batch])
                done += batch
            results[precision][f"batch_{batch}"] = done / (time.perf_counter() - start)
            progress(f"raw {precision} batch {batch}: {results[precision][f'batch_{batch}']:.1f} sentences/s")
        del classifier
    return results


class MetricsSampler(threading.Thread):
    """Scrapes /metrics every second while scenarios run."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.samples, self._halt = url, [], threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._halt.is_set():
                try:
                    self.samples.append((time.time(), parse_metrics(client.get(f"{self.url}/metrics").text)))
                except httpx.HTTPError:
                    pass
                self._halt.wait(1.0)

    def stop(self) -> list[tuple[float, dict[str, float]]]:
        self._halt.set()
        self.join()
        return self.samples


def k6(script: str, env: dict[str, str], out_dir: Path, name: str) -> dict:
    summary, points = out_dir / f"{name}-summary.json", out_dir / f"{name}-points.csv"
    result = subprocess.run(
        [str(K6), "run", "--quiet", "--summary-trend-stats=min,med,avg,max,p(90),p(99)",
         "--summary-export", str(summary), "--out", f"csv={points}", script],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
    )
    data = json.loads(summary.read_text())
    data["thresholds_passed"] = result.returncode == 0
    data["started"], data["points"] = _points(points)
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
    parser.add_argument("--quick", action="store_true", help="short runs (about 3 minutes in all)")
    parser.add_argument("--course-full", action="store_true", help="the course scenario at full length (30 s ramps, 60 s hold)")
    parser.add_argument("--model", type=Path, help="a local save_pretrained model dir (default: full-size random DistilBERT)")
    parser.add_argument("--precision", help="serving precision (default: bf16 where the CPU supports it, else fp32)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "latest")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentiment.inference import cpu_supports_bf16

    precision = args.precision or ("bf16" if cpu_supports_bf16() else "fp32")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sentiment-bench-"))
    scale = 0.4 if args.quick else 1.0
    results: dict = {"precision": precision, "quick": args.quick, "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    model_dir = args.model or full_size_model(OFFICIAL_CONFIG, work / "model")
    results["model"] = str(args.model) if args.model else "DistilBERT (official config, random weights)"
    progress(f"model: {results['model']}; serving precision {precision}")
    results["raw"] = raw_throughput(model_dir, seconds=4 * scale + 1)

    home = work / "bentoml-home"
    subprocess.run([sys.executable, str(ROOT / "train_or_import.py"), "import", "--source", str(model_dir)],
                   check=True, cwd=ROOT, env={**os.environ, "BENTOML_HOME": str(home)}, stdout=subprocess.DEVNULL)
    redis = RedisServer(free_port()).start()
    server = start_server(home, work, env={"REDIS_URL": redis.url, "PRECISION": precision})
    sampler = MetricsSampler(server.url)
    sampler.start()
    try:
        progress("saturation: unique sentences at a rising arrival rate (k6/saturation.js)")
        results["saturation"] = k6("k6/saturation.js", {
            "BASE_URL": server.url, "START_RATE": "5", "PEAK_RATE": "40", "DURATION": f"{int(40 * scale)}s", "TEXTS": "10",
        }, args.out, "saturation")
        time.sleep(3)
        progress("course scenario: 10 virtual users, 95% cached payload (k6/load.js)")
        course_env = {"BASE_URL": server.url, "VUS": "10"}
        if not args.course_full:
            course_env.update({"RAMP": f"{int(10 * scale)}s", "DURATION": f"{int(40 * scale)}s"})
        results["course"] = k6("k6/load.js", course_env, args.out, "course")
        progress("cache-hit latency: one client, cached texts only")
        results["cached"] = k6("k6/load.js", {
            "BASE_URL": server.url, "VUS": "1", "RAMP": "1s", "DURATION": f"{int(15 * scale)}s", "CACHE_RATE": "1", "THINK_S": "0",
        }, args.out, "cached")
    finally:
        try:
            results["metrics"] = sampler.stop()
        finally:
            server.stop()
            redis.kill()
    write_report(results, args.out)
    progress(f"report: {args.out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

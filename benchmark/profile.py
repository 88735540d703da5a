"""Where the CPU goes under load: py-spy samples of each worker, by what the sampled code is.

`python -m benchmark` runs a short extra load (not one of the measured runs: the sampler
pauses the process it reads) while `py-spy record` samples every worker of the server,
then charges each sample to the layer its innermost recognised frame belongs to. Only
running threads are sampled (no --idle), so samples / rate = CPU seconds; divided by the
requests answered meanwhile, CPU ms per request per layer.
"""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import psutil

PY_SPY = Path(sys.executable).parent / "py-spy"
RATE_HZ = 250
# (layer, substrings of a frame's file); the innermost frame that matches one decides
LAYERS = (
    ("engine (OpenVINO, torch, numpy; the calling thread)", ("openvino/", "torch/", "numpy/")),
    ("tokenizer", ("tokenizers/", "sentiment/model/tokenization.py")),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("Redis client", ("redis/",)),
    ("logging", ("logging/",)),
    ("pydantic (validation, JSON)", ("pydantic/", "pydantic_core/")),
    ("this service's code", ("sentiment/", "service.py")),
    ("BentoML and its HTTP stack (batcher, uvicorn, h11, Starlette, OpenTelemetry)",
     ("uvicorn/", "h11/", "starlette/", "bentoml/", "_bentoml_impl/", "_bentoml_sdk/", "opentelemetry/", "anyio/", "httpx/", "httpcore/")),
    ("asyncio and the rest", ("",)),
)


def workers(server_pid: int) -> dict[str, int]:
    """{service name: pid} of the `bentoml serve` process tree's service workers."""
    found = {}
    for child in psutil.Process(server_pid).children(recursive=True):
        cmd = child.cmdline()
        if "--service-name" in cmd:
            found[cmd[cmd.index("--service-name") + 1]] = child.pid
    return found


def start(pids: dict[str, int], seconds: float, out_dir: Path, run: str) -> dict[str, tuple[subprocess.Popen, Path]]:
    """One `py-spy record` per worker, in raw (collapsed stacks, flamegraph.pl's input) format: `run`-`worker`.txt."""
    started = {}
    for name, pid in pids.items():
        path = out_dir / f"{run}-{name}.txt"
        proc = subprocess.Popen([str(PY_SPY), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(RATE_HZ),
                                 "--format", "raw", "--output", str(path), "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started[name] = (proc, path)
    return started


def finish(started: dict[str, tuple[subprocess.Popen, Path]], requests: int) -> dict[str, dict[str, float]]:
    """{worker: {layer: CPU ms per request}} ({} for a worker py-spy could not read)."""
    profiles = {}
    for name, (proc, path) in started.items():
        proc.wait(timeout=120)
        profiles[name] = by_layer(path.read_text(), RATE_HZ, requests) if proc.returncode == 0 and path.is_file() else {}
    return profiles


def layer_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        where = frame.rsplit(" (", 1)[-1]
        for layer, marks in LAYERS[:-1]:
            if any(mark in where for mark in marks):
                return layer
    return LAYERS[-1][0]


def by_layer(raw: str, rate_hz: float, requests: int) -> dict[str, float]:
    """py-spy raw lines ('frame;frame;... count') -> CPU ms per request in each layer, and the total."""
    samples: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples[layer_of(stack)] += int(count)
    per_request = {layer: 1000 * n / rate_hz / max(requests, 1) for layer, n in samples.most_common()}
    per_request["total"] = sum(per_request.values())
    return per_request

"""How fast a container of the image becomes useful: `podman run` -> first 200 on /readyz
-> first answered /predict, over several runs, plus the image's size and pull size and
the start-up stages each service logged (sentiment/startup.py).

    python -m benchmark.container_startup --image localhost/sentiment:full --runs 5
    python -m benchmark.container_startup --build-full-size   # builds both variants with
                                                              # the full-size model first

Prints one JSON document; `--out F` writes it to F too. podman runs with
scripts/containers.conf unless CONTAINERS_CONF names another (harness/podman.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from harness.podman import podman
from harness.processes import ROOT, free_port

STAGE_LINE = re.compile(r"start-up of (\w+): (.*?); ready ([\d.]+) s after the process started")


def image_sizes(image: str) -> dict[str, float]:
    """Unpacked size (podman image inspect) and pull size (the compressed layers, as a registry serves them)."""
    size = int(podman("image", "inspect", image, "--format", "{{.Size}}").stdout.strip())
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
        podman("save", "--compress", "--format", "docker-dir", "-o", f"{tmp}/image", image)
        manifest = json.loads(Path(tmp, "image", "manifest.json").read_text())
        pull = sum(layer["size"] for layer in manifest["layers"])
    return {"size_mib": size / 2**20, "pull_mib": pull / 2**20}


def first_success(request: callable, deadline: float) -> float:  # type: ignore[valid-type]
    while time.monotonic() < deadline:
        try:
            if request().status_code == 200:
                return time.monotonic()
        except httpx.HTTPError:
            pass
        time.sleep(0.02)  # polling interval: the resolution of the figure
    raise TimeoutError("no 200 before the deadline")


def one_run(image: str, env: dict[str, str], timeout: float = 300) -> dict:
    name = f"sentiment-startup-{uuid.uuid4().hex[:8]}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    started = time.monotonic()
    podman("run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "--tmpfs", "/var/lib/bentoml",
           "-e", "BENTOML_HOME=/var/lib/bentoml", *env_args, "-p", f"127.0.0.1:{port}:3000", image)
    try:
        deadline = started + timeout
        with httpx.Client(timeout=5) as client:
            ready = first_success(lambda: client.get(f"{url}/readyz"), deadline)
            answered = first_success(lambda: client.post(f"{url}/predict", json={"text": ["I love you"]}), deadline)
        logs = podman("logs", name, check=False)
        stages = {service: {"stages": stages_text, "total_s": float(total)}
                  for service, stages_text, total in STAGE_LINE.findall(logs.stdout + logs.stderr)}
        return {"readyz_s": ready - started, "first_predict_s": answered - started, "logged": stages}
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)


def measure(image: str, runs: int, env: dict[str, str]) -> dict:
    results = [one_run(image, env) for _ in range(runs)]
    ready = [r["readyz_s"] for r in results]
    first = [r["first_predict_s"] for r in results]
    return {
        "image": image,
        **image_sizes(image),
        "runs": runs,
        "readyz_s": {"median": statistics.median(ready), "max": max(ready), "all": ready},
        "first_predict_s": {"median": statistics.median(first), "max": max(first), "all": first},
        "logged_stages_last_run": results[-1]["logged"],
    }


def build_full_size_images(work: Path) -> list[str]:
    """Both image variants with the full-size model (official config, random weights)."""
    from benchmark.run import OFFICIAL_CONFIG, full_size_model, import_model

    home = work / "bentoml-home"
    import_model(full_size_model(OFFICIAL_CONFIG, work / "full-size"), home)
    images = []
    for variant in ("full", "openvino"):
        tag = f"localhost/sentiment:startup-{variant}"
        cmd = [sys.executable, str(ROOT / "scripts" / "build_image.py"), "-t", tag, "--variant", variant, "--backend", "buildah"]
        wheelhouse = ROOT / "build" / "wheelhouse"
        if list(wheelhouse.glob("torch-*.whl")):
            cmd += ["--wheelhouse", str(wheelhouse)]
        if os.environ.get("EXTRA_CA_BUNDLE"):
            cmd += ["--extra-ca", os.environ["EXTRA_CA_BUNDLE"]]
        subprocess.run(cmd, env={**os.environ, "BENTOML_HOME": str(home)}, check=True, stdout=subprocess.DEVNULL)
        images.append(tag)
    return images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", action="append", default=[], help="image to measure (repeatable)")
    parser.add_argument("--build-full-size", action="store_true", help="build both variants with the full-size model first")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the container (repeatable)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    images = list(args.image)
    if args.build_full_size:
        (ROOT / "build").mkdir(exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="startup-", dir=ROOT / "build"))
        try:
            images += build_full_size_images(work)
        finally:  # the model store the images were built from; they are in podman's storage now
            shutil.rmtree(work, ignore_errors=True)
    if not images:
        parser.error("give --image or --build-full-size")
    env = dict(item.split("=", 1) for item in args.env)
    report = [measure(image, args.runs, env) for image in images]
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Test-only helpers: the tiny model and rendered overlays (real processes and metrics come from harness/)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness.processes import ROOT


def build_tiny_model(path: Path) -> Path:
    """A small random DistilBERT sentiment classifier (NEGATIVE, POSITIVE), saved with save_pretrained."""
    from tests import tiny_models

    return tiny_models.distilbert(path, ["NEGATIVE", "POSITIVE"])


def render_overlay(
    overlay: str, api_key: str = "throw-away-test-key", redis_password: str = "throw-away-redis-password",
    components: tuple[str, ...] = (),
) -> str:
    """`kubectl kustomize` of an overlay, in a copy of deployment/ holding an API key file and a Redis
    password file (as a user provides them), with `components` (deployment/components/) added."""
    import tempfile

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError("kubectl is not installed (scripts/test.sh installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "deployment"
        shutil.copytree(ROOT / "deployment", copy, ignore=shutil.ignore_patterns("api-keys.txt", "redis-password.txt"))
        (copy / "base" / "api-keys.txt").write_text(f"{api_key}\n")
        (copy / "base" / "redis-password.txt").write_text(redis_password)
        if components:
            with (copy / "overlays" / overlay / "kustomization.yaml").open("a") as fh:
                fh.write("components:\n" + "".join(f"  - ../../components/{c}\n" for c in components))
        result = subprocess.run([kubectl, "kustomize", str(copy / "overlays" / overlay)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return result.stdout


def batches_and_texts(before: dict[str, float], after: dict[str, float]) -> tuple[float, float]:
    """Adaptive batches the model ran between two /metrics scrapes, and the texts in them."""
    def grown(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    return grown("sentiment_batch_texts_count"), grown("sentiment_batch_texts_sum")

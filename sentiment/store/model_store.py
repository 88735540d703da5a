"""Moving Hugging Face classifiers into and out of the BentoML model store.

A stored model is a plain `save_pretrained` directory (weights, config,
tokenizer) plus metadata: where it came from, its labels, its max length and a
content fingerprint. The fingerprint goes into cache keys, so a re-imported or
re-trained model never serves another model's cached scores.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml

from ..model.scoring import Scoring
from .int8 import Calibration, quantize_calibrated, weight_only_record

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = "distilbert-base-uncased-finetuned-sst-2-english"
DEFAULT_NAME = "distilbert-sst2"


class ModelSourceError(Exception):
    """A model source (directory or hub id) that cannot be loaded; the message says why."""


def fingerprint_directory(path: str | os.PathLike[str]) -> str:
    """sha256 over every file's relative name and bytes, in a stable order."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def load_pretrained(source: str) -> tuple[Any, Any]:
    """Load (model, tokenizer) from a local directory or a Hugging Face hub id."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    local = Path(source).expanduser()
    # hub ids are "name" or "org/name"; anything else that is not a directory
    # was meant as a path
    looks_like_path = local.exists() or source.startswith((".", "/", "~")) or source.count("/") > 1
    if looks_like_path and not local.is_dir():
        raise ModelSourceError(f"model directory not found: {source}")
    if local.is_dir() and not (local / "config.json").is_file():
        raise ModelSourceError(f"{source} is not a Hugging Face model directory (no config.json)")
    where = str(local) if local.is_dir() else source
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = AutoModelForSequenceClassification.from_pretrained(where)
    except OSError as exc:
        hint = (
            " (the Hugging Face hub is unreachable or HF_HUB_OFFLINE is set: pass a local "
            "directory with --source)"
            if not local.is_dir()
            else ""
        )
        raise ModelSourceError(f"cannot load model {source!r}: {exc}{hint}") from exc
    return model, tokenizer


def save_to_store(
    name: str,
    model: Any,
    tokenizer: Any,
    *,
    source: str,
    extra_metadata: dict[str, Any] | None = None,
    evaluate: Callable[[str], dict[str, Any]] | None = None,
    export: bool = True,
    calibration: Calibration | None = None,
) -> bentoml.Model:
    """Save a transformers model and tokenizer as a new version of `name`.

    The graph-runtime exports (`sentiment/model/engines.py`) are made here, next to the
    weights, and checked against torch; `evaluate(saved_dir)` may add metadata
    (accuracy, the guard's verdicts) measured on the saved files before the
    version is committed to the store. With `calibration`, the OpenVINO int8 export
    quantizes activations too (`sentiment/store/int8.py`); without, weights only.
    """
    max_length = int(
        min(
            getattr(model.config, "max_position_embeddings", 512) or 512,
            getattr(tokenizer, "model_max_length", 512) or 512,
        )
    )
    with bentoml.models.create(name) as stored:
        model.save_pretrained(stored.path)
        tokenizer.save_pretrained(stored.path)
        exports = export_engines(model, stored.path, max_length, calibration) if export else {}
        stored.info.metadata.update(
            {
                "source": source,
                "labels": list(Scoring.from_model_dir(stored.path).labels),  # shown by `bentoml models get`
                "max_length": max_length,
                "fingerprint": fingerprint_directory(stored.path),
                "architecture": type(model).__name__,
                "exports": exports,
                **(extra_metadata or {}),
            }
        )
        if evaluate is not None:
            stored.info.metadata.update(evaluate(stored.path))
        stored.info.labels.update({"task": "text-classification"})
        readable_by_any_user(stored.path)  # the store copies these modes on commit
    return stored


PROBE_TEXTS = (
    "I love you", "I hate you", "Count to 1234",
    "a long, winding and ultimately rather pointless story that nevertheless has its moments of real charm",
)


def export_engines(model: Any, path: str, max_length: int, calibration: Calibration | None = None) -> dict[str, Any]:  # noqa: ANN401
    """OpenVINO IR of the model (fp32 and int8) in `path`, when OpenVINO is installed.

    The fp32 export must give torch's scores (|diff| <= 1e-4 on a few texts of
    different lengths, batched and alone); a broken export fails the import.
    """
    from ..model.engines import EngineUnavailable, export_openvino, openvino_installed
    from ..model.inference import Classifier

    if not openvino_installed():
        return {}
    try:
        written = export_openvino(model, path)
    except Exception as exc:  # converters fail on architectures they do not know: torch still serves
        logger.warning("no OpenVINO export for %s: %s", type(model).__name__, exc)
        return {"openvino": f"failed: {exc}"[:300]}
    reference = Classifier(path, engine="torch", max_length=max_length)
    exported = Classifier(path, engine="openvino", max_length=max_length)
    worst = 0.0
    for texts in (list(PROBE_TEXTS), *[[t] for t in PROBE_TEXTS]):
        for a, b in zip(reference.scores(texts), exported.scores(texts)):
            worst = max(worst, *(abs(x - y) for x, y in zip(a, b)))
    if worst > 1e-4:
        raise EngineUnavailable(f"the OpenVINO export differs from torch by {worst:.2e} (> 1e-4) on {len(PROBE_TEXTS)} probe texts")
    int8_record = None
    if any(p.name == "int8.xml" for p in written):
        int8_record = quantize_calibrated(path, calibration, max_length) if calibration else weight_only_record()
    return {"openvino": [p.name for p in written], "openvino_fp32_max_diff": worst,
            **({"openvino_int8": int8_record} if int8_record else {})}


def readable_by_any_user(path: str) -> None:
    """Let any UID read a stored model. BentoML creates version folders 0700 and
    transformers writes weights 0600, so an image run under another UID than the one that
    built it (Kubernetes' runAsUser, OpenShift's random UIDs) could not load them."""
    root = Path(path)
    for item in [root, *root.rglob("*")]:
        mode = item.stat().st_mode
        item.chmod(mode | (0o555 if item.is_dir() else 0o444))


@dataclass(frozen=True)
class StoredClassifier:
    """What the serving path needs to know about a stored model without loading weights
    (its labels and score function come from its own config: `Scoring.from_model_dir`)."""

    tag: str
    path: str
    max_length: int
    fingerprint: str

    @classmethod
    def from_model(cls, stored: bentoml.Model) -> StoredClassifier:
        meta = stored.info.metadata
        return cls(
            tag=str(stored.tag),
            path=stored.path,
            max_length=int(meta.get("max_length", 512)),
            fingerprint=str(meta["fingerprint"]),
        )

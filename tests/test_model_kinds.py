"""Any sequence classifier: labels and score function from the model's config, imported and served for real."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.processes import ROOT, start_server
from tests import tiny_models
from tests.test_train_or_import import stored_metadata, stored_tag

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

TEXTS = ["I love you", "I hate you", "Count to 1234", "this movie was not very good"]


def _softmax(row: list[float]) -> list[float]:
    exps = [math.exp(x - max(row)) for x in row]
    return [e / sum(exps) for e in exps]


def _sigmoid(row: list[float]) -> list[float]:
    return [1 / (1 + math.exp(-x)) for x in row]


KINDS = {
    # name: (builder, labels, problem type, score function)
    "three-labels": (tiny_models.distilbert, ["negative", "neutral", "positive"], None, _softmax),
    "multi-label": (tiny_models.distilbert, ["toxic", "insult", "threat"], "multi_label_classification", _sigmoid),
    "bert": (tiny_models.bert, ["NEGATIVE", "POSITIVE"], None, _softmax),
    "roberta": (tiny_models.roberta, ["NEG", "POS"], None, _softmax),
    "regression": (tiny_models.distilbert, ["score"], "regression", lambda row: row),
}


def torch_logits(model_dir: Path, texts: list[str]) -> list[list[float]]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        return [model(**tokenizer([t], return_tensors="pt")).logits[0].tolist() for t in texts]


@pytest.mark.parametrize("kind", KINDS)
def test_imported_and_served_with_the_config_s_semantics(kind: str, tmp_path: Path) -> None:
    builder, labels, problem_type, function = KINDS[kind]
    kwargs = {"problem_type": problem_type} if builder is not tiny_models.roberta else {}
    model_dir = builder(tmp_path / "model", labels, **kwargs)
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "train_or_import.py"), "import", "--source", str(model_dir), "--name", kind],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "will serve openvino/fp32" in out.stdout  # every kind exports and passes the export check

    server = start_server(tmp_path, tmp_path, env={"MODEL_TAG": f"{kind}:latest", "CACHE_MAX_ENTRIES": "0"})
    try:
        scored = httpx.post(f"{server.url}/predict", json={"text": TEXTS}, timeout=60).json()["predictions"]
        raw = httpx.post(f"{server.url}/predict", json={"text": TEXTS, "raw_scores": True}, timeout=60).json()["predictions"]
        info = httpx.get(f"{server.url}/info", timeout=10).json()["model"]
    finally:
        server.stop()
    # /info says what the stored model is (a tiny multi-label model among them)
    assert info["tag"] == stored_tag(tmp_path, f"{kind}:latest") and info["labels"] == labels
    assert info["fingerprint"] == stored_metadata(tmp_path, f"{kind}:latest")["fingerprint"]
    expected = {_softmax: ("single_label_classification", "softmax"), _sigmoid: ("multi_label_classification", "sigmoid")}
    assert (info["problem_type"], info["score_function"]) == expected.get(function, ("regression", "none"))
    reference = torch_logits(model_dir, TEXTS)
    for s_row, r_row, ref in zip(scored, raw, reference):
        assert [s["label"] for s in s_row] == labels == [s["label"] for s in r_row]  # id2label, label-id order
        logits = [s["score"] for s in r_row]
        assert logits == pytest.approx(ref, abs=1e-4)  # the served engine computes torch's logits
        assert [s["score"] for s in s_row] == pytest.approx(function(logits), abs=1e-5)  # the config's function


def test_eval_and_guard_say_why_a_regression_model_cannot_be_judged(tmp_path: Path) -> None:
    model_dir = tiny_models.distilbert(tmp_path / "model", ["score"], problem_type="regression")
    data = tmp_path / "d.tsv"
    data.write_text("sentence\tlabel\na good film\t1\na bad film\t0\n")
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "train_or_import.py"), "import", "--source", str(model_dir), "--eval", str(data)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 2 and "regression model" in out.stderr and "Traceback" not in out.stderr

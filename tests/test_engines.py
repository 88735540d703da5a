"""Engines: the OpenVINO export gives torch's answers, what each machine can run, and which pair `auto` serves."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sentiment import engines
from sentiment.engines import EngineUnavailable, export_openvino, supported_pairs, why_unavailable
from sentiment.inference import Classifier
from sentiment.precision_guard import choose, served_pair

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

TEXTS = ["I love you", "I hate you", "", "Count to 1234", "the best movie ever " * 40, "not very good"]


@pytest.fixture(scope="module")
def exported_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoModelForSequenceClassification

    folder = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(tiny_model_dir, folder)
    export_openvino(AutoModelForSequenceClassification.from_pretrained(folder).eval(), folder)
    return folder


def test_openvino_fp32_gives_torch_scores(exported_dir: Path) -> None:
    reference = Classifier(str(exported_dir), engine="torch").predict_proba(TEXTS)
    exported = Classifier(str(exported_dir), engine="openvino").predict_proba(TEXTS)
    assert max(abs(a - b) for r, e in zip(reference, exported) for a, b in zip(r, e)) <= 1e-4


def test_openvino_int8_runs_and_stays_close(exported_dir: Path) -> None:
    int8 = Classifier(str(exported_dir), engine="openvino", precision="int8")
    assert int8.runner.precision == "int8"
    rows = int8.predict_proba(TEXTS)
    reference = Classifier(str(exported_dir), engine="torch").predict_proba(TEXTS)
    assert len(rows) == len(TEXTS) and all(abs(sum(r) - 1) < 1e-5 for r in rows)
    assert max(abs(a - b) for r, e in zip(reference, rows) for a, b in zip(r, e)) < 0.1


def test_what_a_machine_can_run(exported_dir: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "cpu_supports_bf16", lambda: False)
    assert set(supported_pairs(exported_dir)) == {("torch", "fp32"), ("torch", "int8"), ("openvino", "fp32"), ("openvino", "int8")}
    assert "AVX512-BF16" in why_unavailable("openvino", "bf16", exported_dir)
    # a model stored without the export: torch only, and the reason says how to get it
    assert set(supported_pairs(tiny_model_dir)) == {("torch", "fp32"), ("torch", "int8")}
    assert "re-import" in why_unavailable("openvino", "fp32", tiny_model_dir)
    monkeypatch.setattr(engines, "openvino_installed", lambda: False)
    assert why_unavailable("openvino", "fp32", exported_dir) == "the openvino package is not installed"
    monkeypatch.setattr(engines, "cpu_supports_bf16", lambda: True)
    assert ("torch", "bf16") in supported_pairs(exported_dir)


RECORD = {
    "torch/fp32": {"passed": True, "texts_per_s": 100, "batch1_texts_per_s": 40},
    "torch/int8": {"passed": False, "texts_per_s": 400, "batch1_texts_per_s": 180},
    "openvino/fp32": {"passed": True, "texts_per_s": 105, "batch1_texts_per_s": 75},
    "openvino/int8": {"passed": True, "texts_per_s": 350, "batch1_texts_per_s": 240},
    "openvino/bf16": {"passed": True, "texts_per_s": 280, "batch1_texts_per_s": 170},
}
ALL = [(e, p) for e in ("torch", "openvino") for p in ("fp32", "bf16", "int8")]


def test_auto_serves_the_fastest_pair_that_passed() -> None:
    assert choose(RECORD, ALL) == ("openvino", "int8")
    assert choose(RECORD, [p for p in ALL if p != ("openvino", "int8")]) == ("openvino", "bf16")
    assert choose(RECORD, [("torch", "fp32"), ("torch", "int8")]) == ("torch", "fp32")  # torch int8 failed
    assert choose(RECORD, ALL, engine="torch") == ("torch", "fp32")
    assert choose(RECORD, ALL, precision="fp32") == ("openvino", "fp32")
    assert choose(RECORD, ALL, engine="torch", precision="int8") == ("torch", "int8")  # named: served as asked
    # records written before engines existed name torch's precisions only
    assert choose({"bf16": {"passed": True, "texts_per_s": 250}, "fp32": {"passed": True, "texts_per_s": 100}}, ALL) == ("torch", "bf16")


def test_without_a_guard_auto_serves_fp32_graph_runtime_first() -> None:
    assert choose(None, ALL) == ("openvino", "fp32")
    assert choose({}, [("torch", "fp32"), ("torch", "int8")]) == ("torch", "fp32")
    assert choose(None, ALL, precision="int8") == ("torch", "int8")  # named, unguarded: the user's call


def test_a_named_pair_this_machine_cannot_run_fails_at_start(tiny_model_dir: Path) -> None:
    with pytest.raises(EngineUnavailable, match="openvino/fp32.*re-import"):
        served_pair(str(tiny_model_dir), None, "openvino", "fp32")
    assert served_pair(str(tiny_model_dir), None, "auto", "auto") == ("torch", "fp32")

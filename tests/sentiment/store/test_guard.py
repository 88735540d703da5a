"""The accuracy guard's verdicts, and which pair ENGINE/PRECISION=auto serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiment.model.engines import EngineUnavailable
from sentiment.store.guard import GuardResult, choose, compare, served_pair, speed

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


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


def test_compare_counts_agreement_accuracy_and_difference() -> None:
    reference = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]
    rows = [[0.8, 0.2], [0.3, 0.7], [0.45, 0.55], [0.3, 0.7]]
    result = compare("openvino", "int8", reference, rows, labels=[0, 1, 1, 1], texts_per_s=10.0)
    assert result.agreement == 0.75
    assert result.fp32_accuracy == 0.75 and result.accuracy == 1.0
    assert result.max_score_diff == pytest.approx(0.15)
    assert not result.passed  # 75% agreement, however accurate
    assert result.as_metadata()["engine"] == "openvino"


@pytest.mark.parametrize(
    ("agreement", "accuracy", "passed"),
    [(1.0, 0.898, True), (0.995, 0.895, True), (0.994, 0.898, False), (1.0, 0.8949, False)],
)
def test_guard_thresholds(agreement: float, accuracy: float, passed: bool) -> None:
    assert GuardResult("torch", "x", agreement, accuracy, 0.898, 0.0, 1.0).passed is passed


def test_speed_weighs_batched_and_single_text_throughput() -> None:
    assert speed({"texts_per_s": 100, "batch1_texts_per_s": 100}) == pytest.approx(100)
    # 2x at batch 1 beats 1.1x batched
    assert speed({"texts_per_s": 100, "batch1_texts_per_s": 80}) > speed({"texts_per_s": 110, "batch1_texts_per_s": 40})
    assert speed({"texts_per_s": 90}) == pytest.approx(90)  # older records: batched only

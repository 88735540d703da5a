"""The accuracy guard for fast precisions, and what PRECISION=auto serves."""

from __future__ import annotations

import pytest

from sentiment.precision_guard import GuardResult, choose_precision, compare
from tests.helpers import start_server
from tests.test_train_or_import import cli, stored_metadata


def test_compare_counts_agreement_accuracy_and_difference() -> None:
    reference = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]
    rows = [[0.8, 0.2], [0.3, 0.7], [0.45, 0.55], [0.3, 0.7]]
    result = compare("bf16", reference, rows, labels=[0, 1, 1, 1], texts_per_s=10.0)
    assert result.agreement == 0.75
    assert result.fp32_accuracy == 0.75 and result.accuracy == 1.0
    assert result.max_score_diff == pytest.approx(0.15)
    assert not result.passed  # 75% agreement, however accurate


@pytest.mark.parametrize(
    ("agreement", "accuracy", "passed"),
    [(1.0, 0.898, True), (0.995, 0.895, True), (0.994, 0.898, False), (1.0, 0.8949, False)],
)
def test_guard_thresholds(agreement: float, accuracy: float, passed: bool) -> None:
    assert GuardResult("x", agreement, accuracy, 0.898, 0.0, 1.0).passed is passed


def test_auto_picks_fastest_passing_supported_precision() -> None:
    recorded = {
        "fp32": {"passed": True, "texts_per_s": 100},
        "bf16": {"passed": True, "texts_per_s": 250},
        "int8": {"passed": False, "texts_per_s": 370},
    }
    assert choose_precision(recorded, ["fp32", "bf16", "int8"]) == "bf16"
    assert choose_precision(recorded, ["fp32", "int8"]) == "fp32"  # CPU without bf16
    assert choose_precision(None, ["fp32", "bf16", "int8"]) == "fp32"  # no guard recorded


def test_guard_on_the_sst2_model_then_auto_serves_bf16(real_model_dir, sst2_dev, tmp_path) -> None:  # noqa: ANN001
    from sentiment.inference import cpu_supports_bf16

    cli("import", "--source", str(real_model_dir), home=tmp_path)
    out = cli("guard", "--data", str(sst2_dev), "--record", home=tmp_path).stdout
    print(out)
    guard = stored_metadata(tmp_path, "distilbert-sst2:latest")["precision_guard"]
    assert guard["int8"]["passed"] is False  # measured: 96.4% agreement, accuracy 89.8% -> 88.8%
    assert guard["int8"]["agreement"] < 0.995
    if cpu_supports_bf16():
        assert guard["bf16"]["passed"] is True and guard["bf16"]["agreement"] >= 0.995
        expected = "bf16"
    else:
        expected = "fp32"
    server = start_server(tmp_path, tmp_path, env={"PRECISION": "auto"})
    try:
        assert f"precision={expected}" in server.log()
    finally:
        server.stop()

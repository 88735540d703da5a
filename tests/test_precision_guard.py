"""The accuracy guard for fast engine/precision pairs, and what ENGINE=auto PRECISION=auto serves."""

from __future__ import annotations

import pytest

from harness.processes import start_server
from sentiment.store.int8 import RECIPES, choose_recipe, runnable
from tests.conftest import SST2_TRAIN
from tests.test_train_or_import import cli, stored_metadata

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)


def test_import_with_eval_guards_every_pair_then_auto_serves_the_fast_path(real_model_dir, sst2_dev, tmp_path) -> None:  # noqa: ANN001
    calibrate = ("--calibrate", str(SST2_TRAIN)) if SST2_TRAIN.is_file() else ()
    out = cli("import", "--source", str(real_model_dir), "--eval", str(sst2_dev), *calibrate, home=tmp_path).stdout
    print(out)
    meta = stored_metadata(tmp_path, "distilbert-sst2:latest")
    guard = meta["precision_guard"]
    if calibrate:  # int8 of activations, its recipe chosen on SST-2 train texts, then judged on dev like the rest
        int8 = meta["exports"]["openvino_int8"]
        assert int8["calibrated"] is True and int8["recipe"] == choose_recipe(int8["tried"])
        assert set(int8["tried"]) == set(runnable(tuple(RECIPES)))  # the bf16 float parts where the CPU has bf16
        assert all(r["selection_flips"] >= 0 and r["texts_per_s"] > 0 for r in int8["tried"].values())
    assert meta["eval_accuracy"] == pytest.approx(0.8979, abs=1e-4)
    # torch int8 (dynamic quantization) is measured and refused: 96.4% agreement, 89.8% -> 88.8%
    assert guard["torch/int8"]["passed"] is False and guard["torch/int8"]["agreement"] < 0.995
    # the graph runtime in fp32 computes what torch computes
    assert guard["openvino/fp32"]["passed"] is True and guard["openvino/fp32"]["agreement"] == 1.0
    assert "openvino/int8" in guard
    passed = {key for key, r in guard.items() if r["passed"]}
    served = out.rsplit("will serve ", 1)[1].split(":")[0]
    assert served in passed and served != "torch/fp32"
    server = start_server(tmp_path, tmp_path)  # defaults: ENGINE=auto PRECISION=auto
    try:
        engine, precision = served.split("/")
        assert f"engine={engine} precision={precision}" in server.log()
        info = [k for k, v in server.metrics().items() if k.startswith("sentiment_model_info") and v == 1]
        assert len(info) == 1 and f'engine="{engine}"' in info[0] and f'precision="{precision}"' in info[0]
    finally:
        server.stop()

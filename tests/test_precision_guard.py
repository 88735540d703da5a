"""The accuracy guard for fast engine/precision pairs, and what ENGINE=auto PRECISION=auto serves."""

from __future__ import annotations

import httpx
import pytest

from harness.processes import start_server
from harness.prometheus import metric_sum
from sentiment.store.int8 import RECIPES, choose_recipe, runnable
from tests.conftest import SST2_TRAIN
from tests.test_train_or_import import cli, stored_metadata

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)


def nearest_decisions(model_dir, dev, n: int) -> list[str]:  # noqa: ANN001
    """The `n` texts of `dev` whose fp32 decision margin is smallest."""
    import numpy as np

    from sentiment.model.inference import Classifier
    from sentiment.model.recheck import decision_margins
    from sentiment.store.data import read_labelled

    texts = [e.sentence for e in read_labelled(dev)]
    fp32 = Classifier(model_dir, engine="torch")
    margins = decision_margins(np.array(fp32.logits(fp32.token_ids(texts))), "softmax")
    return [texts[i] for i in np.argsort(margins)[:n]]


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
        # texts near a decision are rechecked in fp32 (sentiment/model/recheck.py): int8 keeps fp32's labels
        assert 0 < guard["openvino/int8"]["rechecked"] < 0.2
        assert guard["openvino/int8"]["passed"] is True and guard["openvino/int8"]["agreement"] >= 0.995
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
        if served == "openvino/int8":  # the texts of dev nearest a decision in fp32 are rechecked, and counted
            near = nearest_decisions(real_model_dir, sst2_dev, 24)
            r = httpx.post(f"{server.url}/predict", json={"text": near}, timeout=60)
            assert r.status_code == 200
            assert metric_sum(server.metrics(), "sentiment_rechecked_texts_total") > 0
    finally:
        server.stop()

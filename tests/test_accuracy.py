"""The served model scores what the offline evaluation says, on the full SST-2 dev set."""

from __future__ import annotations

import httpx
import pytest

from sentiment.store.data import read_labelled
from tests.test_train_or_import import cli

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

CHUNK = 64


def test_served_accuracy_equals_offline_eval(server, bentoml_home, real_model_dir, sst2_dev) -> None:  # noqa: ANN001
    examples = read_labelled(sst2_dev)
    assert len(examples) == 872
    correct = 0
    with httpx.Client(timeout=120) as client:
        for start in range(0, len(examples), CHUNK):
            chunk = examples[start : start + CHUNK]
            r = client.post(f"{server.url}/predict", json={"text": [e.sentence for e in chunk]})
            assert r.status_code == 200, r.text
            for example, row in zip(chunk, r.json()["predictions"]):
                predicted = max(range(len(row)), key=lambda i: row[i]["score"])
                correct += predicted == example.label
    served = correct / len(examples)

    out = cli("eval", "--data", str(sst2_dev), home=bentoml_home).stdout
    offline = float(out.split("accuracy:")[1].split()[0])
    print(f"\nSST-2 dev accuracy: served {served:.4f}, offline eval {offline:.4f}")
    assert served == pytest.approx(offline, abs=0.001)
    assert offline == pytest.approx(0.8979, abs=0.001)

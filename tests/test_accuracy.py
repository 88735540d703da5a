"""The served model scores what the offline evaluation says, on the full SST-2 dev set."""

from __future__ import annotations

import pytest

from harness.accuracy import eval_accuracy, served_accuracy
from sentiment.store.data import read_labelled
from tests.test_train_or_import import cli

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)


def test_served_accuracy_equals_offline_eval(server, bentoml_home, real_model_dir, sst2_dev) -> None:  # noqa: ANN001
    examples = read_labelled(sst2_dev)
    assert len(examples) == 872
    served = served_accuracy(server.url, examples)

    out = cli("eval", "--data", str(sst2_dev), home=bentoml_home).stdout
    offline = eval_accuracy(out)
    print(f"\nSST-2 dev accuracy: served {served:.4f}, offline eval {offline:.4f}")
    assert served == pytest.approx(offline, abs=0.001)
    assert offline == pytest.approx(0.8979, abs=0.001)

"""int8's recheck: decision margins, how far int8 moved them, and texts near a decision recomputed in fp32."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sentiment.model.engines import export_openvino, openvino_core, openvino_files, store_recheck_margin
from sentiment.model.inference import BatchStats, Classifier
from sentiment.model.recheck import RECHECK_BELOW, decision_margins, margin_changes, recorded

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

TEXTS = ["I love you", "I hate you", "", "Count to 1234", "the best movie ever " * 40, "not very good", "fine", "meh"]


def test_a_margin_is_how_far_a_decision_is_from_changing() -> None:
    logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.0, 0.3]])
    assert decision_margins(logits, "softmax") == pytest.approx([1.5, 0.2])  # best minus second best
    assert decision_margins(np.array([[2.0, -0.3], [-4.0, 1.0]]), "sigmoid") == pytest.approx([0.3, 1.0])  # nearest 0
    assert np.isinf(decision_margins(np.array([[3.2]]), "none")).all()  # a regression has no decision


def test_a_margin_change_bounds_what_any_gap_between_two_logits_moved() -> None:
    reference = np.array([[1.0, 0.0, 0.0]])
    other = np.array([[0.9, 0.2, -0.1]])  # the changes: -0.1, +0.2, -0.1
    assert margin_changes(reference, other, "softmax") == pytest.approx([0.3])  # the 1-vs-2 gap moved by 0.3
    assert margin_changes(reference, other, "sigmoid") == pytest.approx([0.2])  # a logit moved by 0.2 at most
    # whatever moved, a label changes only if the change exceeds the margin
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    b = a + rng.normal(scale=0.3, size=a.shape)
    changed = a.argmax(axis=1) != b.argmax(axis=1)
    assert (margin_changes(a, b, "softmax")[changed] > decision_margins(a, "softmax")[changed]).all()
    assert (decision_margins(b, "softmax")[changed] < margin_changes(a, b, "softmax")[changed]).all()


def test_texts_below_the_recorded_margin_get_fp32_logits_and_the_others_keep_int8_s(exported_dir: Path) -> None:
    fp32 = Classifier(str(exported_dir), engine="openvino", precision="fp32")
    ids = fp32.token_ids(TEXTS)
    reference = np.array(fp32.logits(ids))
    alone = Classifier(str(exported_dir), engine="openvino", precision="int8")  # as imported: no margin recorded
    assert alone.engine.recheck_below is None
    int8 = np.array(alone.logits(ids))
    assert not np.allclose(int8, reference, atol=1e-6)  # int8 moved the logits
    margins = decision_margins(int8, "softmax")
    below = float(np.median(margins))  # half the texts under it
    store_recheck_margin(exported_dir, below)
    try:
        rechecking = Classifier(str(exported_dir), engine="openvino", precision="int8", group_max_texts=3)  # several groups
        assert rechecking.engine.recheck_below == pytest.approx(below)
        stats = BatchStats()
        got = np.array(rechecking.logits(ids, stats))
        near = margins < below
        assert 0 < near.sum() < len(TEXTS) and stats.rechecked == near.sum() == rechecking.engine.rechecked
        np.testing.assert_allclose(got[near], reference[near], atol=1e-5)  # fp32's
        np.testing.assert_allclose(got[~near], int8[~near], atol=1e-6)  # int8's own
    finally:
        store_recheck_margin(exported_dir, 0.0)


def test_an_ir_records_a_margin_or_none(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    shutil.copytree(tiny_model_dir, tmp_path / "model")
    export_openvino(AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").eval(), tmp_path / "model")
    model = openvino_core().read_model(openvino_files(tmp_path / "model", "int8"))  # weight-only int8: nothing recorded
    assert recorded(model) is None
    model.set_rt_info("0.0", RECHECK_BELOW)
    assert recorded(model) is None  # 0: nothing to recheck
    model.set_rt_info(repr(0.75), RECHECK_BELOW)
    assert recorded(model) == 0.75

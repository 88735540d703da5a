"""Static int8: the slices it is calibrated and chosen on, the choice, and the layers kept in float."""

from __future__ import annotations

import re

import pytest

from sentiment.store.data import DataError
from sentiment.store.int8 import FFN_OUTPUT, HEAD, RECIPES, Calibration, choose_recipe

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def test_slices_are_disjoint_deterministic_and_never_hold_the_guard_s_texts() -> None:
    texts = [f"text {i}" for i in range(100)] + ["text 3", "  ", ""]  # a duplicate and blanks
    guard = frozenset({"text 5", "text 6"})
    calibration = Calibration(texts, source="train.tsv", excluded=guard, calibration_size=30, selection_size=50)
    calib, selection = calibration.slices()
    assert (len(calib), len(selection)) == (30, 50)
    assert not set(calib) & set(selection)
    assert not (set(calib) | set(selection)) & guard
    assert all(t.strip() for t in calib + selection)
    assert calibration.slices() == (calib, selection)  # the same file gives the same slices
    assert calib != sorted(calib)  # shuffled, not the file's first rows
    with pytest.raises(DataError, match="too few texts for static int8"):
        Calibration(texts[:15], source="small.tsv").slices()


def test_the_fastest_recipe_with_its_recheck_wins_then_fewer_labels_changed_without_it() -> None:
    """Every recipe keeps every selection label with its recheck, so speed (which pays for the rechecks) decides."""
    tried = {
        "fast": {"selection_flips": 5, "hardest_mean_logit_error": 0.07, "texts_per_s": 900.0},
        "faithful": {"selection_flips": 3, "hardest_mean_logit_error": 0.05, "texts_per_s": 400.0},
        "as fast, closer": {"selection_flips": 5, "hardest_mean_logit_error": 0.06, "texts_per_s": 900.0},
    }
    assert choose_recipe(tried) == "as fast, closer"
    assert choose_recipe({k: v for k, v in tried.items() if k != "as fast, closer"}) == "fast"


def test_float_layers_match_the_ffn_output_and_head_of_distilbert_and_bert_only() -> None:
    def kept(name: str, patterns: list[str]) -> bool:
        return any(re.match(p, name) for p in patterns)  # as nncf.IgnoredScope matches patterns

    distilbert = "__module.distilbert.transformer.layer.{}.{}/aten::linear/MatMul"
    bert = "__module.bert.encoder.layer.{}.{}/aten::linear/MatMul"
    assert kept(distilbert.format(3, "ffn.lin2"), FFN_OUTPUT)
    assert kept(bert.format(11, "output.dense"), FFN_OUTPUT)
    for other in ("ffn.lin1", "attention.out_lin", "attention.q_lin"):
        assert not kept(distilbert.format(0, other), FFN_OUTPUT + HEAD)
    assert not kept(bert.format(0, "attention.output.dense"), FFN_OUTPUT + HEAD)
    assert kept("__module.pre_classifier/aten::linear/MatMul", HEAD)
    assert kept("__module.classifier/aten::linear/MatMul", HEAD)
    assert kept("__module.classifier.dense/aten::linear/MatMul", HEAD)  # RoBERTa's head
    assert "transformer, FFN output and head in float" in RECIPES

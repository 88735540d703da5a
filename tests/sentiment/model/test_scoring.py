"""What the model's config says: labels (read without transformers, as transformers reads them),
the score function, the predicted class."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sentiment.model.scoring import Scoring, predicted_class, read_model_config
from tests import tiny_models

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


@pytest.fixture(scope="module", params=["distilbert", "bert", "roberta", "shipped"])
def saved_model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    if request.param == "shipped":
        return model_dir
    return getattr(tiny_models, request.param)(tmp_path_factory.mktemp(request.param), ["NEG", "NEUTRAL", "POS"])


def test_model_config_without_transformers_matches_autoconfig(saved_model_dir: Path) -> None:
    from transformers import AutoConfig

    config = read_model_config(saved_model_dir)
    reference = AutoConfig.from_pretrained(saved_model_dir)
    assert config["num_labels"] == reference.num_labels
    assert config["id2label"] == dict(reference.id2label)
    assert Scoring.from_model_dir(saved_model_dir).labels == tuple(reference.id2label[i] for i in range(reference.num_labels))


def test_model_config_defaults_as_transformers(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "distilbert"}')
    assert read_model_config(tmp_path)["id2label"] == {0: "LABEL_0", 1: "LABEL_1"}


@pytest.mark.parametrize(
    ("config", "function"),
    [
        ({"id2label": {"0": "NEG", "1": "POS"}}, "softmax"),
        ({"id2label": {"0": "a", "1": "b", "2": "c"}, "problem_type": "multi_label_classification"}, "sigmoid"),
        ({"id2label": {"0": "rating"}}, "none"),
        ({"id2label": {"0": "x", "1": "y"}, "problem_type": "regression"}, "none"),
    ],
)
def test_the_config_chooses_the_score_function(tmp_path: Path, config: dict, function: str) -> None:
    (tmp_path / "config.json").write_text(json.dumps(config))
    scoring = Scoring.from_model_dir(tmp_path)
    assert scoring.function == function and scoring.is_classifier is (function != "none")
    logits = [2.0, -1.0, 0.5][: len(scoring.labels)]
    scores = scoring.scores(logits)
    if function == "softmax":
        assert sum(scores) == pytest.approx(1.0) and scores[0] > scores[1]
    elif function == "sigmoid":
        assert scores == pytest.approx([1 / (1 + math.exp(-x)) for x in logits])
    else:
        assert scores == logits
    assert predicted_class(scores) == predicted_class(logits) == 0  # every function keeps the order


def test_predicted_class_is_the_largest_value() -> None:
    assert predicted_class([0.1, 0.7, 0.2]) == 1
    assert predicted_class([-3.0, -1.0]) == 1
    assert predicted_class([0.5, 0.5]) == 0  # ties: the first label, as argmax


def test_windows_aggregate_to_what_each_function_means(tmp_path: Path) -> None:
    def scoring(config: dict) -> Scoring:
        (tmp_path / "config.json").write_text(json.dumps(config))
        return Scoring.from_model_dir(tmp_path)

    windows = [[2.0, -1.0], [0.5, 0.25], [-3.0, 1.5]]
    softmax = scoring({"id2label": {"0": "NEG", "1": "POS"}})
    assert softmax.aggregate(windows[:1]) == windows[0]  # one window: the text's own logits, untouched
    assert softmax.aggregate(windows) == [-3.0, 1.5]  # the most confident window (POS at 0.989, beats NEG at 0.953)
    sigmoid = scoring({"id2label": {"0": "a", "1": "b"}, "problem_type": "multi_label_classification"})
    assert sigmoid.aggregate(windows) == [2.0, 1.5]  # label by label, the window that finds it most
    regression = scoring({"id2label": {"0": "rating"}})
    assert regression.aggregate([[1.0], [2.0], [6.0]]) == [3.0]

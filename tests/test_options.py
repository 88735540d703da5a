"""Per-request options of POST /predict through a real `bentoml serve`: top_k, raw_scores, truncation."""

from __future__ import annotations

import math

import httpx
import pytest

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)


def post(server, body: dict) -> httpx.Response:  # noqa: ANN001
    return httpx.post(f"{server.url}/predict", json=body, timeout=60)


def test_without_options_every_label_in_label_id_order(server) -> None:  # noqa: ANN001
    (row,) = post(server, {"text": ["I love you"]}).json()["predictions"]
    assert [s["label"] for s in row] == ["NEGATIVE", "POSITIVE"]
    assert sum(s["score"] for s in row) == pytest.approx(1.0, abs=1e-6)


def test_top_k_gives_the_best_labels_first(server) -> None:  # noqa: ANN001
    full = post(server, {"text": ["I love you", "I hate you"]}).json()["predictions"]
    top1 = post(server, {"text": ["I love you", "I hate you"], "top_k": 1}).json()["predictions"]
    for every, best in zip(full, top1):
        assert best == [max(every, key=lambda s: s["score"])]
    (sorted_all,) = post(server, {"text": ["I love you"], "top_k": 5}).json()["predictions"]
    assert len(sorted_all) == 2 and sorted_all[0]["score"] >= sorted_all[1]["score"]


def test_raw_scores_are_the_logits_behind_the_probabilities(server) -> None:  # noqa: ANN001
    texts = ["I love you", "Count to 1234"]
    probs = post(server, {"text": texts}).json()["predictions"]
    raw = post(server, {"text": texts, "raw_scores": True}).json()["predictions"]
    for p_row, r_row in zip(probs, raw):
        logits = [s["score"] for s in r_row]
        exps = [math.exp(x - max(logits)) for x in logits]
        assert [s["score"] for s in p_row] == pytest.approx([e / sum(exps) for e in exps], abs=1e-9)
        assert abs(sum(logits) - 1.0) > 1e-3 or any(x < 0 for x in logits)  # not probabilities


def test_truncation_left_keeps_the_end_of_a_long_text(server) -> None:  # noqa: ANN001
    long_text = "good " * 600 + "bad " * 600  # far past 512 tokens
    right, left = (post(server, {"text": [long_text], "truncation": side}).json()["predictions"][0] for side in ("right", "left"))
    start, end = (post(server, {"text": [t]}).json()["predictions"][0] for t in ("good " * 510, "bad " * 510))
    assert right == start and left == end
    assert right != left


@pytest.mark.parametrize(
    ("options", "field"),
    [({"top_k": 0}, "top_k"), ({"top_k": "3"}, "top_k"), ({"top_k": 1.5}, "top_k"),
     ({"raw_scores": "yes"}, "raw_scores"), ({"truncation": "middle"}, "truncation")],
)
def test_bad_option_values_are_a_400_naming_the_field(server, options: dict, field: str) -> None:  # noqa: ANN001
    r = post(server, {"text": ["I love you"], **options})
    assert r.status_code == 400, r.text
    assert field in r.text

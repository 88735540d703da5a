"""Long texts through a real `bentoml serve`: chunked into windows scored like texts and cached per window,
what each answer was based on (`details`), and requests without the new fields answered exactly as before."""

from __future__ import annotations

import json

import httpx
import pytest

from harness.prometheus import metric_sum

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

LONG = " ".join(f"part {i}: the acting was {'wonderful' if i % 3 else 'dreadful'} and the plot was dull" for i in range(168))


def post(server, body: dict) -> httpx.Response:  # noqa: ANN001
    return httpx.post(f"{server.url}/predict", json=body, timeout=120)


def stored_model(bentoml_home) -> str:  # noqa: ANN001
    (model_yaml,) = sorted(bentoml_home.glob("models/distilbert-sst2/*/model.yaml"))[-1:]
    return str(model_yaml.parent)


def test_a_chunked_text_is_answered_with_the_aggregate_of_its_windows(server, bentoml_home) -> None:  # noqa: ANN001
    from sentiment.model.inference import Classifier
    from sentiment.model.windows import Windowing, split

    engine, precision = server.log().split("loaded: engine=", 1)[1].split()[:2]
    classifier = Classifier(stored_model(bentoml_home), engine=engine, precision=precision.removeprefix("precision="))
    (cut,) = split(classifier.tokenizer, [LONG], 512, windowing=Windowing(512, 384))
    assert 1950 <= cut.tokens <= 2100 and len(cut.windows) >= 5  # a text of about 2,000 tokens
    offline = classifier.scoring.aggregate(classifier.logits(cut.windows))

    hits = lambda: metric_sum(server.metrics(), "sentiment_cache_lookups_total", result="hit")  # noqa: E731
    before = hits()
    first = post(server, {"text": [LONG], "long_text": "chunk", "raw_scores": True, "details": True}).json()
    assert [p["score"] for p in first["predictions"][0]] == pytest.approx(offline, abs=1e-5)
    assert first["details"] == [{"tokens": cut.tokens, "truncated": False, "windows": len(cut.windows), "cached": False}]
    again = post(server, {"text": [LONG], "long_text": "chunk", "raw_scores": True, "details": True}).json()
    assert again["predictions"] == first["predictions"] and again["details"][0]["cached"] is True
    assert hits() - before == len(cut.windows)  # served from the cache, window by window

    probabilities = post(server, {"text": [LONG], "long_text": "chunk"}).json()["predictions"][0]
    assert [p["score"] for p in probabilities] == pytest.approx(classifier.scoring.scores(offline), abs=1e-5)
    assert sum(p["score"] for p in probabilities) == pytest.approx(1.0)


def test_details_say_what_each_answer_was_based_on(server) -> None:  # noqa: ANN001
    short = f"a short one {id(server)}"
    answer = post(server, {"text": [short, LONG, short], "details": True}).json()
    tokens = answer["details"][0]["tokens"]
    assert answer["details"] == [
        {"tokens": tokens, "truncated": False, "windows": 1, "cached": False},
        {"tokens": 512, "truncated": True, "windows": 1, "cached": answer["details"][1]["cached"]},
        {"tokens": tokens, "truncated": False, "windows": 1, "cached": False},  # the same text, computed once
    ]
    assert 4 <= tokens <= 32  # a short text: the number in it may take a dozen word pieces
    repeat = post(server, {"text": [short], "details": True, "long_text": "chunk"}).json()
    assert repeat["details"] == [{"tokens": tokens, "truncated": False, "windows": 1, "cached": True}]  # one window: as truncated
    assert post(server, {"text": [], "details": True}).json() == {"predictions": [], "details": []}


def test_a_request_without_the_new_fields_is_answered_byte_for_byte_as_before(server) -> None:  # noqa: ANN001
    texts = ["I love you", "I hate you", LONG]
    plain = post(server, {"text": texts})
    explicit = post(server, {"text": texts, "long_text": "truncate", "details": False})
    assert plain.content == explicit.content
    parsed = plain.json()
    assert set(parsed) == {"predictions"}
    assert plain.content == json.dumps(parsed, separators=(",", ":")).encode()  # compact, predictions only


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"long_text": "split"}, "long_text"),
        ({"long_text": "chunk", "window": 8}, "window"),
        ({"long_text": "chunk", "window": 100_000}, "window"),
        ({"long_text": "chunk", "stride": 0}, "stride"),
        ({"details": "yes"}, "details"),
    ],
)
def test_bad_chunk_options_are_a_400_naming_the_field(server, options: dict, field: str) -> None:  # noqa: ANN001
    r = post(server, {"text": ["fine"], **options})
    assert r.status_code == 400 and field in r.text, r.text


def test_a_stride_past_the_window_leaves_no_text_out(server) -> None:  # noqa: ANN001
    """Taken as the window less 8: windows 64 tokens wide, 56 apart; and empty texts are one window each."""
    wide = post(server, {"text": [LONG], "long_text": "chunk", "window": 64, "stride": 400, "details": True}).json()
    exact = post(server, {"text": [LONG], "long_text": "chunk", "window": 64, "stride": 56, "details": True}).json()
    assert wide["predictions"] == exact["predictions"] and exact["details"][0]["cached"]  # the same windows
    assert wide["details"][0]["windows"] == exact["details"][0]["windows"] > 30
    empty = post(server, {"text": ["", ""], "long_text": "chunk", "window": 32, "details": True})
    assert empty.status_code == 200 and [d["windows"] for d in empty.json()["details"]] == [1, 1]

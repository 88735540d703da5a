"""In-process tests of the batch runner: length groups, padding, truncation, equality with one-at-a-time."""

from __future__ import annotations

import pytest

from sentiment.model.inference import BatchStats, Classifier

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


@pytest.fixture(scope="module")
def classifier(model_dir) -> Classifier:  # noqa: ANN001
    return Classifier(str(model_dir), group_max_texts=4, group_max_tokens=512)


TEXTS = [
    "I love you",
    "I hate you",
    "",
    "Count to 1234",
    "this film was a long and boring story with awful acting, but the end was fun " * 3,
    "great",
    "not very good, not very bad",
    "I LOVE YOU",
    "the best movie ever " * 40,
]


def test_batched_equals_one_at_a_time(classifier: Classifier) -> None:
    stats = BatchStats()
    batched = classifier.scores(TEXTS, stats)
    single = [classifier.scores([t])[0] for t in TEXTS]
    assert len(batched) == len(TEXTS)
    diff = max(abs(a - b) for ra, rb in zip(batched, single) for a, b in zip(ra, rb))
    assert diff <= 1e-4
    for row in batched:
        assert sum(row) == pytest.approx(1.0, abs=1e-5)
    assert stats.texts == len(TEXTS) and stats.groups >= 3  # 9 texts, at most 4 per group
    assert stats.padded_tokens >= sum(len(ids) for ids in classifier.token_ids(TEXTS))


def test_padding_waste_is_small_with_sorting(classifier: Classifier) -> None:
    texts = ["short"] * 8 + ["a much longer sentence " * 30] * 2
    stats = BatchStats()
    classifier.scores(texts, stats)
    naive = len(texts) * max(len(x) for x in classifier.token_ids(texts))
    assert stats.padded_tokens < naive / 2


def test_long_text_truncated_to_window(classifier: Classifier) -> None:
    long_text = "great " * 5000
    stats = BatchStats()
    (row,) = classifier.scores([long_text], stats)
    assert len(classifier.token_ids([long_text])[0]) == stats.padded_tokens == classifier.max_length == 512
    assert sum(row) == pytest.approx(1.0, abs=1e-5)


def test_labels_come_from_the_model_config(classifier: Classifier) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(classifier.path)
    assert list(classifier.scoring.labels) == [config.id2label[i] for i in range(config.num_labels)]


def test_empty_input_needs_no_model_call(classifier: Classifier) -> None:
    stats = BatchStats()
    assert classifier.scores([], stats) == []
    assert stats.groups == 0


def test_unknown_precision_is_refused(model_dir) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="precision"):
        Classifier(str(model_dir), precision="fp8")
    with pytest.raises(ValueError, match="engine"):
        Classifier(str(model_dir), engine="tensorrt")


def test_bf16_on_a_cpu_without_it_is_refused_not_run_as_fp32(model_dir, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from sentiment.model import cpu
    from sentiment.model.engines import EngineUnavailable

    monkeypatch.setattr(cpu, "supports_bf16", lambda: False)
    with pytest.raises(EngineUnavailable, match="cannot serve torch/bf16: this CPU has no AVX512-BF16/AMX"):
        Classifier(str(model_dir), precision="bf16")

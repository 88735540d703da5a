"""In-process tests of the batch runner: grouping by length, padding, threads, equality with one-at-a-time."""

from __future__ import annotations

import pytest
import torch

from sentiment.inference import BatchStats, Classifier, available_cpus, configure_torch_threads, plan_groups

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def test_plan_groups_sorts_by_length_and_bounds_groups() -> None:
    lengths = [5, 100, 7, 6, 90, 8]
    groups = plan_groups(lengths, max_texts=2, max_tokens=10_000)
    assert [i for g in groups for i in g] == [0, 3, 2, 5, 4, 1]  # ascending length
    assert all(len(g) <= 2 for g in groups)
    # token budget: count x longest never exceeds it (unless a single text is longer)
    groups = plan_groups([10] * 7 + [300], max_texts=100, max_tokens=40)
    assert [len(g) for g in groups] == [4, 3, 1]
    assert plan_groups([], 4, 100) == []


def test_plan_groups_minimises_padded_work() -> None:
    # equal lengths: one pass is cheapest
    assert [len(g) for g in plan_groups([16] * 40, 64, 8192)] == [40]
    # two clusters: padding the short ones to 200 costs more than a second pass
    assert [len(g) for g in plan_groups([16] * 40 + [200] * 4, 64, 8192)] == [40, 4]
    # a lone slightly longer text joins the group rather than paying a pass of its own
    assert [len(g) for g in plan_groups([16] * 10 + [18], 64, 8192)] == [11]


def test_threads_follow_available_cores() -> None:
    cores = available_cpus()
    assert 1 <= cores
    assert configure_torch_threads() == cores == torch.get_num_threads()
    assert configure_torch_threads(processes_sharing=cores * 2) == 1
    assert configure_torch_threads(requested=1) == 1
    configure_torch_threads()


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
    batched = classifier.predict_proba(TEXTS, stats)
    single = [classifier.predict_proba([t])[0] for t in TEXTS]
    assert len(batched) == len(TEXTS)
    diff = max(abs(a - b) for ra, rb in zip(batched, single) for a, b in zip(ra, rb))
    assert diff <= 1e-4
    for row in batched:
        assert sum(row) == pytest.approx(1.0, abs=1e-5)
    assert stats.texts == len(TEXTS) and stats.groups >= 3  # 9 texts, at most 4 per group
    assert stats.padded_tokens >= stats.tokens


def test_padding_waste_is_small_with_sorting(classifier: Classifier) -> None:
    texts = ["short"] * 8 + ["a much longer sentence " * 30] * 2
    stats = BatchStats()
    classifier.predict_proba(texts, stats)
    naive = len(texts) * max(len(x) for x in classifier.token_ids(texts))
    assert stats.padded_tokens < naive / 2


def test_long_text_truncated_to_window(classifier: Classifier) -> None:
    long_text = "great " * 5000
    stats = BatchStats()
    (row,) = classifier.predict_proba([long_text], stats)
    assert stats.tokens == classifier.max_length == 512
    assert sum(row) == pytest.approx(1.0, abs=1e-5)


def test_labels_come_from_the_model_config(classifier: Classifier) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(classifier.path)
    assert classifier.labels == [config.id2label[i] for i in range(config.num_labels)]


def test_empty_input_needs_no_model_call(classifier: Classifier) -> None:
    stats = BatchStats()
    assert classifier.predict_proba([], stats) == []
    assert stats.groups == 0


def test_unknown_precision_is_refused(model_dir) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="precision"):
        Classifier(str(model_dir), precision="fp8")
    with pytest.raises(ValueError, match="engine"):
        Classifier(str(model_dir), engine="tensorrt")

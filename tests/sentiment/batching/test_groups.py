"""Length groups inside a batch: sorted by length, bounded, minimal padded work."""

from __future__ import annotations

import pytest

from sentiment.batching.groups import plan_groups

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

"""Length grouping inside one batch: which texts run through the engine together.

A batch from the adaptive batcher holds texts of any length; padding them all to
the longest wastes most of the work. Texts are sorted by token length and cut into
groups, each padded only to its own longest text (`sentiment/model/inference.py`
runs them).
"""

from __future__ import annotations

from collections.abc import Sequence

# The fixed cost of one forward pass, in tokens' worth of work (DistilBERT on a CPU:
# roughly 50 tokens), which decides when a second, shorter group pays for itself.
OVERHEAD_TOKENS = 48


def plan_groups(
    lengths: Sequence[int], max_texts: int, max_tokens: int, overhead_tokens: int = OVERHEAD_TOKENS
) -> list[list[int]]:
    """Indices sorted by length, cut into groups that minimise padded work.

    The cost of running a group is about `overhead_tokens` plus count x longest.
    Over texts sorted by length the best cut is found exactly by dynamic
    programming; a group holds at most `max_texts` texts and at most `max_tokens`
    padded tokens (a single longer text still forms its own group).
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    sizes = [lengths[i] for i in order]
    n = len(sizes)
    best = [0.0] + [float("inf")] * n  # best[i]: cost of the first i texts
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        longest = sizes[end - 1]  # sorted ascending: the last text is the longest
        for start in range(end - 1, max(-1, end - 1 - max_texts), -1):
            count = end - start
            if count > 1 and count * longest > max_tokens:
                break
            cost = best[start] + overhead_tokens + count * longest
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups: list[list[int]] = []
    end = n
    while end > 0:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]

"""Long texts as overlapping windows of token ids, each one the model's size.

A text longer than the model's window is cut into windows of `window` tokens (special
tokens included) that start `stride` content tokens apart; the last window ends at the
text's end, so the first window is what right truncation keeps and the last what left
truncation keeps. Each window is framed with the tokenizer's own special tokens
(`[CLS] ... [SEP]`, `<s> ... </s>`), so the model sees every window as it sees a text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .tokenization import Tokenizer


class Windowing(NamedTuple):
    """`long_text: "chunk"`: windows of `window` tokens, `stride` tokens of text apart."""

    window: int
    stride: int


class TextWindows(NamedTuple):
    """One text as the model sees it: its windows' ids (one unless chunked), the tokens in them, whether it was cut."""

    windows: list[list[int]]
    tokens: int
    truncated: bool


def split(
    tokenizer: Tokenizer, texts: Sequence[str], max_length: int, truncation: str = "right", windowing: Windowing | None = None,
) -> list[TextWindows]:
    """Each text's windows: one, truncated at `truncation`'s end, or (with `windowing`) as many as it needs."""
    if windowing is None:
        return [TextWindows([ids], len(ids), cut) for ids, cut in tokenizer.encode_truncating(texts, max_length, truncation)]
    prefix, suffix = tokenizer.frame()
    return [
        TextWindows(windows(content, prefix, suffix, windowing.window, windowing.stride), len(content) + len(prefix) + len(suffix), False)
        for content in tokenizer.encode_content(texts)
    ]


def windows(content: Sequence[int], prefix: Sequence[int], suffix: Sequence[int], window: int, stride: int) -> list[list[int]]:
    """Token ids of each window of a text whose ids without special tokens are `content`."""
    room = window - len(prefix) - len(suffix)  # content tokens per window
    if room <= 0:
        raise ValueError(f"a window of {window} tokens leaves no room for text between the special tokens")
    if not 0 < stride <= room:
        raise ValueError(f"the stride must be between 1 and the window's {room} tokens of text, not {stride}")
    starts = list(range(0, max(1, len(content) - room + 1), stride))
    if starts[-1] + room < len(content):  # the last window ends at the text's end
        starts.append(len(content) - room)
    return [[*prefix, *content[start : start + room], *suffix] for start in starts]

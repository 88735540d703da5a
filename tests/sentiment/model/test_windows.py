"""Windows of a long text: the model's size, overlapping, the first and last the two truncations."""

from __future__ import annotations

import pytest

from sentiment.model.tokenization import load_tokenizer
from sentiment.model.windows import Windowing, split, windows

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def test_windows_cover_the_text_and_end_at_its_end() -> None:
    content = list(range(1000))
    cut = windows(content, [101], [102], window=12, stride=7)  # 10 tokens of text each
    assert all(w[0] == 101 and w[-1] == 102 and len(w) == 12 for w in cut)
    starts = [w[1] for w in cut]
    assert starts[:-1] == list(range(0, 990, 7))[: len(starts) - 1] and cut[-1][1:-1] == content[-10:]
    assert set(content) == {t for w in cut for t in w[1:-1]}  # every token seen
    assert windows(list(range(5)), [101], [102], 12, 7) == [[101, 0, 1, 2, 3, 4, 102]]  # a text that fits: itself
    assert windows([], [0], [2], 12, 7) == [[0, 2]]  # an empty text is a window too


@pytest.mark.parametrize(("window", "stride", "message"), [(2, 1, "no room"), (12, 11, "stride"), (12, 0, "stride")])
def test_impossible_windows_are_refused(window: int, stride: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        windows(list(range(100)), [101], [102], window, stride)


def test_split_gives_the_truncations_and_the_windows(model_dir) -> None:  # noqa: ANN001
    tokenizer = load_tokenizer(model_dir)
    text = " ".join(f"sentence {i} was good and then bad" for i in range(300))
    (right,), (left,) = split(tokenizer, [text], 512, "right"), split(tokenizer, [text], 512, "left")
    (chunked,) = split(tokenizer, [text], 512, windowing=Windowing(512, 384))
    assert right.truncated and left.truncated and not chunked.truncated
    assert chunked.windows[0] == right.windows[0] and chunked.windows[-1] == left.windows[0]
    assert chunked.tokens == len(tokenizer.encode_content([text])[0]) + 2
    assert len(chunked.windows) == -(-(chunked.tokens - 2 - 510) // 384) + 1

"""Cache keys: a text's key is the model's fingerprint plus the token ids the model will see.

The ids are made once, here, and travel with the key: the cache looks the key up
and, on a miss, the same ids go to the model service. A long text chunked into windows
(`long_text: "chunk"`) is cached per window: a window two texts share is computed once,
and a text's first window has the key its right truncation has.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
from collections.abc import Sequence
from typing import NamedTuple

from ..model.tokenization import Tokenizer
from ..model.windows import Windowing, split


def cache_key(fingerprint: str, token_ids: Sequence[int]) -> str:
    """Key on the model's fingerprint and the token ids the model will see.

    Texts the model cannot tell apart (case for an uncased model, extra
    whitespace, anything past the truncation point) share one entry.
    """
    digest = hashlib.blake2b(",".join(map(str, token_ids)).encode(), digest_size=16).hexdigest()
    return f"sentiment:{fingerprint}:{digest}"


class Encoded(NamedTuple):
    """One window of a text (the whole text, or its part the model's window holds) as the cache and the model see it."""

    key: str
    ids: list[int]


class TextUnits(NamedTuple):
    """One text as the model sees it: its windows (one unless it was chunked), the tokens in them, whether it was cut."""

    windows: list[Encoded]
    tokens: int
    truncated: bool


class CacheKeys:
    """Texts -> (cache key, token ids) through the model's tokenizer, remembering recent short texts.

    Tokenizing is the costliest step of a cache hit; traffic repeats itself, so the
    keys and ids of recent texts (up to `memo_max_chars` long) are kept in a small
    LRU, and a text repeated within a request is tokenized once. The ids are what the
    model service gets: a text is tokenized once. Texts of more than `offload_chars`
    characters in all are tokenized in a thread (`tokenizers` releases the GIL), so a
    request of long texts never stalls the event loop, the probes included.
    `truncation` says which end of a long text is kept ("right" keeps the start).
    """

    def __init__(
        self, tokenizer: Tokenizer, fingerprint: str, max_length: int,
        memo_entries: int = 10_000, memo_max_chars: int = 512, offload_chars: int = 4096,
    ) -> None:
        self.tokenizer = tokenizer
        self.fingerprint = fingerprint
        self.max_length = max_length
        self.memo_entries = memo_entries
        self.memo_max_chars = memo_max_chars
        self.offload_chars = offload_chars
        self._memo: collections.OrderedDict[tuple[object, str], TextUnits] = collections.OrderedDict()

    async def encode(self, texts: Sequence[str], truncation: str = "right", windowing: Windowing | None = None) -> list[TextUnits]:
        """Each text's windows: one, truncated at `truncation`'s end, or (with `windowing`) as many as it needs."""
        mode = truncation if windowing is None else windowing
        found: dict[str, TextUnits] = {}
        todo: list[str] = []
        for text in dict.fromkeys(texts):  # each distinct text once
            entry = self._memo.get((mode, text))
            if entry is None:
                todo.append(text)
            else:
                found[text] = entry
                self._memo.move_to_end((mode, text))
        if todo:
            if sum(map(len, todo)) > self.offload_chars:
                made = await asyncio.to_thread(self._tokenize, todo, truncation, windowing)
            else:
                made = self._tokenize(todo, truncation, windowing)
            found.update(made)
            for text, entry in made.items():
                if len(text) <= self.memo_max_chars:
                    self._memo[(mode, text)] = entry
            while len(self._memo) > self.memo_entries:
                self._memo.popitem(last=False)
        return [found[text] for text in texts]

    def _tokenize(self, texts: list[str], truncation: str, windowing: Windowing | None) -> dict[str, TextUnits]:
        """Keys and ids of `texts` (pure: runs in a thread for long texts)."""
        return {
            text: TextUnits([Encoded(cache_key(self.fingerprint, ids), list(ids)) for ids in cut.windows], cut.tokens, cut.truncated)
            for text, cut in zip(texts, split(self.tokenizer, texts, self.max_length, truncation, windowing))
        }

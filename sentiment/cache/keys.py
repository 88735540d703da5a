"""Cache keys: a text's key is the model's fingerprint plus the token ids the model will see.

The ids are made once, here, and travel with the key: the cache looks the key up
and, on a miss, the same ids go to the model service.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Sequence
from typing import NamedTuple

from ..model.tokenization import Tokenizer


def cache_key(fingerprint: str, token_ids: Sequence[int]) -> str:
    """Key on the model's fingerprint and the token ids the model will see.

    Texts the model cannot tell apart (case for an uncased model, extra
    whitespace, anything past the truncation point) share one entry.
    """
    digest = hashlib.blake2b(",".join(map(str, token_ids)).encode(), digest_size=16).hexdigest()
    return f"sentiment:{fingerprint}:{digest}"


class Encoded(NamedTuple):
    """One text as the cache and the model see it."""

    key: str
    ids: list[int]


class CacheKeys:
    """Texts -> (cache key, token ids) through the model's tokenizer, remembering recent short texts.

    Tokenizing is the costliest step of a cache hit; traffic repeats itself, so
    the keys and ids of recent texts (up to `memo_max_chars` long) are kept in a
    small LRU. The ids are what the model service gets: a text is tokenized once.
    `truncation` says which end of a long text is kept ("right" keeps the start).
    """

    def __init__(
        self, tokenizer: Tokenizer, fingerprint: str, max_length: int,
        memo_entries: int = 10_000, memo_max_chars: int = 512,
    ) -> None:
        self.tokenizer = tokenizer
        self.fingerprint = fingerprint
        self.max_length = max_length
        self.memo_entries = memo_entries
        self.memo_max_chars = memo_max_chars
        self._memo: collections.OrderedDict[tuple[str, str], Encoded] = collections.OrderedDict()

    def encode(self, texts: Sequence[str], truncation: str = "right") -> list[Encoded]:
        found: list[Encoded | None] = [self._memo.get((truncation, t)) for t in texts]
        todo = [i for i, k in enumerate(found) if k is None]
        if todo:
            ids = self.tokenizer.encode([texts[i] for i in todo], self.max_length, truncation)
            for i, token_ids in zip(todo, ids):
                found[i] = entry = Encoded(cache_key(self.fingerprint, token_ids), list(token_ids))
                if len(texts[i]) <= self.memo_max_chars:
                    self._memo[(truncation, texts[i])] = entry
        for text in texts:
            if (truncation, text) in self._memo:
                self._memo.move_to_end((truncation, text))
        while len(self._memo) > self.memo_entries:
            self._memo.popitem(last=False)
        return found  # type: ignore[return-value]

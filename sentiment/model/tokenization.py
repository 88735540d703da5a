"""Texts -> token ids on the serving path, without transformers.

A stored model's `tokenizer.json` is what transformers' fast tokenizers run; the
`tokenizers` library runs it directly, so the serving path imports neither
transformers nor torch. That keeps the torch-free image small and start-up short.
Truncation is configured as transformers configures it for
`tokenizer(texts, truncation=True, max_length=n)` (longest-first, no stride, the side
asked for) and special tokens come from the file's post-processor, so the ids are the
same (tests/sentiment/model/test_tokenization.py compares both on several tokenizer families).
A model saved without a `tokenizer.json` (a slow-only tokenizer) is tokenized by
transformers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

TOKENIZER_FILE = "tokenizer.json"


class Tokenizer(Protocol):
    pad_token_id: int

    def encode(self, texts: Sequence[str], max_length: int, truncation: str = "right") -> list[list[int]]:
        """Token ids with special tokens, at most `max_length`; `truncation` says which end is cut."""
        ...

    def encode_truncating(self, texts: Sequence[str], max_length: int, truncation: str = "right") -> list[tuple[list[int], bool]]:
        """As `encode`, with whether each text was cut."""
        ...

    def encode_content(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids without special tokens, not truncated (to cut into windows)."""
        ...

    def frame(self) -> tuple[list[int], list[int]]:
        """The special tokens around one text: (before, after), e.g. ([CLS], [SEP])."""
        ...


class FastTokenizer:
    """The model's tokenizer.json through the `tokenizers` library; safe to call from several threads.

    Truncation is part of a `tokenizers.Tokenizer`'s state, so each (length, side) gets a
    tokenizer of its own, configured once: nothing is reconfigured while another thread
    encodes (long texts are tokenized off the event loop, sentiment/cache/keys.py).
    """

    def __init__(self, model_dir: str | Path) -> None:
        from tokenizers import Tokenizer as Backend

        self._backend = Backend.from_file(str(Path(model_dir) / TOKENIZER_FILE))
        self._backend.no_padding()  # padding is the engine's business (sentiment/model/inference.py)
        self._backend.no_truncation()  # a saved tokenizer.json may carry the truncation it was trained with
        self._truncating: dict[tuple[int, str], Any] = {}
        self._lock = threading.Lock()
        self.pad_token_id = _pad_token_id(Path(model_dir), self._backend)

    def encode(self, texts: Sequence[str], max_length: int, truncation: str = "right") -> list[list[int]]:
        return [e.ids for e in self._truncating_at(max_length, truncation).encode_batch(list(texts), add_special_tokens=True)]

    def encode_truncating(self, texts: Sequence[str], max_length: int, truncation: str = "right") -> list[tuple[list[int], bool]]:
        encodings = self._truncating_at(max_length, truncation).encode_batch(list(texts), add_special_tokens=True)
        return [(e.ids, bool(e.overflowing)) for e in encodings]

    def encode_content(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._backend.encode_batch(list(texts), add_special_tokens=False)]

    def frame(self) -> tuple[list[int], list[int]]:
        return _frame(self._backend.encode("a", add_special_tokens=True).ids, self._backend.encode("a", add_special_tokens=False).ids)

    def _truncating_at(self, max_length: int, truncation: str) -> Any:  # noqa: ANN401 - a tokenizers.Tokenizer
        backend = self._truncating.get((max_length, truncation))
        if backend is None:
            with self._lock:
                backend = self._truncating.get((max_length, truncation))
                if backend is None:
                    backend = type(self._backend).from_str(self._backend.to_str())
                    backend.enable_truncation(max_length, stride=0, strategy="longest_first", direction=truncation)
                    self._truncating[(max_length, truncation)] = backend
        return backend


class TransformersTokenizer:
    """Any tokenizer transformers can load (the fallback: imports transformers)."""

    def __init__(self, model_dir: str | Path) -> None:
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self._lock = threading.Lock()  # the truncation side is the tokenizer's state
        self.pad_token_id = self._tokenizer.pad_token_id or 0

    def encode(self, texts: Sequence[str], max_length: int, truncation: str = "right") -> list[list[int]]:
        with self._lock:
            self._tokenizer.truncation_side = truncation
            return self._tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]

    def encode_truncating(self, texts: Sequence[str], max_length: int, truncation: str = "right") -> list[tuple[list[int], bool]]:
        ids = self.encode(texts, max_length, truncation)
        with self._lock:
            full = self._tokenizer(list(texts), truncation=False)["input_ids"]
        return [(x, len(f) > len(x)) for x, f in zip(ids, full)]

    def encode_content(self, texts: Sequence[str]) -> list[list[int]]:
        with self._lock:
            return self._tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]

    def frame(self) -> tuple[list[int], list[int]]:
        with self._lock:
            return _frame(self._tokenizer("a")["input_ids"], self._tokenizer("a", add_special_tokens=False)["input_ids"])


def load_tokenizer(model_dir: str | Path) -> Tokenizer:
    if (Path(model_dir) / TOKENIZER_FILE).is_file():
        return FastTokenizer(model_dir)
    return TransformersTokenizer(model_dir)


def _frame(framed: list[int], bare: list[int]) -> tuple[list[int], list[int]]:
    """Split a probe text's ids with special tokens into what comes before and after its own ids."""
    for start in range(len(framed) - len(bare) + 1):
        if framed[start : start + len(bare)] == bare:
            return framed[:start], framed[start + len(bare) :]
    raise ValueError("the tokenizer's special tokens are not around the text: windows need a tokenizer that frames it")


def _pad_token_id(model_dir: Path, backend: Any) -> int:  # noqa: ANN401 - a tokenizers.Tokenizer
    """The pad token as transformers resolves it: tokenizer_config.json's pad_token, else 0."""
    config = model_dir / "tokenizer_config.json"
    token = json.loads(config.read_text()).get("pad_token") if config.is_file() else None
    if isinstance(token, dict):  # older files store an AddedToken
        token = token.get("content")
    token_id = backend.token_to_id(token) if isinstance(token, str) else None
    return token_id if token_id is not None else 0

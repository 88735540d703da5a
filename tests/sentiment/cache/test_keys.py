"""Cache keys: the model's fingerprint plus the token ids, from the serving path's tokenizer."""

from __future__ import annotations

import asyncio

import pytest

from sentiment.cache.keys import CacheKeys, cache_key
from sentiment.model.tokenization import load_tokenizer

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def test_key_depends_on_fingerprint_and_tokens() -> None:
    assert cache_key("fp1", [101, 7, 102]) == cache_key("fp1", [101, 7, 102])
    assert cache_key("fp1", [101, 7, 102]) != cache_key("fp2", [101, 7, 102])
    assert cache_key("fp1", [101, 7, 102]) != cache_key("fp1", [101, 71, 102])
    assert cache_key("fp1", [1, 23]) != cache_key("fp1", [12, 3])


def test_uncased_tokenizer_makes_case_variants_share_a_key(model_dir) -> None:  # noqa: ANN001
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok(["I LOVE YOU", "i love you", "  I love   you ", "I hate you"])["input_ids"]
    keys = [cache_key("fp", x) for x in ids]
    assert keys[0] == keys[1] == keys[2]
    assert keys[3] != keys[0]


def test_cache_keys_match_tokenizer_and_memo_is_bounded(model_dir) -> None:  # noqa: ANN001
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)  # the reference for the serving path's tokenizer
    keys = CacheKeys(load_tokenizer(model_dir), "fp", 512, memo_entries=3, memo_max_chars=20)
    texts = ["I love you", "I LOVE YOU", "a" * 50, "I hate you", "great", "I love you"]
    reference = tok(texts, truncation=True, max_length=512)["input_ids"]
    expected = [cache_key("fp", ids) for ids in reference]
    assert [u.windows[0].key for u in asyncio.run(keys.encode(texts))] == expected
    units = asyncio.run(keys.encode(texts))  # from the memo, same answer
    assert [u.windows[0].ids for u in units] == reference and [u.tokens for u in units] == [len(x) for x in reference]
    assert not any(u.truncated for u in units) and all(len(u.windows) == 1 for u in units)
    assert len(keys._memo) == 3 and ("right", "a" * 50) not in keys._memo
    # the other end of a long text is another key; the ids are what the tokenizer gives
    long_text = "good " * 600 + "bad " * 600  # over offload_chars: tokenized in a thread
    (right,), (left,) = (asyncio.run(keys.encode([long_text], side))[0].windows for side in ("right", "left"))
    assert right.key != left.key and len(right.ids) == len(left.ids) == 512
    assert asyncio.run(keys.encode([long_text]))[0].truncated
    tok.truncation_side = "left"
    assert left.ids == tok([long_text], truncation=True, max_length=512)["input_ids"][0]


def test_a_chunked_text_is_its_windows_the_first_and_last_its_two_truncations(model_dir) -> None:  # noqa: ANN001
    from sentiment.model.windows import Windowing

    keys = CacheKeys(load_tokenizer(model_dir), "fp", 512)
    long_text = " ".join(f"word{i % 7} good bad" for i in range(800))
    (chunked,) = asyncio.run(keys.encode([long_text], windowing=Windowing(512, 384)))
    (right,), (left,) = (asyncio.run(keys.encode([long_text], side))[0].windows for side in ("right", "left"))
    assert len(chunked.windows) >= 3 and all(len(w.ids) == 512 for w in chunked.windows)
    assert chunked.windows[0] == right and chunked.windows[-1] == left  # same ids, same cache keys
    assert not chunked.truncated and chunked.tokens > 512
    content = load_tokenizer(model_dir).encode_content([long_text])[0]
    assert chunked.tokens == len(content) + 2  # every token once, with [CLS] and [SEP]
    (short,) = asyncio.run(keys.encode(["I love you"], windowing=Windowing(512, 384)))
    assert short.windows == asyncio.run(keys.encode(["I love you"]))[0].windows  # a text that fits: one window, as truncated


class CountingTokenizer:
    """The serving tokenizer, counting the texts it tokenizes and the threads it runs on."""

    def __init__(self, tokenizer) -> None:  # noqa: ANN001
        self.tokenizer, self.texts, self.threads = tokenizer, 0, set()
        self.pad_token_id = tokenizer.pad_token_id

    def encode_truncating(self, texts, max_length, truncation="right"):  # noqa: ANN001, ANN201
        import threading

        self.texts += len(texts)
        self.threads.add(threading.current_thread().name)
        return self.tokenizer.encode_truncating(texts, max_length, truncation)


def test_a_repeated_long_text_is_tokenized_once_off_the_event_loop(model_dir) -> None:  # noqa: ANN001
    import threading

    counting = CountingTokenizer(load_tokenizer(model_dir))
    keys = CacheKeys(counting, "fp", 512, offload_chars=4096)
    long_text = "a long review that goes on and on " * 200  # 6,800 characters: over the memo's 512
    encoded = asyncio.run(keys.encode([long_text] * 256 + ["short"]))
    assert counting.texts == 2 and len({u.windows[0].key for u in encoded[:256]}) == 1  # each distinct text once
    assert threading.main_thread().name not in counting.threads  # the long texts went to a thread
    asyncio.run(keys.encode(["short", "another short one"]))
    assert counting.texts == 3 and threading.main_thread().name in counting.threads  # short: inline, memo hit

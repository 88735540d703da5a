"""The serving path's tokenizer (tokenizer.json through `tokenizers`) gives transformers' ids."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.processes import ROOT
from sentiment.model.tokenization import FastTokenizer, TransformersTokenizer, load_tokenizer
from tests import tiny_models

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

TEXTS = [
    "I love you", "I LOVE   YOU!!", "", "   ", "Count to 1234", "naïve café — déjà vu 🙂",
    "unknownwordzzz qqq", "it's not very good, is it?", "good " * 300 + "bad " * 300,
]


def stored_copy(src: Path, dst: Path) -> Path:
    """The model's tokenizer as the model store holds it: transformers' save_pretrained."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    (dst / "config.json").write_text((src / "config.json").read_text())
    return dst


@pytest.fixture(scope="module", params=["distilbert", "bert", "roberta", "shipped"])
def stored_tokenizer_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    if request.param == "shipped":
        src = model_dir
    else:
        src = getattr(tiny_models, request.param)(tmp_path_factory.mktemp(request.param), ["NEG", "POS"])
    return stored_copy(src, tmp_path_factory.mktemp(f"stored-{request.param}"))


@pytest.mark.parametrize("truncation", ["right", "left"])
@pytest.mark.parametrize("max_length", [512, 7])
def test_fast_tokenizer_gives_transformers_ids(stored_tokenizer_dir: Path, truncation: str, max_length: int) -> None:
    fast = load_tokenizer(stored_tokenizer_dir)
    assert isinstance(fast, FastTokenizer)
    reference = TransformersTokenizer(stored_tokenizer_dir)
    expected = reference.encode(TEXTS, max_length, truncation)
    assert fast.encode(TEXTS, max_length, truncation) == expected
    assert max(len(ids) for ids in expected) == max_length  # truncation really happened
    assert fast.pad_token_id == reference.pad_token_id


def test_truncation_side_switches_back_and_forth(stored_tokenizer_dir: Path) -> None:
    fast = FastTokenizer(stored_tokenizer_dir)
    long_text = TEXTS[-1]
    right, left = fast.encode([long_text], 16, "right")[0], fast.encode([long_text], 16, "left")[0]
    assert right != left
    assert fast.encode([long_text], 16, "right")[0] == right


def test_slow_only_tokenizer_falls_back_to_transformers(tmp_path: Path) -> None:
    src = tiny_models.distilbert(tmp_path / "model", ["NEG", "POS"])
    (src / "tokenizer.json").unlink()
    tokenizer = load_tokenizer(src)
    assert isinstance(tokenizer, TransformersTokenizer)
    assert tokenizer.encode(["I love you"], 512)[0][0] == 2  # [CLS] of the tiny vocabulary


def test_serving_imports_neither_transformers_nor_torch(stored_tokenizer_dir: Path) -> None:
    """The torch-free image depends on it: tokenizing and reading the config stay light."""
    import subprocess

    code = (
        "import sys; from sentiment.model.tokenization import load_tokenizer; "
        "from sentiment.model.scoring import Scoring; "
        f"t = load_tokenizer({str(stored_tokenizer_dir)!r}); t.encode(['I love you'], 512); "
        f"Scoring.from_model_dir({str(stored_tokenizer_dir)!r}); "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"

"""Tiny random sequence classifiers of several kinds, saved with save_pretrained, for import-and-serve tests.

Each builder writes a folder `train_or_import.py import --source` accepts: weights,
config (labels, problem type) and a real tokenizer of the architecture's kind.
"""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "i you love hate like good bad great awful movie film it is was not very the a and this that "
    "count to kubernetes cluster am happy sad boring fun best worst ever story acting"
).split()
CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789!?.,'-")


def _wordpiece_vocab(path: Path) -> Path:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *CHARS, *WORDS, *[f"##{c}" for c in CHARS]]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    return path / "vocab.txt"


def _labels(n: int, names: list[str] | None = None) -> dict:
    names = names or [f"LABEL_{i}" for i in range(n)]
    return {"id2label": dict(enumerate(names)), "label2id": {name: i for i, name in enumerate(names)}}


def bert(path: Path, labels: list[str], problem_type: str | None = None) -> Path:
    """BERT (WordPiece, token type ids) with the given labels."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    tokenizer = BertTokenizerFast(vocab=str(_wordpiece_vocab(path)), do_lower_case=True, model_max_length=512)
    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=512, num_labels=len(labels), problem_type=problem_type, **_labels(len(labels), labels),
    )
    BertForSequenceClassification(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def distilbert(path: Path, labels: list[str], problem_type: str | None = None, seed: int = 0) -> Path:
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizerFast

    tokenizer = DistilBertTokenizerFast(vocab=str(_wordpiece_vocab(path)), do_lower_case=True, model_max_length=512)
    torch.manual_seed(seed)
    config = DistilBertConfig(
        vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=512,
        num_labels=len(labels), problem_type=problem_type, **_labels(len(labels), labels),
    )
    DistilBertForSequenceClassification(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def roberta(path: Path, labels: list[str]) -> Path:
    """RoBERTa with a byte-level BPE tokenizer trained here (<s> </s> <pad>, pad id 1)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    corpus = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))] + ["I love you", "I hate you", "Count to 1234"]
    bpe.train_from_iterator(corpus, vocab_size=400, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(path))
    tokenizer = RobertaTokenizerFast(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"), model_max_length=512)
    torch.manual_seed(2)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=514, pad_token_id=tokenizer.pad_token_id, bos_token_id=0, eos_token_id=2,
        num_labels=len(labels), **_labels(len(labels), labels),
    )
    RobertaForSequenceClassification(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path

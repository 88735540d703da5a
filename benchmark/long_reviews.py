"""Long reviews: right truncation, left truncation, and ways to aggregate a long text's windows, compared.

    .venv/bin/python -m benchmark.long_reviews [--reviews 160] [--seed 7] [--model DIR] [--out reports/latest]

The set is made here, from GLUE SST-2 dev (../shared) with a fixed seed, and never
stored: each review concatenates dev sentences to 600-3,000 tokens. Its filler is half
positive, half negative; a block of deciding sentences of the review's label (about a
quarter of its sentences) sits at its start, middle or end, so the label is the majority of its
sentences. Each review is cut into the service's windows (512 tokens, stride 384, the last
one ending at the text's end: the first window is what right truncation keeps, the last
what left truncation keeps), every window is scored once (the substitute model, OpenVINO
fp32, as the service serves it), and every method is judged on the same window scores.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SUBSTITUTE = SHARED / "models" / "distilbert-sst2-minilm"
SST2_DEV = SHARED / "data" / "sst2" / "dev.tsv"
WINDOW, STRIDE = 512, 384
POSITIONS = ("start", "middle", "end")


def build_reviews(sentences: Sequence[tuple[str, int]], lengths: Callable[[list[str]], list[int]], n: int, seed: int) -> list[dict]:
    """`n` long reviews: text, label, where the deciding block is, and its length in tokens."""
    rng = random.Random(seed)
    by_label = {0: [s for s, y in sentences if y == 0], 1: [s for s, y in sentences if y == 1]}
    tokens = dict(zip([s for s, _ in sentences], lengths([s for s, _ in sentences])))
    reviews = []
    for i in range(n):
        label, position = rng.randrange(2), POSITIONS[i % 3]
        target = rng.randint(600, 3000)
        pools = {y: rng.sample(pool, len(pool)) for y, pool in by_label.items()}
        filler, deciding, size = [], [], 0
        while size < target:  # filler alternates labels (half and half); every fifth sentence decides
            if len(filler) + len(deciding) < 4 * len(deciding) + 4:
                sentence = pools[(len(filler) + label) % 2].pop()
                filler.append(sentence)
            else:
                sentence = pools[label].pop()
                deciding.append(sentence)
            size += tokens[sentence]
        cut = {"start": 0, "middle": len(filler) // 2, "end": len(filler)}[position]
        text = " ".join(filler[:cut] + deciding + filler[cut:])
        reviews.append({"text": text, "label": label, "position": position, "sentences": len(filler) + len(deciding)})
    return reviews


def softmax(row: Sequence[float]) -> list[float]:
    top = max(row)
    exps = [math.exp(x - top) for x in row]
    return [e / sum(exps) for e in exps]


def argmax(row: Sequence[float]) -> int:
    return max(range(len(row)), key=row.__getitem__)


def methods(logits: list[list[float]], fresh: list[int]) -> dict[str, int]:
    """The class each method predicts from one review's window logits (`fresh`: each window's tokens not in an earlier one)."""
    probs = [softmax(row) for row in logits]
    n_labels = len(logits[0])
    mean = lambda rows, w=None: [sum((w[i] if w else 1) * r[k] for i, r in enumerate(rows)) / (sum(w) if w else len(rows)) for k in range(n_labels)]  # noqa: E731
    votes = [argmax(p) for p in probs]
    return {
        "right truncation (first window)": votes[0],
        "left truncation (last window)": votes[-1],
        "mean of window logits": argmax(mean(logits)),
        "mean of window probabilities": argmax(mean(probs)),
        "token-weighted mean of probabilities": argmax(mean(probs, fresh)),
        "most confident window": votes[max(range(len(probs)), key=lambda i: max(probs[i]))],
        "majority vote of windows": max(range(n_labels), key=lambda k: (votes.count(k), mean(probs)[k])),
    }


def fresh_tokens(n_content: int, n_windows: int, room: int, stride: int) -> list[int]:
    """Tokens each window adds that no earlier window holds (the last window may overlap more)."""
    starts = [min(i * stride, max(0, n_content - room)) for i in range(n_windows)]
    seen, out = 0, []
    for start in starts:
        end = min(start + room, n_content)
        out.append(max(0, end - max(start, seen)))
        seen = max(seen, end)
    return out


def measure(model_dir: Path, reviews_n: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="long-reviews-") as work:  # the model's OpenVINO export, 175 MB
        return _measure(model_dir, reviews_n, seed, Path(work))


def _measure(model_dir: Path, reviews_n: int, seed: int, work: Path) -> dict:
    from sentiment.model.engines import export_openvino, openvino_installed
    from sentiment.model.inference import Classifier
    from sentiment.model.windows import windows
    from sentiment.store.data import read_labelled

    sentences = [(e.sentence, e.label) for e in read_labelled(SST2_DEV)]
    engine = "torch"
    if openvino_installed():
        import shutil

        from transformers import AutoModelForSequenceClassification

        shutil.copytree(model_dir, work / "model")
        export_openvino(AutoModelForSequenceClassification.from_pretrained(work / "model").eval(), work / "model", int8=False)
        model_dir, engine = work / "model", "openvino"
    classifier = Classifier(model_dir, engine=engine, precision="fp32")
    tokenizer = classifier.tokenizer
    prefix, suffix = tokenizer.frame()
    reviews = build_reviews(sentences, lambda texts: [len(x) for x in tokenizer.encode_content(texts)], reviews_n, seed)
    room = WINDOW - len(prefix) - len(suffix)
    correct: dict[str, dict[str, int]] = {}
    n_tokens, n_windows = [], []
    start = time.perf_counter()
    for review in reviews:
        content = tokenizer.encode_content([review["text"]])[0]
        cut = windows(content, prefix, suffix, WINDOW, STRIDE)
        logits = classifier.logits(cut)
        n_tokens.append(len(content) + len(prefix) + len(suffix))
        n_windows.append(len(cut))
        for method, predicted in methods(logits, fresh_tokens(len(content), len(cut), room, STRIDE)).items():
            for group in ("all", review["position"]):
                correct.setdefault(method, {}).setdefault(group, 0)
                correct[method][group] += int(predicted == review["label"])
    counts = {"all": len(reviews), **{p: sum(r["position"] == p for r in reviews) for p in POSITIONS}}
    return {
        "reviews": len(reviews), "seed": seed, "window": WINDOW, "stride": STRIDE, "engine": f"{engine}/fp32",
        "tokens": {"min": min(n_tokens), "median": sorted(n_tokens)[len(n_tokens) // 2], "max": max(n_tokens)},
        "windows": {"min": min(n_windows), "max": max(n_windows), "total": sum(n_windows)},
        "seconds": round(time.perf_counter() - start, 1), "counts": counts,
        "accuracy": {m: {g: c / counts[g] for g, c in groups.items()} for m, groups in correct.items()},
    }


def table(results: dict) -> str:
    lines = [
        f"Long reviews: {results['reviews']} reviews of {results['tokens']['min']}-{results['tokens']['max']} tokens "
        f"(median {results['tokens']['median']}) made from SST-2 dev with seed {results['seed']}; windows of "
        f"{results['window']} tokens, stride {results['stride']} ({results['windows']['total']} windows, "
        f"{results['windows']['min']}-{results['windows']['max']} a review); substitute model, {results['engine']}. "
        "Accuracy against the review's label (the majority of its sentences), by where the deciding sentences are:",
        "",
        "| method | all | deciding at the start | in the middle | at the end |",
        "| --- | --- | --- | --- | --- |",
    ]
    for method, acc in results["accuracy"].items():
        lines.append(f"| {method} | {acc['all']:.1%} | " + " | ".join(f"{acc.get(p, 0):.1%}" for p in POSITIONS) + " |")
    lines.append(f"\n(n = {results['counts']['all']}: {results['counts']['start']} / {results['counts']['middle']} / "
                 f"{results['counts']['end']}; `python -m benchmark.long_reviews --reviews {results['reviews']} --seed {results['seed']}`)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=160)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", type=Path, default=SUBSTITUTE)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "latest")
    args = parser.parse_args(argv)
    if not (args.model.is_dir() and SST2_DEV.is_file()):
        print("long_reviews: needs ../shared (the substitute model and SST-2 dev)", file=sys.stderr)
        return 2
    results = measure(args.model, args.reviews, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "long_reviews.json").write_text(json.dumps(results, indent=2))
    (args.out / "long_reviews.md").write_text(table(results) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

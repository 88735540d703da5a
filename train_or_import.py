"""Put a sentiment classifier into the BentoML model store: import one, fine-tune one, or evaluate one.

    python train_or_import.py import [--source ID_OR_DIR] [--name distilbert-sst2]
    python train_or_import.py train --base ID_OR_DIR --train FILE [--eval FILE] [--epochs N]
    python train_or_import.py eval --data FILE [--tag distilbert-sst2:latest]
    python train_or_import.py guard --data FILE [--tag ...] [--record]

The store is BentoML's (`$BENTOML_HOME/models`, default ~/bentoml/models).
Offline machines pass a local `save_pretrained` directory as the source.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence

from sentiment.data import DataError, Example, read_labelled
from sentiment.model_store import DEFAULT_NAME, DEFAULT_SOURCE, ModelSourceError, load_pretrained, save_to_store


def cmd_import(args: argparse.Namespace) -> None:
    model, tokenizer = load_pretrained(args.source)
    stored = save_to_store(args.name, model, tokenizer, source=args.source)
    meta = stored.info.metadata
    print(f"imported {stored.tag}: labels={meta['labels']} max_length={meta['max_length']} fingerprint={meta['fingerprint']}")


def accuracy(classifier, examples: Sequence[Example], batch_size: int = 64, desc: str = "eval") -> float:  # noqa: ANN001
    from tqdm import tqdm

    correct = 0
    for start in tqdm(range(0, len(examples), batch_size), desc=desc, unit="batch", file=sys.stderr):
        chunk = examples[start : start + batch_size]
        rows = classifier.predict_proba([e.sentence for e in chunk])
        correct += sum(int(max(range(len(r)), key=r.__getitem__) == e.label) for r, e in zip(rows, chunk))
    return correct / len(examples)


def cmd_train(args: argparse.Namespace) -> None:
    import torch
    from tqdm import tqdm

    from sentiment.inference import Classifier, configure_torch_threads

    configure_torch_threads()
    train = read_labelled(args.train, limit=args.limit)
    evaluation = read_labelled(args.eval, limit=args.eval_limit) if args.eval else None
    model, tokenizer = load_pretrained(args.base)
    n_labels = model.config.num_labels
    bad = sorted({e.label for e in train if not 0 <= e.label < n_labels})
    if bad:
        raise DataError(f"labels {bad} are outside the model's {n_labels} classes")

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    steps = args.epochs * ((len(train) + args.batch_size - 1) // args.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / max(1, steps)))
    model.train()
    with tqdm(total=steps, desc="train", unit="step", file=sys.stderr) as bar:
        for _ in range(args.epochs):
            order = list(train)
            random.shuffle(order)
            for start in range(0, len(order), args.batch_size):
                chunk = order[start : start + args.batch_size]
                batch = tokenizer(
                    [e.sentence for e in chunk], truncation=True, max_length=args.max_length,
                    padding=True, return_tensors="pt",
                )
                loss = model(**batch, labels=torch.tensor([e.label for e in chunk])).loss
                loss.backward()
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                bar.set_postfix(loss=f"{loss.item():.4f}")
                bar.update()
    model.eval()
    metadata: dict[str, object] = {"base": args.base, "train_file": args.train, "train_rows": len(train), "epochs": args.epochs}

    def evaluate(saved_dir: str) -> dict[str, object]:
        if not evaluation:
            return {}
        acc = accuracy(Classifier(saved_dir), evaluation)
        print(f"eval accuracy: {acc:.4f} ({len(evaluation)} rows)")
        return {"eval_accuracy": round(acc, 4), "eval_file": args.eval, "eval_rows": len(evaluation)}

    stored = save_to_store(args.name, model, tokenizer, source=args.base, extra_metadata=metadata, evaluate=evaluate)
    print(f"saved {stored.tag}")


def cmd_eval(args: argparse.Namespace) -> None:
    from sentiment.inference import Classifier, configure_torch_threads

    configure_torch_threads()
    examples = read_labelled(args.data, limit=args.limit)
    stored = _stored(args.tag)
    acc = accuracy(Classifier(stored.path, precision=args.precision), examples)
    print(f"accuracy: {acc:.4f} ({round(acc * len(examples))}/{len(examples)}) model={stored.tag} precision={args.precision}")


def cmd_guard(args: argparse.Namespace) -> None:
    import bentoml

    from sentiment.inference import Classifier, configure_torch_threads, cpu_supports_bf16
    from sentiment.precision_guard import MAX_ACCURACY_DROP, MIN_AGREEMENT, choose_precision, compare, score_all

    configure_torch_threads()
    examples = read_labelled(args.data, limit=args.limit)
    stored = _stored(args.tag)
    texts, labels = [e.sentence for e in examples], [e.label for e in examples]
    fp32 = Classifier(stored.path)
    fp32.predict_proba(texts[:32])  # warm-up before timing
    reference, fp32_speed = score_all(fp32.predict_proba, texts)
    results = {"fp32": compare("fp32", reference, reference, labels, fp32_speed)}
    for precision in [p for p in args.precisions.split(",") if p and p != "fp32"]:
        if precision == "bf16" and not cpu_supports_bf16():
            print(f"{precision}: skipped, this CPU has no AVX512-BF16/AMX")
            continue
        classifier = Classifier(stored.path, precision=precision)
        classifier.predict_proba(texts[:32])
        rows, speed = score_all(classifier.predict_proba, texts)
        results[precision] = compare(precision, reference, rows, labels, speed)

    print(f"guard: agreement with fp32 >= {MIN_AGREEMENT:.1%}, accuracy drop <= {MAX_ACCURACY_DROP * 100:.1f} point; {len(texts)} texts, {stored.tag}")
    print(f"{'precision':<10}{'agreement':>10}{'accuracy':>10}{'max diff':>10}{'texts/s':>10}  verdict")
    for r in results.values():
        print(f"{r.precision:<10}{r.agreement:>10.2%}{r.accuracy:>10.2%}{r.max_score_diff:>10.4f}{r.texts_per_s:>10.1f}  {'pass' if r.passed else 'FAIL'}")
    recorded = {p: r.as_metadata() for p, r in results.items()}
    supported = ["fp32", "int8"] + (["bf16"] if cpu_supports_bf16() else [])
    print(f"PRECISION=auto would serve: {choose_precision(recorded, supported)}")
    if args.record:
        stored.info.metadata["precision_guard"] = recorded
        stored.flush()
        print(f"recorded in the metadata of {stored.tag}")


def _stored(tag: str):  # noqa: ANN202
    import bentoml

    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        raise ModelSourceError(f"no model {tag} in the store (run `python train_or_import.py import` first)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import", help="copy a Hugging Face model and tokenizer into the model store")
    p.add_argument("--source", default=DEFAULT_SOURCE, help=f"hub id or local directory (default {DEFAULT_SOURCE})")
    p.add_argument("--name", default=DEFAULT_NAME, help=f"model name in the store (default {DEFAULT_NAME})")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("train", help="fine-tune a sequence classifier on labelled data and store it")
    p.add_argument("--base", required=True, help="hub id or local directory of the model to start from")
    p.add_argument("--train", required=True, help="TSV/CSV with sentence and label columns")
    p.add_argument("--eval", help="TSV/CSV to report accuracy on after training")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--name", default=DEFAULT_NAME)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128, help="truncation length while training")
    p.add_argument("--limit", type=int, help="use only the first N training rows")
    p.add_argument("--eval-limit", type=int, help="use only the first N eval rows")
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="print the accuracy of a stored model on a labelled file")
    p.add_argument("--data", required=True, help="TSV/CSV with sentence and label columns")
    p.add_argument("--tag", default=f"{DEFAULT_NAME}:latest")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "int8"))
    p.add_argument("--limit", type=int, help="use only the first N rows")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("guard", help="check faster precisions against fp32 and record which may be served")
    p.add_argument("--data", required=True, help="labelled TSV/CSV, e.g. SST-2 dev.tsv")
    p.add_argument("--tag", default=f"{DEFAULT_NAME}:latest")
    p.add_argument("--precisions", default="bf16,int8", help="comma-separated, compared with fp32")
    p.add_argument("--limit", type=int, help="use only the first N rows")
    p.add_argument("--record", action="store_true", help="store the verdicts in the model's metadata (for PRECISION=auto)")
    p.set_defaults(func=cmd_guard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ModelSourceError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Put a sentiment classifier into the BentoML model store: import one, fine-tune one, or evaluate one.

    python train_or_import.py import [--source ID_OR_DIR] [--name distilbert-sst2] [--eval FILE] [--calibrate FILE]
    python train_or_import.py train --base ID_OR_DIR --train FILE [--eval FILE] [--epochs N]
    python train_or_import.py eval --data FILE [--tag distilbert-sst2:latest] [--engine E] [--precision P]
    python train_or_import.py guard --data FILE [--tag ...] [--record]
    python train_or_import.py score --input FILE --output FILE [--column text] [--url URL [--api-key KEY]]

The store is BentoML's (`$BENTOML_HOME/models`, default ~/bentoml/models).
Offline machines pass a local `save_pretrained` directory as the source.

Every import and training run also stores the OpenVINO export (fp32 and
int8) next to the weights: int8 of weights only, or with `--calibrate FILE` of
weights and activations, calibrated and chosen on that file's texts. With `--eval FILE` (held-out labelled
data) it then runs the accuracy guard for every engine x precision this CPU
can run and records the verdicts: `ENGINE=auto PRECISION=auto` (the service's
defaults) serve the fastest pair that passed. Without `--eval` they serve fp32.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence

from sentiment.model.engines import ENGINES, PRECISIONS, EngineUnavailable
from sentiment.store.data import DataError, Example, read_labelled
from sentiment.store.model_store import DEFAULT_NAME, DEFAULT_SOURCE, ModelSourceError, load_pretrained, save_to_store
from sentiment.store.score_file import ScoreFileError


def cmd_import(args: argparse.Namespace) -> None:
    evaluation = read_labelled(args.eval, limit=args.eval_limit) if args.eval else None
    calibration = _calibration(args, evaluation)
    model, tokenizer = load_pretrained(args.source)
    stored = save_to_store(
        args.name, model, tokenizer, source=args.source, export=not args.no_export,
        evaluate=_guard_on(evaluation, args.eval) if evaluation else None, calibration=calibration,
    )
    meta = stored.info.metadata
    print(f"imported {stored.tag}: labels={meta['labels']} max_length={meta['max_length']} fingerprint={meta['fingerprint']}")
    _print_served(stored)


def _calibration(args: argparse.Namespace, evaluation: Sequence[Example] | None):  # noqa: ANN202
    """The texts static int8 is calibrated and chosen on, without the guard's (`sentiment/store/int8.py`)."""
    if not args.calibrate:
        return None
    from sentiment.store.data import read_texts
    from sentiment.store.int8 import RECIPES, Calibration

    calibration = Calibration(
        read_texts(args.calibrate), source=args.calibrate,
        excluded=frozenset(e.sentence for e in evaluation or ()),
        calibration_size=args.calibration_size, selection_size=args.selection_size,
        recipes=tuple(args.int8_recipe or RECIPES),
    )
    calibration.slices()  # too few texts: said now, before the model is loaded and exported
    return calibration


def _guard_on(examples: Sequence[Example], source: str):  # noqa: ANN202
    """An `evaluate` step for save_to_store: accuracy of torch fp32 plus the guard over every pair."""

    def evaluate(saved_dir: str) -> dict[str, object]:
        from sentiment.model.engines import supported_pairs
        from sentiment.store.guard import measure

        _require_classifier(saved_dir)
        texts, labels = [e.sentence for e in examples], [e.label for e in examples]
        results = measure(saved_dir, texts, labels, supported_pairs(saved_dir), log=_log)
        _print_guard(results, len(texts))
        fp32 = results["torch/fp32"]
        print(f"eval accuracy: {fp32.accuracy:.4f} ({len(examples)} rows)")
        return {
            "eval_accuracy": round(fp32.accuracy, 4), "eval_file": source, "eval_rows": len(examples),
            "precision_guard": {key: r.as_metadata() for key, r in results.items()},
        }

    return evaluate


def _require_classifier(model_dir: str) -> None:
    """eval and the guard compare predicted classes: a regression model has none."""
    from sentiment.model.scoring import Scoring

    scoring = Scoring.from_model_dir(model_dir)
    if not scoring.is_classifier:
        raise DataError(
            f"eval and the accuracy guard need a classification model; {model_dir} is a regression model "
            "(one output): it is served with raw values and ENGINE/PRECISION=auto serve fp32"
        )


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_served(stored) -> None:  # noqa: ANN001
    from sentiment.model.engines import supported_pairs
    from sentiment.store.guard import choose, pair_key

    guard = stored.info.metadata.get("precision_guard")
    served = choose(guard, supported_pairs(stored.path))
    how = "fastest pair that passed the guard" if guard else "no guard recorded (import with --eval FILE to measure the faster precisions)"
    print(f"ENGINE=auto PRECISION=auto will serve {pair_key(*served)}: {how}")


def accuracy(classifier, examples: Sequence[Example], batch_size: int = 64, desc: str = "eval") -> float:  # noqa: ANN001
    from tqdm import tqdm

    from sentiment.model.scoring import predicted_class

    correct = 0
    for start in tqdm(range(0, len(examples), batch_size), desc=desc, unit="batch", file=sys.stderr):
        chunk = examples[start : start + batch_size]
        rows = classifier.scores([e.sentence for e in chunk])
        correct += sum(int(predicted_class(r) == e.label) for r, e in zip(rows, chunk))
    return correct / len(examples)


def cmd_train(args: argparse.Namespace) -> None:
    import torch
    from tqdm import tqdm

    from sentiment.model.cpu import configure_torch_threads

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

    stored = save_to_store(
        args.name, model, tokenizer, source=args.base, extra_metadata=metadata,
        evaluate=_guard_on(evaluation, args.eval) if evaluation else None, calibration=_calibration(args, evaluation),
    )
    print(f"saved {stored.tag}")
    _print_served(stored)


def cmd_eval(args: argparse.Namespace) -> None:
    from sentiment.model.inference import Classifier

    examples = read_labelled(args.data, limit=args.limit)
    stored = _stored(args.tag)
    _require_classifier(stored.path)
    acc = accuracy(Classifier(stored.path, engine=args.engine, precision=args.precision), examples)
    print(
        f"accuracy: {acc:.4f} ({round(acc * len(examples))}/{len(examples)}) model={stored.tag} "
        f"engine={args.engine} precision={args.precision}"
    )


def cmd_guard(args: argparse.Namespace) -> None:
    from sentiment.model.engines import supported_pairs
    from sentiment.store.guard import measure

    examples = read_labelled(args.data, limit=args.limit)
    stored = _stored(args.tag)
    _require_classifier(stored.path)
    engines = args.engines.split(",")
    precisions = args.precisions.split(",")
    pairs = [p for p in supported_pairs(stored.path) if p[0] in engines and p[1] in precisions]
    results = measure(stored.path, [e.sentence for e in examples], [e.label for e in examples], pairs, log=_log)
    _print_guard(results, len(examples), str(stored.tag))
    if args.record:
        stored.info.metadata["precision_guard"] = {key: r.as_metadata() for key, r in results.items()}
        stored.flush()
        print(f"recorded in the metadata of {stored.tag}")
    _print_served(stored)


def cmd_score(args: argparse.Namespace) -> None:
    import os
    from pathlib import Path

    from sentiment.store.score_file import Options, http_scorer, local_scorer, score_file

    options = Options(long_text=args.long_text, truncation=args.truncation, top_k=args.top_k)
    if args.url:
        scorer = http_scorer(args.url.rstrip("/"), args.api_key or os.environ.get("SENTIMENT_API_KEY"), options)
        where = args.url
    else:
        from sentiment.model.windows import Windowing
        from sentiment.settings import get_settings
        from sentiment.store.guard import served_pair
        from sentiment.store.model_store import StoredClassifier

        stored = _stored(args.tag)
        engine, precision = served_pair(stored.path, stored.info.metadata.get("precision_guard"), "auto", "auto")
        info = StoredClassifier.from_model(stored)
        settings = get_settings()
        width = min(settings.chunk_window, info.max_length)
        windowing = Windowing(width, min(settings.chunk_stride, width - 8))
        scorer = local_scorer(info.path, info.max_length, engine, precision, options, windowing)
        where = f"{stored.tag} in process ({engine}/{precision})"
    outcome = score_file(Path(args.input), Path(args.output), args.column, scorer, options, batch_size=args.batch_size)
    resumed = f", {outcome.skipped} done by an earlier run" if outcome.skipped else ""
    print(f"scored {outcome.rows} rows of {args.input} with {where} into {args.output}{resumed}; "
          f"at most {outcome.peak_buffered} rows in memory")


def _print_guard(results: dict, n_texts: int, tag: str = "") -> None:  # noqa: ANN001
    from sentiment.store.guard import MAX_ACCURACY_DROP, MIN_AGREEMENT

    print(f"guard: agreement with torch fp32 >= {MIN_AGREEMENT:.1%}, accuracy drop <= {MAX_ACCURACY_DROP * 100:.1f} point; {n_texts} texts {tag}")
    print(f"{'engine/precision':<18}{'agreement':>10}{'accuracy':>10}{'max diff':>10}{'texts/s':>10}{'batch 1':>10}  verdict")
    for key, r in results.items():
        print(
            f"{key:<18}{r.agreement:>10.2%}{r.accuracy:>10.2%}{r.max_score_diff:>10.4f}{r.texts_per_s:>10.1f}"
            f"{r.batch1_texts_per_s:>10.1f}  {'pass' if r.passed else 'FAIL'}"
        )


def _stored(tag: str):  # noqa: ANN202
    import bentoml

    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        raise ModelSourceError(f"no model {tag} in the store (run `python train_or_import.py import` first)") from None


def _calibration_arguments(p: argparse.ArgumentParser) -> None:
    from sentiment.store.int8 import CALIBRATION_SIZE, RECIPES, SELECTION_SIZE

    p.add_argument("--calibrate", metavar="FILE", help="TSV/CSV with a sentence column (e.g. the training file, never "
                   "the --eval file): OpenVINO int8 quantizes activations too, calibrated and chosen on its texts")
    p.add_argument("--calibration-size", type=int, default=CALIBRATION_SIZE, help="texts to calibrate int8 on")
    p.add_argument("--selection-size", type=int, default=SELECTION_SIZE, help="other texts to choose the int8 recipe on")
    p.add_argument("--int8-recipe", action="append", choices=list(RECIPES),
                   help="try only this recipe (repeatable; default: all of sentiment/store/int8.py's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import", help="copy a Hugging Face model and tokenizer into the model store")
    p.add_argument("--source", default=DEFAULT_SOURCE, help=f"hub id or local directory (default {DEFAULT_SOURCE})")
    p.add_argument("--name", default=DEFAULT_NAME, help=f"model name in the store (default {DEFAULT_NAME})")
    p.add_argument("--eval", help="held-out labelled TSV/CSV: run the accuracy guard for every engine x precision and record it")
    p.add_argument("--eval-limit", type=int, help="use only the first N eval rows")
    p.add_argument("--no-export", action="store_true", help="store the torch weights only (no OpenVINO export)")
    _calibration_arguments(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("train", help="fine-tune a sequence classifier on labelled data and store it")
    p.add_argument("--base", required=True, help="hub id or local directory of the model to start from")
    p.add_argument("--train", required=True, help="TSV/CSV with sentence and label columns")
    p.add_argument("--eval", help="held-out TSV/CSV: accuracy after training, and the accuracy guard for every engine x precision")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--name", default=DEFAULT_NAME)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128, help="truncation length while training")
    p.add_argument("--limit", type=int, help="use only the first N training rows")
    p.add_argument("--eval-limit", type=int, help="use only the first N eval rows")
    p.add_argument("--seed", type=int, default=42)
    _calibration_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="print the accuracy of a stored model on a labelled file")
    p.add_argument("--data", required=True, help="TSV/CSV with sentence and label columns")
    p.add_argument("--tag", default=f"{DEFAULT_NAME}:latest")
    p.add_argument("--engine", default="torch", choices=ENGINES)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--limit", type=int, help="use only the first N rows")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("guard", help="check every engine x precision against torch fp32 and record which may be served")
    p.add_argument("--data", required=True, help="labelled TSV/CSV, e.g. SST-2 dev.tsv")
    p.add_argument("--tag", default=f"{DEFAULT_NAME}:latest")
    p.add_argument("--engines", default=",".join(ENGINES), help="comma-separated")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated, compared with torch fp32")
    p.add_argument("--limit", type=int, help="use only the first N rows")
    p.add_argument("--record", action="store_true", help="store the verdicts in the model's metadata (for PRECISION=auto)")
    p.set_defaults(func=cmd_guard)

    p = sub.add_parser("score", help="score a CSV/TSV/JSONL file of texts, through a running service or in process")
    p.add_argument("--input", required=True, help="CSV, TSV or JSONL (by its extension), streamed")
    p.add_argument("--output", required=True, help="same format: the input's fields plus label and score; a run "
                   "interrupted is resumed by running it again")
    p.add_argument("--column", default="text", help="the column or field holding the text (default text)")
    p.add_argument("--url", help="a running service (e.g. http://127.0.0.1:3000); default: the model in this process")
    p.add_argument("--api-key", help="for --url, if the service needs one (also SENTIMENT_API_KEY)")
    p.add_argument("--tag", default=f"{DEFAULT_NAME}:latest", help="without --url: the stored model, on its fastest guarded pair")
    p.add_argument("--long-text", default="truncate", choices=["truncate", "chunk"])
    p.add_argument("--truncation", default="right", choices=["right", "left"])
    p.add_argument("--top-k", type=int, help="label_1, score_1, ... label_K, score_K instead of the best label")
    p.add_argument("--batch-size", type=int, default=64, help="rows per request (and rows held in memory)")
    p.set_defaults(func=cmd_score)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ModelSourceError, DataError, EngineUnavailable, ScoreFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The accuracy guard for the fast engine/precision pairs, and what `ENGINE=auto PRECISION=auto` serves.

A pair passes when its labels agree with torch fp32 on at least 99.5% of a
labelled set and its accuracy is at most 0.3 point below fp32's.
`train_or_import.py import --eval FILE` (and `train --eval`, and `guard
--record`) measures every pair this CPU can run, with its speed here, and
records the verdicts in the stored model's metadata (`precision_guard`, keyed
"engine/precision"). The service then serves the fastest recorded pair that
passed and that this machine supports.

Without a record, `auto` serves fp32 on the graph runtime when the model has
its export (verified against torch at import: the same arithmetic, about 2x
faster at batch 1), else torch fp32: never a lossy precision nobody checked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..model.scoring import predicted_class

MIN_AGREEMENT = 0.995
MAX_ACCURACY_DROP = 0.003
REFERENCE = ("torch", "fp32")
# without a guard record: fp32 only, graph runtime first
UNGUARDED_PREFERENCE = (("openvino", "fp32"), ("torch", "fp32"))

Pair = tuple[str, str]


def pair_key(engine: str, precision: str) -> str:
    return f"{engine}/{precision}"


def parse_key(key: str) -> Pair:
    """'openvino/int8' -> ('openvino', 'int8'); records written before engines existed hold torch's precisions."""
    engine, _, precision = key.rpartition("/")
    return (engine or "torch", precision)


@dataclass(frozen=True)
class GuardResult:
    engine: str
    precision: str
    agreement: float  # share of texts whose label equals torch fp32's
    accuracy: float
    fp32_accuracy: float
    max_score_diff: float
    texts_per_s: float  # batches of 32 while scoring the set
    batch1_texts_per_s: float = 0.0  # one text per call
    rechecked: float = 0.0  # share of the texts int8 recomputed in fp32 (sentiment/model/recheck.py)

    @property
    def passed(self) -> bool:
        # accuracies are ratios of counts: compare with a tolerance for float rounding
        return self.agreement >= MIN_AGREEMENT and self.fp32_accuracy - self.accuracy <= MAX_ACCURACY_DROP + 1e-9

    def as_metadata(self) -> dict[str, Any]:
        return {**{k: round(v, 5) if isinstance(v, float) else v for k, v in asdict(self).items()}, "passed": self.passed}


def score_all(
    predict: Callable[[list[str]], list[list[float]]], texts: Sequence[str], batch_size: int = 32
) -> tuple[list[list[float]], float]:
    """Scores for every text, and the throughput (texts/s) it took."""
    rows: list[list[float]] = []
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        rows.extend(predict(list(texts[i : i + batch_size])))
    return rows, len(texts) / (time.perf_counter() - start)


def batch1_rate(predict: Callable[[list[str]], list[list[float]]], texts: Sequence[str]) -> float:
    start = time.perf_counter()
    for text in texts:
        predict([text])
    return len(texts) / (time.perf_counter() - start)


def compare(
    engine: str, precision: str, reference: Sequence[Sequence[float]], rows: Sequence[Sequence[float]],
    labels: Sequence[int], texts_per_s: float, batch1_texts_per_s: float = 0.0, rechecked: float = 0.0,
) -> GuardResult:
    """Judge `rows` (scores of one pair) against torch fp32 `reference` scores and gold `labels`."""
    n = len(labels)
    ref_labels = [predicted_class(r) for r in reference]
    got_labels = [predicted_class(r) for r in rows]
    return GuardResult(
        engine=engine,
        precision=precision,
        agreement=sum(a == b for a, b in zip(ref_labels, got_labels)) / n,
        accuracy=sum(a == y for a, y in zip(got_labels, labels)) / n,
        fp32_accuracy=sum(a == y for a, y in zip(ref_labels, labels)) / n,
        max_score_diff=max(abs(a - b) for r, g in zip(reference, rows) for a, b in zip(r, g)),
        texts_per_s=texts_per_s,
        batch1_texts_per_s=batch1_texts_per_s,
        rechecked=rechecked,
    )


def speed(result: dict[str, Any]) -> float:
    """One figure for 'fastest': the geometric mean of batched and batch-1 throughput
    (the service runs both: full batches under load, single texts when quiet)."""
    batched = float(result.get("texts_per_s", 0.0))
    single = float(result.get("batch1_texts_per_s", 0.0)) or batched
    return math.sqrt(max(batched, 0.0) * max(single, 0.0))


def choose(
    recorded: dict[str, dict[str, Any]] | None,
    supported: Sequence[Pair],
    engine: str = "auto",
    precision: str = "auto",
) -> Pair:
    """The pair to serve for the ENGINE and PRECISION settings (each a name or 'auto').

    Both named: that pair. Otherwise the fastest recorded pair that passed the guard,
    matches what was named and is supported here; failing that, fp32 (graph runtime first).
    """
    if engine != "auto" and precision != "auto":
        return (engine, precision)

    def wanted(pair: Pair) -> bool:
        return pair in supported and engine in ("auto", pair[0]) and precision in ("auto", pair[1])

    passed = [
        (speed(result), parse_key(key))
        for key, result in (recorded or {}).items()
        if result.get("passed") and wanted(parse_key(key))
    ]
    if passed:
        return max(passed)[1]
    fallback = [p for p in UNGUARDED_PREFERENCE if wanted(p)]
    if fallback:
        return fallback[0]
    # a named lossy precision nobody guarded: the user asked for it explicitly
    return next((p for p in supported if wanted(p)), (engine if engine != "auto" else "torch", precision if precision != "auto" else "fp32"))


def measure(
    model_dir: str, texts: Sequence[str], labels: Sequence[int], pairs: Sequence[Pair],
    max_length: int = 512, log: Callable[[str], None] = print, rounds: int = 3,
) -> dict[str, GuardResult]:
    """Run every pair over the labelled texts and judge it against torch fp32 (always measured first).

    Speeds are timed apart from scoring, in `rounds` interleaved rounds (each pair in
    turn, batches of 32 and one text at a time), keeping each pair's best: a burst of
    other work on the machine then slows one round, not one pair's figure.
    """
    from ..model.inference import Classifier

    classifiers = {
        pair: Classifier(model_dir, engine=pair[0], precision=pair[1], max_length=max_length)
        for pair in [REFERENCE, *(p for p in pairs if p != REFERENCE)]
    }
    rows_of, rechecked = {}, {}
    for pair, classifier in classifiers.items():
        before = classifier.engine.rechecked
        rows_of[pair] = classifier.scores(list(texts))
        rechecked[pair] = (classifier.engine.rechecked - before) / max(1, len(texts))
    sample = list(texts[:256])
    batched = dict.fromkeys(classifiers, 0.0)
    single = dict.fromkeys(classifiers, 0.0)
    for _ in range(rounds):
        for pair, classifier in classifiers.items():
            batched[pair] = max(batched[pair], score_all(classifier.scores, sample)[1])
            single[pair] = max(single[pair], batch1_rate(classifier.scores, sample[:48]))
    results: dict[str, GuardResult] = {}
    for (engine, precision), rows in rows_of.items():
        result = compare(engine, precision, rows_of[REFERENCE], rows, labels, batched[(engine, precision)],
                         single[(engine, precision)], rechecked[(engine, precision)])
        results[pair_key(engine, precision)] = result
        log(f"guard {pair_key(engine, precision)}: agreement {result.agreement:.2%}, accuracy {result.accuracy:.2%}, "
            f"{result.texts_per_s:.1f} texts/s batched, {result.batch1_texts_per_s:.1f} texts/s one by one"
            + (f", {result.rechecked:.1%} of the texts rechecked in fp32" if result.rechecked else "")
            + f": {'pass' if result.passed else 'FAIL'}")
    return results


def served_pair(model_dir: str, recorded: dict[str, dict[str, Any]] | None, engine: str, precision: str) -> Pair:
    """What a service serves for its ENGINE/PRECISION settings; a named pair this machine
    cannot run is an error at start-up (`engines.require`'s message), never a silent fallback."""
    from ..model.engines import require, supported_pairs

    pair = choose(recorded, supported_pairs(model_dir), engine, precision)
    require(*pair, model_dir)
    return pair


def why_served(recorded: dict[str, dict[str, Any]] | None, pair: Pair, engine: str, precision: str) -> tuple[str, dict[str, Any] | None]:
    """Why `pair` serves for the ENGINE/PRECISION settings, in words, and the guard's record of it (if any)."""
    record = (recorded or {}).get(pair_key(*pair))
    if record is None and pair == parse_key(pair[1]):  # records written before engines existed
        record = (recorded or {}).get(pair[1])
    verdict = (
        f"the accuracy guard {'passed' if record.get('passed') else 'FAILED'} it "
        f"(agreement {record.get('agreement', 0):.2%} with torch fp32, accuracy {record.get('accuracy', 0):.2%})"
        if record else None
    )
    if engine != "auto" and precision != "auto":
        return f"named by ENGINE={engine} PRECISION={precision}" + (f"; {verdict}" if verdict else ", never guarded"), record
    if record and record.get("passed"):
        return f"the fastest pair that passed the accuracy guard: {verdict}", record
    if pair[1] == "fp32":
        if not recorded:
            return "unguarded fp32: no accuracy guard was recorded at import (import with --eval FILE to measure the faster pairs)", None
        return "unguarded fp32: the accuracy guard recorded no verdict for this pair", record
    return f"named by {'ENGINE' if engine != 'auto' else 'PRECISION'} with no guarded pair to choose from", record

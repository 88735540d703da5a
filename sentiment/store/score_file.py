"""Scoring a file of texts (CSV, TSV or JSONL): streamed, resumable, through a running service or in process.

    train_or_import.py score --input reviews.csv --output scored.csv [--column text] [--url URL --api-key KEY]

Rows are read and written a batch at a time, so memory does not grow with the file.
The output keeps each row's fields and adds `label` and `score` (the best label), or
`label_1`, `score_1`, ... with `--top-k`. After every batch the output is flushed and
`OUTPUT.progress` records how many rows and bytes are done: a run started again on the
same output skips what is done (a half-written last batch is cut off first), so an
interrupted run resumed gives the same file as an uninterrupted one. A malformed row
stops the run with its file and line, never a traceback.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Answer = list[tuple[str, float]]  # (label, score) pairs for one text
Scorer = Callable[[list[str]], list[Answer]]


class ScoreFileError(Exception):
    """A file that cannot be scored; the message names the file and the line."""


@dataclass(frozen=True)
class Options:
    long_text: str = "truncate"
    truncation: str = "right"
    top_k: int | None = None

    def request(self) -> dict[str, Any]:
        """As fields of POST /predict."""
        fields: dict[str, Any] = {"long_text": self.long_text, "truncation": self.truncation}
        if self.top_k is not None:
            fields["top_k"] = self.top_k
        return fields


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix == ".csv":
        return "csv"
    raise ScoreFileError(f"{path}: unknown format (name it .csv, .tsv or .jsonl)")


def read_rows(path: Path, column: str) -> Iterator[tuple[int, dict[str, Any], str]]:
    """(line, row, text) for every row, streamed; a malformed row is a ScoreFileError naming its line."""
    fmt = file_format(path)
    if not path.is_file():
        raise ScoreFileError(f"input file not found: {path}")
    with path.open(encoding="utf-8", newline="") as fh:
        if fmt == "jsonl":
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    raise ScoreFileError(f"{path}:{line_no}: not a JSON object") from None
                if not isinstance(row, dict) or not isinstance(row.get(column), str):
                    raise ScoreFileError(f"{path}:{line_no}: no text field {column!r}")
                yield line_no, row, row[column]
            return
        csv.field_size_limit(sys.maxsize)
        reader = csv.DictReader(fh, **_dialect(fmt, writing=False))
        if column not in (reader.fieldnames or []):
            raise ScoreFileError(f"{path}:1: no column {column!r} (columns: {reader.fieldnames})")
        for row in reader:
            if None in row or None in row.values():
                raise ScoreFileError(f"{path}:{reader.line_num}: expected {len(reader.fieldnames)} fields")
            yield reader.line_num, row, row[column]


def _dialect(fmt: str, writing: bool = True) -> dict[str, Any]:
    """CSV as Excel writes it; TSV as GLUE's (no quoting), a tab or newline inside a field escaped when written."""
    if fmt != "tsv":
        return {"delimiter": ","}
    return {"delimiter": "\t", "quoting": csv.QUOTE_NONE, **({"escapechar": "\\"} if writing else {})}


def count_rows(path: Path, column: str) -> int:
    """How many rows there are (a first streaming pass, for the progress bar's ETA)."""
    return sum(1 for _ in read_rows(path, column))


def answer_fields(answer: Answer, top_k: int | None) -> dict[str, Any]:
    """The best label and its score, or the `top_k` best, best first."""
    ranked = sorted(answer, key=lambda pair: pair[1], reverse=True)
    if top_k is None:
        return {"label": ranked[0][0], "score": ranked[0][1]}
    return {k: v for i, (label, score) in enumerate(ranked[:top_k], start=1) for k, v in ((f"label_{i}", label), (f"score_{i}", score))}


@dataclass
class Outcome:
    rows: int = 0  # rows scored by this run
    skipped: int = 0  # rows a previous run had done
    peak_buffered: int = 0  # most rows held at once: memory stays flat when it stays at the batch size


def score_file(
    source: Path, target: Path, column: str, scorer: Scorer, options: Options, batch_size: int = 64,
    progress: bool = True,
) -> Outcome:
    fmt = file_format(source)
    if file_format(target) != fmt:
        raise ScoreFileError(f"{target}: write the same format as the input ({fmt})")
    checkpoint = target.with_name(target.name + ".progress")
    done = _resume(target, checkpoint)
    outcome = Outcome(skipped=done)
    total = count_rows(source, column)
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done, unit="row", desc="score", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    with target.open("a", encoding="utf-8", newline="") as out:
        writer: Any = None
        batch: list[tuple[dict[str, Any], str]] = []

        def flush() -> None:
            nonlocal writer
            answers = scorer([text for _, text in batch])
            rows = [{**row, **answer_fields(a, options.top_k)} for (row, _), a in zip(batch, answers)]
            if fmt == "jsonl":
                out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            else:
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n", **_dialect(fmt))
                    if out.tell() == 0:
                        writer.writeheader()
                writer.writerows(rows)
            out.flush()
            os.fsync(out.fileno())
            outcome.rows += len(rows)
            _checkpoint(checkpoint, done + outcome.rows, out.tell())
            bar.update(len(rows))
            batch.clear()

        for index, (_, row, text) in enumerate(read_rows(source, column)):
            if index < done:
                continue
            batch.append((row, text))
            outcome.peak_buffered = max(outcome.peak_buffered, len(batch))
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    bar.close()
    checkpoint.unlink(missing_ok=True)  # complete: nothing to resume
    return outcome


def _resume(target: Path, checkpoint: Path) -> int:
    """Rows a previous run wrote to `target`, its half-written last batch cut off; 0 for a new output."""
    if not checkpoint.is_file():
        if target.exists() and target.stat().st_size:
            raise ScoreFileError(f"{target} exists and no run left {checkpoint.name} to resume from: choose another output")
        return 0
    rows, size = (int(x) for x in checkpoint.read_text().split())
    with target.open("r+b") as fh:
        fh.truncate(size)
    return rows


def _checkpoint(path: Path, rows: int, size: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{rows} {size}\n")
    os.replace(tmp, path)  # atomic: a run killed here leaves the old or the new checkpoint


def http_scorer(url: str, api_key: str | None, options: Options, timeout_s: float = 120.0) -> Scorer:
    """POST /predict of a running service; a 503 is retried after its Retry-After."""
    import time

    import httpx

    client = httpx.Client(base_url=url, timeout=timeout_s, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})

    def score(texts: list[str]) -> list[Answer]:
        while True:
            response = client.post("/predict", json={"text": texts, **options.request()})
            if response.status_code == 503:
                time.sleep(float(response.headers.get("retry-after", "1")))  # the service asked for it
                continue
            if response.status_code != 200:
                raise ScoreFileError(f"{url}/predict answered {response.status_code}: {response.text[:300]}")
            return [[(p["label"], p["score"]) for p in row] for row in response.json()["predictions"]]

    return score


def local_scorer(model_dir: str, max_length: int, engine: str, precision: str, options: Options, windowing: Any) -> Scorer:  # noqa: ANN401
    """The model in this process, on `engine`/`precision`, with the service's windows (`windowing`, for chunk) and answers."""
    from ..model.inference import Classifier
    from ..model.windows import split

    classifier = Classifier(model_dir, engine=engine, precision=precision, max_length=max_length)
    windowing = windowing if options.long_text == "chunk" else None

    def score(texts: list[str]) -> list[Answer]:
        cut = split(classifier.tokenizer, texts, max_length, options.truncation, windowing)
        logits = classifier.logits([ids for text in cut for ids in text.windows])
        answers, offset = [], 0
        for text in cut:
            rows = logits[offset : offset + len(text.windows)]
            offset += len(text.windows)
            answers.append(classifier.scoring.answer(classifier.scoring.aggregate(rows), options.top_k))
        return answers

    return score

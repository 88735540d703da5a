"""Labelled text files: TSV/CSV with `sentence` and `label` columns (the GLUE SST-2 format)."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

REQUIRED_COLUMNS = ("sentence", "label")


class DataError(Exception):
    """A data file that cannot be used; the message says why."""


@dataclass(frozen=True)
class Example:
    sentence: str
    label: int


def read_labelled(path: str | Path, limit: int | None = None) -> list[Example]:
    file = _existing(path)
    with file.open(encoding="utf-8", newline="") as fh:
        reader = _reader(file, fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path} has no {' / '.join(missing)} column (columns found: {reader.fieldnames})")
        examples = []
        for line_no, row in enumerate(reader, start=2):
            if limit is not None and len(examples) >= limit:
                break
            try:
                examples.append(Example(row["sentence"], int(row["label"])))
            except (TypeError, ValueError):
                raise DataError(f"{path}:{line_no}: label must be an integer, got {row['label']!r}") from None
    if not examples:
        raise DataError(f"{path} has no rows")
    return examples


def read_texts(path: str | Path) -> list[str]:
    """The `sentence` column of a TSV/CSV (labels, if any, unused): texts to calibrate int8 on."""
    file = _existing(path)
    with file.open(encoding="utf-8", newline="") as fh:
        reader = _reader(file, fh)
        if "sentence" not in (reader.fieldnames or []):
            raise DataError(f"{path} has no sentence column (columns found: {reader.fieldnames})")
        texts = [row["sentence"] for row in reader if row.get("sentence")]
    if not texts:
        raise DataError(f"{path} has no rows")
    return texts


def _existing(path: str | Path) -> Path:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data file not found: {path}")
    return file


def _reader(file: Path, fh: TextIO) -> csv.DictReader:
    with file.open(encoding="utf-8") as probe:
        tsv = file.suffix.lower() in (".tsv", ".tab") or "\t" in probe.readline()
    csv.field_size_limit(sys.maxsize)
    return csv.DictReader(fh, delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)

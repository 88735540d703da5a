"""Labelled text files: TSV/CSV with `sentence` and `label` columns (the GLUE SST-2 format)."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

REQUIRED_COLUMNS = ("sentence", "label")


class DataError(Exception):
    """A data file that cannot be used; the message says why."""


@dataclass(frozen=True)
class Example:
    sentence: str
    label: int


def read_labelled(path: str | Path, limit: int | None = None) -> list[Example]:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data file not found: {path}")
    tsv = file.suffix.lower() in (".tsv", ".tab") or "\t" in file.open(encoding="utf-8").readline()
    csv.field_size_limit(sys.maxsize)
    with file.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
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

"""Scoring files: streamed in batches, resumable, formats kept, malformed rows named by line (a stand-in
scorer here; through a real service in tests/test_score.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sentiment.store.score_file import Options, ScoreFileError, score_file

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def scorer(texts: list[str]) -> list[list[tuple[str, float]]]:
    """Stands in for the model: the longer the text, the more positive."""
    return [[("NEGATIVE", 1 / (1 + len(t))), ("POSITIVE", 1 - 1 / (1 + len(t)))] for t in texts]


class Interrupted(Exception):
    pass


def interrupting_after(batches: int):  # noqa: ANN201
    calls = 0

    def score(texts: list[str]) -> list[list[tuple[str, float]]]:
        nonlocal calls
        calls += 1
        if calls > batches:
            raise Interrupted
        return scorer(texts)

    return score


def write_csv(path: Path, rows: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "stars"])
        for i in range(rows):
            writer.writerow([i, f"review {i}, with a comma" + " and more" * (i % 5) + ("\nsecond line" if i % 997 == 0 else ""), i % 5])
    return path


def test_a_large_file_is_streamed_in_batches(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "reviews.csv", 100_000)
    outcome = score_file(source, tmp_path / "scored.csv", "text", scorer, Options(), batch_size=500, progress=False)
    assert outcome.rows == 100_000 and outcome.peak_buffered == 500  # memory: one batch, whatever the file's size
    with (tmp_path / "scored.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 100_000 and list(rows[0]) == ["id", "text", "stars", "label", "score"]
    assert rows[997]["text"].endswith("\nsecond line") and rows[3]["stars"] == "3"  # the input's fields, kept
    assert rows[5]["label"] == "POSITIVE" and float(rows[5]["score"]) == pytest.approx(scorer([rows[5]["text"]])[0][1][1])


def test_an_interrupted_run_resumed_gives_the_same_file(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "reviews.csv", 10_000)
    whole = tmp_path / "whole.csv"
    score_file(source, whole, "text", scorer, Options(), batch_size=256, progress=False)
    resumed = tmp_path / "resumed.csv"
    with pytest.raises(Interrupted):
        score_file(source, resumed, "text", interrupting_after(7), Options(), batch_size=256, progress=False)
    with resumed.open("a") as fh:
        fh.write("id,text,stars,label,score\n123,half a row")  # a batch being written when the run died
    outcome = score_file(source, resumed, "text", scorer, Options(), batch_size=256, progress=False)
    assert outcome.skipped == 7 * 256 and outcome.rows == 10_000 - 7 * 256
    assert resumed.read_bytes() == whole.read_bytes()
    assert not (tmp_path / "resumed.csv.progress").exists()
    with pytest.raises(ScoreFileError, match="choose another output"):  # a finished output is never appended to
        score_file(source, resumed, "text", scorer, Options(), progress=False)


def test_tsv_and_jsonl_keep_their_format_and_top_k_gives_ranked_columns(tmp_path: Path) -> None:
    (tmp_path / "in.tsv").write_text("sentence\tlabel\nit was great\t1\nawful\t0\n", encoding="utf-8")
    score_file(tmp_path / "in.tsv", tmp_path / "out.tsv", "sentence", scorer, Options(top_k=2), progress=False)
    lines = (tmp_path / "out.tsv").read_text().splitlines()
    assert lines[0] == "sentence\tlabel\tlabel_1\tscore_1\tlabel_2\tscore_2"
    assert lines[1].startswith("it was great\t1\tPOSITIVE\t")
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "fine", "id": 7}) + "\n\n" + json.dumps({"text": "", "id": 8}) + "\n")
    score_file(tmp_path / "in.jsonl", tmp_path / "out.jsonl", "text", scorer, Options(), progress=False)
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(o["id"], o["label"]) for o in out] == [(7, "POSITIVE"), (8, "NEGATIVE")]  # an empty text is a text


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        ("bad.csv", "id,text\n1,fine\n2,too,many\n", "bad.csv:3: expected 2 fields"),
        ("bad.csv", "id,body\n1,fine\n", "bad.csv:1: no column 'text'"),
        ("bad.jsonl", '{"text": "fine"}\n{"text": "broken\n', "bad.jsonl:2: not a JSON object"),
        ("bad.jsonl", '{"text": "fine"}\n{"body": "no text"}\n', "bad.jsonl:2: no text field 'text'"),
        ("bad.txt", "text\n", "unknown format"),
    ],
)
def test_a_malformed_row_names_its_line(tmp_path: Path, name: str, content: str, where: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(ScoreFileError, match=where.replace(".", r"\.")):
        score_file(tmp_path / name, tmp_path / ("out" + Path(name).suffix), "text", scorer, Options(), progress=False)

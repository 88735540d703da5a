"""`train_or_import.py score` on a 100,000-row file through a real `bentoml serve`: the API's answers,
memory bounded by the batch, an interrupted run resumed to the same file, malformed rows named."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.processes import ROOT, wait_until
from tests.conftest import SST2_DEV

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

ROWS, BATCH = 100_000, 256


def sentences() -> list[str]:
    if SST2_DEV.is_file():
        return [line.split("\t")[0] for line in SST2_DEV.read_text(encoding="utf-8").splitlines()[1:]]
    return [f"a {w} film, {i}" for i, w in enumerate(("great", "awful", "fine", "dull") * 50)]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:  # noqa: ANN001
    rng, pool = random.Random(11), sentences()
    path = tmp_path_factory.mktemp("score") / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        for i in range(ROWS):
            writer.writerow([i, rng.choice(pool)])
    return path


def score(server, source: Path, target: Path, *extra: str) -> subprocess.Popen:  # noqa: ANN001
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train_or_import.py"), "score", "--input", str(source), "--output", str(target),
         "--url", server.url, "--batch-size", str(BATCH), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "BENTOML_HOME": str(server.env["BENTOML_HOME"]), "HF_HUB_OFFLINE": "1"},
    )


@pytest.fixture(scope="module")
def scored(server, reviews, tmp_path_factory) -> tuple[Path, str]:  # noqa: ANN001
    target = tmp_path_factory.mktemp("scored") / "scored.csv"
    run = score(server, reviews, target)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err[-3000:]
    return target, out


def test_output_rows_are_the_api_s_answers(server, reviews, scored) -> None:  # noqa: ANN001
    target, out = scored
    assert f"scored {ROWS} rows" in out and f"at most {BATCH} rows in memory" in out  # flat: one batch at a time
    with target.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == ROWS and list(rows[0]) == ["id", "text", "label", "score"]
    assert [r["id"] for r in rows[:3]] == ["0", "1", "2"] and rows[-1]["id"] == str(ROWS - 1)
    sample = random.Random(3).sample(rows, 40)
    answers = httpx.post(f"{server.url}/predict", json={"text": [r["text"] for r in sample]}, timeout=60).json()["predictions"]
    for row, answer in zip(sample, answers):
        best = max(answer, key=lambda p: p["score"])
        assert row["label"] == best["label"] and float(row["score"]) == pytest.approx(best["score"], abs=1e-9)


def test_an_interrupted_run_resumed_gives_the_same_file(server, reviews, scored, tmp_path) -> None:  # noqa: ANN001
    whole, _ = scored
    target = tmp_path / "interrupted.csv"
    checkpoint = tmp_path / "interrupted.csv.progress"
    run = score(server, reviews, target)
    done = lambda: int(checkpoint.read_text().split()[0]) if checkpoint.is_file() else 0  # noqa: E731
    try:
        wait_until(lambda: done() >= 20_000, 300, "a fifth of the rows written")
    finally:
        run.send_signal(signal.SIGKILL)  # no clean-up: as a machine that goes down
        run.wait(timeout=30)
    assert 20_000 <= done() < ROWS
    resumed = score(server, reviews, target)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert "done by an earlier run" in out
    assert target.read_bytes() == whole.read_bytes()


@pytest.mark.parametrize(("content", "where"), [("id,text\n1,fine\n2,a,b\n", ":3: expected 2 fields"), ("id,body\n1,x\n", ":1: no column 'text'")])
def test_a_malformed_row_is_named_by_its_line(server, tmp_path, content: str, where: str) -> None:  # noqa: ANN001
    (tmp_path / "bad.csv").write_text(content)
    run = score(server, tmp_path / "bad.csv", tmp_path / "out.csv")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 2 and where in err and "Traceback" not in err


@pytest.mark.parametrize("long_text", ["truncate", "chunk"])
def test_in_process_scoring_gives_the_service_s_answers(server, tmp_path, long_text: str) -> None:  # noqa: ANN001
    rng, pool = random.Random(5), sentences()
    source = tmp_path / "few.jsonl"
    long = " ".join(pool[:120])  # past the model's window: chunked, or truncated
    rows = [{"id": i, "text": text} for i, text in enumerate([long, *rng.sample(pool, 30)])]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    outputs = {}
    for where in ("service", "in process"):
        target = tmp_path / f"{where.replace(' ', '-')}.jsonl"
        extra = ["--long-text", long_text, "--top-k", "2"]
        run = score(server, source, target, *extra) if where == "service" else subprocess.Popen(
            [sys.executable, str(ROOT / "train_or_import.py"), "score", "--input", str(source), "--output", str(target), *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "BENTOML_HOME": str(server.env["BENTOML_HOME"]), "HF_HUB_OFFLINE": "1"})
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-3000:]
        outputs[where] = [json.loads(line) for line in target.read_text().splitlines()]
    for a, b in zip(outputs["service"], outputs["in process"]):
        assert (a["id"], a["label_1"], a["label_2"]) == (b["id"], b["label_1"], b["label_2"])
        assert a["score_1"] == pytest.approx(b["score_1"], abs=1e-5)

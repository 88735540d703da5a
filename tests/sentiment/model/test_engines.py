"""Engines: the OpenVINO export gives torch's answers, and what each machine can run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sentiment.model import cpu, engines
from sentiment.model.engines import supported_pairs, why_unavailable
from sentiment.model.inference import Classifier

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

TEXTS = ["I love you", "I hate you", "", "Count to 1234", "the best movie ever " * 40, "not very good"]


def test_openvino_fp32_gives_torch_scores(exported_dir: Path) -> None:
    reference = Classifier(str(exported_dir), engine="torch").scores(TEXTS)
    exported = Classifier(str(exported_dir), engine="openvino").scores(TEXTS)
    assert max(abs(a - b) for r, e in zip(reference, exported) for a, b in zip(r, e)) <= 1e-4


def test_openvino_int8_runs_and_stays_close(exported_dir: Path) -> None:
    int8 = Classifier(str(exported_dir), engine="openvino", precision="int8")
    assert int8.engine.precision == "int8"
    rows = int8.scores(TEXTS)
    reference = Classifier(str(exported_dir), engine="torch").scores(TEXTS)
    assert len(rows) == len(TEXTS) and all(abs(sum(r) - 1) < 1e-5 for r in rows)
    assert max(abs(a - b) for r, e in zip(reference, rows) for a, b in zip(r, e)) < 0.1


def test_what_a_machine_can_run(exported_dir: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "supports_bf16", lambda: False)
    assert set(supported_pairs(exported_dir)) == {("torch", "fp32"), ("torch", "int8"), ("openvino", "fp32"), ("openvino", "int8")}
    assert "AVX512-BF16" in why_unavailable("openvino", "bf16", exported_dir)
    # a model stored without the export: torch only, and the reason says how to get it
    assert set(supported_pairs(tiny_model_dir)) == {("torch", "fp32"), ("torch", "int8")}
    assert "re-import" in why_unavailable("openvino", "fp32", tiny_model_dir)
    monkeypatch.setattr(engines, "openvino_installed", lambda: False)
    assert why_unavailable("openvino", "fp32", exported_dir) == "the openvino package is not installed"
    monkeypatch.setattr(cpu, "supports_bf16", lambda: True)
    assert ("torch", "bf16") in supported_pairs(exported_dir)


def test_signals_are_still_handled_after_engines_come_and_go_in_any_order(exported_dir: Path) -> None:
    """OpenVINO's CPU plugin swaps the alternate signal stack per Core (sentiment/model/engines.py,
    openvino_core): with a Core per engine, engines dropped in another order than made left it
    on freed memory and the next SIGTERM was a segmentation fault. Run apart: a crash fails this test only."""
    script = textwrap.dedent("""
        import os, signal, sys
        from sentiment.model.engines import load_engine
        first = load_engine(sys.argv[1], "openvino", "fp32", threads=1)
        second = load_engine(sys.argv[1], "openvino", "int8", threads=1)
        del first  # not the order they were made in
        third = load_engine(sys.argv[1], "openvino", "fp32", threads=1)
        del second, third
        got = []
        signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
        os.kill(os.getpid(), signal.SIGTERM)
        print("handled", got)
    """)
    done = subprocess.run([sys.executable, "-c", script, str(exported_dir)], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert "handled [15]" in done.stdout

"""`train_or_import.py` as users run it: a subprocess with BENTOML_HOME, offline, with clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.processes import ROOT, start_server
from sentiment.model.cpu import supports_bf16
from sentiment.model.engines import OpenVINOEngine
from tests.conftest import SST2_DEV, SST2_TRAIN

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)


def cli(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "train_or_import.py"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "BENTOML_HOME": str(home), "HF_HUB_OFFLINE": "1"},
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def stored_metadata(home: Path, tag: str) -> dict:
    code = f"import bentoml, json; print(json.dumps(bentoml.models.get({tag!r}).info.metadata))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "BENTOML_HOME": str(home)},
    ).stdout
    import json

    return json.loads(out.strip().splitlines()[-1])


def stored_tag(home: Path, tag: str) -> str:
    """The full tag (name:version) that `tag` resolves to in the store."""
    code = f"import bentoml; print(bentoml.models.get({tag!r}).tag)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "BENTOML_HOME": str(home)},
    ).stdout
    return out.strip().splitlines()[-1]


def labelled_slice(src: Path, dst: Path, rows: int) -> Path:
    """The first rows of an SST-2 file, or a small synthetic file of the same format without ../shared."""
    if src.is_file():
        lines = src.read_text(encoding="utf-8").splitlines()[: rows + 1]
    else:
        good = ["a great film", "i love this movie", "the best story ever", "very good acting"]
        bad = ["an awful film", "i hate this movie", "the worst story ever", "very bad acting"]
        lines = ["sentence\tlabel"] + [f"{good[i % 4]} {i}\t1" if i % 2 else f"{bad[i % 4]} {i}\t0" for i in range(rows)]
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dst


@pytest.mark.parametrize("command", ["", "import", "train", "eval"])
def test_help(command: str, tmp_path: Path) -> None:
    result = cli(*filter(None, [command]), "--help", home=tmp_path)
    assert "usage:" in result.stdout


def test_import_local_dir_records_metadata(tmp_path: Path, model_dir: Path, tiny_model_dir: Path) -> None:
    out = cli("import", "--source", str(model_dir), home=tmp_path).stdout
    assert "imported distilbert-sst2:" in out
    assert (tmp_path / "models" / "distilbert-sst2").is_dir()  # the store under BENTOML_HOME
    meta = stored_metadata(tmp_path, "distilbert-sst2:latest")
    assert meta["labels"] == ["NEGATIVE", "POSITIVE"]
    assert meta["max_length"] == 512
    assert meta["source"] == str(model_dir)
    assert len(meta["fingerprint"]) == 16
    # the graph-runtime export is made at import, stored with the version, and checked against torch
    assert meta["exports"]["openvino"] == ["fp32.xml", "int8.xml"]
    assert meta["exports"]["openvino_fp32_max_diff"] <= 1e-4
    assert "ENGINE=auto PRECISION=auto will serve openvino/fp32: no guard recorded" in out
    # any UID may read the stored files (an image run with Kubernetes' runAsUser loads them)
    stored = [p for p in (tmp_path / "models" / "distilbert-sst2").rglob("*")]
    assert any(p.name == "model.safetensors" for p in stored)
    for path in stored:
        assert path.stat().st_mode & (0o005 if path.is_dir() else 0o004), path

    cli("import", "--source", str(model_dir), "--name", "again", home=tmp_path)
    cli("import", "--source", str(tiny_model_dir), "--name", "tiny", home=tmp_path)
    assert stored_metadata(tmp_path, "again:latest")["fingerprint"] == meta["fingerprint"]
    assert stored_metadata(tmp_path, "tiny:latest")["fingerprint"] != meta["fingerprint"]


def test_clear_errors_without_traceback(tmp_path: Path, model_dir: Path) -> None:
    no_columns = tmp_path / "bad.csv"
    no_columns.write_text("text,target\nhello,1\n")
    cases = [
        (("import", "--source", str(tmp_path / "missing-dir")), "model directory not found"),
        (("import", "--source", str(no_columns)), "not found"),
        (("import",), "hub"),  # default hub id, hub unreachable
        (("import", "--source", "some-org/some-model"), "cannot load model"),
        (("eval", "--data", str(no_columns)), "no sentence / label column"),
        (("eval", "--data", str(tmp_path / "nope.tsv")), "data file not found"),
        (("train", "--base", str(model_dir), "--train", str(no_columns)), "no sentence / label column"),
        (("eval", "--data", str(labelled_slice(SST2_DEV, tmp_path / "d.tsv", 5)), "--tag", "absent:latest"), "no model absent:latest"),
        (("import", "--source", str(model_dir), "--eval", str(no_columns)), "no sentence / label column"),
    ]
    for args, message in cases:
        result = cli(*args, home=tmp_path, check=False)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert message in result.stderr, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr


def test_train_tiny_model_on_a_slice_then_serve_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    train = labelled_slice(SST2_TRAIN, tmp_path / "train.tsv", 96)
    dev = labelled_slice(SST2_DEV, tmp_path / "dev.tsv", 48)
    result = cli(
        "train", "--base", str(tiny_model_dir), "--train", str(train), "--eval", str(dev),
        "--epochs", "1", "--batch-size", "16", "--name", "tiny-trained", home=tmp_path,
    )
    assert "eval accuracy:" in result.stdout
    meta = stored_metadata(tmp_path, "tiny-trained:latest")
    assert 0.0 <= meta["eval_accuracy"] <= 1.0 and meta["train_rows"] == 96 and meta["eval_rows"] == 48
    reported = float(result.stdout.split("eval accuracy:")[1].split()[0])
    assert meta["eval_accuracy"] == pytest.approx(reported, abs=1e-4)
    # the trained weights differ from the base model's
    cli("import", "--source", str(tiny_model_dir), "--name", "tiny-base", home=tmp_path)
    assert meta["fingerprint"] != stored_metadata(tmp_path, "tiny-base:latest")["fingerprint"]

    evaluated = cli("eval", "--data", str(dev), "--tag", "tiny-trained:latest", home=tmp_path).stdout
    assert f"accuracy: {meta['eval_accuracy']:.4f}" in evaluated
    # --eval also ran the guard for every pair this CPU runs, torch fp32 being the reference
    guard = meta["precision_guard"]
    assert {"torch/fp32", "torch/int8", "openvino/fp32", "openvino/int8"} <= set(guard)
    assert guard["torch/fp32"]["agreement"] == 1.0 and guard["openvino/fp32"]["agreement"] == 1.0
    on_openvino = cli("eval", "--data", str(dev), "--tag", "tiny-trained:latest", "--engine", "openvino", home=tmp_path).stdout
    assert f"accuracy: {guard['openvino/fp32']['accuracy']:.4f}" in on_openvino and "engine=openvino" in on_openvino

    server = start_server(tmp_path, tmp_path, env={"MODEL_TAG": "tiny-trained:latest"})
    try:
        r = httpx.post(f"{server.url}/predict", json={"text": ["a great film", "an awful film"]}, timeout=60)
        assert r.status_code == 200, r.text
        assert [p["label"] for p in r.json()["predictions"][0]] == ["NEGATIVE", "POSITIVE"]
    finally:
        server.stop()


def test_guard_record_stores_the_verdicts_auto_then_serves(tmp_path: Path, tiny_model_dir: Path) -> None:
    cli("import", "--source", str(tiny_model_dir), "--name", "guarded", home=tmp_path)
    assert "precision_guard" not in stored_metadata(tmp_path, "guarded:latest")
    dev = labelled_slice(SST2_DEV, tmp_path / "dev.tsv", 40)
    out = cli("guard", "--data", str(dev), "--tag", "guarded:latest", "--record", home=tmp_path).stdout
    assert "recorded in the metadata of guarded:" in out
    guard = stored_metadata(tmp_path, "guarded:latest")["precision_guard"]  # written back by Model.flush()
    assert {"torch/fp32", "openvino/fp32"} <= set(guard)
    assert guard["torch/fp32"]["agreement"] == 1.0 and guard["torch/fp32"]["passed"] is True
    assert all({"agreement", "accuracy", "texts_per_s", "batch1_texts_per_s", "passed"} <= set(r) for r in guard.values())
    assert "ENGINE=auto PRECISION=auto will serve" in out and "fastest pair that passed the guard" in out
    without = cli("guard", "--data", str(dev), "--tag", "guarded:latest", "--engines", "torch", home=tmp_path).stdout
    assert "recorded" not in without and set(stored_metadata(tmp_path, "guarded:latest")["precision_guard"]) == set(guard)


NO_BF16 = "import sentiment.model.cpu as cpu; cpu.supports_bf16 = lambda: False  # a CPU without AVX512-BF16/AMX\n"


def test_eval_of_bf16_on_a_cpu_without_it_exits_with_the_service_s_message(tmp_path: Path, tiny_model_dir: Path) -> None:
    cli("import", "--source", str(tiny_model_dir), home=tmp_path)
    dev = labelled_slice(SST2_DEV, tmp_path / "dev.tsv", 8)
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    evaluate = NO_BF16 + (
        "import sys, train_or_import\n"
        f"sys.exit(train_or_import.main(['eval', '--data', {str(dev)!r}, '--precision', 'bf16']))\n"
    )
    result = subprocess.run([sys.executable, "-c", evaluate], cwd=ROOT, env=env, capture_output=True, text=True)
    serve = NO_BF16 + (  # what the service does at start-up with ENGINE=torch PRECISION=bf16 (service.serving_pair)
        "import bentoml\nfrom sentiment.store.guard import served_pair\n"
        "model = bentoml.models.get('distilbert-sst2:latest')\n"
        "try:\n    served_pair(model.path, model.info.metadata.get('precision_guard'), 'torch', 'bf16')\n"
        "except Exception as exc:\n    print(exc)\n"
    )
    service_says = subprocess.run([sys.executable, "-c", serve], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert service_says == "cannot serve torch/bf16: this CPU has no AVX512-BF16/AMX"
    assert result.returncode == 2 and f"error: {service_says}" in result.stderr and "Traceback" not in result.stderr
    assert "precision=bf16" not in result.stdout  # never reported as bf16 after running fp32


def fake_quantize_ops(ir: Path) -> int:
    """FakeQuantize nodes in an OpenVINO IR: static int8 of activations puts one before each quantized input."""
    return ir.read_text().count('type="FakeQuantize"')


def test_import_with_calibrate_quantizes_activations_chosen_on_texts_the_guard_never_sees(tmp_path: Path, tiny_model_dir: Path) -> None:
    from sentiment.store.int8 import RECIPES, choose_recipe

    train = labelled_slice(SST2_TRAIN, tmp_path / "train.tsv", 200)
    dev = labelled_slice(SST2_DEV, tmp_path / "dev.tsv", 30)
    cli("import", "--source", str(tiny_model_dir), "--name", "plain", home=tmp_path)
    result = cli("import", "--source", str(tiny_model_dir), "--eval", str(dev), "--calibrate", str(train),
                 "--calibration-size", "60", "--selection-size", "100", home=tmp_path)
    meta = stored_metadata(tmp_path, "distilbert-sst2:latest")
    int8 = meta["exports"]["openvino_int8"]
    assert int8["calibrated"] is True and int8["source"] == str(train)
    assert (int8["calibration_texts"], int8["selection_texts"]) == (60, 100)
    # every recipe was tried and judged on the selection slice; bf16 float parts only where the CPU has bf16
    assert set(int8["tried"]) == {name for name, r in RECIPES.items() if r["float_part"] == "f32" or supports_bf16()}
    assert int8["recipe"] == choose_recipe(int8["tried"])
    assert f"int8: stored recipe {int8['recipe']!r}" in result.stderr
    # each recipe's recheck margin is the largest change it made to a selection margin: with it, no selection label changes
    assert all(r["selection_flips_rechecked"] == 0 and r["recheck_below"] >= 0 for r in int8["tried"].values())
    assert int8["recheck_below"] == int8["tried"][int8["recipe"]]["recheck_below"]
    assert "openvino/int8" in meta["precision_guard"]  # then the unchanged guard judges it on --eval
    models = tmp_path / "models"
    calibrated = next(p for p in models.glob("distilbert-sst2/*/openvino/int8.xml"))
    weight_only = next(p for p in models.glob("plain/*/openvino/int8.xml"))
    assert fake_quantize_ops(calibrated) > 0 and fake_quantize_ops(weight_only) == 0
    assert stored_metadata(tmp_path, "plain:latest")["exports"]["openvino_int8"]["calibrated"] is False
    # what the chosen recipe leaves in float runs as it says (f32, or bf16): recorded in the IR, judged and served so
    expected = RECIPES[int8["recipe"]]["float_part"]
    assert int8["float_part"] == expected
    served = OpenVINOEngine(str(calibrated.parent.parent), "int8", threads=1)
    assert served.float_part == expected
    assert (served.recheck_below or 0.0) == pytest.approx(int8["recheck_below"], abs=1e-5)  # recorded in the IR
    assert served.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == expected
    assert OpenVINOEngine(str(weight_only.parent.parent), "int8", threads=1).float_part == "f32"  # weight-only: unrecorded

    few = labelled_slice(SST2_TRAIN, tmp_path / "few.tsv", 5)
    refused = cli("import", "--source", str(tiny_model_dir), "--calibrate", str(few), home=tmp_path, check=False)
    assert refused.returncode == 2 and "too few texts for static int8" in refused.stderr
    assert "Traceback" not in refused.stderr

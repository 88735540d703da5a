"""Fixtures of the engine tests: a tiny model with its OpenVINO export (fp32 and weight-only int8)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sentiment.model.engines import export_openvino


@pytest.fixture(scope="module")
def exported_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy per test module: test_recheck.py rewrites its int8 IR."""
    from transformers import AutoModelForSequenceClassification

    folder = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(tiny_model_dir, folder)
    export_openvino(AutoModelForSequenceClassification.from_pretrained(folder).eval(), folder)
    return folder

"""Shared fixtures: a model store with a model in it, and real `bentoml serve` processes.

The real fine-tuned model comes from `../shared/models/distilbert-sst2-minilm`
when that folder exists; otherwise a tiny random DistilBERT with its own
WordPiece vocabulary is built here, and tests that need the real model's
accuracy are skipped.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness.processes import home_sharing_models, start_server
from tests.helpers import build_tiny_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL_MODEL = SHARED / "models" / "distilbert-sst2-minilm"
OFFICIAL_CONFIG = SHARED / "models" / "distilbert-sst2-official-config"
SST2_DEV = SHARED / "data" / "sst2" / "dev.tsv"
SST2_TRAIN = SHARED / "data" / "sst2" / "train.tsv"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def model_dir(tiny_model_dir: Path) -> Path:
    """The real model when available, else the tiny one."""
    return REAL_MODEL if REAL_MODEL.is_dir() else tiny_model_dir


@pytest.fixture(scope="session")
def real_model_dir() -> Path:
    if not REAL_MODEL.is_dir():
        pytest.skip("needs ../shared/models/distilbert-sst2-minilm")
    return REAL_MODEL


@pytest.fixture(scope="session")
def sst2_dev() -> Path:
    if not SST2_DEV.is_file():
        pytest.skip("needs ../shared/data/sst2/dev.tsv")
    return SST2_DEV


@pytest.fixture(scope="session")
def bentoml_home(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """A model store holding `distilbert-sst2` imported from `model_dir`, for the whole session."""
    home = tmp_path_factory.mktemp("bentoml-home")
    os.environ["BENTOML_HOME"] = str(home)
    import subprocess

    subprocess.run(
        [sys.executable, str(ROOT / "train_or_import.py"), "import", "--source", str(model_dir)],
        check=True, cwd=ROOT, env={**os.environ, "BENTOML_HOME": str(home)},
        stdout=subprocess.DEVNULL,
    )
    return home


@pytest.fixture(scope="module")
def server(bentoml_home: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """One `bentoml serve` per test module, default settings, embedded cache."""
    proc = start_server(bentoml_home, log_dir=tmp_path_factory.mktemp("serve-log"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def split_server(bentoml_home: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """One `bentoml serve` per test module with the model in its own worker (MODEL_PLACEMENT=service),
    which a test can pause, and no cache: every text reaches the model."""
    folder = tmp_path_factory.mktemp("serve-split")
    # a home of its own: a `server` started later in the module would hide this one's metrics
    proc = start_server(home_sharing_models(bentoml_home, folder), log_dir=folder,
                        env={"MODEL_PLACEMENT": "service", "CACHE_MAX_ENTRIES": "0"})
    yield proc
    proc.stop()


TIERS = ("unit", "service", "container", "load")  # pytest.ini: markers


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test belongs to exactly one tier, so `-m unit` and friends select what they say."""
    for item in items:
        tiers = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
        if len(tiers) != 1:
            raise pytest.UsageError(f"{item.nodeid}: mark its module with exactly one tier of {TIERS} (pytestmark), not {sorted(tiers)}")

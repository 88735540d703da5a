"""The model service's API as BentoML builds it (service.py, `SentimentModel.classify`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.processes import ROOT

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

ANSWER_MEDIA_TYPE = """
import json, service
spec = service.SentimentModel.apis["classify"].output_spec
def schema(*args, **kwargs):
    raise AssertionError("the JSON schema was built to answer")
spec.model_json_schema = schema
print(json.dumps({"media_type": spec.mime_type()}))
"""


def test_the_model_service_names_the_media_type_of_its_answer(tmp_path) -> None:  # noqa: ANN001
    # Without it BentoML derives the media type of a list answer from its JSON schema, built again for
    # every response (_bentoml_sdk/io_models.py, IOMixin.mime_type): 180 µs of the model worker's CPU a batch.
    env = {"PATH": "", "HF_HUB_OFFLINE": "1", "BENTOML_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", ANSWER_MEDIA_TYPE], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"media_type": "application/json"}

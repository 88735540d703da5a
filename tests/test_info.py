"""GET /info through a real `bentoml serve`: the stored model and the settings it was started with, no model call."""

from __future__ import annotations

import httpx
import pytest

from harness.processes import start_server
from harness.prometheus import metric_sum
from tests.test_train_or_import import stored_metadata, stored_tag

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

KEY = "k-info-0123456789"
SETTINGS = {
    "MAX_TEXTS": "100", "MAX_TEXT_CHARS": "5000", "MAX_BODY_BYTES": "1048576", "REQUEST_TIMEOUT_S": "30",
    "MAX_BATCH_SIZE": "16", "MAX_LATENCY_MS": "9000", "BATCH_WAIT_MS": "2", "MAX_QUEUED_TEXTS": "64",
}


@pytest.fixture(scope="module")
def configured_server(bentoml_home, tmp_path_factory):  # noqa: ANN001, ANN201
    folder = tmp_path_factory.mktemp("info")
    (folder / "api-keys").write_text(f"{KEY}\n")
    proc = start_server(bentoml_home, folder, env={**SETTINGS, "API_KEYS_FILE": str(folder / "api-keys")})
    yield proc
    proc.stop()


def test_info_says_which_model_serves_and_how(configured_server, bentoml_home) -> None:  # noqa: ANN001
    import sentiment

    before = metric_sum(configured_server.metrics(), "sentiment_batch_texts_count")
    response = httpx.get(f"{configured_server.url}/info", timeout=10)  # no key: open like /health
    assert response.status_code == 200
    info = response.json()
    meta = stored_metadata(bentoml_home, "distilbert-sst2:latest")
    assert info["version"] == sentiment.__version__
    assert info["model"] == {
        "tag": stored_tag(bentoml_home, "distilbert-sst2:latest"), "fingerprint": meta["fingerprint"],
        "labels": meta["labels"], "problem_type": "single_label_classification", "score_function": "softmax",
        "max_tokens": meta["max_length"],
    }
    served = configured_server.log().split("loaded: engine=", 1)[1].split()[:2]  # what the model service loaded
    assert [info["served_by"]["engine"], f"precision={info['served_by']['precision']}"] == served
    assert info["served_by"]["why"].startswith("unguarded fp32") and info["served_by"]["guard"] is None  # imported without --eval
    assert info["served_by"]["placement"] == "inline"  # the default: the model in the public worker
    assert info["batching"] == {"max_batch_size": 16, "max_latency_ms": 9000, "batch_wait_ms": 2.0, "regroup_wait": 2.0,
                                "max_queued_texts": 64}
    assert info["limits"] == {"max_texts": 100, "max_text_chars": 5000, "max_body_bytes": 1048576, "max_tokenizing_chars": 1_000_000, "request_timeout_s": 30.0}
    assert info["api_keys_required"] is True and KEY not in response.text
    assert metric_sum(configured_server.metrics(), "sentiment_batch_texts_count") == before  # no model call


def test_info_is_in_the_openapi_document(configured_server) -> None:  # noqa: ANN001
    spec = httpx.get(f"{configured_server.url}/docs.json", timeout=10).json()
    operation = spec["paths"]["/info"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ServiceInfo"}
    properties = spec["components"]["schemas"]["ServiceInfo"]["properties"]
    assert set(properties) == set(httpx.get(f"{configured_server.url}/info", timeout=10).json())
    assert "security" not in operation  # open


def test_the_operator_can_protect_info(bentoml_home, tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "api-keys").write_text(f"{KEY}\n")
    server = start_server(bentoml_home, tmp_path, env={"API_KEYS_FILE": str(tmp_path / "api-keys"), "INFO_REQUIRES_KEY": "true"})
    try:
        assert httpx.get(f"{server.url}/info", timeout=10).status_code == 401
        assert httpx.get(f"{server.url}/info", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).status_code == 200
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200  # the rest stays open
        assert httpx.get(f"{server.url}/docs.json", timeout=10).json()["paths"]["/info"]["get"]["security"] == [{"bearerAuth": []}]
    finally:
        server.stop()

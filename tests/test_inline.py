"""MODEL_PLACEMENT=inline through a real `bentoml serve`: one worker, batches still shared across clients, the same answers."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from harness.clients import closed_loop
from harness.processes import start_server
from tests.helpers import batches_and_texts

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

USERS = 32
REQUESTS_PER_USER = 5


@pytest.fixture(scope="module")
def inline_server(bentoml_home, tmp_path_factory):  # noqa: ANN001, ANN201
    # no cache: every text reaches the model
    proc = start_server(bentoml_home, tmp_path_factory.mktemp("serve-inline"),
                        env={"MODEL_PLACEMENT": "inline", "CACHE_MAX_ENTRIES": "0"})
    yield proc
    proc.stop()


def test_the_model_runs_in_the_public_worker_and_no_model_service_starts(inline_server) -> None:  # noqa: ANN001
    inline_server.worker_pid("sentiment")
    with pytest.raises(LookupError):
        inline_server.worker_pid("sentiment_model")
    info = httpx.get(f"{inline_server.url}/info", timeout=10).json()
    assert info["served_by"]["placement"] == "inline"
    assert "placement=inline" in inline_server.log()
    assert any(k.startswith("sentiment_model_info") and v == 1 for k, v in inline_server.metrics().items())


def test_concurrent_clients_share_batches_and_get_the_model_service_s_answers(inline_server, bentoml_home, tmp_path) -> None:  # noqa: ANN001
    before = inline_server.metrics()

    def texts(u: int, i: int) -> list[str]:
        return [f"inline user {u} finds request {i} rather good"]

    results = asyncio.run(closed_loop(inline_server.url, USERS, texts, requests_per_user=REQUESTS_PER_USER))
    statuses = [e.response.status_code for e in results]
    assert statuses.count(200) == len(statuses) == USERS * REQUESTS_PER_USER, {s: statuses.count(s) for s in set(statuses)}
    after = inline_server.metrics()
    batches, texts_in = batches_and_texts(before, after)
    assert texts_in == USERS * REQUESTS_PER_USER
    assert batches < texts_in / 2  # 32 clients waiting: most batches carry several of their texts
    # the same texts through the model service: same model, same pair. Started only now: a second
    # `bentoml serve` on the same BENTOML_HOME starts with a fresh metrics directory
    split = start_server(bentoml_home, tmp_path)
    try:
        for exchange in results[:: len(results) // 8]:
            want = httpx.post(f"{split.url}/predict", json={"text": exchange.texts}, timeout=60).json()["predictions"]
            for got_row, want_row in zip(exchange.response.json()["predictions"], want):
                assert [g["label"] for g in got_row] == [w["label"] for w in want_row]
                assert max(abs(g["score"] - w["score"]) for g, w in zip(got_row, want_row)) <= 1e-4
    finally:
        split.stop()

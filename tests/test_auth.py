"""API keys through a real `bentoml serve`: refused before the model, rotated without a restart, probes open."""

from __future__ import annotations

import httpx
import pytest

from harness.processes import start_server, wait_until
from harness.prometheus import metric_sum

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

KEY, OTHER = "k-0123456789abcdef", "k-fedcba9876543210"


@pytest.fixture(scope="module")
def keyed_server(bentoml_home, tmp_path_factory):  # noqa: ANN001, ANN201
    folder = tmp_path_factory.mktemp("keys")
    (folder / "api-keys").write_text(f"{KEY}\n")
    proc = start_server(bentoml_home, folder, env={"API_KEYS_FILE": str(folder / "api-keys"), "CACHE_MAX_ENTRIES": "0"})
    proc.keys_file = folder / "api-keys"
    yield proc
    proc.stop()


def predict(server, headers: dict[str, str], texts: list[str] | None = None) -> httpx.Response:  # noqa: ANN001
    return httpx.post(f"{server.url}/predict", json={"text": texts or ["I love you"]}, headers=headers, timeout=60)


def model_texts(server) -> float:  # noqa: ANN001
    return server.metrics().get("sentiment_model_texts_total", 0.0)


def test_requests_without_the_right_key_never_reach_the_model(keyed_server) -> None:  # noqa: ANN001
    before = model_texts(keyed_server)
    cases = {
        "missing": {},
        "malformed": {"Authorization": f"Token {KEY}"},
        "invalid": {"Authorization": "Bearer not-a-key"},
    }
    for reason, headers in cases.items():
        r = predict(keyed_server, headers, [f"refused {reason}"])
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["x-request-id"]  # refused requests are identified too
        assert reason.split("-")[0] in r.json()["error"] or r.json()["error"] == "invalid API key"
    m = keyed_server.metrics()
    assert {r: metric_sum(m, "sentiment_auth_failures_total", reason=r) for r in cases} == dict.fromkeys(cases, 1.0)
    assert model_texts(keyed_server) == before  # nothing reached the model
    assert KEY not in keyed_server.log() and "not-a-key" not in keyed_server.log()

    ok = predict(keyed_server, {"Authorization": f"Bearer {KEY}"}, ["accepted with a key"])
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1
    assert model_texts(keyed_server) == before + 1


def test_probes_metrics_and_docs_stay_open(keyed_server) -> None:  # noqa: ANN001
    for path in ("/livez", "/readyz", "/health", "/metrics", "/docs.json", "/"):
        assert httpx.get(f"{keyed_server.url}{path}", timeout=30).status_code == 200, path


def test_openapi_declares_the_bearer_scheme(keyed_server) -> None:  # noqa: ANN001
    spec = httpx.get(f"{keyed_server.url}/docs.json", timeout=30).json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    predict_op = spec["paths"]["/predict"]["post"]
    assert predict_op["security"] == [{"bearerAuth": []}]
    assert "401" in predict_op["responses"]


def test_keys_rotate_without_a_restart(keyed_server) -> None:  # noqa: ANN001
    keyed_server.keys_file.write_text(f"{KEY}\n{OTHER}\n")
    wait_until(lambda: predict(keyed_server, {"Authorization": f"Bearer {OTHER}"}).status_code == 200, 10, "the added key")
    keyed_server.keys_file.write_text(f"{OTHER}\n")  # KEY revoked
    wait_until(lambda: predict(keyed_server, {"Authorization": f"Bearer {KEY}"}).status_code == 401, 10, "the revoked key refused")
    assert predict(keyed_server, {"Authorization": f"Bearer {OTHER}"}).status_code == 200
    keyed_server.keys_file.write_text(f"{KEY}\n")


def test_a_flood_of_bad_keys_costs_no_queue_space(keyed_server) -> None:  # noqa: ANN001
    """Bad keys are refused before admission: they are never shed (503) and never queued."""
    with httpx.Client(timeout=30) as client:
        statuses = {client.post(f"{keyed_server.url}/predict", json={"text": ["x"] * 200},
                                headers={"Authorization": "Bearer wrong"}).status_code for _ in range(200)}
    assert statuses == {401}
    m = keyed_server.metrics()
    assert metric_sum(m, "sentiment_shed_requests_total") == 0
    assert metric_sum(m, "sentiment_queued_texts") == 0

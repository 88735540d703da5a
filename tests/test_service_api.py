"""The public HTTP contract of `POST /predict`, `GET /health` and BentoML's endpoints, over a real `bentoml serve`."""

from __future__ import annotations

import math
import select
import socket

import httpx
import pytest

from tests.conftest import REAL_MODEL

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

EXAMPLE = ["I love you", "I hate you", "Count to 1234"]


def post(server, body, **kw) -> httpx.Response:  # noqa: ANN001
    return httpx.post(f"{server.url}/predict", json=body, timeout=60, **kw)


def test_predict_contract(server) -> None:  # noqa: ANN001
    r = post(server, {"text": EXAMPLE})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert len(predictions) == len(EXAMPLE)
    for row in predictions:
        assert [p["label"] for p in row] == ["NEGATIVE", "POSITIVE"]  # label-id order, not sorted by score
        assert math.isclose(sum(p["score"] for p in row), 1.0, abs_tol=1e-5)
    assert set(r.json()) == {"predictions"}


@pytest.mark.skipif(not REAL_MODEL.is_dir(), reason="reference scores are those of the shared model")
def test_predict_matches_reference_scores(server) -> None:  # noqa: ANN001
    reference = [(0.001046, 0.998954), (0.926166, 0.073834), (0.258417, 0.741583)]
    predictions = post(server, {"text": EXAMPLE}).json()["predictions"]
    for row, (neg, pos) in zip(predictions, reference):
        assert row[0]["score"] == pytest.approx(neg, abs=1e-4)
        assert row[1]["score"] == pytest.approx(pos, abs=1e-4)
    # "I hate you" is negative, whatever the order of the rows
    assert predictions[1][0]["score"] > predictions[1][1]["score"]


def test_order_and_duplicates_preserved(server) -> None:  # noqa: ANN001
    texts = ["I hate you", "I love you", "I hate you", ""]
    one_by_one = [post(server, {"text": [t]}).json()["predictions"][0] for t in texts]
    together = post(server, {"text": texts}).json()["predictions"]
    for a, b in zip(one_by_one, together):
        assert [p["label"] for p in a] == [p["label"] for p in b]
        for pa, pb in zip(a, b):
            assert pa["score"] == pytest.approx(pb["score"], abs=1e-4)
    assert together[0] == together[2]


def test_empty_list_and_empty_string(server) -> None:  # noqa: ANN001
    r = post(server, {"text": []})
    assert r.status_code == 200 and r.json() == {"predictions": []}
    r = post(server, {"text": [""]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1


def test_text_longer_than_model_window_is_truncated(server) -> None:  # noqa: ANN001
    long_text = "this movie was great " * 1000  # ~21k chars is over the limit; keep under it
    long_text = long_text[:19_999]
    r = post(server, {"text": [long_text]})
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"][0]) == 2


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, ["text"]),
        ({"text": ["a"], "extra": 1}, ["extra"]),
        ({"text": "I love you"}, ["text"]),
        ({"text": ["ok", 3]}, ["text", 1]),
        ({"text": ["ok", None]}, ["text", 1]),
        ({"text": [["nested"]]}, ["text", 0]),
        ({"text": ["x"] * 257}, ["text"]),
        ({"text": ["ok", "x" * 20_001]}, ["text", 1]),
        ([{"text": ["a"]}], []),
    ],
    ids=["missing", "extra-key", "not-a-list", "int-item", "null-item", "list-item", "too-many", "too-long", "array-body"],
)
def test_bad_input_is_a_4xx_that_says_where(server, body, where) -> None:  # noqa: ANN001
    before = server.metrics().get("sentiment_model_texts_total", 0.0)
    r = post(server, body)
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert [d["loc"] for d in detail][0] == where
    assert server.metrics().get("sentiment_model_texts_total", 0.0) == before  # never reached the model


@pytest.mark.parametrize("raw", [b"not json", b'{"text": ["unterminated', b"\xff\xfe", b"", b"null"])
def test_body_that_is_not_json_is_a_400(server, raw) -> None:  # noqa: ANN001
    r = httpx.post(f"{server.url}/predict", content=raw, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    assert "error" in r.json()


def test_health_and_probes(server) -> None:  # noqa: ANN001
    assert httpx.get(f"{server.url}/health").json() == {"status": "healthy"}
    assert httpx.get(f"{server.url}/livez").status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert "bentoml_service_request_total" in httpx.get(f"{server.url}/metrics").text


def test_swagger_example_is_a_working_request(server) -> None:  # noqa: ANN001
    spec = httpx.get(f"{server.url}/docs.json").json()
    schema = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    example = {"text": schema["properties"]["text"]["examples"][0]}
    r = post(server, example)
    assert r.status_code == 200 and len(r.json()["predictions"]) == len(example["text"])
    assert httpx.get(f"{server.url}/").status_code == 200


def test_bentoml_s_own_client_gets_what_a_plain_http_client_gets(server) -> None:  # noqa: ANN001
    """BentoML's client finds `predict` in the service's schema and calls it; the lean route
    (sentiment/http/predict.py) answers it as any other client, with the same body and the same 400."""
    import bentoml

    body = {"text": ["I love you", "I hate you"], "top_k": 1}
    plain = httpx.post(f"{server.url}/predict", json=body, timeout=60).json()
    with bentoml.SyncHTTPClient(server.url, timeout=60) as client:
        assert "predict" in client.endpoints
        got = client.predict(**body)
        assert got == plain
        with pytest.raises(bentoml.exceptions.BentoMLException, match="top_k"):
            client.predict(text=["ok"], top_k=0)


def _health_on(sock: socket.socket) -> int:
    """GET /health on an open connection; its status, once the whole answer has been read."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ", 2)[1])


def test_an_idle_connection_outlives_the_pool_expiry_of_clients(server) -> None:  # noqa: ANN001
    """uvicorn's default keep-alive (5 s) equals httpx's pool expiry: a request sent on a connection idle
    for just under 5 s met the server closing it (httpx.ReadError). The server keeps it open longer."""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        assert _health_on(sock) == 200
        # a connection the server closes turns readable (end of stream): this one stays quiet
        readable, _, _ = select.select([sock], [], [], httpx.Limits().keepalive_expiry + 1.5)
        assert not readable, "the server closed an idle connection a client's pool still holds"
        assert _health_on(sock) == 200

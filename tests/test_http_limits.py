"""Hostile HTTP input against a real `bentoml serve`: huge, slow, deep, odd bodies get a 4xx, memory stays bounded."""

from __future__ import annotations

import socket
import time

import httpx
import psutil
import pytest

from tests.helpers import start_server

BODY_LIMIT = 4 * 1024 * 1024
BODY_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def limited_server(bentoml_home, tmp_path_factory):  # noqa: ANN001, ANN201
    proc = start_server(
        bentoml_home, tmp_path_factory.mktemp("serve-limits"),
        env={"MAX_BODY_BYTES": str(BODY_LIMIT), "BODY_TIMEOUT_S": str(BODY_TIMEOUT_S)},
    )
    yield proc
    proc.stop()


def service_rss(server) -> int:  # noqa: ANN001
    """Resident memory of every process of the server (arbiter, public and model workers)."""
    root = psutil.Process(server.proc.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def raw_request(port: int, head: bytes, body_parts: list[bytes], pause_s: float = 0.0, read_timeout: float = 30) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(head)
        for part in body_parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(pause_s)
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response else 0


def test_50mb_body_is_refused_without_growing_memory(limited_server) -> None:  # noqa: ANN001
    port = int(limited_server.url.rsplit(":", 1)[1])
    before = service_rss(limited_server)
    size = 50 * 1024 * 1024
    head = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    response = raw_request(port, head, [b'{"text": ["' + b"a" * (1024 * 1024)] * 50)
    assert status_of(response) in (413, 0), response[:200]  # 413, or the connection closed on us
    # the same without Content-Length: chunked transfer, refused once over the limit
    chunk = b"a" * (1024 * 1024)
    chunked = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 50 + [b"0\r\n\r\n"]
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    response = raw_request(port, head, chunked)
    assert status_of(response) in (413, 0), response[:200]
    grown = service_rss(limited_server) - before
    print(f"\nresident memory grew by {grown / 2**20:.1f} MiB (body limit {BODY_LIMIT / 2**20:.0f} MiB)")
    assert grown <= BODY_LIMIT
    assert httpx.post(f"{limited_server.url}/predict", json={"text": ["still fine"]}).status_code == 200


def test_body_just_over_the_limit_gets_413_json(limited_server) -> None:  # noqa: ANN001
    body = b'{"text": ["' + b"a" * BODY_LIMIT + b'"]}'
    r = httpx.post(f"{limited_server.url}/predict", content=body, headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413 and "bytes" in r.json()["error"]


def test_slow_client_gets_408(limited_server) -> None:  # noqa: ANN001
    port = int(limited_server.url.rsplit(":", 1)[1])
    body = b'{"text": ["I arrive one byte at a time"]}'
    head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    start = time.monotonic()
    response = raw_request(port, head, [body[i : i + 1] for i in range(len(body))], pause_s=0.5)
    assert status_of(response) == 408, response[:300]
    assert time.monotonic() - start < BODY_TIMEOUT_S + 15


@pytest.mark.parametrize(
    "body",
    [
        b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"text": [1e999999999]}',
        b'{"text": ["ok"], "n": ' + b"9" * 5000 + b"}",
        b'{"text": ["\xff\xfe invalid utf-8"]}',
        b'{"text": ["\\ud800 lone surrogate"]}',
        b'{"text": ["a"], "text": 5}',
        b"\x00" * 1000,
    ],
    ids=["deep-nesting", "huge-float", "huge-int", "invalid-utf8", "lone-surrogate", "duplicate-key", "nul-bytes"],
)
def test_odd_bodies_get_a_4xx(limited_server, body: bytes) -> None:  # noqa: ANN001
    r = httpx.post(f"{limited_server.url}/predict", content=body, headers={"content-type": "application/json"}, timeout=30)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])


def test_wrong_method_and_unknown_path(limited_server) -> None:  # noqa: ANN001
    assert httpx.get(f"{limited_server.url}/predict").status_code == 405
    assert httpx.post(f"{limited_server.url}/nope", json={}).status_code == 404


@pytest.mark.parametrize("content_type", ["multipart/form-data", "application/x-www-form-urlencoded", "text/plain"])
def test_non_json_content_type_is_415(limited_server, content_type: str) -> None:  # noqa: ANN001
    r = httpx.post(
        f"{limited_server.url}/predict", content=b'{"text": ["I love you"]}', headers={"content-type": content_type}
    )
    assert r.status_code == 415, r.text
    assert "application/json" in r.json()["error"]

"""Hostile HTTP input against a real `bentoml serve`: huge, slow, deep, odd bodies get a 4xx, memory stays bounded."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psutil
import pytest

from harness.processes import start_server, wait_until
from harness.prometheus import metric_sum

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

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
    """Resident memory of the public service's workers: they read request bodies (the model
    worker never sees one, and its own allocations would only add noise)."""
    root = psutil.Process(server.proc.pid)
    workers = [p for p in root.children(recursive=True) if is_public_worker(p.cmdline())]
    assert workers, "no public service worker found under bentoml serve"
    return sum(p.memory_info().rss for p in workers)


def is_public_worker(cmdline: list[str]) -> bool:
    """`... -m _bentoml_impl.worker.service service:Sentiment --service-name sentiment ...`"""
    return "--service-name" in cmdline and cmdline[cmdline.index("--service-name") + 1] == "sentiment"


@contextmanager
def peak_rss(server, interval_s: float = 0.005) -> Iterator[dict[str, int]]:  # noqa: ANN001
    """Sample the server's resident memory while the block runs; yields {"before", "peak"},
    the peak final once the block is done.

    The peak, not the value after: a body read whole and then freed would give its pages
    back to the OS (large allocations are mmap'ed) and leave no trace afterwards.
    """
    rss = dict.fromkeys(("before", "peak"), service_rss(server))
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                rss["peak"] = max(rss["peak"], service_rss(server))
            except psutil.Error:  # a process ended between listing and reading
                pass
            done.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield rss
    finally:
        done.set()
        sampler.join()


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
    mib = b"a" * (1024 * 1024)
    size = 50 * len(mib)
    with_length = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    # the same without Content-Length: chunked transfer, refused once over the limit
    chunked = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = [b"%x\r\n%s\r\n" % (len(mib), mib)] * 50 + [b"0\r\n\r\n"]
    # warm-up: the refusal path's first run allocates (imports, buffers) once
    assert status_of(raw_request(port, with_length, [b'{"text": ["' + mib] * 5)) in (413, 0)

    read = lambda: metric_sum(limited_server.metrics(), "sentiment_request_size_bytes_sum", endpoint="/predict")  # noqa: E731
    requests = lambda: metric_sum(limited_server.metrics(), "sentiment_request_size_bytes_count", endpoint="/predict")  # noqa: E731
    bytes_before, requests_before = read(), requests()
    with peak_rss(limited_server) as rss:
        response = raw_request(port, with_length, [b'{"text": ["' + mib] * 50)
        assert status_of(response) in (413, 0), response[:200]  # 413, or the connection closed on us
        response = raw_request(port, chunked, chunks)
        assert status_of(response) in (413, 0), response[:200]
    grown = rss["peak"] - rss["before"]
    print(f"\npeak resident memory grew by {grown / 2**20:.1f} MiB while 2 x 50 MiB bodies were refused "
          f"(body limit {BODY_LIMIT / 2**20:.0f} MiB)")
    # What the service read, not what its memory did (a noisy figure, printed above): nothing
    # of the body that announced 50 MiB, at most the limit plus one chunk of the chunked one.
    wait_until(lambda: requests() == requests_before + 2, timeout=10, what="both refusals recorded")
    assert read() - bytes_before <= BODY_LIMIT + len(mib)
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


def test_a_client_that_goes_away_mid_body_is_let_go_at_once(limited_server) -> None:  # noqa: ANN001
    """BentoML's timeout middleware held a request left unanswered, and the worker's shutdown,
    for `traffic.timeout` (60 s): such a request is answered 499 as soon as its client is gone."""
    port = int(limited_server.url.rsplit(":", 1)[1])
    body = b'{"text": ["I leave before my body has arrived"]}'
    head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()

    def in_progress() -> float:
        return metric_sum(limited_server.metrics(), "bentoml_service_request_in_progress", endpoint="/predict")

    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + body[:10])
        wait_until(lambda: in_progress() == 1, timeout=10, what="the server reading the body")
    wait_until(lambda: in_progress() == 0, timeout=10, what="the request let go once its client closed the connection")
    wait_until(lambda: " POST /predict 499 " in limited_server.log(), timeout=10, what="its access line, status 499")


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

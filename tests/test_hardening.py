"""Hardening, through real `bentoml serve` processes: no request stalls the probes, made-up paths add no
metric series, a killed worker comes back (the model service's, or the one worker with the model inline), keys fail closed, logs hold no request text and cannot be
forged, and after SIGTERM a new request is answered at once."""

from __future__ import annotations

import os
import random
import signal
import string
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from harness.processes import start_server, wait_until
from harness.prometheus import metric_sum

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

KEY = "k-hardening-0123456789"


def random_text(chars: int, seed: int) -> str:
    rng = random.Random(seed)
    words = "the film was great awful boring fun story acting best worst ever not very good bad".split()
    return " ".join(rng.choice(words) for _ in range(chars // 4))[:chars]


def test_the_largest_valid_request_never_stalls_the_probes(server) -> None:  # noqa: ANN001
    """256 texts of 20,000 characters (every limit kept) while /livez is polled every second: every poll
    is answered before the next one is due (the kubelet's readiness timeout is 2 s)."""
    texts = [random_text(20_000, seed) for seed in range(256)]
    polls: list[bool] = []
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=1.0) as client:
            while not done.is_set():
                due = time.monotonic() + 1.0
                try:
                    polls.append(client.get(f"{server.url}/livez").status_code == 200)
                except httpx.TimeoutException:
                    polls.append(False)
                done.wait(max(0.0, due - time.monotonic()))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        response = httpx.post(f"{server.url}/predict", json={"text": texts}, timeout=300)
    finally:
        done.set()
        poller.join()
    assert response.status_code == 200 and len(response.json()["predictions"]) == 256
    print(f"\n{len(polls)} probes during the request, {polls.count(False)} late")
    assert len(polls) >= 3 and all(polls)


def test_made_up_paths_add_no_metric_series(server) -> None:  # noqa: ANN001
    def series() -> set[str]:
        return set(server.metrics())

    httpx.get(f"{server.url}/{uuid.uuid4().hex}", timeout=10)  # the first unknown path makes the `other` series
    before = series()
    rng = random.Random(7)
    with httpx.Client(timeout=10) as client:
        for _ in range(300):
            path = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(4000))
            assert client.get(f"{server.url}/{path}").status_code == 404
    after = series()
    assert after == before, sorted(after - before)[:5]
    assert any('endpoint="other"' in name for name in after)


def model_worker(server) -> int | None:  # noqa: ANN001
    try:
        return server.worker_pid("sentiment_model")
    except LookupError:  # dead, not respawned yet
        return None


def long_request(server, tag: str) -> dict:  # noqa: ANN001
    """A request that keeps the model busy for a while (64 texts of about 300 words)."""
    r = httpx.post(f"{server.url}/predict", json={"text": [f"{tag} {i} " + random_text(1500, i) for i in range(64)]}, timeout=120)
    return {"status": r.status_code, "retry_after": r.headers.get("retry-after"), "body": r.text}


@pytest.mark.parametrize("timeout_s", [60, 4], ids=["back in time: retried", "not back in time: 503"])
def test_a_killed_model_worker_comes_back_in_the_container(bentoml_home, tmp_path, timeout_s: int) -> None:  # noqa: ANN001
    """kill -9 of the model worker under a call, with BENTOML_CONTAINERIZED set as in the image: the call is
    sent again once the respawned worker is ready (within half the request timeout), else answered 503 with
    Retry-After; requests after it are answered 200 by the new worker. Never a 500."""
    server = start_server(bentoml_home, tmp_path, env={
        "BENTOML_CONTAINERIZED": "true", "CACHE_MAX_ENTRIES": "0", "REQUEST_TIMEOUT_S": str(timeout_s), "MODEL_PLACEMENT": "service",
    })
    try:
        old = model_worker(server)
        retries = lambda outcome: metric_sum(server.metrics(), "sentiment_model_call_retries_total", outcome=outcome)  # noqa: E731
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(long_request, server, "killed under me")
            wait_until(lambda: metric_sum(server.metrics(), "sentiment_model_texts_total") >= 64, 30, "the call on its way")
            os.kill(old, signal.SIGKILL)
            answer = in_flight.result()
        if timeout_s == 60:
            assert answer["status"] == 200, answer
            assert retries("answered") == 1
        else:
            assert (answer["status"], answer["retry_after"]) == (503, "1"), answer
            assert "model service is not answering" in answer["body"] and retries("unavailable") == 1
        wait_until(lambda: model_worker(server) not in (old, None), 60, "the model worker respawned")
        wait_until(lambda: httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200, 60, "the new worker ready")
        after = [predict(server, None, {"text": [f"after the respawn {i}"]}).status_code for i in range(3)]
        assert after == [200, 200, 200]
    finally:
        server.stop()


def test_a_killed_public_worker_with_the_model_inline_comes_back_in_the_container(bentoml_home, tmp_path) -> None:  # noqa: ANN001
    """kill -9 of the one worker (the model inline, the default), BENTOML_CONTAINERIZED set as in the image:
    the supervisor starts another on the same socket, which answers once ready."""
    server = start_server(bentoml_home, tmp_path, env={"BENTOML_CONTAINERIZED": "true"})

    def public_worker() -> int | None:
        try:
            return server.worker_pid("sentiment")
        except LookupError:  # dead, not respawned yet
            return None

    try:
        old = public_worker()
        assert predict(server).status_code == 200
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: public_worker() not in (old, None), 60, "the public worker respawned")
        wait_until(lambda: httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200, 120, "the new worker ready")
        assert [predict(server, None, {"text": [f"after the respawn {i}"]}).status_code for i in range(3)] == [200, 200, 200]
    finally:
        server.stop()


@pytest.fixture(scope="module")
def keyed_server(bentoml_home, tmp_path_factory):  # noqa: ANN001, ANN201
    folder = tmp_path_factory.mktemp("hardening-keys")
    (folder / "api-keys").write_text(f"{KEY}  # the only key\n")
    proc = start_server(bentoml_home, folder, env={"API_KEYS_FILE": str(folder / "api-keys"), "API_KEYS_GRACE_S": "1"})
    proc.keys_file = folder / "api-keys"
    yield proc
    proc.stop()


def predict(server, headers: list[tuple[str, str]] | None = None, body: dict | None = None) -> httpx.Response:  # noqa: ANN001
    return httpx.post(f"{server.url}/predict", json=body or {"text": ["I love you"]}, headers=headers or [], timeout=60)


def test_keys_fail_closed(keyed_server) -> None:  # noqa: ANN001
    bearer = [("Authorization", f"Bearer {KEY}")]
    assert predict(keyed_server, bearer).status_code == 200  # the inline comment is not part of the key
    two = predict(keyed_server, [("Authorization", f"Bearer {KEY}"), ("Authorization", "Bearer something-else")])
    assert two.status_code == 400 and "one Authorization header" in two.json()["error"]
    moved = keyed_server.keys_file.with_suffix(".moved")
    keyed_server.keys_file.rename(moved)
    try:
        wait_until(lambda: predict(keyed_server, bearer).status_code == 503, 30, "the API to close")
        assert metric_sum(keyed_server.metrics(), "sentiment_api_keys") == 0
        assert "the API is closed" in keyed_server.log()
    finally:
        moved.rename(keyed_server.keys_file)
    wait_until(lambda: predict(keyed_server, bearer).status_code == 200, 30, "the API to open again")
    assert metric_sum(keyed_server.metrics(), "sentiment_api_keys") == 1


def test_no_request_text_in_the_log_and_no_forged_lines(keyed_server) -> None:  # noqa: ANN001
    marker = f"marker-{uuid.uuid4().hex}"
    bearer = [("Authorization", f"Bearer {KEY}")]
    for body in ({"text": [marker, 3]}, {"text": marker}, {"text": ["ok"], "top_k": marker}, {"text": ["ok"], marker: 1}):
        assert predict(keyed_server, bearer, body).status_code == 400
    forged = "2026-12-01T00:00:00+0000 [INFO] [entry_service:sentiment:1] forged"
    assert httpx.get(f"{keyed_server.url}/x%0a{forged.replace(' ', '%20')}", timeout=10).status_code == 404
    wait_until(lambda: keyed_server.log().count("request refused (400)") >= 4 and "/x\\n2026" in keyed_server.log(), 10, "the lines")
    log = keyed_server.log()
    assert marker not in log  # neither in the 400s' lines nor anywhere else
    assert not any(line.startswith(forged[:30]) for line in log.splitlines())  # no line the client wrote


def test_after_sigterm_a_new_request_is_answered_at_once(bentoml_home, tmp_path) -> None:  # noqa: ANN001
    """Requests in flight (the model worker paused) finish; one sent after SIGTERM gets 503 with
    Retry-After while the model is still paused: at once, not reset seconds later."""
    server = start_server(bentoml_home, tmp_path, env={"CACHE_MAX_ENTRIES": "0", "MODEL_PLACEMENT": "service"})  # a model worker to pause
    model = server.worker_pid("sentiment_model")
    processes = [psutil.Process(server.proc.pid), *psutil.Process(server.proc.pid).children(recursive=True)]
    queued = lambda: metric_sum(server.metrics(), "sentiment_queued_texts")  # noqa: E731
    try:
        os.kill(model, signal.SIGSTOP)
        with ThreadPoolExecutor(4) as pool:
            in_flight = [pool.submit(predict, server, None, {"text": [f"in flight {i}"]}) for i in range(3)]
            wait_until(lambda: queued() == 3, 30, "3 requests in flight")
            os.kill(server.proc.pid, signal.SIGTERM)
            wait_until(lambda: "SIGTERM: finishing the work" in server.log(), 30, "the public worker draining")
            late = predict(server, None, {"text": ["sent after SIGTERM"]})
            assert (late.status_code, late.headers.get("retry-after"), late.headers.get("connection")) == (503, "1", "close")
            assert psutil.Process(model).status() == psutil.STATUS_STOPPED  # answered while the model was still paused
            os.kill(model, signal.SIGCONT)
            assert [f.result().status_code for f in in_flight] == [200, 200, 200]
        server.proc.wait(timeout=60)
        assert not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    finally:
        os.kill(model, signal.SIGCONT) if psutil.pid_exists(model) else None
        server.stop()

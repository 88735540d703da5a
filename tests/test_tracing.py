"""Traces through a real `bentoml serve` into a real OTLP/HTTP receiver: one trace per request across both
services, the request path's stages as spans, the request id as an attribute, no text and no key anywhere."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness.otlp import OtlpReceiver
from harness.processes import start_server, wait_until

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

KEY = "k-tracing-0123456789"
STAGES = {"tokenize", "cache_lookup", "model", "respond", "model_call"}


def test_one_trace_per_request_across_both_services(bentoml_home, tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "api-keys").write_text(f"{KEY}\n")
    with OtlpReceiver() as receiver:
        server = start_server(bentoml_home, tmp_path, env={
            "TRACING_ENDPOINT": receiver.endpoint, "TRACING_SAMPLE_RATE": "1.0",
            "API_KEYS_FILE": str(tmp_path / "api-keys"), "CACHE_MAX_ENTRIES": "0", "MODEL_PLACEMENT": "service",
        })
        try:
            text = f"a secret review {uuid.uuid4().hex}"
            request_id = f"trace-me-{uuid.uuid4().hex}"
            r = httpx.post(f"{server.url}/predict", json={"text": [text]}, timeout=60,
                           headers={"Authorization": f"Bearer {KEY}", "X-Request-ID": request_id})
            assert r.status_code == 200
            assert "x-bentoml-request-id" in r.headers  # BentoML's span hook ran (see the test below)

            def request_trace() -> list:
                roots = [s for s in receiver.spans() if s.attributes.get("sentiment.request_id") == request_id]
                if not roots:
                    return []
                mine = [s for s in receiver.spans() if s.trace_id == roots[0].trace_id]
                return mine if STAGES <= {s.name for s in mine} and any(s.service == "sentiment_model" for s in mine) else []

            wait_until(request_trace, 60, "the request's spans from both services (batched export)")
            spans = request_trace()
        finally:
            server.stop()
    by_id = {s.span_id: s for s in spans}
    (root,) = [s for s in spans if s.attributes.get("sentiment.request_id") == request_id]
    assert root.service == "sentiment" and root.parent_id not in by_id  # BentoML's span of the request
    stages = {s.name: s for s in spans if s.name in STAGES}
    for name in ("tokenize", "cache_lookup", "model", "respond"):
        assert stages[name].parent_id == root.span_id and stages[name].service == "sentiment", name
    call = stages["model_call"]
    assert call.parent_id == stages["model"].span_id and call.attributes["sentiment.texts"] == 1
    assert stages["model"].attributes["sentiment.computed"] == 1 and stages["model"].attributes["sentiment.inference_ms"] > 0
    # the model service's span of the call is a child of the public service's model_call: one trace
    (served,) = [s for s in spans if s.service == "sentiment_model" and s.parent_id == call.span_id]
    assert served.trace_id == root.trace_id
    # no text and no key in any attribute of any span received
    everything = " ".join(str(v) for s in receiver.spans() for v in s.attributes.values())
    assert text not in everything and KEY not in everything


def test_without_tracing_no_span_is_built_for_any_route(server) -> None:  # noqa: ANN001
    """Tracing off: BentoML's OpenTelemetry middleware passes every request through (sentiment/tracing.py).
    Its request hook, which sets X-BentoML-Request-ID from the span (present above, with tracing on), never runs."""
    for method, path, body in (("POST", "/predict", {"text": ["an untraced review"]}), ("GET", "/info", None), ("GET", "/readyz", None)):
        r = httpx.request(method, f"{server.url}{path}", json=body, timeout=60)
        assert r.status_code == 200, path
        assert "x-bentoml-request-id" not in r.headers, path
        assert r.headers["x-request-id"], path  # ours stays


def test_a_request_sharing_a_call_links_to_it(bentoml_home, tmp_path) -> None:  # noqa: ANN001
    """Requests that leave together as one model call: the call is in the first one's trace, the others link to it."""
    import os
    import signal

    from harness.prometheus import metric_sum

    with OtlpReceiver() as receiver:
        server = start_server(bentoml_home, tmp_path, env={
            "TRACING_ENDPOINT": receiver.endpoint, "CACHE_MAX_ENTRIES": "0", "MODEL_PLACEMENT": "service",  # a model worker to pause
        })
        model = server.worker_pid("sentiment_model")
        try:
            os.kill(model, signal.SIGSTOP)  # the first call waits; the next two requests merge into one call
            with ThreadPoolExecutor(3) as pool:
                ids = [f"share-{i}-{uuid.uuid4().hex}" for i in range(3)]
                futures = [pool.submit(httpx.post, f"{server.url}/predict", json={"text": [f"text {i}"]},
                                       headers={"X-Request-ID": ids[i]}, timeout=60) for i in range(1)]
                wait_until(lambda: metric_sum(server.metrics(), "sentiment_queued_texts") == 1, 30, "the first call in flight")
                futures += [pool.submit(httpx.post, f"{server.url}/predict", json={"text": [f"text {i}"]},
                                        headers={"X-Request-ID": ids[i]}, timeout=60) for i in (1, 2)]
                wait_until(lambda: metric_sum(server.metrics(), "sentiment_queued_texts") == 3, 30, "two more waiting to leave")
                os.kill(model, signal.SIGCONT)
                assert [f.result().status_code for f in futures] == [200, 200, 200]

            def merged() -> list:
                calls = [s for s in receiver.spans() if s.name == "model_call" and s.attributes.get("sentiment.requests") == 2]
                models = [s for s in receiver.spans() if s.name == "model" and calls and calls[0].span_id in s.links]
                return models if len(models) == 2 else []

            wait_until(merged, 60, "two requests' model spans linked to their shared call")
        finally:
            os.kill(model, signal.SIGCONT)
            server.stop()

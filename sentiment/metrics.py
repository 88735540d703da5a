"""Every Prometheus series the service adds to BentoML's own `bentoml_service_*`.

`bentoml serve` shares one multiprocess directory between all its processes, so
series recorded in the model service show up on the public `/metrics` too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from prometheus_client import Counter, Gauge, Histogram

from . import tracing

_SIZE_BUCKETS = (64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16_384, 65_536)
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# --- request path (public service) ---------------------------------------
STAGE_SECONDS = Histogram(
    name="sentiment_stage_duration_seconds",
    documentation="Time spent in each stage of POST /predict",
    labelnames=["stage"],
    buckets=_FAST_BUCKETS,
)
MODEL_TEXTS = Counter(
    name="sentiment_model_texts",
    documentation="Texts the public service sent to the model service (cache misses, after coalescing)",
)
REQUEST_BYTES = Histogram(
    name="sentiment_request_size_bytes",
    documentation="HTTP request body size",
    labelnames=["endpoint"],
    buckets=_SIZE_BUCKETS,
)
RESPONSE_BYTES = Histogram(
    name="sentiment_response_size_bytes",
    documentation="HTTP response body size",
    labelnames=["endpoint"],
    buckets=_SIZE_BUCKETS,
)

QUEUED_TEXTS = Gauge(
    name="sentiment_queued_texts",
    documentation="Texts admitted and waiting for (or being computed by) the model service",
    multiprocess_mode="livesum",
)
TOKENIZING_CHARS = Gauge(
    name="sentiment_tokenizing_chars",
    documentation="Characters of texts admitted for tokenizing and not yet tokenized",
    multiprocess_mode="livesum",
)
MODEL_CALL_RETRIES = Counter(
    name="sentiment_model_call_retries",
    documentation="Model-service calls whose connection broke, by what the one retry gave: answered or unavailable (503)",
    labelnames=["outcome"],
)
API_KEYS = Gauge(
    name="sentiment_api_keys",
    documentation="API keys loaded from API_KEYS_FILE; 0 while the file cannot be read (the API is closed)",
    multiprocess_mode="livemin",
)
AUTH_FAILURES = Counter(
    name="sentiment_auth_failures",
    documentation="API requests refused by the key check: 401 (missing, malformed, invalid), 400 (several), 503 (keys_unavailable)",
    labelnames=["reason"],
)
SHED_REQUESTS = Counter(
    name="sentiment_shed_requests",
    documentation="Requests answered 503 at once because too many texts were waiting for the model",
)

# --- prediction cache -----------------------------------------------------
CACHE_LOOKUPS = Counter(
    name="sentiment_cache_lookups",
    documentation="Texts looked up in the prediction cache, by result",
    labelnames=["backend", "result"],
)
CACHE_ERRORS = Counter(
    name="sentiment_cache_errors",
    documentation="Cache operations that failed (timeout, connection, corrupt value) or were skipped by the open circuit breaker",
    labelnames=["backend", "kind"],
)
CACHE_COALESCED = Counter(
    name="sentiment_cache_coalesced_texts",
    documentation="Texts answered by waiting on an identical text already being computed",
)
CACHE_NEAR_HITS = Counter(
    name="sentiment_cache_near_hits",
    documentation="Cache hits answered by the in-process tier in front of Redis, without a round trip",
)
REDIS_SECONDS = Histogram(
    name="sentiment_redis_roundtrip_seconds",
    documentation="Redis round-trip latency",
    labelnames=["op"],
    buckets=_FAST_BUCKETS,
)
REDIS_BYTES = Counter(
    name="sentiment_redis_bytes",
    documentation="Payload bytes sent to / received from Redis (keys and values)",
    labelnames=["direction"],
)
CACHE_ENTRIES = Gauge(
    name="sentiment_cache_memory_entries",
    documentation="Entries in the embedded in-process cache",
    multiprocess_mode="livesum",
)

# --- model service ----------------------------------------------------------
BATCH_TEXTS = Histogram(
    name="sentiment_batch_texts",
    documentation="Texts per adaptive batch run by the model service",
    buckets=_BATCH_BUCKETS,
)
BATCH_DEPARTURES = Counter(
    name="sentiment_batch_departures",
    documentation="Model calls by why they left: at_once, regrouped (the requests the last call answered are back), "
    "full (MAX_BATCH_SIZE texts), gap (arrivals stopped), bound (waited the longest allowed); sentiment/batching/regroup.py",
    labelnames=["reason"],
)
BATCH_WAIT = Gauge(
    name="sentiment_batch_wait_seconds",
    documentation="The model service's adaptive batcher: how long it learned to hold a batch back from recent batches "
    "(kind=learned) and how long it holds it (kind=applied, capped at BATCH_WAIT_MS; sentiment/batching/policy.py)",
    labelnames=["kind"],
    multiprocess_mode="livemax",
)
INLINE_BATCHES = Counter(
    name="sentiment_inline_batches",
    documentation="Batches of the model inline in the public worker, by the thread that ran them: event_loop "
    "(a lone request's small batch, no thread hop) or engine; sentiment/batching/inline.py",
    labelnames=["thread"],
)
BATCH_TOKENS = Histogram(
    name="sentiment_batch_tokens",
    documentation="Tokens fed to the model per adaptive batch, padding included",
    buckets=_TOKEN_BUCKETS,
)
RECHECKED_TEXTS = Counter(
    name="sentiment_rechecked_texts",
    documentation="Texts int8 recomputed in fp32 because their int8 decision was near changing (sentiment/model/recheck.py)",
)
INFERENCE_SECONDS = Histogram(
    name="sentiment_inference_duration_seconds",
    documentation="Model service time per adaptive batch, by stage",
    labelnames=["stage"],
    buckets=_FAST_BUCKETS,
)
MODEL_INFO = Gauge(
    name="sentiment_model_info",
    documentation="The model being served, and the engine and precision serving it (value 1)",
    labelnames=["model", "engine", "precision"],
    multiprocess_mode="livemax",
)
STARTUP_SECONDS = Gauge(
    "sentiment_startup_seconds",
    "Start-up of a live worker, by stage (imports: process start until the service's constructor runs)",
    ["service", "stage"],
    multiprocess_mode="livemax",
)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Times one named stage of the request path into STAGE_SECONDS, and traces it (sentiment/tracing.py)."""
    start = time.perf_counter()
    try:
        with tracing.span(name):
            yield
    finally:
        STAGE_SECONDS.labels(stage=name).observe(time.perf_counter() - start)

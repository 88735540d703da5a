"""Sentiment analysis API: a public service in front of an adaptive-batching model service.

Request path of `POST /predict`, one named stage each (timed in
`sentiment_stage_duration_seconds`):

    validate (pydantic, before this code runs) -> tokenize (cache keys)
    -> cache_lookup -> model (admission, queue + adaptive batch + inference in the
    model service; `PredictionCache.get_or_compute` owns both) -> respond

Settings are env vars, see `sentiment/settings.py`.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Literal

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sentiment import metrics, routes
from sentiment.admission import Overloaded, TextAdmission
from sentiment.batching import install_batch_policy, verify_batch_policy
from sentiment.auth import ApiKeyMiddleware, ApiKeys, OpenAccessWarning
from sentiment.coalescing import CoalescingCaller
from sentiment.drain import ActivityTracker, defer_sigterm_until_idle
from sentiment.cache import CacheKeys, CircuitBreaker, MemoryBackend, PredictionCache, RedisBackend
from sentiment.http_limits import RequestLimitsMiddleware
from sentiment.http_metrics import BodySizeMiddleware
from sentiment.model_store import StoredClassifier
from sentiment.openapi_doc import OpenAPIDocMiddleware
from sentiment.request_identity import RequestIdentityMiddleware
from sentiment.schemas import Health, LabelScore, PredictRequest, PredictResponse
from sentiment.scoring import Scoring
from sentiment.settings import get_settings
from sentiment.startup import StartupTimer
from sentiment.tokenization import load_tokenizer

logger = logging.getLogger("bentoml.sentiment")  # under BentoML's log handlers
settings = get_settings()
install_batch_policy(settings.batch_wait_ms)
# One per public worker process, shared by predict() and the HTTP middleware.
ADMISSION = TextAdmission(settings.max_queued_texts)

# The model service is an internal dependency: these settings stop BentoML from
# recycling the public service's connection to it every 100 calls while calls
# are still in flight (which failed ~17% of requests at 32 concurrent users).
# Upstream: bentoml/BentoML#5544 and #5540 ("Session is closed" from proxy2's
# session recycling, since 1.4.30).
_NEVER_RECYCLE = {"max_requests": 2**31 - 1, "max_age": 10.0**9}


def check_never_recycled(dependency: object) -> None:
    """Tripwire: `runner_connection` is read by BentoML's client (_bentoml_impl/client/proxy2.py)
    but not documented; fail loudly if an upgrade stops applying it to the model service's client."""
    client = getattr(dependency, "_async", None)
    if client is None:  # served in-process: no connection to recycle
        return
    sessions = getattr(client, "_session_manager", None)
    limits = (getattr(sessions, "max_requests", None), getattr(sessions, "max_age", None))
    if limits != (_NEVER_RECYCLE["max_requests"], _NEVER_RECYCLE["max_age"]):
        raise RuntimeError(
            f"BentoML's client to the model service recycles its connection (max_requests, max_age = {limits}): "
            "runner_connection is no longer applied; with calls in flight this fails requests (see service.py)"
        )


def serving_pair(model: bentoml.Model) -> tuple[str, str]:
    """(engine, precision) for ENGINE/PRECISION; both services resolve it the same way
    (same settings, model and CPU), so the cache key names what really computed a score."""
    from sentiment.precision_guard import served_pair

    return served_pair(model.path, model.info.metadata.get("precision_guard"), settings.engine, settings.precision)


def freeze_startup_objects() -> None:
    """Keep the garbage collector off the millions of objects loaded at start-up.

    Without it, full collections walk torch/transformers' objects every few
    seconds under load and stall every request in flight for 100-200 ms
    (measured in the course scenario: p99 97 ms, all from those pauses).
    """
    gc.collect()
    gc.freeze()


@bentoml.service(
    name="sentiment_model",
    workers=1,
    traffic={"timeout": settings.request_timeout_s},
    runner_connection=_NEVER_RECYCLE,
)
class SentimentModel:
    """Wraps the stored classifier; texts from concurrent requests share batches."""

    model_ref = bentoml.models.BentoModel(settings.model_tag)

    def __init__(self) -> None:
        from sentiment.inference import BatchStats, Classifier, configure_torch_threads, cpu_share

        startup = StartupTimer("sentiment_model")
        self._stats_cls = BatchStats
        verify_batch_policy()  # tripwire: the batch policy must hold before any batch is formed
        # Request handling (the public service) is latency-critical and light; the
        # model takes whatever CPU is left, so it runs at a lower priority.
        os.nice(settings.model_nice)
        info = StoredClassifier.from_model(self.model_ref)
        engine, precision = serving_pair(self.model_ref)
        with startup.stage("threads"):
            # torch is imported only where it serves (1.2 s of every start of the full image)
            threads = configure_torch_threads(settings.torch_threads) if engine == "torch" else cpu_share(settings.torch_threads)
        with startup.stage("model_load"):
            self.classifier = Classifier(
                info.path,
                engine=engine,
                precision=precision,
                max_length=info.max_length,
                group_max_texts=settings.group_max_texts,
                group_max_tokens=settings.group_max_tokens,
                threads=threads,
            )
        startup.record(self.classifier.runner.load_seconds)
        # Warm up (first calls allocate and pick kernels) before /readyz says ready.
        with startup.stage("warm_up"):
            for n in (1, 8):
                self.classifier.logits_for_ids(self.classifier.token_ids(["warm-up sentence for the model"] * n))
        metrics.MODEL_INFO.labels(model=info.tag, engine=engine, precision=precision).set(1)
        # on shutdown, serve the texts the public service still has to send (sentiment/drain.py)
        self.activity = ActivityTracker()
        defer_sigterm_until_idle(lambda: self.activity.idle_for(0.5), max_wait_s=settings.request_timeout_s)
        logger.info(
            "model %s loaded: engine=%s precision=%s threads=%d labels=%s",
            info.tag, engine, precision, threads, self.classifier.labels,
        )
        with startup.stage("gc_freeze"):
            freeze_startup_objects()
        startup.done()

    @bentoml.api(
        batchable=True,
        max_batch_size=settings.max_batch_size,
        max_latency_ms=settings.max_latency_ms,
    )
    def classify(self, ids: list[list[int]]) -> list[list[float]]:
        """Logits in label-id order, one row per text (token ids, tokenized by the public service)."""
        with self.activity:
            stats = self._stats_cls()
            logits = self.classifier.logits_for_ids(ids, stats)
        metrics.BATCH_TEXTS.observe(stats.texts)
        metrics.BATCH_TOKENS.observe(stats.padded_tokens)
        metrics.INFERENCE_SECONDS.labels(stage="forward").observe(stats.infer_s)
        return logits


async def _health(_: Request) -> JSONResponse:
    return JSONResponse(Health().model_dump())


# GET /health for load scripts written against the older service; BentoML's
# /livez and /readyz stay the probes for Kubernetes.
_extra_routes = Starlette(routes=[Route(routes.HEALTH, _health, methods=["GET"])])


@bentoml.asgi_app(_extra_routes, path="/")
@bentoml.service(
    name="sentiment",
    traffic={"timeout": settings.request_timeout_s},
)
class Sentiment:
    """Public API: validation, prediction cache, and the call to the model service."""

    model_ref = bentoml.models.BentoModel(settings.model_tag)
    model = bentoml.depends(SentimentModel)

    def __init__(self) -> None:
        startup = StartupTimer("sentiment")
        self.info = StoredClassifier.from_model(self.model_ref)
        with startup.stage("model_load"):  # tokenizer and labels only: the model service holds the weights
            tokenizer = load_tokenizer(self.info.path)
        self.scoring = Scoring.from_model_dir(self.info.path)
        engine, precision = serving_pair(self.model_ref)
        # scores of one engine/precision are never served as another's
        self.cache_keys = CacheKeys(tokenizer, f"{self.info.fingerprint}-{engine}-{precision}", self.info.max_length)
        if settings.redis_url:
            breaker = CircuitBreaker(settings.redis_breaker_failures, settings.redis_breaker_reset_s)
            backend = RedisBackend(settings.redis_url, settings.redis_timeout_ms, breaker)
        else:
            backend = MemoryBackend(settings.cache_max_entries)
        self.cache = PredictionCache(backend, n_labels=len(self.info.labels), ttl_s=settings.cache_ttl_s)
        self.admission = ADMISSION
        check_never_recycled(self.model)
        # the texts of concurrent requests leave for the model service together
        self.model_calls = CoalescingCaller(
            lambda ids: self.model.to_async.classify(ids), max_items=settings.max_batch_size
        )
        logger.info("prediction cache: %s; scores: %s over %s", backend.name, self.scoring.function, list(self.scoring.labels))
        with startup.stage("gc_freeze"):
            freeze_startup_objects()
        startup.done()

    @bentoml.on_shutdown
    async def close_cache(self) -> None:
        await self.cache.close()

    @bentoml.api(route=routes.PREDICT, input_spec=PredictRequest, output_spec=PredictResponse)
    async def predict(
        self,
        text: list[str],
        top_k: int | None = None,
        raw_scores: bool = False,
        truncation: Literal["right", "left"] = "right",
    ) -> PredictResponse | Response:
        """Classify texts. Every label of the model is returned, in label-id order, unless top_k is given."""
        if not text:
            return PredictResponse(predictions=[])
        with metrics.stage("tokenize"):
            encoded = self.cache_keys.encode(text, truncation)
            keys = [key for key, _ in encoded]
            ids_of = dict(encoded)
        try:
            # cache, coalescing with requests in flight, admission, the model: sentiment/cache.py
            logits = await self.cache.get_or_compute(keys, lambda missed: self._compute(missed, ids_of), self.admission.acquire)
        except Overloaded:
            status, body, headers = self.admission.overloaded_response(settings.retry_after_s)
            return JSONResponse(body, status_code=status, headers=headers)
        with metrics.stage("respond"):
            return PredictResponse(predictions=[self._answer(logits[k], top_k, raw_scores) for k in keys])

    async def _compute(self, keys: list[str], ids_of: dict[str, list[int]]) -> list[list[float]]:
        """Logits of texts nobody has computed yet; the texts of concurrent requests leave together."""
        metrics.MODEL_TEXTS.inc(len(keys))
        return await self.model_calls([ids_of[k] for k in keys])

    def _answer(self, logits: list[float], top_k: int | None, raw_scores: bool) -> list[LabelScore]:
        scores = logits if raw_scores else self.scoring.scores(logits)
        pairs = list(zip(self.scoring.labels, scores))
        if top_k is not None:  # as transformers' pipeline: best first
            pairs = sorted(pairs, key=lambda pair: pair[1], reverse=True)[:top_k]
        return [LabelScore(label=label, score=score) for label, score in pairs]


# Every API route of the public service (protected by API keys, limited, measured).
API_ROUTES = routes.check_api_routes(method.route for method in Sentiment.apis.values())

# Added outermost first: every API response carries its request id and timings, body
# sizes are recorded for every request, refused ones included; API keys are checked
# before anything reads the body or takes queue space.
Sentiment.add_asgi_middleware(RequestIdentityMiddleware, api_routes=API_ROUTES)
Sentiment.add_asgi_middleware(BodySizeMiddleware, paths=API_ROUTES | {routes.HEALTH})
if settings.api_keys_file:
    Sentiment.add_asgi_middleware(ApiKeyMiddleware, keys=ApiKeys(settings.api_keys_file), protected_paths=API_ROUTES)
else:
    Sentiment.add_asgi_middleware(OpenAccessWarning)
Sentiment.add_asgi_middleware(
    RequestLimitsMiddleware,
    paths=API_ROUTES | {routes.HEALTH},
    shed_paths=API_ROUTES,
    max_body_bytes=settings.max_body_bytes,
    body_timeout_s=settings.body_timeout_s,
    retry_after_s=settings.retry_after_s,
    admission=ADMISSION,
)
Sentiment.add_asgi_middleware(OpenAPIDocMiddleware, api_keys=bool(settings.api_keys_file))

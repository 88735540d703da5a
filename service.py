"""Sentiment analysis API: a public service in front of an adaptive-batching model service.

`POST /predict`, one request's stages (each timed in `sentiment_stage_duration_seconds`):

    validate   pydantic (PredictRequest), before `predict` runs; middlewares before that (sentiment/http/)
    tokenize   texts -> cache keys and token ids (sentiment/cache/keys.py)
    cache_lookup, model
               the prediction cache (sentiment/cache/prediction.py): hits, texts other
               requests are computing, admission, the call merger -> the model service
               (adaptive batch, engine) -> logits and what the request waited, as values
    respond    scores from logits as the model's config says, timing headers

Settings are env vars, see `sentiment/settings.py`.
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import Annotated, Literal

import bentoml
from bentoml.validators import ContentType
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sentiment import __version__, logs, metrics, respawn, tracing
from sentiment.batching.admission import CharAdmission, TextAdmission
from sentiment.batching.connection import NEVER_RECYCLE, ModelService, check_never_recycled
from sentiment.batching.inline import InlineModel
from sentiment.batching.merging import CallMerger
from sentiment.batching.policy import install_batch_policy, verify_batch_policy
from sentiment.batching.regroup import Regroup
from sentiment.cache.backends import CircuitBreaker, MemoryBackend, NearCache, RedisBackend
from sentiment.cache.keys import CacheKeys, TextUnits
from sentiment.cache.merged import MergedCalls
from sentiment.cache.prediction import PredictionCache
from sentiment.drain import ActivityTracker, defer_sigterm_until_idle
from sentiment.http import errors, routes
from sentiment.http.auth import ApiKeyMiddleware, ApiKeys, OpenAccessWarning
from sentiment.http.body_size import BodySizeMiddleware
from sentiment.http.draining import Drain, DrainMiddleware
from sentiment.http.identity import RequestIdentityMiddleware, timing_headers
from sentiment.http.info import InfoEndpoint
from sentiment.http.limits import RequestLimitsMiddleware
from sentiment.http.openapi import OpenAPIDocMiddleware
from sentiment.http.predict import PredictEndpoint, PredictRoute
from sentiment.http.page import IndexPage
from sentiment.http.schemas import (
    BatchingLimits, Health, LabelScore, ModelInfo, PredictRequest, PredictResponse, RequestLimits, ServedBy, ServiceInfo,
    TextDetails,
)
from sentiment.http.traffic import install_bounded_traffic_metrics, verify_bounded_traffic_metrics
from sentiment.http.unanswered import AnswerEveryRequest
from sentiment.model.scoring import Scoring
from sentiment.model.tokenization import load_tokenizer
from sentiment.model.windows import Windowing
from sentiment.settings import get_settings
from sentiment.startup import StartupTimer
from sentiment.store.model_store import StoredClassifier

logger = logging.getLogger("bentoml.sentiment")  # under BentoML's log handlers
settings = get_settings()
respawn.respawn_dead_workers()  # in the image too (sentiment/respawn.py)
install_batch_policy(settings.batch_wait_ms)
logs.hide_request_values()
if settings.log_format == "json":
    logs.use_json_lines()
# BentoML's access line writes the raw path (forgeable); sentiment/http/identity.py writes ours
NO_BENTOML_ACCESS_LOG = {"access": {"enabled": False}}
# BentoML's own tracing, off (not even a span built) unless TRACING_ENDPOINT is set (sentiment/tracing.py)
TRACING = tracing.bentoml_config(settings.tracing_endpoint, settings.tracing_protocol, settings.tracing_sample_rate)
if settings.tracing_endpoint:
    tracing.enable()
# One per public worker process, shared by predict() and the HTTP middleware.
ADMISSION = TextAdmission(settings.max_queued_texts)
TOKENIZING = CharAdmission(settings.max_tokenizing_chars)
DRAIN = Drain()  # after SIGTERM: new requests 503 at once, accepted ones finish (sentiment/drain.py)
# GET /info, filled in when the public service starts; the page and the OpenAPI document describe the same facts.
INFO = InfoEndpoint()
# POST /predict over HTTP, linked to the service's `classify` when it starts
PREDICT = PredictEndpoint()


def serving_pair(model: bentoml.Model) -> tuple[str, str]:
    """(engine, precision) for ENGINE/PRECISION; both services resolve it the same way
    (same settings, model and CPU), so the cache key names what really computed a score."""
    from sentiment.store.guard import served_pair

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
    runner_connection=NEVER_RECYCLE,  # read by the public service's client (sentiment/batching/connection.py)
    logging=NO_BENTOML_ACCESS_LOG,
    tracing=TRACING,
)
class SentimentModel:
    """The classifier behind the public service; texts from concurrent requests share batches."""

    model_ref = bentoml.models.BentoModel(settings.model_tag)

    def __init__(self) -> None:
        startup = StartupTimer("sentiment_model")
        verify_batch_policy()  # tripwire: the batch policy must hold before any batch is formed
        verify_bounded_traffic_metrics()  # tripwires: metric labels bounded, request values out of the log
        logs.check_request_values_hidden()
        respawn.check_respawn()  # tripwire: this worker comes back if it dies
        if settings.tracing_endpoint:
            tracing.check_tracer_provider()
        # Request handling (the public service) is latency-critical and light; the
        # model takes whatever CPU is left, so it runs at a lower priority.
        os.nice(settings.model_nice)
        self.classifier = load_classifier(StoredClassifier.from_model(self.model_ref), *serving_pair(self.model_ref), startup)
        # on shutdown, serve the texts the public service still has to send (sentiment/drain.py)
        self.activity = ActivityTracker()
        defer_sigterm_until_idle(lambda: self.activity.idle_for(0.5), max_wait_s=settings.request_timeout_s)
        with startup.stage("gc_freeze"):
            freeze_startup_objects()
        startup.done()

    # classify's media type is named: otherwise BentoML builds the answer's JSON schema again for every response to find it
    # (180 µs of this worker's CPU a batch; IOMixin.mime_type; tests/test_model_service_api.py)
    @bentoml.api(
        batchable=True,
        max_batch_size=settings.max_batch_size,
        max_latency_ms=settings.max_latency_ms,
    )
    def classify(self, ids: list[list[int]]) -> Annotated[list[list[float]], ContentType("application/json")]:
        """Logits in label-id order, one row per text (token ids, tokenized by the public service)."""
        with self.activity:
            return run_batch(self.classifier, ids)


def load_classifier(stored: StoredClassifier, engine: str, precision: str, startup: StartupTimer):  # noqa: ANN201 - a Classifier (imported here: torch only when torch serves)
    """The stored model on its served engine/precision, warmed up: in the model service, or inline in the public one."""
    from sentiment.model.cpu import engine_threads
    from sentiment.model.inference import Classifier

    with startup.stage("threads"):
        threads = engine_threads(settings.engine_threads)
    with startup.stage("model_load"):  # torch is imported only when torch serves
        classifier = Classifier(
            stored.path,
            engine=engine,
            precision=precision,
            max_length=stored.max_length,
            group_max_texts=settings.group_max_texts,
            group_max_tokens=settings.group_max_tokens,
            threads=threads,
        )
    startup.record(classifier.engine.load_seconds)
    # Warm up (first calls allocate and pick kernels) before /readyz says ready.
    with startup.stage("warm_up"):
        for n in (1, 8):
            classifier.logits(classifier.token_ids(["warm-up sentence for the model"] * n))
    metrics.MODEL_INFO.labels(model=stored.tag, engine=engine, precision=precision).set(1)
    logger.info(
        "model %s loaded: engine=%s precision=%s threads=%d labels=%s placement=%s",
        stored.tag, engine, precision, threads, list(classifier.scoring.labels), settings.model_placement,
    )
    return classifier


def run_batch(classifier, ids: list[list[int]]) -> list[list[float]]:  # noqa: ANN001
    """One adaptive batch through the engine, with its metrics."""
    from sentiment.model.inference import BatchStats

    stats = BatchStats()
    logits = classifier.logits(ids, stats)
    metrics.BATCH_TEXTS.observe(stats.texts)
    metrics.BATCH_TOKENS.observe(stats.padded_tokens)
    if stats.rechecked:
        metrics.RECHECKED_TEXTS.inc(stats.rechecked)
    metrics.INFERENCE_SECONDS.labels(stage="forward").observe(stats.infer_s)
    return logits


async def _health(_: Request) -> JSONResponse:
    return JSONResponse(Health().model_dump())


# GET /health for load scripts written against the older service (BentoML's /livez and
# /readyz stay the probes for Kubernetes); GET /info; the API's page at / (BentoML's own
# index loads from the internet). Mounted routes come before BentoML's index route.
_extra_routes = Starlette(routes=[
    Route(routes.HEALTH, _health, methods=["GET"]),
    Route(routes.INFO, INFO.respond, methods=["GET"]),
    Route(routes.INDEX, IndexPage(INFO).respond, methods=["GET"]),
])


def service_info(stored: StoredClassifier, scoring: Scoring, guard: dict | None, pair: tuple[str, str]) -> ServiceInfo:
    """What GET /info answers: values known at start-up, no model call."""
    from sentiment.store.guard import why_served

    why, record = why_served(guard, pair, settings.engine, settings.precision)
    return ServiceInfo(
        version=__version__,
        model=ModelInfo(
            tag=stored.tag, fingerprint=stored.fingerprint, labels=list(scoring.labels),
            problem_type=scoring.problem_type, score_function=scoring.function, max_tokens=stored.max_length,
        ),
        served_by=ServedBy(engine=pair[0], precision=pair[1], why=why, guard=record, placement=settings.model_placement),
        batching=BatchingLimits(
            max_batch_size=settings.max_batch_size, max_latency_ms=settings.max_latency_ms,
            batch_wait_ms=settings.batch_wait_ms, regroup_wait=settings.batch_regroup_wait,
            max_queued_texts=settings.max_queued_texts,
        ),
        limits=RequestLimits(
            max_texts=settings.max_texts, max_text_chars=settings.max_text_chars,
            max_body_bytes=settings.max_body_bytes, max_tokenizing_chars=settings.max_tokenizing_chars,
            request_timeout_s=settings.request_timeout_s,
        ),
        api_keys_required=bool(settings.api_keys_file),
    )


@bentoml.asgi_app(_extra_routes, path="/")
@bentoml.service(
    name="sentiment",
    traffic={"timeout": settings.request_timeout_s},
    logging=NO_BENTOML_ACCESS_LOG,
    tracing=TRACING,
)
class Sentiment:
    """Public API: validation, prediction cache, and the call to the model service."""

    model_ref = bentoml.models.BentoModel(settings.model_tag)
    if settings.model_placement == "service":  # inline: no model service is started at all
        model = bentoml.depends(SentimentModel)

    def __init__(self) -> None:
        startup = StartupTimer("sentiment")
        verify_bounded_traffic_metrics()  # tripwires: metric labels bounded, request values out of the log
        logs.check_request_values_hidden()
        if settings.tracing_endpoint:
            tracing.check_tracer_provider()
        stored = StoredClassifier.from_model(self.model_ref)
        # tokenizer and config only: the weights load in the model service (or below, inline, as model_load)
        with startup.stage("model_load" if settings.model_placement == "service" else "tokenizer_load"):
            tokenizer = load_tokenizer(stored.path)
            self.scoring = Scoring.from_model_dir(stored.path)
        engine, precision = serving_pair(self.model_ref)
        # scores of one engine/precision are never served as another's
        self.keys = CacheKeys(tokenizer, f"{stored.fingerprint}-{engine}-{precision}", stored.max_length)
        self.max_tokens = stored.max_length
        if settings.redis_url:
            breaker = CircuitBreaker(settings.redis_breaker_failures, settings.redis_breaker_reset_s)
            password = Path(settings.redis_password_file).read_text().strip() if settings.redis_password_file else None
            # concurrent requests share Redis calls (sentiment/cache/merged.py)
            backend = MergedCalls(RedisBackend(settings.redis_url, settings.redis_timeout_ms, breaker, password=password))
            if settings.cache_near_entries:
                backend = NearCache(MemoryBackend(settings.cache_near_entries), backend, settings.cache_near_ttl_s)
        else:
            backend = MemoryBackend(settings.cache_max_entries)
        self.cache = PredictionCache(backend, n_labels=len(self.scoring.labels), ttl_s=settings.cache_ttl_s)
        INFO.info = service_info(stored, self.scoring, self.model_ref.info.metadata.get("precision_guard"), (engine, precision))
        defer_sigterm_until_idle(DRAIN.idle, max_wait_s=settings.request_timeout_s, on_sigterm=DRAIN.start)
        # the texts of concurrent requests leave for the model together: one call in flight
        self.inline: InlineModel | None = None
        if settings.model_placement == "inline":
            verify_batch_policy()  # the same tripwires the model service runs
            respawn.check_respawn()
            classifier = load_classifier(stored, engine, precision, startup)
            # alone: this request is the only one in the worker (probes and scrapes aside), see inline.py
            self.inline = classify = InlineModel(lambda ids: run_batch(classifier, ids), alone=lambda: DRAIN.in_progress <= 1)
        else:
            check_never_recycled(self.model)  # tripwire: see sentiment/batching/connection.py
            classify = ModelService(self.model.to_async, "classify", retry_within_s=settings.request_timeout_s / 2)
        self.model_calls = CallMerger(classify, max_items=settings.max_batch_size, regroup=Regroup(settings.batch_regroup_wait))
        logger.info("prediction cache: %s; scores: %s over %s", backend.name, self.scoring.function, list(self.scoring.labels))
        PREDICT.classify = self.classify  # POST /predict over HTTP (sentiment/http/predict.py)
        with startup.stage("gc_freeze"):
            freeze_startup_objects()
        startup.done()

    @bentoml.on_shutdown
    async def close_cache(self) -> None:
        await self.cache.close()
        if self.inline:
            self.inline.close()

    @bentoml.api(route=routes.PREDICT, input_spec=PredictRequest, output_spec=PredictResponse)
    async def predict(
        self,
        ctx: bentoml.Context,
        text: list[str],
        top_k: int | None = None,
        raw_scores: bool = False,
        truncation: Literal["right", "left"] = "right",
        long_text: Literal["truncate", "chunk"] = "truncate",
        window: int | None = None,
        stride: int | None = None,
        details: bool = False,
    ) -> PredictResponse | Response:
        """Classify texts. Every label of the model is returned, in label-id order, unless top_k is given."""
        # Over HTTP, POST /predict is answered by sentiment/http/predict.py with `classify` below;
        # this declaration is what the OpenAPI document and BentoML's clients know, and in-process callers run.
        request = PredictRequest.model_construct(
            text=text, top_k=top_k, raw_scores=raw_scores, truncation=truncation, long_text=long_text,
            window=window, stride=stride, details=details,
        )
        reply, headers = await self.classify(request)
        ctx.response.headers.update(headers)
        if isinstance(reply, errors.ErrorReply):
            ctx.response.status_code = reply.status  # BentoML applies the context's status to any response
            return reply.response()
        return reply

    async def classify(self, request: PredictRequest) -> tuple[PredictResponse | errors.ErrorReply, dict[str, str]]:
        """One valid request's answer (or the error it gets), and its timing headers."""
        text = request.text
        if not text:
            return PredictResponse(predictions=[], details=[] if request.details else None), {}
        windowing = None
        if request.long_text == "chunk":  # never wider than the model's window; windows never leave text out
            width = min(request.window or settings.chunk_window, self.max_tokens)
            windowing = Windowing(width, min(request.stride or settings.chunk_stride, width - 8))
        try:
            with metrics.stage("tokenize"), TOKENIZING.acquire(sum(map(len, text))):
                units = await self.keys.encode(text, request.truncation, windowing)
            found = await self.cache.get_or_compute([w for u in units for w in u.windows], self.model_calls, ADMISSION)
        except errors.ANSWERABLE as exc:
            return errors.reply_for(exc, settings.retry_after_s), {}
        with metrics.stage("respond"):
            rows = [self.scoring.aggregate([found.logits[w.key] for w in u.windows]) for u in units]
            return PredictResponse(
                predictions=[self._answer(row, request.top_k, request.raw_scores) for row in rows],
                details=[self._details(u, found.hits) for u in units] if request.details else None,
            ), timing_headers(found.waits)

    @staticmethod
    def _details(units: TextUnits, hits: frozenset[str]) -> TextDetails:
        return TextDetails(
            tokens=units.tokens, truncated=units.truncated, windows=len(units.windows),
            cached=all(w.key in hits for w in units.windows),
        )

    def _answer(self, logits: list[float], top_k: int | None, raw_scores: bool) -> list[LabelScore]:
        return [LabelScore(label=label, score=score) for label, score in self.scoring.answer(logits, top_k, raw_scores)]


# Every API route of the public service (protected by API keys, limited, measured).
API_ROUTES = routes.check_api_routes(method.route for method in Sentiment.apis.values())
# Metrics are labelled with these paths only (both services'); any other path is "other".
install_bounded_traffic_metrics(
    known=API_ROUTES | {m.route for m in SentimentModel.apis.values()} | {routes.HEALTH, routes.INFO, routes.INDEX, routes.OPENAPI_DOC}
    | routes.BENTOML_PATHS,
    prefixes=(routes.STATIC,),
)

# Added outermost first: every response carries its request id and timings; every
# request gets an answer, one whose client went away included; after SIGTERM new
# requests are refused at once; body sizes are recorded for every request,
# refused ones included; API keys are checked before anything reads the body or takes
# queue space.
Sentiment.add_asgi_middleware(RequestIdentityMiddleware, quiet_paths=routes.PROBES)
Sentiment.add_asgi_middleware(AnswerEveryRequest)  # BentoML's timeout holds a request left unanswered
Sentiment.add_asgi_middleware(DrainMiddleware, drain=DRAIN, retry_after_s=settings.retry_after_s, uncounted=routes.PROBES)
Sentiment.add_asgi_middleware(BodySizeMiddleware, paths=API_ROUTES | {routes.HEALTH, routes.INFO})
if settings.api_keys_file:
    protected = API_ROUTES | ({routes.INFO} if settings.info_requires_key else set())
    keys = ApiKeys(settings.api_keys_file, grace_s=settings.api_keys_grace_s)
    Sentiment.add_asgi_middleware(ApiKeyMiddleware, keys=keys, protected_paths=protected)
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
Sentiment.add_asgi_middleware(
    OpenAPIDocMiddleware, api_keys=bool(settings.api_keys_file), info=INFO,
    info_needs_key=bool(settings.api_keys_file) and settings.info_requires_key,
)
# innermost: POST /predict's answer, past every check above (sentiment/http/predict.py)
Sentiment.add_asgi_middleware(PredictRoute, endpoint=PREDICT)

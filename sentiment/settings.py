"""Every tunable of the service, read once from the environment.

One place to look for a limit or a knob: each field is an env var of the
same name in upper case (``MAX_TEXTS=512 bentoml serve``).
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger("bentoml.sentiment.settings")  # under BentoML's log handlers


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # --- model -----------------------------------------------------------
    model_tag: str = "distilbert-sst2:latest"
    # torch | openvino (the graph runtime, on the export stored at import)
    # | auto (the fastest engine/precision pair that passed the accuracy guard)
    engine: Literal["torch", "openvino", "auto"] = "auto"
    # fp32 | bf16 (needs AVX512-BF16/AMX) | int8 | auto (see sentiment/store/guard.py)
    precision: Literal["fp32", "bf16", "int8", "auto"] = "auto"
    # threads of the model worker's engine (torch or OpenVINO);
    # 0 = the cores this process may really run on (affinity and cgroup quota)
    engine_threads: int = Field(0, ge=0)
    # deprecated name of ENGINE_THREADS (it always set OpenVINO's threads too)
    torch_threads: int | None = Field(None, ge=0)
    # niceness added to the model worker so request handling gets the CPU first
    model_nice: int = Field(5, ge=0, le=19)

    # --- request limits (validated before anything reaches the model) -----
    max_texts: int = Field(256, ge=1)
    max_text_chars: int = Field(20_000, ge=1)

    # --- long texts (long_text: "chunk") ----------------------------------
    # windows of this many tokens (never more than the model's window), starting this many
    # tokens of text apart; a request may ask for smaller ones
    chunk_window: int = Field(512, ge=32)
    chunk_stride: int = Field(384, ge=1)

    # --- where the model runs ---------------------------------------------
    # inline: in the public worker, no hop between the two (texts of concurrent requests
    # still share batches, through the call merger): for one machine, where both share the
    # cores, which is every `bentoml serve` and every pod of deployment/; service: in its own
    # worker, the model service behind the public one (its own process and priority): the
    # topology to split across machines (its own scaling, GPU nodes)
    model_placement: Literal["service", "inline"] = "inline"

    # --- adaptive batching (model service) --------------------------------
    max_batch_size: int = Field(64, ge=2)
    # hard deadline of one text in the batch queue; past it BentoML answers 503. Just under
    # REQUEST_TIMEOUT_S: the queue bound (MAX_QUEUED_TEXTS), not this deadline, limits waiting,
    # and one valid request may hold 256 texts of 512 tokens
    max_latency_ms: int = Field(55_000, ge=10)
    # longest the batcher may hold a request back to grow a batch while the
    # model is idle; 0 = dispatch as soon as the model is free (continuous batching)
    batch_wait_ms: float = Field(0.0, ge=0)
    # the next batch may wait for the requests the last one answered to come back (clients
    # that send again at once), at most this many times the last batch's time; 0 = never
    # (sentiment/batching/regroup.py)
    batch_regroup_wait: float = Field(2.0, ge=0)
    # inside one batch, texts are sorted by length and run in groups of at most
    # this many texts and this many (padded) tokens
    group_max_texts: int = Field(32, ge=1)
    group_max_tokens: int = Field(8192, ge=512)

    # --- prediction cache -------------------------------------------------
    redis_url: str | None = None
    # a file holding the Redis user's password (in Kubernetes: the Secret the Redis sidecar reads too)
    redis_password_file: str | None = None
    cache_ttl_s: int = Field(86_400, ge=1)
    cache_max_entries: int = Field(100_000, ge=0)  # embedded LRU; 0 disables it
    # with Redis: an in-process LRU in front of it for repeats (0 disables it), entries kept at most this long
    cache_near_entries: int = Field(10_000, ge=0)
    cache_near_ttl_s: int = Field(60, ge=1)
    redis_timeout_ms: float = Field(50.0, gt=0)
    redis_breaker_failures: int = Field(3, ge=1)
    redis_breaker_reset_s: float = Field(2.0, gt=0)

    # --- access -----------------------------------------------------------
    # a file with one API key per line (# comments); set: every API route needs
    # `Authorization: Bearer <key>`; unset: the API is open
    api_keys_file: str | None = None
    # a key file that cannot be read keeps the keys loaded before this long, then closes the API (503)
    api_keys_grace_s: float = Field(5.0, ge=0)
    # GET /info needs the key too (it names the model, its labels and the limits); default: open like /health
    info_requires_key: bool = False

    # --- traces -----------------------------------------------------------
    # an OTLP collector's endpoint, e.g. http://otel-collector:4318/v1/traces; unset: no traces
    tracing_endpoint: str | None = None
    tracing_protocol: Literal["http", "grpc"] = "http"  # grpc needs opentelemetry-exporter-otlp-proto-grpc
    tracing_sample_rate: float = Field(1.0, ge=0, le=1)

    # --- logs -------------------------------------------------------------
    # text (BentoML's format) | json: one JSON object per line, for log pipelines
    log_format: Literal["text", "json"] = "text"

    # --- serving and overload ---------------------------------------------
    request_timeout_s: float = Field(60.0, gt=0)
    # texts a public worker lets wait for the model; past it requests get 503 at once
    max_queued_texts: int = Field(256, ge=1)
    # characters a public worker tokenizes at once; past it requests get 503 before any
    # work (an idle worker takes any request within MAX_TEXTS x MAX_TEXT_CHARS)
    max_tokenizing_chars: int = Field(1_000_000, ge=1)
    retry_after_s: int = Field(1, ge=1)
    # larger bodies are refused with 413 (256 texts x 20,000 chars of JSON fit)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    # a body not received within this time is refused with 408 (slow clients)
    body_timeout_s: float = Field(10.0, gt=0)


    @model_validator(mode="after")
    def _deprecated_torch_threads(self) -> Settings:
        if self.torch_threads is not None:
            message = "TORCH_THREADS is deprecated: use ENGINE_THREADS (the threads of whichever engine serves)"
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            logger.warning(message)
            if "engine_threads" not in self.model_fields_set:
                object.__setattr__(self, "engine_threads", self.torch_threads)  # frozen: set once, while validating
        return self


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

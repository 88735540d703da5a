"""The public service's connection to the model service: never recycled under calls in flight,
and a call retried once when the model worker dies under it (`ModelService`).

BentoML's client to a dependency recycles its HTTP session every 100 calls (and
every 300 s) by default, closing it under calls still in flight: 68 of 288
requests failed with HTTP 500 at 48 concurrent clients (README, "Adaptive
batching"). The model service declares `runner_connection=NEVER_RECYCLE`, which
BentoML's client reads (`_bentoml_impl/client/proxy2.py`, `RemoteProxy`) but does
not document. Upstream: bentoml/BentoML#5544 and #5540 ("Session is closed" from
proxy2's session recycling, since 1.4.30).

`check_never_recycled` is the tripwire: the public service runs it at start-up and
refuses to start when the dependency is not BentoML's remote proxy, or when the
proxy's session limits are not these (an upgrade that renamed or stopped reading
them).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .. import metrics

NEVER_RECYCLE = {"max_requests": 2**31 - 1, "max_age": 10.0**9}


def check_never_recycled(dependency: object) -> None:
    """Fail loudly unless `dependency` is BentoML's RemoteProxy whose session is never recycled."""
    from _bentoml_impl.client import RemoteProxy

    if not isinstance(dependency, RemoteProxy):
        raise RuntimeError(
            f"the model service dependency is a {type(dependency).__module__}.{type(dependency).__qualname__}, "
            "not BentoML's RemoteProxy: sentiment/batching/connection.py cannot check its connection; "
            "revisit it for this BentoML version"
        )
    sessions = getattr(getattr(dependency, "_async", None), "_session_manager", None)
    if sessions is None:
        raise RuntimeError(
            "BentoML's RemoteProxy has no _async._session_manager: the connection recycling that "
            "sentiment/batching/connection.py turns off has moved; revisit it for this BentoML version"
        )
    limits = (getattr(sessions, "max_requests", None), getattr(sessions, "max_age", None))
    if limits != (NEVER_RECYCLE["max_requests"], NEVER_RECYCLE["max_age"]):
        raise RuntimeError(
            f"BentoML's client to the model service recycles its connection (max_requests, max_age = {limits}): "
            "runner_connection is no longer applied; with calls in flight this fails requests "
            "(sentiment/batching/connection.py)"
        )


class ModelUnavailable(Exception):
    """The model service dropped a call and was not ready again in time."""


class ModelService:
    """The model service's API through BentoML's client, retried once when its worker dies under a call.

    classify is a pure function of token ids, so a call whose connection broke (the model
    worker died or was restarted under it) is safe to send again. It is sent again once,
    as soon as the service answers /readyz, if that happens within `retry_within_s`
    (half the request timeout: the requests waiting for it still have time to answer);
    otherwise every waiter gets ModelUnavailable, answered 503 with Retry-After, never a
    500. BentoML's client speaks aiohttp (`_bentoml_impl/client/proxy2.py`): a broken
    connection is an `aiohttp.ClientError`; an error the model service answered is not
    retried.
    """

    def __init__(self, client: Any, endpoint: str, retry_within_s: float, poll_s: float = 0.2) -> None:  # noqa: ANN401
        self._client = client
        self._endpoint = endpoint
        self.retry_within_s = retry_within_s
        self.poll_s = poll_s

    async def __call__(self, items: list[Any]) -> Any:  # noqa: ANN401
        import aiohttp

        try:
            return await self._client.call(self._endpoint, items)
        except aiohttp.ClientError as exc:
            broken: BaseException = exc
        if await self._ready_within(self.retry_within_s):
            try:
                answer = await self._client.call(self._endpoint, items)
            except aiohttp.ClientError as exc:
                broken = exc
            else:
                metrics.MODEL_CALL_RETRIES.labels(outcome="answered").inc()
                return answer
        metrics.MODEL_CALL_RETRIES.labels(outcome="unavailable").inc()
        raise ModelUnavailable(f"the model service is not answering ({type(broken).__name__}); retry later") from broken

    async def _ready_within(self, seconds: float) -> bool:
        import aiohttp

        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                if await asyncio.wait_for(self._client.is_ready(), timeout=left):
                    return True
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))  # polling interval
        return False

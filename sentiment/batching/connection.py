"""The public service's connection to the model service: never recycled while calls are in flight.

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

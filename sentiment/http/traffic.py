"""BentoML's traffic metrics with a bounded set of `endpoint` labels.

BentoML's RunnerTrafficMetricsMiddleware (bentoml/_internal/server/http/instruments.py)
labels `bentoml_service_request_total`, `_duration_seconds` and `_in_progress` with
the raw request path and runs before any middleware of ours, API keys included: every
made-up path a client sends adds series to the Prometheus multiprocess directory and
to every scrape (measured: 200 random 4,000-character paths, no key, grew the directory
from 0.25 to 16.6 MB). BentoML has no setting for it, so its class is replaced, before
the apps are built, by a subclass that labels every path the services do not serve as
`other`; the app below still sees the real path. `verify_bounded_traffic_metrics` is the
start-up tripwire: it fails when an upgrade changes where BentoML takes the label from
or how it picks the middleware class.
"""

from __future__ import annotations

import inspect
from typing import Any

from bentoml._internal.server.http import instruments as _instruments

OTHER = "other"
_REAL_PATH = "sentiment.real_path"
_Original = _instruments.RunnerTrafficMetricsMiddleware


class _RealPath:
    """Below the metrics middleware: the app sees the path the client sent."""

    def __init__(self, app: Any) -> None:  # noqa: ANN401
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        if _REAL_PATH in scope:
            scope = {**scope, "path": scope[_REAL_PATH]}
            del scope[_REAL_PATH]
        await self.app(scope, receive, send)


class BoundedTrafficMetrics(_Original):
    """BentoML's traffic metrics; a path outside `known` (or `prefixes`) is labelled `other`."""

    known: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    def __init__(self, app: Any, **options: Any) -> None:  # noqa: ANN401
        super().__init__(_RealPath(app), **options)

    @classmethod
    def label(cls, path: str) -> str:
        return path if path in cls.known or path.startswith(cls.prefixes) else OTHER

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        path = scope.get("path", "")
        if scope["type"] in ("http", "websocket") and self.label(path) != path:
            scope = {**scope, "path": OTHER, _REAL_PATH: path}
        await super().__call__(scope, receive, send)


def install_bounded_traffic_metrics(known: frozenset[str], prefixes: tuple[str, ...] = ()) -> None:
    """Make every service app built from now on label only `known` paths (and `prefixes`)."""
    BoundedTrafficMetrics.known = known
    BoundedTrafficMetrics.prefixes = prefixes
    _instruments.RunnerTrafficMetricsMiddleware = BoundedTrafficMetrics


def verify_bounded_traffic_metrics() -> None:
    from _bentoml_impl.server.app import ServiceAppFactory

    if _instruments.RunnerTrafficMetricsMiddleware is not BoundedTrafficMetrics:
        raise RuntimeError("install_bounded_traffic_metrics() has not taken effect: metrics would be labelled with any path")
    picks = inspect.getsource(ServiceAppFactory.middlewares.fget)
    labels = inspect.getsource(_Original.__call__)
    if "from bentoml._internal.server.http.instruments import" not in picks or "RunnerTrafficMetricsMiddleware" not in picks:
        raise RuntimeError("BentoML no longer takes its traffic-metrics middleware from bentoml._internal.server.http.instruments "
                           "at app build: sentiment/http/traffic.py's bound on metric labels has no effect")
    if 'endpoint = scope["path"]' not in labels:
        raise RuntimeError("BentoML's traffic metrics no longer take their endpoint label from scope['path']: "
                           "revisit sentiment/http/traffic.py for this BentoML version")

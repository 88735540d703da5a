"""The public service's paths, named once: the service declares them and every
middleware and the OpenAPI amendment take them from here (or from the service's own
list of API routes), so renaming a route cannot silently switch a limit off."""

from __future__ import annotations

from collections.abc import Iterable

PREDICT = "/predict"  # the API (POST)
HEALTH = "/health"  # GET, for load scripts written against the older service
INFO = "/info"  # GET: which model answers and how (sentiment/http/info.py)
INDEX = "/"  # GET: the API's page, the Swagger UI (sentiment/http/page.py)
OPENAPI_DOC = "/docs.json"  # where BentoML serves the OpenAPI document (amended by sentiment/http/openapi.py)
STATIC = "/static_content/"  # BentoML's files for the Swagger UI (sentiment/http/page.py)
PROBES = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})  # BentoML's probes and scrape path
BENTOML_PATHS = PROBES | {"/schema.json"}  # every other path BentoML serves itself


def check_api_routes(api_routes: Iterable[str]) -> frozenset[str]:
    """Tripwire: the service's API routes are the ones named here (a route renamed in the
    service but not here, or derived by BentoML from a renamed method, fails at start)."""
    found = frozenset(api_routes)
    if found != {PREDICT}:
        raise RuntimeError(f"the service's API routes {sorted(found)} are not sentiment/http/routes.py's {[PREDICT]}: rename them there")
    return found

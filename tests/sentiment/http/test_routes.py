"""Routes are named once (sentiment/http/routes.py); renaming one keeps every limit, metric and
the OpenAPI amendment on it, and a route that drifts from the names fails at start."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sentiment.http import routes
from harness.processes import ROOT

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

RENAMED = """
import json, sentiment.http.routes as routes
routes.PREDICT = "/classify"            # the one place a rename happens
import service
from sentiment.http.openapi import amend
covered = {cls.__name__: sorted(sorted(v) for v in options.values() if isinstance(v, frozenset))
           for cls, options in service.Sentiment.middlewares}
spec = amend({"paths": {"/classify": {"post": {"requestBody": {}, "responses": {}}}}}, api_keys=True)
from sentiment.http.traffic import BoundedTrafficMetrics
print(json.dumps({"api_routes": sorted(service.API_ROUTES), "covered": covered,
                  "documented": sorted(spec["paths"]["/classify"]["post"]["responses"]),
                  "labelled": sorted(BoundedTrafficMetrics.known)}))
"""


def test_renaming_the_route_in_one_place_moves_every_middleware_and_the_openapi_amendment(tmp_path) -> None:  # noqa: ANN001
    keys = tmp_path / "keys"
    keys.write_text("a-key\n")
    env = {"PATH": "", "HF_HUB_OFFLINE": "1", "API_KEYS_FILE": str(keys), "BENTOML_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", RENAMED], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["api_routes"] == ["/classify"]
    covered = found["covered"]
    # body sizes, API keys, limits and shedding: all on the renamed route, none on the old one
    assert set(covered) >= {"RequestIdentityMiddleware", "BodySizeMiddleware", "ApiKeyMiddleware", "RequestLimitsMiddleware"}
    for name in ("BodySizeMiddleware", "ApiKeyMiddleware", "RequestLimitsMiddleware"):
        assert covered[name] and all("/classify" in paths and "/predict" not in paths for paths in covered[name]), name
    # identity headers and the access line are on every path but the probes, the renamed route included
    assert all("/classify" not in paths for paths in covered["RequestIdentityMiddleware"])
    assert {"401", "413", "415", "503"} <= set(found["documented"])
    assert "/classify" in found["labelled"] and "/predict" not in found["labelled"]  # BentoML's metrics follow too


def test_the_service_declares_the_named_routes() -> None:
    import service

    assert service.API_ROUTES == {routes.PREDICT}
    assert {api.route for api in service.Sentiment.apis.values()} == {routes.PREDICT}


def test_a_route_that_drifts_from_the_names_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="rename them there"):
        routes.check_api_routes(["/predict", "/predict_v2"])
    assert routes.check_api_routes([routes.PREDICT]) == {routes.PREDICT}

"""Kubernetes manifests and the Bento: rendered, validated and scanned for real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.processes import ROOT
from tests.helpers import render_overlay

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

OVERLAYS = ["minikube", "aks"]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def render(overlay: str) -> str:
    return render_overlay(overlay)


def objects(overlay: str) -> dict[str, dict]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in yaml.safe_load_all(render(overlay)) if o}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request, tmp_path_factory) -> tuple[str, Path]:  # noqa: ANN001
    path = tmp_path_factory.mktemp("render") / f"{request.param}.yaml"
    path.write_text(render(request.param))
    return request.param, path


def test_kubernetes_validate_strict(rendered) -> None:  # noqa: ANN001
    _, path = rendered
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--quiet", str(path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # only Istio's custom resources have no schema to validate against
    unknown = re.findall(r"Couldn't find schema for kind (\w+)", result.stdout + result.stderr)
    assert set(unknown) <= {"Gateway", "VirtualService", "AuthorizationPolicy"}


def test_checkov_has_no_failed_check(rendered) -> None:  # noqa: ANN001
    _, path = rendered
    assert CHECKOV.exists(), "scripts/test.sh installs checkov into .venv-checkov"
    result = subprocess.run(
        [str(CHECKOV), "--framework", "kubernetes", "--skip-download", "--compact", "--quiet", "-f", str(path)],
        capture_output=True, text=True,
    )
    summary = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", result.stdout)
    assert summary, result.stdout[-3000:] + result.stderr[-3000:]
    assert int(summary.group(2)) == 0, result.stdout[-5000:]
    assert int(summary.group(1)) > 50
    assert result.returncode == 0


def test_every_checkov_skip_is_justified() -> None:
    for manifest in (ROOT / "deployment").rglob("*.yaml"):
        for line_no, line in enumerate(manifest.read_text().splitlines(), 1):
            if "checkov.io/skip" in line:
                check, _, reason = line.split(":", 1)[1].strip().partition("=")
                assert re.fullmatch(r"CKV2?_K8S_\d+", check), (manifest, line_no)
                assert len(reason.split()) >= 5, f"{manifest}:{line_no}: a skip needs its reason"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_shape(overlay: str) -> None:
    objs = objects(overlay)
    pod = objs["Deployment/sentiment"]["spec"]["template"]["spec"]
    config = objs["ConfigMap/sentiment-config"]["data"]

    (redis,) = pod["initContainers"]
    assert redis["restartPolicy"] == "Always"  # native sidecar: up before the API, outlives it
    args = redis["args"]
    assert args[args.index("--bind") + 1] == "127.0.0.1" and args[args.index("--save") + 1] == ""
    assert args[args.index("--maxmemory-policy") + 1] == "allkeys-lru"
    assert config["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert config["ENGINE"] == config["PRECISION"] == "auto"  # the fast path the guard allows

    (api,) = pod["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/livez"
    startup = api["startupProbe"]
    # from the measured start-up (docs/deployment.md): ready within a second of being ready,
    # and at least 10x the slowest measured start before the kubelet gives up
    assert startup["periodSeconds"] == 1 and startup["periodSeconds"] * startup["failureThreshold"] >= 50
    env = {e["name"]: e["value"] for e in api.get("env", [])}
    assert int(env.get("ENGINE_THREADS", config["ENGINE_THREADS"])) == int(api["resources"]["limits"]["cpu"])

    # graceful shutdown: the grace period covers the preStop pause and a full request
    pause = int(api["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] >= pause + float(config["REQUEST_TIMEOUT_S"])

    # Pod Security Standards, restricted
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    mounted = set()
    for container in (api, redis):
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        mounted |= {m["name"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert mounted <= {v["name"] for v in pod["volumes"] if "emptyDir" in v}  # writable: scratch only

    for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "ConfigMap"):
        assert f"{kind}/sentiment" in objs or f"{kind}/sentiment-config" in objs
    assert objs["Service/sentiment"]["spec"]["ports"][0]["name"] == "http"


def test_overlay_differences() -> None:
    minikube, aks = objects("minikube"), objects("aks")
    assert minikube["Deployment/sentiment"]["spec"]["replicas"] == 1
    assert minikube["Deployment/sentiment"]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Never"
    assert not any(k.startswith(("Gateway/", "VirtualService/")) for k in minikube)
    assert {"Gateway/sentiment", "VirtualService/sentiment"} <= set(aks)
    assert aks["HorizontalPodAutoscaler/sentiment"]["spec"]["minReplicas"] >= 2
    sources = aks["NetworkPolicy/sentiment"]["spec"]["ingress"][0]["from"]
    assert any(s.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "istio-system" for s in sources)


def test_bentoml_build_packs_service_and_model(bentoml_home: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home)}
    result = subprocess.run([sys.executable, "-m", "bentoml", "build", "-o", "tag"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    tag = result.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    bento = bentoml_home / "bentos" / name / version
    manifest = yaml.safe_load((bento / "bento.yaml").read_text())
    assert [m["tag"].split(":")[0] for m in manifest["models"]] == ["distilbert-sst2"]
    assert (bento / "src" / "service.py").is_file()
    package = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "sentiment").rglob("*.py"))
    assert sorted(p.relative_to(bento / "src").as_posix() for p in (bento / "src" / "sentiment").rglob("*.py")) == package
    assert "sentiment/model/inference.py" in package  # subpackages included
    assert not (bento / "src" / "tests").exists() and not list((bento / "src").glob(".venv*"))
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "torch==2.13.0+cpu" in requirements
    # the CPU index reaches the image build through BentoML's install.sh, which the lean Dockerfile runs
    assert "download.pytorch.org/whl/cpu" in (bento / "env" / "python" / "install.sh").read_text()
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11-slim AS builder" in dockerfile and "env/python/install.sh" in dockerfile
    assert "build-essential" not in dockerfile


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_keys_come_from_a_secret(overlay: str) -> None:
    objs = objects(overlay)
    secret = objs["Secret/sentiment-api-keys"]
    assert set(secret["data"]) == {"api-keys"}  # generated from the user's file; nothing committed
    pod = objs["Deployment/sentiment"]["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in api["env"]}
    mount = next(m for m in api["volumeMounts"] if m["name"] == "api-keys")
    assert env["API_KEYS_FILE"] == mount["mountPath"] + "/api-keys" and mount["readOnly"] is True
    assert next(v for v in pod["volumes"] if v["name"] == "api-keys")["secret"]["secretName"] == "sentiment-api-keys"


def test_aks_only_the_gateway_and_prometheus_get_in() -> None:
    objs = objects("aks")
    policy = objs["AuthorizationPolicy/sentiment"]["spec"]
    assert policy["action"] == "ALLOW"
    gateway, prometheus = policy["rules"]
    assert gateway["from"][0]["source"]["principals"] == ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]
    assert {p for op in gateway["to"] for p in op["operation"]["paths"]} == {"/predict", "/health"}
    assert prometheus["to"] == [{"operation": {"ports": ["3000"], "methods": ["GET"], "paths": ["/metrics"]}}]
    # 503 is load shedding: never retried by the mesh
    (route,) = objs["VirtualService/sentiment"]["spec"]["http"]
    assert "503" not in route["retries"]["retryOn"] and "5xx" not in route["retries"]["retryOn"]

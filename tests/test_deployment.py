"""Kubernetes manifests and the Bento: rendered, validated and scanned for real."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from harness.processes import KEEP_ALIVE_S, ROOT
from tests.helpers import render_overlay

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

OVERLAYS = ["minikube", "aks"]
RENDERINGS = [*OVERLAYS, "minikube+shared-redis", "aks+shared-redis"]  # an overlay, + components
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def render(overlay: str) -> str:
    name, *components = overlay.split("+")
    return render_overlay(name, components=tuple(components))


def objects(overlay: str) -> dict[str, dict]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in yaml.safe_load_all(render(overlay)) if o}


@pytest.fixture(scope="module", params=RENDERINGS)
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
    assert set(unknown) <= {"Gateway", "VirtualService", "DestinationRule", "AuthorizationPolicy"}


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


def redis_server_args(redis: dict) -> list[str]:
    """The redis-server arguments of the sidecar's start script."""
    import shlex

    (script,) = redis["args"]
    return shlex.split(script.split("exec redis-server", 1)[1])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_shape(overlay: str) -> None:
    objs = objects(overlay)
    pod = objs["Deployment/sentiment"]["spec"]["template"]["spec"]
    config = objs["ConfigMap/sentiment-config"]["data"]

    (redis,) = pod["initContainers"]
    assert redis["restartPolicy"] == "Always"  # native sidecar: up before the API, outlives it
    args = redis_server_args(redis)
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
    env = {e["name"]: e.get("value") for e in api.get("env", [])}
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
    assert "NetworkPolicy/sentiment-mesh" in aks and "NetworkPolicy/sentiment-mesh" not in minikube


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


def istio_names() -> dict[str, str]:
    return yaml.safe_load((ROOT / "deployment" / "overlays" / "aks" / "istio-names.yaml").read_text())["data"]


def selected(selector: dict) -> dict[str, str]:
    """matchLabels and single-valued `In` expressions of a label selector, as one dict."""
    found = dict(selector.get("matchLabels", {}))
    found.update({e["key"]: e["values"][0] for e in selector.get("matchExpressions", []) if e["operator"] == "In"})
    return found


def test_aks_only_the_gateway_gets_in_and_prometheus_scrapes_the_merged_port() -> None:
    objs, names = objects("aks"), istio_names()
    policy = objs["AuthorizationPolicy/sentiment"]["spec"]
    assert policy["action"] == "ALLOW"
    (gateway,) = policy["rules"]  # nothing else may call the API
    assert gateway["from"][0]["source"]["principals"] == [f"cluster.local/ns/{names['gatewayNamespace']}/sa/{names['gatewayServiceAccount']}"]
    assert {p for op in gateway["to"] for p in op["operation"]["paths"]} == {"/predict", "/health", "/info"}
    mesh = objs["NetworkPolicy/sentiment-mesh"]["spec"]
    gateway_in, prometheus_in = mesh["ingress"]
    (source,) = gateway_in["from"]
    assert selected(source["namespaceSelector"]) == {"kubernetes.io/metadata.name": names["gatewayNamespace"]}
    assert selected(source["podSelector"]) == {"istio": names["gatewayLabel"]}
    assert objs["Gateway/sentiment"]["spec"]["selector"] == {"istio": names["gatewayLabel"]}  # the same gateway
    # Prometheus (no sidecar, no mTLS identity): Istio's merged metrics port, from the monitoring namespace only
    assert prometheus_in["ports"] == [{"port": 15020, "protocol": "TCP"}]
    assert selected(prometheus_in["from"][0]["namespaceSelector"]) == {"kubernetes.io/metadata.name": "monitoring"}
    assert objs["Deployment/sentiment"]["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    # out: istiod and DNS, nothing else
    istiod, dns = mesh["egress"]
    assert selected(istiod["to"][0]["namespaceSelector"]) == {"kubernetes.io/metadata.name": names["istiodNamespace"]}
    assert istiod["ports"] == [{"port": 15012, "protocol": "TCP"}] and {p["port"] for p in dns["ports"]} == {53}
    # 503 is load shedding: never retried by the mesh; a reset (a pod going away) is, on another pod
    (route,) = objs["VirtualService/sentiment"]["spec"]["http"]
    retry_on = route["retries"]["retryOn"].split(",")
    assert "503" not in retry_on and "5xx" not in retry_on and {"reset", "connect-failure"} <= set(retry_on)
    assert route["retries"]["retryRemoteLocalities"] is True


def test_aks_states_its_istio_requirements() -> None:
    objs, names = objects("aks"), istio_names()
    labels = objs["Namespace/sentiment"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["istio.io/rev"] == names["revision"]  # the add-on injects by revision, not istio-injection=enabled
    assert "istio-injection" not in labels
    kustomization = (ROOT / "deployment" / "overlays" / "aks" / "kustomization.yaml").read_text()
    assert "Istio CNI" in kustomization and "istio-init-exemption" in kustomization
    drain = yaml.safe_load(objs["Deployment/sentiment"]["spec"]["template"]["metadata"]["annotations"]["proxy.istio.io/config"])
    pod = objs["Deployment/sentiment"]["spec"]["template"]["spec"]
    assert drain["proxyMetadata"]["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] == "true"
    assert int(drain["terminationDrainDuration"].rstrip("s")) <= pod["terminationGracePeriodSeconds"]


def test_the_istio_init_exemption_keeps_restricted_as_warnings() -> None:
    """Without Istio CNI the documented component exempts the namespace from enforcement only."""
    out = render_overlay("aks", components=("istio-init-exemption",))
    (namespace,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_may_reach_nothing_outside_itself(overlay: str) -> None:
    policy = objects(overlay)["NetworkPolicy/sentiment"]["spec"]
    assert "Egress" in policy["policyTypes"] and policy["egress"] == []  # Redis is on 127.0.0.1, the model in the image


def test_redis_sidecar_image_has_the_7_4_fixes() -> None:
    pod = objects("aks")["Deployment/sentiment"]["spec"]["template"]["spec"]
    (redis,) = pod["initContainers"]
    version = tuple(int(x) for x in re.match(r"redis:(\d+)\.(\d+)\.(\d+)", redis["image"]).groups())
    assert version >= (7, 4, 6)  # CVE-2025-49844 and the other 7.4.x fixes


def test_redis_sidecar_needs_the_password_and_allows_only_the_cache_s_commands(tmp_path: Path) -> None:
    """The sidecar's own start script, rendered, runs a real redis-server: only the password from the
    Secret gets in, and only GET/SET/MGET on sentiment:* keys work; the ACL file is the owner's only."""
    import asyncio

    import redis as redis_py

    from harness.processes import RedisServer, free_port
    from sentiment.cache.backends import CircuitBreaker, RedisBackend

    password = "the-secret-password-of-redis"
    rendered = {f"{o['kind']}/{o['metadata']['name']}": o for o in yaml.safe_load_all(render_overlay("minikube", redis_password=password)) if o}
    pod = rendered["Deployment/sentiment"]["spec"]["template"]["spec"]
    (redis,) = pod["initContainers"]
    (api,) = pod["containers"]
    volume = next(v for v in pod["volumes"] if v["name"] == "redis-password")
    secret = rendered[f"Secret/{volume['secret']['secretName']}"]  # both containers mount this one Secret
    import base64

    assert base64.b64decode(secret["data"]["password"]).decode() == password
    mounts = {c["name"]: next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == "redis-password") for c in (redis, api)}
    assert {e["name"]: e.get("value") for e in api["env"]}["REDIS_PASSWORD_FILE"] == mounts["api"] + "/password"
    (tmp_path / "password").write_text(password)
    port = free_port()
    (script,) = redis["args"]
    script = (script.replace("/tmp/users.acl", str(tmp_path / "users.acl"))
              .replace(mounts["redis"] + "/password", str(tmp_path / "password")).replace("--port 6379", f"--port {port}"))
    server = RedisServer(port)
    server.proc = subprocess.Popen(["sh", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        from harness.processes import wait_until

        wait_until(lambda: _answers(port), 10, "redis-server with the sidecar's arguments")
        with_password = redis_py.Redis(port=port, password=password)
        assert with_password.ping()
        for command in (("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("SET", "other:x", "1"), ("EVAL", "return 1", "0")):
            with pytest.raises(redis_py.exceptions.NoPermissionError):
                with_password.execute_command(*command)
        with pytest.raises(redis_py.exceptions.AuthenticationError):
            redis_py.Redis(port=port).get("sentiment:x")

        async def cache_round_trip() -> list:
            backend = RedisBackend(f"redis://127.0.0.1:{port}/0", 500, CircuitBreaker(3, 60), password=password)
            await backend.set_many({"sentiment:a": b"[0.1,0.9]"}, ttl_s=60)
            values = await backend.get_many(["sentiment:a", "sentiment:b"])
            await backend.close()
            return values

        assert asyncio.run(cache_round_trip()) == [b"[0.1,0.9]", None]  # what the service does works
        assert (tmp_path / "users.acl").stat().st_mode & 0o077 == 0
    finally:
        server.kill()


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_the_shared_redis_serves_every_replica_and_admits_only_them() -> None:
    objs = objects("minikube+shared-redis")
    pod = objs["Deployment/sentiment"]["spec"]["template"]["spec"]
    assert not pod.get("initContainers")  # no sidecar
    assert objs["ConfigMap/sentiment-config"]["data"]["REDIS_URL"] == "redis://sentiment-redis:6379/0"
    assert objs["Service/sentiment-redis"]["spec"]["ports"] == [{"name": "redis", "port": 6379, "targetPort": "redis"}]
    redis_pod = objs["Deployment/sentiment-redis"]["spec"]["template"]
    assert objs["Service/sentiment-redis"]["spec"]["selector"] == redis_pod["metadata"]["labels"]
    # the same Secret for both sides, the same ACL as the sidecar
    secret_of = lambda spec, name: next(v for v in spec["volumes"] if v["name"] == name)["secret"]["secretName"]  # noqa: E731
    assert secret_of(redis_pod["spec"], "password") == secret_of(pod, "redis-password")
    (script,) = redis_pod["spec"]["containers"][0]["args"]
    sidecar_script = objects("minikube")["Deployment/sentiment"]["spec"]["template"]["spec"]["initContainers"][0]["args"][0]
    acl = lambda text: text.split("printf '", 1)[1].split("\\n'", 1)[0]  # noqa: E731
    assert acl(script) == acl(sidecar_script)
    # in: only the API's pods; out: nothing. The API may reach Redis and DNS, nothing else
    policy = objs["NetworkPolicy/sentiment-redis"]["spec"]
    assert selected(policy["podSelector"]) == {"app.kubernetes.io/name": "sentiment", "app.kubernetes.io/component": "redis"}
    (admitted,) = policy["ingress"]
    assert selected(admitted["from"][0]["podSelector"])["app.kubernetes.io/component"] == "api" and policy["egress"] == []
    egress = objs["NetworkPolicy/sentiment"]["spec"]["egress"]
    assert [selected(rule["to"][0]["podSelector"]) for rule in egress] == [
        {"app.kubernetes.io/name": "sentiment", "app.kubernetes.io/component": "redis"}, {"k8s-app": "kube-dns"},
    ]


def test_the_server_keeps_an_idle_connection_longer_than_the_clients_in_front_of_it() -> None:
    """Who closes an idle connection first: the client (docs/deployment.md, "Keep-alive")."""
    template = (ROOT / "deployment" / "image" / "Dockerfile.template").read_text()
    command = re.search(r"^CMD (\[.*\])$", template, re.MULTILINE)
    assert command, "the image's command sets the keep-alive"
    args = json.loads(command.group(1))
    assert args[:2] == ["serve", "--timeout-keep-alive"]  # BentoML's entrypoint: `bentoml serve <args> $BENTO_PATH`
    keep_alive = int(args[2])
    assert f"--timeout-keep-alive {keep_alive}" in (ROOT / "scripts" / "serve.sh").read_text()
    assert keep_alive == KEEP_ALIVE_S  # the tests' servers are served as the image is
    rule = objects("aks")["DestinationRule/sentiment"]
    assert rule["spec"]["host"] == "sentiment"
    assert int(rule["spec"]["trafficPolicy"]["connectionPool"]["http"]["idleTimeout"].removesuffix("s")) < keep_alive
    assert httpx.Limits().keepalive_expiry < keep_alive

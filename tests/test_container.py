"""The shipped artefacts, run for real: the OCI image built by `bentoml build` +
`bentoml containerize` (scripts/build_image.py, with podman/buildah and no registry),
run with podman, and the rendered minikube Deployment run with `podman kube play`.

No registry is reachable here, so the public base images are local stand-ins
(scripts/standin_images.sh), torch's CPU wheel comes from a local wheelhouse and the
host's CA bundle is passed as the build's extra CA (outgoing HTTPS goes through a
TLS-intercepting proxy on these machines).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from harness.podman import podman, podman_env
from harness.processes import ROOT, free_port
from harness.prometheus import metric_sum, parse_metrics
from tests.helpers import render_overlay

pytestmark = pytest.mark.container  # tier: image builds, podman run and kube play (pytest.ini)

IMAGE = "localhost/sentiment:test"
TEXTS = ["I love you", "I hate you", "Count to 1234"]
def report(request: pytest.FixtureRequest, line: str) -> None:
    """A figure for the run's output, past pytest's capture (CI logs show the stage's cost)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{line}", flush=True)


def wait_ready(url: str, logs: callable, timeout: float = 240) -> None:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"{url}/readyz never answered 200 in {timeout:.0f} s; logs:\n{logs()[-5000:]}")


def extra_ca_bundle() -> Path | None:
    """The host's CA bundle: it holds the proxy's CA where there is one, and is harmless where not."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def torch_wheelhouse() -> Path:
    """torch's pinned CPU wheel, fetched with the host's pip (its find-links or PyTorch's index)."""
    wheelhouse = ROOT / "build" / "wheelhouse"
    if not list(wheelhouse.glob("torch-2.13.0+cpu-*.whl")):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
             "--only-binary=:all:", "-d", str(wheelhouse), "torch==2.13.0+cpu",
             "--extra-index-url", "https://download.pytorch.org/whl/cpu"],
            check=True,
        )
    return wheelhouse


@pytest.fixture(scope="module", params=["full", "openvino"])
def image(bentoml_home: Path, request: pytest.FixtureRequest) -> str:
    """Each image variant (deployment/image/Dockerfile.template), built as a user builds it: the full one
    asked for, the torch-free one by default."""
    variant = request.param
    tag = f"{IMAGE}-{variant}"
    for tool in ("podman", "buildah", "debootstrap"):
        assert shutil.which(tool), f"{tool} is installed by scripts/test.sh"
    timings = {}
    started = time.monotonic()
    standin = subprocess.run(["bash", str(ROOT / "scripts" / "standin_images.sh")], env=podman_env(),
                             capture_output=True, text=True, timeout=900)
    assert standin.returncode == 0, standin.stderr[-3000:]
    timings["stand-in images"] = time.monotonic() - started

    started = time.monotonic()
    cmd = [sys.executable, str(ROOT / "scripts" / "build_image.py"), "-t", tag, "--backend", "buildah",
           "--wheelhouse", str(torch_wheelhouse())] + (["--variant", "full"] if variant == "full" else [])
    ca = extra_ca_bundle()
    if ca is not None:
        cmd += ["--extra-ca", str(ca)]
    build = subprocess.run(cmd, env={**podman_env(), "BENTOML_HOME": str(bentoml_home)},
                           capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    assert build.stdout.strip().splitlines()[-1] == tag
    said = re.search(r"image variant: (\w+): (.*)", build.stdout + build.stderr)
    assert said and said.group(1) == variant, (build.stdout + build.stderr)[-4000:]  # which, and why
    if variant == "openvino":
        assert "serve openvino/fp32" in said.group(2) and "no torch needed" in said.group(2)
    timings["bentoml build + containerize"] = time.monotonic() - started
    size = int(podman("image", "inspect", tag, "--format", "{{.Size}}").stdout.strip())
    report(request, f"container stage ({variant} image): " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
           + f"; image {size / 2**20:.0f} MiB")
    return tag


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[str]:
    """The image run as built: `podman run -p 127.0.0.1:PORT:3000`."""
    name = f"sentiment-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:3000", image)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, lambda: podman("logs", name, check=False).stderr)
        yield url
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)


def test_image_runs_as_non_root_with_the_model_inside(image: str) -> None:
    config = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "bentoml"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["HF_HUB_OFFLINE"] == "1" and env["MODEL_TAG"] == "distilbert-sst2:latest"
    assert not any(k in env for k in ("SSL_CERT_FILE", "PIP_CERT"))  # the build's CA settings stay in the build
    assert config["Cmd"] == ["serve", "--timeout-keep-alive", "75"]  # docs/deployment.md, "Keep-alive"
    uid = podman("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip()
    assert uid != "0"
    models = podman("run", "--rm", "--entrypoint", "ls", image, "/home/bentoml/bento/models/distilbert-sst2").stdout
    assert "latest" in models.split()


def in_image(image: str, script: str) -> str:
    return podman("run", "--rm", "--entrypoint", "/bin/sh", image, "-c", script).stdout


def test_image_is_lean(image: str) -> None:
    """No build toolchain, VCS or installer cache; the torch-free variant has no torch and no torch weights."""
    variant = image.rsplit("-", 1)[1]
    assert in_image(image, "cat /app/image-variant").strip() == variant
    tools = "for t in gcc cc make git curl; do command -v $t; done; ls -d /root/.cache 2>/dev/null; true"
    assert in_image(image, tools).split() == []
    site = "/app/.venv/lib/python3.11/site-packages"
    models = "/home/bentoml/bento/models/distilbert-sst2"
    model = f"{models}/$(cat {models}/latest)"  # `latest` names the version
    present = in_image(image, f"ls {site} {site}/openvino/libs {model} {model}/openvino").split()
    assert "libopenvino_intel_cpu_plugin.so" in present and "libopenvino_intel_gpu_plugin.so" not in present
    assert {"fp32.xml", "fp32.bin", "tokenizer.json", "config.json"} <= set(present)
    if variant == "full":
        assert {"torch", "transformers", "model.safetensors"} <= set(present)
        assert in_image(image, f"ls {site}/torch/test {site}/torch/include 2>/dev/null; true").split() == []
    else:
        assert not {"torch", "transformers", "safetensors", "model.safetensors"} & set(present)
    # the serving path's modules were compiled in the build: nothing to compile at each start
    assert in_image(image, f"ls {site}/bentoml/__pycache__ | head -1").strip().endswith(".pyc")


def test_container_answers_predict_like_bentoml_serve(container: str, server) -> None:  # noqa: ANN001
    body = {"text": TEXTS}
    answer = httpx.post(f"{container}/predict", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    reference = httpx.post(f"{server.url}/predict", json=body, timeout=60).json()
    got = answer.json()
    assert set(got) == {"predictions"} and len(got["predictions"]) == len(TEXTS)
    for row, ref in zip(got["predictions"], reference["predictions"]):
        assert [p["label"] for p in row] == [p["label"] for p in ref]
        for p, q in zip(row, ref):
            assert p["score"] == pytest.approx(q["score"], abs=1e-4)

    bad = httpx.post(f"{container}/predict", json={"text": ["ok"], "extra": 1}, timeout=30)
    assert bad.status_code == 400 and "extra" in bad.text
    assert httpx.get(f"{container}/livez", timeout=10).status_code == 200
    metrics = httpx.get(f"{container}/metrics", timeout=10).text
    assert "sentiment_batch_texts" in metrics
    # the image serves the engine bentoml serve chose, the model inline in the public worker, and timed its start-up
    assert re.search(r'sentiment_model_info\{[^}]*engine="openvino"', metrics)
    assert 'sentiment_startup_seconds{service="sentiment",stage="model_load"}' in metrics
    assert 'sentiment_startup_seconds{service="sentiment",stage="total"}' in metrics


def podman_kube_yaml(rendered: str, image: str, host_port: int, secrets_dir: Path) -> str:
    """The rendered minikube overlay, as `podman kube play` (4.3) can run it.

    Each change stands in for what a cluster provides or podman 4.3 lacks:
    - only the ConfigMap and the Deployment: podman has no Service, HPA, PDB or
      NetworkPolicy;
    - the Redis native sidecar (init container with restartPolicy: Always) becomes a
      regular container: podman 4.3 predates native sidecars and would wait for it to exit;
    - Redis' imagePullPolicy Always -> IfNotPresent: no registry here;
    - the image is the one just built (as `kustomize edit set image` would set it);
    - a hostPort on 127.0.0.1 publishes the API port (minikube uses port-forward instead);
    - each Secret volume (API keys, the Redis password) becomes a hostPath holding the
      Secret's files: podman 4.3 crashes on a Secret volume without `optional`, and with
      it mounts the data still base64-encoded.
    """
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    kept = [d for d in docs if d["kind"] in ("ConfigMap", "Deployment")]
    deployment = next(d for d in kept if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    (redis,) = pod.pop("initContainers")
    assert redis.pop("restartPolicy") == "Always"
    redis["imagePullPolicy"] = "IfNotPresent"
    (api,) = pod["containers"]
    api["image"] = image
    (http,) = [p for p in api["ports"] if p["name"] == "http"]
    http.update(hostPort=host_port, hostIP="127.0.0.1")
    pod["containers"].append(redis)
    for volume in [v for v in pod["volumes"] if "secret" in v]:
        folder = secrets_dir / volume["name"]
        folder.mkdir()
        for name, data in secrets[volume.pop("secret")["secretName"]]["data"].items():  # the Secret's files, as mounted
            (folder / name).write_bytes(base64.b64decode(data))
            (folder / name).chmod(0o444)
        folder.chmod(0o755)
        volume["hostPath"] = {"path": str(folder), "type": "Directory"}
    return yaml.safe_dump_all(kept, sort_keys=False)


def test_kube_play_minikube_deployment(image: str, tmp_path: Path) -> None:
    key, redis_password = "kube-play-test-key", "kube-play-redis-password"
    rendered = render_overlay("minikube", api_key=key, redis_password=redis_password)
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    port = free_port()
    manifest = tmp_path / "minikube-podman.yaml"
    manifest.write_text(podman_kube_yaml(rendered, image, port, secrets_dir))
    auth = {"Authorization": f"Bearer {key}"}
    containers_before = set(podman("ps", "-a", "-q").stdout.split())

    pod = "sentiment-pod-0"
    url = f"http://127.0.0.1:{port}"
    try:
        podman("kube", "play", str(manifest))
        wait_ready(url, lambda: podman("logs", f"{pod}-api", check=False).stderr)
        # the API answers only with the key from the Secret; probes and metrics stay open
        assert httpx.post(f"{url}/predict", json={"text": TEXTS}, timeout=60).status_code == 401
        assert httpx.post(f"{url}/predict", json={"text": TEXTS}, headers={"Authorization": "Bearer nope"}, timeout=60).status_code == 401
        first = httpx.post(f"{url}/predict", json={"text": TEXTS}, headers=auth, timeout=60)
        assert first.status_code == 200, first.text
        before = parse_metrics(httpx.get(f"{url}/metrics", timeout=10).text)
        second = httpx.post(f"{url}/predict", json={"text": TEXTS}, headers=auth, timeout=60)
        after = parse_metrics(httpx.get(f"{url}/metrics", timeout=10).text)
        assert second.json() == first.json()
        # the repeat came from the Redis sidecar, not the model
        hits = metric_sum(after, "sentiment_cache_lookups_total", backend="redis", result="hit") \
            - metric_sum(before, "sentiment_cache_lookups_total", backend="redis", result="hit")
        assert hits == len(TEXTS)
        assert metric_sum(after, "sentiment_batch_texts_sum") == metric_sum(before, "sentiment_batch_texts_sum")
        assert metric_sum(after, "sentiment_cache_errors_total") == 0
        assert metric_sum(after, "sentiment_auth_failures_total") == 2
        # Redis asks for the password from the Secret, which the API had (its cache hits above)
        anonymous = podman("exec", f"{pod}-redis", "redis-cli", "-h", "127.0.0.1", "get", "sentiment:x", check=False)
        assert "NOAUTH" in anonymous.stdout + anonymous.stderr
        authorized = podman("exec", "-e", f"REDISCLI_AUTH={redis_password}", f"{pod}-redis", "redis-cli", "-h", "127.0.0.1", "ping")
        assert authorized.stdout.strip() == "PONG"

        # the manifests' security context, as the runtime applied it
        inspect = json.loads(podman("inspect", f"{pod}-api").stdout)[0]
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True
        assert inspect["Config"]["User"].split(":")[0] == "10001"
        assert podman("exec", f"{pod}-api", "id", "-u").stdout.strip() == "10001"
        assert podman("exec", f"{pod}-api", "touch", "/home/bentoml/x", check=False).returncode != 0
    finally:
        down = podman("kube", "down", str(manifest), check=False)
    assert down.returncode == 0, down.stderr[-2000:]
    assert podman("pod", "exists", pod, check=False).returncode != 0
    assert set(podman("ps", "-a", "-q").stdout.split()) <= containers_before  # nothing left running


def infra_ip(pod: str) -> str:
    """The pod's address on podman's network (its infra container's)."""
    infra = json.loads(podman("pod", "inspect", pod).stdout)
    infra = infra[0] if isinstance(infra, list) else infra
    details = json.loads(podman("inspect", infra["InfraContainerID"]).stdout)[0]
    return next(n["IPAddress"] for n in details["NetworkSettings"]["Networks"].values() if n.get("IPAddress"))


def secret_as_host_path(pod: dict, secrets: dict[str, dict], secrets_dir: Path) -> None:
    """Each Secret volume of `pod` becomes a hostPath holding the Secret's files (podman 4.3, as above)."""
    for volume in [v for v in pod["volumes"] if "secret" in v]:
        folder = secrets_dir / volume["name"]
        folder.mkdir(exist_ok=True)
        for name, data in secrets[volume.pop("secret")["secretName"]]["data"].items():
            (folder / name).write_bytes(base64.b64decode(data))
            (folder / name).chmod(0o444)
        folder.chmod(0o755)
        volume["hostPath"] = {"path": str(folder), "type": "Directory"}


@pytest.mark.parametrize("image", ["openvino"], indirect=True)
def test_kube_play_one_redis_shared_by_two_replicas(image: str, tmp_path: Path) -> None:
    """The shared-redis component: two API pods and one Redis pod. A text one pod scored is a cache hit
    on the other; with the shared Redis killed, both keep answering (their circuit breakers).

    Stand-ins beside those of podman_kube_yaml: the two replicas are two copies of the
    Deployment (podman runs one pod per Deployment) whose emptyDir volumes get names of their
    own (podman keys them by name: the copies would share /tmp, BentoML's sockets included),
    and the API pods reach Redis by its pod's address on podman's network, where a cluster
    resolves the Service name `sentiment-redis`."""
    key = "kube-play-shared-key"
    docs = [d for d in yaml.safe_load_all(render_overlay("minikube", api_key=key, components=("shared-redis",))) if d]
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    api = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "sentiment")
    redis = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "sentiment-redis")
    assert config["data"]["REDIS_URL"] == "redis://sentiment-redis:6379/0" and not api["spec"]["template"]["spec"].get("initContainers")
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    redis_pod = redis["spec"]["template"]["spec"]
    redis_pod["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    secret_as_host_path(redis_pod, secrets, secrets_dir)
    redis_manifest = tmp_path / "redis.yaml"
    redis_manifest.write_text(yaml.safe_dump(redis, sort_keys=False))

    ports, replicas = {}, []
    for name in ("sentiment-a", "sentiment-b"):
        replica = yaml.safe_load(yaml.safe_dump(api))
        replica["metadata"]["name"] = name
        pod = replica["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        container["image"] = image
        for volume in [v for v in pod["volumes"] if "emptyDir" in v]:
            for mount in [m for m in container["volumeMounts"] if m["name"] == volume["name"]]:
                mount["name"] = f"{name}-{volume['name']}"
            volume["name"] = f"{name}-{volume['name']}"
        ports[name] = free_port()
        next(p for p in container["ports"] if p["name"] == "http").update(hostPort=ports[name], hostIP="127.0.0.1")
        secret_as_host_path(pod, secrets, secrets_dir)
        replicas.append(replica)
    api_manifest = tmp_path / "replicas.yaml"
    auth = {"Authorization": f"Bearer {key}"}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    scrape = lambda name: parse_metrics(httpx.get(f"{urls[name]}/metrics", timeout=10).text)  # noqa: E731
    predict = lambda name, texts: httpx.post(f"{urls[name]}/predict", json={"text": texts}, headers=auth, timeout=60)  # noqa: E731
    try:
        podman("kube", "play", str(redis_manifest))
        config["data"]["REDIS_URL"] = f"redis://{infra_ip('sentiment-redis-pod-0')}:6379/0"  # the Service's name, resolved
        api_manifest.write_text(yaml.safe_dump_all([config, *replicas], sort_keys=False))
        podman("kube", "play", str(api_manifest))
        for name in urls:
            wait_ready(urls[name], lambda name=name: podman("logs", f"{name}-pod-0-api", check=False).stderr)
        text = [f"scored once for both replicas {uuid.uuid4().hex}"]
        assert predict("sentiment-a", text).status_code == 200
        before = scrape("sentiment-b")
        second = predict("sentiment-b", text)
        after = scrape("sentiment-b")
        assert second.status_code == 200
        assert metric_sum(after, "sentiment_cache_lookups_total", backend="redis", result="hit") \
            - metric_sum(before, "sentiment_cache_lookups_total", backend="redis", result="hit") == 1  # A's entry
        assert metric_sum(after, "sentiment_model_texts_total") == metric_sum(before, "sentiment_model_texts_total")

        podman("pod", "kill", "sentiment-redis-pod-0")  # the shared Redis goes away
        answers = [predict(name, [f"redis is gone {i} {uuid.uuid4().hex}"]) for i in range(3) for name in urls]
        assert [a.status_code for a in answers] == [200] * 6  # no request lost
        for name in urls:
            assert metric_sum(scrape(name), "sentiment_cache_errors_total", backend="redis") > 0  # noticed, and skipped
    finally:
        for manifest in (api_manifest, redis_manifest):
            if manifest.exists():
                podman("kube", "down", str(manifest), check=False)

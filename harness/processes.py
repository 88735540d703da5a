"""Start and stop a real `bentoml serve` and a real `redis-server` on free loopback ports;
wait for state, never for time."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .prometheus import parse_metrics

ROOT = Path(__file__).resolve().parents[1]
# as the image and scripts/serve.sh serve: an idle connection outlives the clients' (docs/deployment.md, "Keep-alive")
KEEP_ALIVE_S = 75


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process_group(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left, descendants in groups of their own included
    (BentoML's workers: killed with the group, they would outlive it)."""
    import psutil

    if proc.poll() is not None:
        return
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
    for child in descendants:  # an orphan left behind: gone with its parent, in a test
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


@dataclass
class ServerProcess:
    """A running `bentoml serve service:Sentiment` on 127.0.0.1."""

    proc: subprocess.Popen
    url: str
    log_path: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> dict[str, float]:
        """Prometheus samples as {'name{label="v",...}': value}, labels sorted."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return parse_metrics(text)

    def stop(self) -> None:
        stop_process_group(self.proc)

    def worker_pid(self, service_name: str) -> int:
        """PID of the worker process serving `service_name` (e.g. 'sentiment_model')."""
        import psutil

        for child in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                args = child.cmdline()
            except (psutil.ZombieProcess, psutil.NoSuchProcess):  # a worker that just died
                continue
            if "--service-name" in args and args[args.index("--service-name") + 1] == service_name:
                return child.pid
        raise LookupError(f"no worker for {service_name}")


def wait_until(predicate: Callable[[], object], timeout: float, what: str = "condition") -> None:
    """Poll `predicate` until it is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def home_sharing_models(bentoml_home: Path, folder: Path) -> Path:
    """A BENTOML_HOME of its own in `folder`, reading the model store of `bentoml_home`.

    `bentoml serve` empties its home's Prometheus directory when it starts, so a server started
    on the home of a running one hides that one's metrics: servers alive together need a home each.
    """
    home = folder / "bentoml-home"
    home.mkdir(parents=True)
    (home / "models").symlink_to(Path(bentoml_home).resolve() / "models")
    return home


def start_server(
    bentoml_home: Path,
    log_dir: Path,
    env: dict[str, str] | None = None,
    ready_timeout: float = 180.0,
    service: str = "service:Sentiment",
) -> ServerProcess:
    """A ready `bentoml serve`. Started once more if the first one lost a port race: BentoML's
    process manager picks its control ports by binding port 0 and releasing it, so on a
    machine starting many processes another one can take the port before circus binds it
    (`zmq.error.ZMQError: Address already in use`); nothing else is retried."""
    try:
        return _start_server(bentoml_home, log_dir, env, ready_timeout, service)
    except PortRace:
        return _start_server(bentoml_home, log_dir, env, ready_timeout, service)


class PortRace(RuntimeError):
    """`bentoml serve` exited because a port it had picked was taken before it bound it."""


def _start_server(bentoml_home: Path, log_dir: Path, env: dict[str, str] | None, ready_timeout: float, service: str) -> ServerProcess:
    port = free_port()
    log_path = log_dir / f"serve-{port}.log"
    full_env = {
        **os.environ,
        "BENTOML_HOME": str(bentoml_home),
        "HF_HUB_OFFLINE": "1",
        "BENTOML_DO_NOT_TRACK": "true",
        **(env or {}),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", service, "--host", "127.0.0.1", "--port", str(port),
             "--timeout-keep-alive", str(KEEP_ALIVE_S)],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", log_path, full_env)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            error = PortRace if "Address already in use" in server.log() else RuntimeError
            raise error(f"bentoml serve exited with {proc.returncode}:\n{server.log()[-4000:]}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"bentoml serve not ready in {ready_timeout}s:\n{server.log()[-4000:]}")


@dataclass
class RedisServer:
    """A throw-away `redis-server` on a free loopback port, no persistence."""

    port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/test.sh installs it)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

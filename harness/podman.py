"""Run podman the way this project's container checks need it."""

from __future__ import annotations

import os
import subprocess

from .processes import ROOT

CONTAINERS_CONF = ROOT / "scripts" / "containers.conf"


def podman_env() -> dict[str, str]:
    # runc and explicit ulimits where podman's default runtime (crun) cannot start containers;
    # a CONTAINERS_CONF of the caller's own wins
    return {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`podman ARGS`, output captured; with `check`, a failure raises with podman's stderr."""
    result = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {result.stderr[-3000:]}")
    return result

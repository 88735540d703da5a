"""What this machine's CPU offers the engines: cores this process may use, and its instruction sets.

BentoML's new-style services set no OMP_NUM_THREADS (nor any other thread
variable), so without this every engine would start one thread per host core in
every worker and oversubscribe a pod's CPU quota.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from pathlib import Path


def available_cpus() -> int:
    """Cores this process may really use: CPU affinity, capped by a cgroup CPU quota."""
    cpus = len(os.sched_getaffinity(0))
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def _cgroup_cpu_quota() -> float | None:
    try:  # cgroup v2
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def engine_threads(requested: int = 0) -> int:
    """Threads for this process's engine: `requested`, else the cores it may use."""
    return requested or available_cpus()


def configure_torch_threads(requested: int = 0) -> int:
    """Set torch's intra-op threads to `engine_threads(requested)` (imports torch)."""
    import torch

    threads = engine_threads(requested)
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # only settable before first parallel work
        torch.set_num_interop_threads(1)
    return threads


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def supports_bf16() -> bool:
    """bf16 arithmetic in hardware (AVX512-BF16 or AMX); `engines.why_unavailable` is where bf16 is refused."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())

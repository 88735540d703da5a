"""Soak: steady mixed traffic for a while; resident memory stays flat after warm-up.

`WARM_UP_SECONDS` (default 90) of traffic first: allocators, caches and torch's
per-shape buffers grow there (measured: for about 90 s, then flat). Then
`SOAK_SECONDS` (default 90, as in CI) of the same traffic, during which memory
must stay within 5%. Run it longer with e.g.
`SOAK_SECONDS=1800 bash scripts/test.sh tests/test_soak.py -s`.
"""

from __future__ import annotations

import os
import time

import httpx
import psutil
import pytest

from harness.clients import BackgroundClients, Exchange
from harness.processes import start_server, wait_until

pytestmark = pytest.mark.load  # tier: load scripts and soak runs (pytest.ini)

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "90"))
WARM_UP_SECONDS = float(os.environ.get("WARM_UP_SECONDS", "90"))


def total_rss(root: psutil.Process) -> int:
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def test_memory_is_flat_under_steady_load(bentoml_home, tmp_path) -> None:  # noqa: ANN001
    # a small cache bound, reached during warm-up, so the cache's own growth is not mistaken for a leak
    server = start_server(bentoml_home, tmp_path, env={"CACHE_MAX_ENTRIES": "500"})
    root = psutil.Process(server.proc.pid)
    samples: list[tuple[float, int]] = []

    def texts(u: int, i: int) -> list[str]:
        return ["I love you!", "I hate you!"] if i % 2 else [f"soak {u} {i} {j}" for j in range(4)]

    async def scrape_now_and_then(client: httpx.AsyncClient, exchange: Exchange) -> None:
        if exchange.index % 10 == 0:
            await client.get(f"{server.url}/metrics")

    start = time.monotonic()
    try:
        with BackgroundClients(server.url, 6, texts, after_each=scrape_now_and_then, timeout=60) as clients:
            # one memory sample per 300 requests served (about every 2 s here), until the soak's time is up
            while (elapsed := time.monotonic() - start) < WARM_UP_SECONDS + SOAK_SECONDS:
                samples.append((elapsed, total_rss(root)))
                served = clients.answered() + 300
                wait_until(lambda: clients.answered() >= served, timeout=60, what="300 more requests served")
    finally:
        server.stop()
    statuses = clients.statuses()

    steady = [rss for t, rss in samples if t >= WARM_UP_SECONDS]
    drift = (max(steady) - min(steady)) / min(steady)
    first, last = steady[0], steady[-1]
    print(
        f"\n{sum(statuses.values())} requests in {WARM_UP_SECONDS + SOAK_SECONDS:.0f} s {statuses}; resident memory after warm-up "
        f"{min(steady) / 2**20:.0f}-{max(steady) / 2**20:.0f} MiB (spread {drift:.1%}, first {first / 2**20:.0f}, last {last / 2**20:.0f} MiB)"
    )
    assert set(statuses) == {200}
    assert drift <= 0.05

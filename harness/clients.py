"""Concurrent closed-loop clients of the API: each user sends its next request when the
previous one is answered. One implementation for every test and load run that needs
traffic, in the foreground (`closed_loop`) or behind another check (`BackgroundClients`)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Exchange:
    user: int
    index: int  # the user's request number
    texts: list[str]
    response: httpx.Response
    seconds: float  # as the client saw it


async def closed_loop(
    url: str,
    users: int,
    texts_for: Callable[[int, int], list[str]],
    *,
    requests_per_user: int | None = None,
    max_seconds: float = 120.0,
    stop: threading.Event | None = None,
    after_each: Callable[[httpx.AsyncClient, Exchange], Awaitable[None]] | None = None,
    on_exchange: Callable[[Exchange], None] | None = None,
    timeout: float = 120.0,
) -> list[Exchange]:
    """`users` users POST `{"text": texts_for(user, i)}` to `url`/predict until each has sent
    `requests_per_user`, `max_seconds` have passed, or `stop` is set (whichever comes first)."""
    exchanges: list[Exchange] = []
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:

        async def user(u: int) -> None:
            i = 0
            while (requests_per_user is None or i < requests_per_user) and time.monotonic() < deadline:
                if stop is not None and stop.is_set():
                    return
                texts = texts_for(u, i)
                start = time.perf_counter()
                response = await client.post(f"{url}/predict", json={"text": texts})
                exchange = Exchange(u, i, texts, response, time.perf_counter() - start)
                exchanges.append(exchange)
                if on_exchange is not None:
                    on_exchange(exchange)
                if after_each is not None:
                    await after_each(client, exchange)
                i += 1

        await asyncio.gather(*(user(u) for u in range(users)))
    return exchanges


class BackgroundClients:
    """`closed_loop` in a thread while the caller does something else; stops on exit.

        with BackgroundClients(url, 8, texts_for) as clients:
            wait_until(lambda: clients.answered() >= 50, 60)
            ...  # kill Redis, sample memory, ...
        statuses = clients.statuses()
    """

    def __init__(self, url: str, users: int, texts_for: Callable[[int, int], list[str]], **options: object) -> None:
        self._stop = threading.Event()
        self._count = 0
        self._lock = threading.Lock()
        self.exchanges: list[Exchange] = []
        options.setdefault("max_seconds", 3600.0)  # until stopped
        run = closed_loop(url, users, texts_for, stop=self._stop, on_exchange=self._counted, **options)  # type: ignore[arg-type]
        self._thread = threading.Thread(target=lambda: self.exchanges.extend(asyncio.run(run)), daemon=True)

    def _counted(self, _: Exchange) -> None:
        with self._lock:
            self._count += 1

    def answered(self) -> int:
        """Requests answered so far (readable while the clients run)."""
        with self._lock:
            return self._count

    def statuses(self) -> dict[int, int]:
        """Status code -> count, once stopped."""
        codes = [e.response.status_code for e in self.exchanges]
        return {code: codes.count(code) for code in set(codes)}

    def __enter__(self) -> BackgroundClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

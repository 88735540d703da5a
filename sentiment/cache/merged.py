"""One Redis call for many requests: lookups of one event-loop pass leave as one MGET, the write-backs of one batch as one pipeline.

Why: every request looked its texts up and wrote its scores back on its own, and a Redis
call costs the event loop about 0.15-0.2 ms of CPU (redis-py's asyncio client: pool,
retry and timeout wrappers, a syscall each way) whatever it carries. Under 32 one-text
clients that was 64 calls per batch, on the cores the model needs. Here:

- `get_many`: the lookups made in one pass of the event loop (requests whose bytes
  arrived together reach their lookup in the same pass) leave as one call, made by the
  first of them once the pass is over: a lone request waits one pass, and makes its
  call itself, as before.
- `set_many`: writes wait `write_delay_s` and leave together. A batch publishes all
  its requests' scores at once, so its write-backs are one call; and the delay lets
  the answers go out before the write-back takes the event loop. Each writer returns
  once its own scores have landed, as before (the cache forgets its in-flight entry
  only then).

Failures stay the wrapped backend's (every Redis trouble is a miss there). A caller that
goes away cancels only its own wait, never a call other requests share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from .backends import CacheBackend

# after a batch's answers have been written to their sockets: uvloop's timers have a resolution of 1 ms
WRITE_DELAY_S = 0.001


@dataclass
class _Round:
    """The keys (or items) of one shared call, and the future its callers wait on."""

    future: asyncio.Future
    keys: dict[str, None] = field(default_factory=dict)  # lookups: each distinct key once, in order
    items: dict[int, dict[str, bytes]] = field(default_factory=dict)  # writes: items per TTL


class MergedCalls:
    """A cache backend whose concurrent lookups and write-backs share calls to the wrapped one."""

    def __init__(self, backend: CacheBackend, write_delay_s: float = WRITE_DELAY_S) -> None:
        self.backend = backend
        self.name = backend.name
        self.write_delay_s = write_delay_s
        self._lookup: _Round | None = None
        self._write: _Round | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # referenced until done

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        lookup = self._lookup
        if lookup is not None:  # the first lookup of this pass has not left yet: go with it
            lookup.keys.update(dict.fromkeys(keys))
            values = await asyncio.shield(lookup.future)
            return [values[key] for key in keys]
        # The first lookup of a pass makes the call itself (no task of its own: a lone request pays
        # one pass), for every lookup that joined it meanwhile.
        lookup = self._lookup = _Round(asyncio.get_running_loop().create_future(), dict.fromkeys(keys))
        try:
            await asyncio.sleep(0)  # the other requests of this pass reach their lookup
            self._lookup = None
            values = await self._get(list(lookup.keys))
        except asyncio.CancelledError:  # this caller went away: the call goes on for the others
            if self._lookup is lookup:
                self._lookup = None
            if not lookup.future.done():
                self._start(_settle(lookup.future, self._get(list(lookup.keys))))
            raise
        except Exception as exc:  # noqa: BLE001 - the others get the shared call's error too
            lookup.future.set_exception(exc)
            lookup.future.exception()  # retrieved: the others, if any, get it from the future
            raise
        lookup.future.set_result(values)
        return [values[key] for key in keys]

    async def set_many(self, items: dict[str, bytes], ttl_s: int) -> None:
        if not items:
            return
        if self._write is None:
            loop = asyncio.get_running_loop()
            self._write = _Round(loop.create_future())
            self._write_timer = loop.call_later(self.write_delay_s, lambda: self._start(self._write_call()))
        write = self._write
        write.items.setdefault(ttl_s, {}).update(items)
        await asyncio.shield(write.future)

    def _start(self, call: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(call)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _get(self, keys: list[str]) -> dict[str, bytes | None]:
        return dict(zip(keys, await self.backend.get_many(keys)))

    async def _write_call(self) -> None:
        write, self._write, self._write_timer = self._write, None, None
        assert write is not None
        await _settle(write.future, self._set(write.items))

    async def _set(self, items: dict[int, dict[str, bytes]]) -> None:
        for ttl_s, by_key in items.items():  # one TTL in practice: the cache's
            await self.backend.set_many(by_key, ttl_s)

    async def flush(self) -> None:
        """Write what waits now, and wait for every shared call in flight."""
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._start(self._write_call())
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.flush()
        await self.backend.close()


async def _settle(future: asyncio.Future, call: Coroutine[Any, Any, Any]) -> None:
    """The call's result or error, for every caller waiting on `future`."""
    try:
        result = await call
    except asyncio.CancelledError:
        future.cancel()
        raise
    except Exception as exc:  # noqa: BLE001 - every caller gets the shared call's own error
        future.set_exception(exc)
        future.exception()  # retrieved: the callers, if any, get it from the future
        return
    future.set_result(result)

"""The model in the public worker (MODEL_PLACEMENT=inline): a call is a batch on the engine's own thread.

The call merger in front of it (sentiment/batching/merging.py) keeps one call in
flight, so batches form as they do in the model service: the texts of the requests
that arrive while one batch runs leave together as the next. The engine runs on one
thread of its own; OpenVINO and torch release the GIL while they compute, so the
event loop goes on reading, tokenizing and answering requests meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class InlineModel:
    """`await model(ids)` runs `run(ids)` (token ids -> logits rows) on the engine's thread."""

    def __init__(self, run: Callable[[list[Any]], Sequence[Any]]) -> None:
        self._run = run
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")

    async def __call__(self, items: list[Any]) -> Sequence[Any]:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._run, items)

    def close(self) -> None:
        self._thread.shutdown(wait=True)  # a batch already running finishes

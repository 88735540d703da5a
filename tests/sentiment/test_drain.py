"""The model worker's SIGTERM waits until it is idle, and refuses to start where it could not."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from sentiment.drain import ActivityTracker, defer_sigterm_until_idle

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


class Server:  # stands in for uvicorn.Server: same qualified name of the handler
    def __init__(self) -> None:
        self.exits: list[int] = []

    def handle_exit(self, sig: int, frame: object) -> None:
        self.exits.append(sig)


@pytest.fixture
def restore_sigterm():  # noqa: ANN201
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.usefixtures("restore_sigterm")
def test_sigterm_reaches_the_server_only_once_idle() -> None:
    async def scenario() -> None:
        server, busy = Server(), ActivityTracker()
        signal.signal(signal.SIGTERM, server.handle_exit)
        defer_sigterm_until_idle(lambda: busy.idle_for(0.0), max_wait_s=30, poll_s=0.01)
        with busy:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(20):
                await asyncio.sleep(0.01)
            assert server.exits == []  # a batch is running: not yet
        for _ in range(100):
            if server.exits:
                break
            await asyncio.sleep(0.01)
        assert server.exits == [signal.SIGTERM]

    asyncio.run(scenario())


@pytest.mark.usefixtures("restore_sigterm")
def test_refuses_to_install_over_an_unknown_handler() -> None:
    async def scenario() -> None:
        signal.signal(signal.SIGTERM, lambda *_: None)
        with pytest.raises(RuntimeError, match="not uvicorn's Server.handle_exit"):
            defer_sigterm_until_idle(lambda: True, max_wait_s=1)

    asyncio.run(scenario())


def test_bentoml_still_creates_services_inside_uvicorn_s_signal_capture() -> None:
    """Tripwire on the two upstream facts the drain relies on (read from the installed sources)."""
    import inspect

    import uvicorn.server
    from _bentoml_impl.server.app import ServiceAppFactory

    assert "signal.signal(sig, self.handle_exit)" in inspect.getsource(uvicorn.server.Server.capture_signals)
    assert "self.service()" in inspect.getsource(ServiceAppFactory.create_instance)

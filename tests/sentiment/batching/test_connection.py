"""The tripwire on the connection to the model service: BentoML's remote proxy, never recycled, or no start."""

from __future__ import annotations

import asyncio

import pytest
from _bentoml_impl.client import RemoteProxy

from sentiment.batching.connection import NEVER_RECYCLE, check_never_recycled

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def proxy(**limits: float) -> RemoteProxy:
    """BentoML's proxy as a dependency gets it, with the session limits it read from runner_connection."""
    made = RemoteProxy("http://127.0.0.1:1")  # never connects: the check reads configuration only
    for name, value in limits.items():
        setattr(made._async._session_manager, name, value)
    return made


def close(made: RemoteProxy) -> None:
    asyncio.run(made.close())


def test_a_proxy_that_never_recycles_passes() -> None:
    made = proxy(**NEVER_RECYCLE)
    check_never_recycled(made)
    close(made)


def test_bentoml_s_default_recycling_fails() -> None:
    made = proxy()  # 100 requests / 300 s: what BentoML does without runner_connection
    with pytest.raises(RuntimeError, match="recycles its connection"):
        check_never_recycled(made)
    close(made)


def test_a_proxy_without_the_session_manager_fails() -> None:
    made = proxy(**NEVER_RECYCLE)
    sessions = made._async._session_manager
    del made._async._session_manager  # an upgrade that renamed it
    with pytest.raises(RuntimeError, match="_session_manager"):
        check_never_recycled(made)
    made._async._session_manager = sessions
    close(made)


@pytest.mark.parametrize("dependency", [object(), None, "http://127.0.0.1:1"])
def test_anything_but_bentoml_s_remote_proxy_fails(dependency: object) -> None:
    with pytest.raises(RuntimeError, match="not BentoML's RemoteProxy"):
        check_never_recycled(dependency)


class FlakyClient:
    """BentoML's async client to the model service, whose worker dies under the first `drops` calls."""

    def __init__(self, drops: int, ready_after: int = 0, error: type[Exception] | None = None) -> None:
        self.drops, self.ready_after, self.calls, self.readiness_checks = drops, ready_after, 0, 0
        self.error = error

    async def call(self, endpoint: str, ids: list[list[int]]) -> list[list[float]]:
        import aiohttp

        self.calls += 1
        if self.error is not None:
            raise self.error("the model service answered with an error")
        if self.calls <= self.drops:
            raise aiohttp.ServerDisconnectedError()
        return [[0.0, 1.0] for _ in ids]

    async def is_ready(self, timeout: int | None = None) -> bool:
        self.readiness_checks += 1
        return self.readiness_checks > self.ready_after


def test_a_call_dropped_by_a_dying_worker_is_sent_again_once_the_service_is_ready() -> None:
    from sentiment.batching.connection import ModelService

    client = FlakyClient(drops=1, ready_after=3)  # respawned: /readyz answers 200 on the 4th check
    assert asyncio.run(ModelService(client, "classify", retry_within_s=10, poll_s=0)([[1, 2]])) == [[0.0, 1.0]]
    assert client.calls == 2 and client.readiness_checks == 4


def test_a_service_that_does_not_come_back_in_time_is_unavailable_not_an_error() -> None:
    from sentiment.batching.connection import ModelService, ModelUnavailable

    never = FlakyClient(drops=1, ready_after=10**9)
    with pytest.raises(ModelUnavailable, match="not answering"):
        asyncio.run(ModelService(never, "classify", retry_within_s=0.05, poll_s=0.01)([[1, 2]]))
    assert never.calls == 1  # no second call to a service that is not ready
    twice = FlakyClient(drops=2)
    with pytest.raises(ModelUnavailable):
        asyncio.run(ModelService(twice, "classify", retry_within_s=10, poll_s=0)([[1, 2]]))
    assert twice.calls == 2  # retried once, never more


def test_an_error_the_model_service_answered_is_not_retried() -> None:
    from bentoml.exceptions import ServiceUnavailable

    from sentiment.batching.connection import ModelService

    client = FlakyClient(drops=0, error=ServiceUnavailable)
    with pytest.raises(ServiceUnavailable):
        asyncio.run(ModelService(client, "classify", retry_within_s=10, poll_s=0)([[1, 2]]))
    assert client.calls == 1 and client.readiness_checks == 0

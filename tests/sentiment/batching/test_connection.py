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

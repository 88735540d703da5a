"""Settings from the environment, and the deprecated name of ENGINE_THREADS."""

from __future__ import annotations

import pytest

from sentiment.settings import Settings

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def test_engine_threads_from_its_own_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_THREADS", "3")
    assert Settings().engine_threads == 3


def test_torch_threads_still_works_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_THREADS", "2")
    with pytest.warns(DeprecationWarning, match="TORCH_THREADS is deprecated: use ENGINE_THREADS"):
        assert Settings().engine_threads == 2
    monkeypatch.setenv("ENGINE_THREADS", "1")  # the new name wins when both are set
    with pytest.warns(DeprecationWarning):
        assert Settings().engine_threads == 1

"""Cores and instruction sets the engines get."""

from __future__ import annotations

import pytest
import torch

from sentiment.model.cpu import available_cpus, configure_torch_threads, engine_threads

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)


def test_threads_follow_available_cores() -> None:
    cores = available_cpus()
    assert 1 <= cores
    assert configure_torch_threads() == cores == torch.get_num_threads() == engine_threads()
    assert configure_torch_threads(requested=1) == 1 == torch.get_num_threads()
    assert engine_threads(requested=3) == 3
    configure_torch_threads()

"""The API key file: format, reload, failing closed (the middleware through a real serve: tests/test_auth.py)."""

from __future__ import annotations

import os
import shutil

import pytest
from prometheus_client import generate_latest

from harness.prometheus import metric_sum, parse_metrics
from sentiment.http import auth
from sentiment.http.auth import ApiKeys

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

KEY, OTHER = "k-0123456789abcdef", "k-fedcba9876543210"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(auth, "time", fake)
    return fake


def loaded_keys() -> float:
    return metric_sum(parse_metrics(generate_latest().decode()), "sentiment_api_keys")


def test_key_file_format_and_reload(tmp_path, clock: FakeClock) -> None:  # noqa: ANN001
    path = tmp_path / "keys"
    path.write_text(f"# team keys\n\n  {KEY}  # the web team\n#{OTHER}\nwith space\n")
    keys = ApiKeys(path, check_every_s=0)
    assert keys.valid(KEY.encode()) and not keys.valid(OTHER.encode()) and not keys.valid(b"")
    assert not keys.valid(f"{KEY}  # the web team".encode()) and not keys.valid(b"with space") and not keys.valid(b"with")
    assert loaded_keys() == 1
    path.write_text(f"{OTHER}\n{KEY}#not-a-comment\n")
    os.utime(path, ns=(1, 1))  # a new mtime even within the filesystem's timestamp resolution
    assert keys.valid(OTHER.encode()) and not keys.valid(KEY.encode()) and keys.valid(f"{KEY}#not-a-comment".encode())
    with pytest.raises(RuntimeError, match="cannot be read"):
        ApiKeys(tmp_path / "absent")


@pytest.mark.parametrize("break_it", ["removed", "a directory", "not UTF-8"])
def test_an_unreadable_key_file_closes_the_api_after_the_grace_period(tmp_path, clock: FakeClock, break_it: str) -> None:  # noqa: ANN001
    path = tmp_path / "keys"
    path.write_text(f"{KEY}\n")
    keys = ApiKeys(path, check_every_s=0, grace_s=5)
    if break_it == "removed":
        path.unlink()
    elif break_it == "a directory":
        path.unlink()
        path.mkdir()
    else:
        path.write_bytes(b"\xff\xfe" + KEY.encode() + b"\n")
    assert keys.valid(KEY.encode()) and not keys.closed  # within the grace period: a Secret being swapped
    clock.now += 4.9
    assert keys.valid(KEY.encode())
    clock.now += 0.2
    assert not keys.valid(KEY.encode()) and keys.closed and loaded_keys() == 0  # closed: nobody gets in
    if path.is_dir():
        shutil.rmtree(path)
    path.write_text(f"{KEY}\n")
    assert keys.valid(KEY.encode()) and not keys.closed and loaded_keys() == 1  # readable again: open again

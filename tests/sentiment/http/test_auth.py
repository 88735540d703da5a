"""The API key file: format and reload (the middleware is exercised through a real serve in tests/test_auth.py)."""

from __future__ import annotations

import os

import pytest

from sentiment.http.auth import ApiKeys

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

KEY, OTHER = "k-0123456789abcdef", "k-fedcba9876543210"


def test_key_file_format_and_reload(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "keys"
    path.write_text(f"# team keys\n\n  {KEY}  \n#{OTHER}\n")
    keys = ApiKeys(path, check_every_s=0)
    assert keys.valid(KEY.encode()) and not keys.valid(OTHER.encode()) and not keys.valid(b"")
    path.write_text(f"{OTHER}\n")
    os.utime(path, ns=(1, 1))  # a new mtime even within the filesystem's timestamp resolution
    assert keys.valid(OTHER.encode()) and not keys.valid(KEY.encode())
    path.unlink()  # unreadable later: the keys loaded before stay
    assert keys.valid(OTHER.encode())
    with pytest.raises(RuntimeError, match="cannot be read"):
        ApiKeys(tmp_path / "absent")

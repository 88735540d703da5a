"""API keys: `Authorization: Bearer <key>` on every API route when `API_KEYS_FILE` is set.

The file holds one key per line (blank lines and `#` comments ignored); in
Kubernetes it is mounted from a Secret. It is re-read when it changes (checked at
most once a second), so keys rotate without a restart and a removed key stops
working within seconds. The check runs before the body is read, before load
shedding, the cache and the model: a flood of bad keys costs a header lookup and
a few hashes, never model time or queue space. Keys are compared in constant time
(as SHA-256 digests, so neither content nor length leaks through timing) and
never logged. Probes, `/metrics`, `/health`, the docs and the Swagger UI stay open.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from pathlib import Path
from typing import Any

from .. import metrics
from .errors import ErrorReply

logger = logging.getLogger(f"bentoml.{__name__}")  # under BentoML's log handlers

REALM = 'Bearer realm="sentiment"'


class ApiKeys:
    """The keys of a file, reloaded when the file changes."""

    def __init__(self, path: str | os.PathLike[str], check_every_s: float = 1.0) -> None:
        self.path = Path(path)
        self.check_every_s = check_every_s
        self._digests: list[bytes] = []
        self._stamp: tuple[int, int, int] | None = None
        self._checked = -float("inf")
        self._reload(force=True)
        if not self._digests:
            logger.warning("API_KEYS_FILE %s holds no key: every API request will be refused", self.path)

    def _reload(self, force: bool = False) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if not force and stamp == self._stamp:
                return
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            if force:
                raise RuntimeError(f"API_KEYS_FILE {self.path} cannot be read: {exc}") from exc
            logger.warning("API_KEYS_FILE %s cannot be read (%s): keeping the keys loaded before", self.path, type(exc).__name__)
            return
        keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]
        if self._stamp is not None:
            logger.info("API keys reloaded: %d key(s)", len(keys))
        self._stamp = stamp

    def valid(self, presented: bytes) -> bool:
        now = time.monotonic()
        if now - self._checked >= self.check_every_s:
            self._checked = now
            self._reload()
        digest = hashlib.sha256(presented).digest()
        matched = False
        for known in self._digests:  # no early exit: the time does not say which key matched
            matched |= hmac.compare_digest(digest, known)
        return matched


class ApiKeyMiddleware:
    def __init__(self, app: Any, keys: ApiKeys, protected_paths: frozenset[str]) -> None:  # noqa: ANN401
        self.app = app
        self.keys = keys
        self.protected_paths = protected_paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        if scope["type"] != "http" or scope.get("path") not in self.protected_paths:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if not header:
            reason, message = "missing", "missing API key: send Authorization: Bearer <key>"
        elif scheme.lower() != b"bearer" or not token.strip():
            reason, message = "malformed", "malformed Authorization header: expected Bearer <key>"
        elif not self.keys.valid(token.strip()):
            reason, message = "invalid", "invalid API key"
        else:
            await self.app(scope, receive, send)
            return
        metrics.AUTH_FAILURES.labels(reason=reason).inc()
        await ErrorReply("unauthorized", message, (("WWW-Authenticate", REALM),)).send(send)


class OpenAccessWarning:
    """Without API_KEYS_FILE: warn once when the service is reachable beyond this machine."""

    LOOPBACK = ("127.", "::1", "localhost")

    def __init__(self, app: Any) -> None:  # noqa: ANN401
        self.app = app
        self.checked = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        if not self.checked and scope["type"] == "http":
            self.checked = True
            host = str((scope.get("server") or ("",))[0])
            if not host.startswith(self.LOOPBACK):
                logger.warning(
                    "listening on %s without API keys: anyone who reaches this address can use the API "
                    "(set API_KEYS_FILE, see README)", host,
                )
        await self.app(scope, receive, send)

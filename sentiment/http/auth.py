"""API keys: `Authorization: Bearer <key>` on every API route when `API_KEYS_FILE` is set.

The file holds one key per line (blank lines and `#` comments, inline ones too,
ignored); in Kubernetes it is mounted from a Secret. Keys fail closed: a file that
cannot be read past a short grace period closes the API (503) until it can. It is re-read when it changes (checked at
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
import re
import time
from pathlib import Path
from typing import Any

from .. import metrics
from .errors import ErrorReply

logger = logging.getLogger(f"bentoml.{__name__}")  # under BentoML's log handlers

REALM = 'Bearer realm="sentiment"'
_INLINE_COMMENT = re.compile(r"\s#")


class ApiKeys:
    """The keys of a file, reloaded when the file changes; closed when it cannot be read for `grace_s`.

    One key per line; blank lines, `#` lines and inline comments (`key  # who has it`) are
    ignored, and so is a line with a space inside a key (with a warning naming the line,
    never the key). A file that disappears, turns into a directory or stops being UTF-8
    keeps the keys loaded before for `grace_s` seconds (a Secret being swapped), then
    closes the API: every request is refused with 503 until the file can be read again.
    """

    def __init__(self, path: str | os.PathLike[str], check_every_s: float = 1.0, grace_s: float = 5.0) -> None:
        self.path = Path(path)
        self.check_every_s = check_every_s
        self.grace_s = grace_s
        self._digests: list[bytes] = []
        self._stamp: tuple[int, int, int] | None = None
        self._checked = -float("inf")
        self._unreadable_since: float | None = None
        self.closed = False
        self._reload(force=True)
        if not self._digests:
            logger.warning("API_KEYS_FILE %s holds no key: every API request will be refused", self.path)

    def _reload(self, force: bool = False) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if not force and stamp == self._stamp and self._unreadable_since is None:
                return
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            if force:
                raise RuntimeError(f"API_KEYS_FILE {self.path} cannot be read: {exc}") from exc
            self._unreadable(type(exc).__name__)
            return
        keys = []
        for number, line in enumerate(lines, start=1):
            key = _INLINE_COMMENT.split(line, maxsplit=1)[0].strip()
            if not key or key.startswith("#"):
                continue
            if any(c.isspace() for c in key):
                logger.warning("API_KEYS_FILE %s line %d ignored: a key has no spaces in it", self.path, number)
                continue
            keys.append(key)
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]
        if self.closed or self._unreadable_since is not None:
            logger.warning("API_KEYS_FILE %s can be read again: %d key(s); the API is open to them", self.path, len(keys))
        elif self._stamp is not None:
            logger.info("API keys reloaded: %d key(s)", len(keys))
        self._stamp, self._unreadable_since, self.closed = stamp, None, False
        metrics.API_KEYS.set(len(keys))

    def _unreadable(self, why: str) -> None:
        now = time.monotonic()
        if self._unreadable_since is None:
            self._unreadable_since = now
            logger.warning("API_KEYS_FILE %s cannot be read (%s): keeping the keys loaded before for %gs", self.path, why, self.grace_s)
        if not self.closed and now - self._unreadable_since >= self.grace_s:
            self.closed, self._digests = True, []
            metrics.API_KEYS.set(0)
            logger.error("API_KEYS_FILE %s unreadable for %gs (%s): the API is closed (503) until it can be read", self.path, self.grace_s, why)

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
        headers = [value for name, value in scope.get("headers") or [] if name.lower() == b"authorization"]
        if len(headers) > 1:  # which one counts would differ between proxies and this server
            metrics.AUTH_FAILURES.labels(reason="several").inc()
            await ErrorReply("several_credentials", "send one Authorization header, not several").send(send, close=True)
            return
        header = headers[0] if headers else b""
        scheme, _, token = header.partition(b" ")
        if not header:
            reason, message = "missing", "missing API key: send Authorization: Bearer <key>"
        elif scheme.lower() != b"bearer" or not token.strip():
            reason, message = "malformed", "malformed Authorization header: expected Bearer <key>"
        elif self.keys.valid(token.strip()):
            await self.app(scope, receive, send)
            return
        elif self.keys.closed:
            metrics.AUTH_FAILURES.labels(reason="keys_unavailable").inc()
            await ErrorReply("keys_unavailable", "the API keys cannot be read: the API is closed, retry later").send(send)
            return
        else:
            reason, message = "invalid", "invalid API key"
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

"""Load shedding: a bound on texts waiting for the model, so overload is refused fast.

Without it, every request past the machine's capacity joins the batch queue and
waits until BentoML's deadline answers 503 — tens of seconds later, after
having slowed down every request behind it. With it, a request whose texts would
push the queue past `MAX_QUEUED_TEXTS` is answered 503 with `Retry-After` at
once, and accepted requests keep a latency of about one queue's worth of work.

Two checkpoints, one answer (`overloaded_response`): while the queue is full, the
HTTP middleware refuses API requests before even reading them (the cheapest
possible answer); otherwise the cache admits the texts a request will really send
to the model (`PredictionCache.get_or_compute`: not those found in the cache, not
those another request is already computing), so a request answered entirely from
the cache, or by computations already in flight, is never shed.
"""

from __future__ import annotations

from typing import Any

from . import metrics


class Overloaded(Exception):
    """More texts than the queue bound would be waiting for the model."""


class Permit:
    """Queue space for `texts` texts, owned by the computation that sends them; released
    once (as a context manager, or by `release`), however the computation ends."""

    def __init__(self, admission: TextAdmission, texts: int) -> None:
        self._admission = admission
        self.texts = texts
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._admission._release(self.texts)

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class TextAdmission:
    def __init__(self, max_queued_texts: int) -> None:
        self.max_queued_texts = max_queued_texts
        self.queued = 0

    @property
    def full(self) -> bool:
        return self.queued >= self.max_queued_texts

    def acquire(self, texts: int) -> Permit:
        """A permit for `texts` texts the caller will really send to the model, or Overloaded.

        An idle model always takes a request, even one larger than the bound.
        """
        if self.queued and self.queued + texts > self.max_queued_texts:
            raise Overloaded(f"more than {self.max_queued_texts} texts waiting for the model")
        self.queued += texts
        metrics.QUEUED_TEXTS.inc(texts)
        return Permit(self, texts)

    def _release(self, texts: int) -> None:
        self.queued -= texts
        metrics.QUEUED_TEXTS.dec(texts)

    def overloaded_response(self, retry_after_s: int) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, headers) of every overload answer, from either checkpoint."""
        metrics.SHED_REQUESTS.inc()
        body = {"error": f"overloaded: more than {self.max_queued_texts} texts waiting for the model, retry later"}
        return 503, body, {"Retry-After": str(retry_after_s)}

"""Admission: a bound on texts waiting for the model, so overload is refused fast.

Without it, every request past the machine's capacity joins the batch queue and
waits until BentoML's deadline answers 503 — tens of seconds later, after
having slowed down every request behind it. With it, a request whose texts would
push the queue past `MAX_QUEUED_TEXTS` is refused at once, and accepted requests
keep a latency of about one queue's worth of work.

Two checkpoints, one decision here: while the queue is full, the HTTP middleware
refuses API requests before even reading them (`refuse_while_full`, the cheapest
possible answer); otherwise the prediction cache asks for a permit for exactly the
texts a request will send to the model (`acquire`: not those found in the cache,
not those another request is already computing), so a request answered entirely
from the cache, or by computations already in flight, is never shed. Both raise
`Overloaded`, counted here; `sentiment/http/errors.py` turns it into the one 503.
"""

from __future__ import annotations

from .. import metrics


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
    """Texts admitted and not yet answered by the model, against `max_queued_texts` (one per public worker)."""

    def __init__(self, max_queued_texts: int) -> None:
        self.max_queued_texts = max_queued_texts
        self.queued = 0

    def refuse_while_full(self) -> None:
        """Raise Overloaded while the queue is full (before a request is even read)."""
        if self.queued >= self.max_queued_texts:
            raise self._overloaded()

    def acquire(self, texts: int) -> Permit:
        """A permit for `texts` texts the caller will really send to the model, or Overloaded.

        An idle model always takes a request, even one larger than the bound.
        """
        if self.queued and self.queued + texts > self.max_queued_texts:
            raise self._overloaded()
        self.queued += texts
        metrics.QUEUED_TEXTS.inc(texts)
        return Permit(self, texts)

    def _release(self, texts: int) -> None:
        self.queued -= texts
        metrics.QUEUED_TEXTS.dec(texts)

    def _overloaded(self) -> Overloaded:
        metrics.SHED_REQUESTS.inc()
        return Overloaded(f"overloaded: more than {self.max_queued_texts} texts waiting for the model, retry later")

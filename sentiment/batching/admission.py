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

from prometheus_client import Gauge

from .. import metrics


class Overloaded(Exception):
    """More texts than the queue bound would be waiting for the model."""


class Permit:
    """Room for `amount` units of work, owned by whoever does the work; released once (as a
    context manager, or by `release`), however the work ends."""

    def __init__(self, budget: Budget, amount: int) -> None:
        self._budget = budget
        self.amount = amount
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._budget._release(self.amount)

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Budget:
    """Work admitted and not yet done, against a bound (one per public worker)."""

    def __init__(self, limit: int, what: str, gauge: Gauge) -> None:
        self.limit = limit
        self.what = what  # "texts waiting for the model"
        self.gauge = gauge
        self.queued = 0

    def refuse_while_full(self) -> None:
        """Raise Overloaded while the budget is spent (before a request is even read)."""
        if self.queued >= self.limit:
            raise self._overloaded()

    def acquire(self, amount: int) -> Permit:
        """A permit for `amount` units, or Overloaded. Idle, it admits any amount, even one over the bound."""
        if self.queued and self.queued + amount > self.limit:
            raise self._overloaded()
        self.queued += amount
        self.gauge.inc(amount)
        return Permit(self, amount)

    def _release(self, amount: int) -> None:
        self.queued -= amount
        self.gauge.dec(amount)

    def _overloaded(self) -> Overloaded:
        metrics.SHED_REQUESTS.inc()
        return Overloaded(f"overloaded: more than {self.limit} {self.what}, retry later")


class TextAdmission(Budget):
    """Texts admitted and not yet answered by the model (MAX_QUEUED_TEXTS)."""

    def __init__(self, max_queued_texts: int) -> None:
        super().__init__(max_queued_texts, "texts waiting for the model", metrics.QUEUED_TEXTS)


class CharAdmission(Budget):
    """Characters of texts being tokenized (MAX_TOKENIZING_CHARS)."""

    def __init__(self, max_chars: int) -> None:
        super().__init__(max_chars, "characters being tokenized", metrics.TOKENIZING_CHARS)

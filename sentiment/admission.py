"""Load shedding: a bound on texts waiting for the model, so overload is refused fast.

Without it, every request past the machine's capacity joins the batch queue and
waits until BentoML's deadline answers 503 — tens of seconds later, after
having slowed down every request behind it. With it, a request whose texts would
push the queue past `MAX_QUEUED_TEXTS` is answered 503 with `Retry-After` at
once, and accepted requests keep a latency of about one queue's worth of work.

Two checkpoints: while the queue is full, the HTTP middleware refuses API
requests before even reading them (the cheapest possible answer); otherwise
`predict` admits a request's cache misses if they fit, so a request answered
entirely from the cache is never shed.
"""

from __future__ import annotations

from . import metrics


class TextAdmission:
    def __init__(self, max_queued_texts: int) -> None:
        self.max_queued_texts = max_queued_texts
        self.queued = 0

    @property
    def full(self) -> bool:
        return self.queued >= self.max_queued_texts

    def try_acquire(self, texts: int) -> bool:
        # An idle model always takes a request, even one larger than the bound.
        if self.queued and self.queued + texts > self.max_queued_texts:
            return False
        self.queued += texts
        metrics.QUEUED_TEXTS.inc(texts)
        return True

    def release(self, texts: int) -> None:
        self.queued -= texts
        metrics.QUEUED_TEXTS.dec(texts)

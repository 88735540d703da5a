"""When the next model call leaves: at once, or once the requests the last call answered are back.

Why: with one call in flight (merging.py), clients that send again as soon as they
are answered split into two cohorts: one being computed while the other is answered
and sends again. 32 one-text clients ran batches of 11 to 16 texts, the model and
the HTTP work of the other cohort fighting for the same cores. Waiting for the cohort
just answered lets the two merge: batches of 31 texts for 32 clients, the model
running alone on the cores while requests are answered and read, and no fewer
requests a second (README, "Adaptive batching").

The wait is bounded three ways, so that it costs nothing where nobody comes back:

* it only waits for as many requests as the last call answered plus those already
  waiting (a lone client is never held: it is the one the last call answered);
* it stops when requests stop arriving: no arrival, and no request being handled by
  the event loop, for a tenth of the last call's time (`GAP_FRACTION`);
* it never lasts longer than `max_wait` times the last call's time, and a call leaves
  at once when it holds `max_items` texts, so under overload batches only grow.

The decision is a value: `Regroup.wait_s` says how long the merger may still hold
the texts back (0: send now) and `departure` why a call left, counted in
`sentiment_batch_departures` so that operators and tests see the policy at work.
"""

from __future__ import annotations

from dataclasses import dataclass

GAP_FRACTION = 0.1  # of the last call's time: longer without an arrival, nobody else is coming

# why a call left (the `reason` label of sentiment_batch_departures)
AT_ONCE = "at_once"  # nobody else expected: a lone request, or the model was idle
REGROUPED = "regrouped"  # every request expected is waiting
FULL = "full"  # max_items texts are waiting
GAP = "gap"  # requests stopped arriving
BOUND = "bound"  # waited as long as allowed
REASONS = (AT_ONCE, REGROUPED, FULL, GAP, BOUND)


@dataclass
class Regroup:
    """The merger's wait before a call, learned from the last call (times from time.perf_counter)."""

    max_wait: float  # a multiple of the last call's time; 0: never wait
    expected = 0  # requests the next call should carry: the last call's and those waiting when it returned
    until = 0.0  # no waiting past this
    gap_s = 0.0
    last_activity = 0.0  # an arrival, a call's return, or the event loop busy with requests

    def call_returned(self, answered: int, waiting: int, duration_s: float, now: float) -> None:
        self.expected = answered + waiting
        self.until = now + self.max_wait * duration_s
        self.gap_s = GAP_FRACTION * duration_s
        self.last_activity = now

    def activity(self, now: float) -> None:
        self.last_activity = max(self.last_activity, now)

    def wait_s(self, waiting: int, items: int, max_items: int, now: float) -> float:
        """How much longer the texts of `waiting` requests (`items` texts) may wait for others; 0: send now."""
        if items >= max_items or waiting >= self.expected or now >= self.until:
            return 0.0
        quiet_until = self.last_activity + self.gap_s
        return max(0.0, min(quiet_until, self.until) - now)

    def departure(self, waiting: int, items: int, max_items: int, now: float, waited: bool) -> str:
        """Why a call leaves now (after `wait_s` said 0)."""
        if items >= max_items:
            return FULL
        if not waited:
            return AT_ONCE
        if waiting >= self.expected:
            return REGROUPED
        return BOUND if now >= self.until else GAP

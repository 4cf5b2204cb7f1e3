"""Adaptive concurrency: AIMD on the requests in flight to one backend (HTTP servers).

The width (requests allowed in flight) starts at the configured maximum, so a server that keeps
up is never slowed down, and then follows additive increase / multiplicative decrease (the TCP
congestion-avoidance rule, Chiu & Jain 1989):
- an overload answer (429 or 503) to a request sent at the current width halves the width
  (never below `min_width`); the other overload answers of that same burst (requests sent before
  the decrease) do not halve it again;
- after each window of `width` answers whose mean latency is within `latency_tolerance` x the
  lowest window mean seen so far, the width grows by one (never above `max_width`); a window
  whose latency has grown beyond that (the server queues) leaves it where it is.

`AIMD` is the pure rule (no clock, no asyncio: tests drive it with a simulated server);
`AdaptiveGate` applies it to coroutines.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field

OVERLOAD_STATUSES = frozenset({429, 503})


@dataclass
class AIMD:
    """The width rule. Call `sent()` when a request is sent (keep its token), then `answered()`."""

    max_width: int
    min_width: int = 1
    decrease: float = 0.5
    latency_tolerance: float = 2.0
    width: int = 0
    """The current width; 0 at construction means start at `max_width`."""
    epoch: int = 0
    """Incremented at each decrease: a request's token is the epoch it was sent in."""
    decreases: int = 0
    lowest_width: int = 0
    _baseline: float = math.inf
    _window: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.max_width < 1 or not 1 <= self.min_width <= self.max_width:
            raise ValueError(f"need 1 <= min_width ({self.min_width}) <= max_width ({self.max_width})")
        if not 0 < self.decrease < 1 or self.latency_tolerance < 1:
            raise ValueError("need 0 < decrease < 1 and latency_tolerance >= 1")
        self.width = self.width or self.max_width
        self.lowest_width = self.lowest_width or self.width

    def sent(self) -> int:
        return self.epoch

    def answered(self, token: int, *, overload: bool, latency_s: float | None = None) -> None:
        """One answer: `overload` for a 429/503; `latency_s` of a success (None: not counted)."""
        if overload:
            if token == self.epoch:  # sent at the current width: this width is too wide
                self.width = max(self.min_width, math.floor(self.width * self.decrease))
                self.epoch += 1
                self.decreases += 1
                self.lowest_width = min(self.lowest_width, self.width)
                self._window.clear()
            return
        if latency_s is None:
            return
        self._window.append(latency_s)
        if len(self._window) < self.width:
            return
        mean = sum(self._window) / len(self._window)
        self._window.clear()
        self._baseline = min(self._baseline, mean)
        if mean <= self.latency_tolerance * self._baseline and self.width < self.max_width:
            self.width += 1


class AdaptiveGate:
    """At most `rule.width` coroutines in flight (one event loop); the rule sees every answer."""

    def __init__(self, rule: AIMD) -> None:
        self.rule = rule
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> int:
        """Wait for a free slot; returns the token to give back to `release`."""
        while self.in_flight >= self.rule.width:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        self.in_flight += 1
        return self.rule.sent()

    def release(self, token: int, *, overload: bool, latency_s: float | None) -> None:
        """Free the slot and tell the rule how the request went (synchronous: safe in `finally`)."""
        self.in_flight -= 1
        self.rule.answered(token, overload=overload, latency_s=latency_s)
        free = self.rule.width - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

"""Rate limits on the injectable clock: the till's push limit (a token bucket) and the
reconciler's query pace (a sliding window)."""

from __future__ import annotations

import math
from collections import deque

from smartduka_tui.clock import Clock


class TokenBucket:
    """A token bucket: `capacity` tokens, refilled at `rate_per_s`, read from `clock.monotonic()`.

    Used for the per-till STK push limit: capacity = pushes per minute, refilled over a minute.
    """

    def __init__(self, clock: Clock, capacity: float, rate_per_s: float, used: float = 0) -> None:
        if capacity < 1 or rate_per_s <= 0:
            raise ValueError("a token bucket needs capacity >= 1 and a positive rate")
        self._clock = clock
        self.capacity = capacity
        self.rate_per_s = rate_per_s
        self._tokens = max(0.0, capacity - used)
        self._stamp = clock.monotonic()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate_per_s)
        self._stamp = now

    def try_take(self) -> float:
        """Take a token if one is there and return 0; else return the seconds until one is."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate_per_s

    def give_back(self) -> None:
        """Return a token taken for work that did not happen (nothing was sent)."""
        self._refill()
        self._tokens = min(self.capacity, self._tokens + 1)


class RateWindow:
    """At most `per_second` events in any window of one second (for rates below one, one event
    per 1/rate seconds), by `clock.monotonic()`. Paces the reconciler's STK queries so that the
    configured rate holds over every window, a first burst included."""

    def __init__(self, clock: Clock, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("a rate must be positive")
        self._clock = clock
        self.window_s = max(1.0, 1.0 / per_second)
        self.allowance = max(1, math.floor(per_second * self.window_s))
        self._recent: deque[float] = deque()

    async def acquire(self) -> None:
        """Wait (on the clock) until one more event fits in the window, then count it."""
        while True:
            now = self._clock.monotonic()
            while self._recent and now - self._recent[0] >= self.window_s:
                self._recent.popleft()
            if len(self._recent) < self.allowance:
                self._recent.append(now)
                return
            await self._clock.sleep(self.window_s - (now - self._recent[0]))


def whole_seconds(seconds: float) -> int:
    """A retry-after for people: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds))

"""Rate limits on the injectable clock: the till's push limit and the reconciler's query pace."""

from __future__ import annotations

import math

from smartduka_tui.clock import Clock


class TokenBucket:
    """A token bucket: `capacity` tokens, refilled at `rate_per_s`, read from `clock.monotonic()`.

    Used for the per-till STK push limit (capacity = pushes per minute, refill over a minute)
    and, through `acquire`, to pace STK queries per shortcode.
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

    async def acquire(self) -> None:
        """Wait (on the clock) until a token is there, then take it."""
        while (wait := self.try_take()) > 0:
            await self._clock.sleep(wait)


def whole_seconds(seconds: float) -> int:
    """A retry-after for people: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds))

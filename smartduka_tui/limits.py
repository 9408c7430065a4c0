"""Rate limits on the injectable clock, for the till and the relay alike: token buckets (the
till's push limit; the relay's per-key quotas) and even spacing (the reconciler's query pace).
A platform shop's pushes a minute are a bucket row in the relay's store (callback_relay.platform),
shared by every relay instance on it."""

from __future__ import annotations

import asyncio
import math

from smartduka_tui.clock import Clock


def _check_bucket(capacity: float, rate_per_s: float) -> None:
    if capacity < 1 or rate_per_s <= 0:
        raise ValueError("a token bucket needs capacity >= 1 and a positive rate")


class TokenBucket:
    """A token bucket: `capacity` tokens, refilled at `rate_per_s`, read from `clock.monotonic()`.

    The per-till STK push limit is one: capacity = pushes per minute, refilled over a minute.
    `capacity` and `rate_per_s` may be changed in place (a shop's limit was re-configured): the
    tokens already there are kept.
    """

    def __init__(self, clock: Clock, capacity: float, rate_per_s: float, used: float = 0) -> None:
        _check_bucket(capacity, rate_per_s)
        self._clock = clock
        self.capacity = capacity
        self.rate_per_s = rate_per_s
        self._tokens = max(0.0, capacity - used)
        self._stamp = clock.monotonic()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate_per_s)
        self._stamp = now

    def wait(self) -> float:
        """Seconds until a token is there (0: now), spending nothing."""
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate_per_s

    def try_take(self) -> float:
        """Take a token if one is there and return 0; else return the seconds until one is."""
        wait = self.wait()
        if not wait:
            self._tokens -= 1
        return wait

    def give_back(self) -> None:
        """Return a token taken for work that did not happen (nothing was sent)."""
        self._refill()
        self._tokens = min(self.capacity, self._tokens + 1)


class TokenBuckets:
    """One `TokenBucket` per key, each full when its key is first seen (per-till-key quotas)."""

    def __init__(self, clock: Clock, capacity: float, rate_per_s: float) -> None:
        _check_bucket(capacity, rate_per_s)
        self._clock = clock
        self._capacity = capacity
        self._rate_per_s = rate_per_s
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str) -> float:
        """Spend one of `key`'s tokens and return 0; else the seconds until one is there."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self._clock, self._capacity, self._rate_per_s)
            self._buckets[key] = bucket
        return bucket.try_take()


class Spacing:
    """Events at least 1/rate seconds apart on `clock.monotonic()`, never in bursts.

    Paces the reconciler's STK queries per shortcode: Daraja's spike arrest (an Apigee policy)
    counts in slices of a second, so even spacing is what "N per second" means to it, and any
    one-second window then holds at most N (plus one at its edge).
    """

    def __init__(self, clock: Clock, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("a rate must be positive")
        self._clock = clock
        self.interval_s = 1.0 / per_second
        self._last = -math.inf
        self._turn = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait (on the clock) until `interval_s` has passed since the last event let through.

        Callers go one at a time and the gap is measured from when the previous one actually
        went, so a late wake-up (a busy machine) never lets two through back to back.
        """
        async with self._turn:
            wait = self._last + self.interval_s - self._clock.monotonic()
            if wait > 0:
                await self._clock.sleep(wait)
            self._last = self._clock.monotonic()


def whole_seconds(seconds: float) -> int:
    """A retry-after for people: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds))

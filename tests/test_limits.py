"""The rate limits on the injectable clock."""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartduka_tui.clock import ManualClock
from smartduka_tui.limits import Spacing, TokenBucket, TokenBuckets, whole_seconds


def test_waiting_spends_nothing_and_a_changed_limit_keeps_the_tokens() -> None:
    clock = ManualClock()
    bucket = TokenBucket(clock, capacity=2, rate_per_s=1)
    assert [bucket.wait(), bucket.wait()] == [0, 0]
    assert [bucket.try_take(), bucket.try_take()] == [0, 0]
    assert bucket.wait() == pytest.approx(1.0)
    clock.advance(0.5)
    assert bucket.wait() == pytest.approx(0.5)  # half a token so far
    bucket.rate_per_s = 0.25  # the limit was lowered: the other half comes at the new rate
    assert bucket.wait() == pytest.approx(2.0)
    assert bucket.try_take() == pytest.approx(2.0)


def test_keyed_buckets_are_separate_and_refuse_a_bad_limit() -> None:
    clock = ManualClock()
    buckets = TokenBuckets(clock, capacity=1, rate_per_s=1)
    assert [buckets.take("a"), buckets.take("b")] == [0, 0]
    assert buckets.take("a") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="capacity >= 1 and a positive rate"):
        TokenBuckets(clock, capacity=0, rate_per_s=1)


def test_token_bucket_refills_over_time_and_takes_back_unused_tokens() -> None:
    clock = ManualClock()
    bucket = TokenBucket(clock, capacity=2, rate_per_s=2 / 60, used=1)
    assert bucket.try_take() == 0
    assert bucket.try_take() == pytest.approx(30)
    bucket.give_back()
    assert bucket.try_take() == 0
    clock.advance(30)
    assert bucket.try_take() == 0
    assert whole_seconds(0.2) == 1 and whole_seconds(29.01) == 30


TICK = 0.01


@given(
    rate=st.sampled_from([0.5, 1, 2.5, 5, 20]),
    gaps=st.lists(st.integers(0, 70), min_size=1, max_size=40),
)
def test_spacing_keeps_events_apart_and_any_second_within_the_rate(
    rate: float, gaps: list[int]
) -> None:
    """Callers arrive `gaps` ticks apart; the clock moves one tick at a time, so a wake-up is
    seen at most a tick late."""

    async def run() -> list[float]:
        clock = ManualClock()
        pace = Spacing(clock, rate)
        times: list[float] = []

        async def one() -> None:
            await pace.acquire()
            times.append(clock.monotonic())

        async def tick() -> None:
            for _ in range(3):
                await asyncio.sleep(0)
            clock.advance(TICK)

        tasks = []
        for gap in gaps:
            tasks.append(asyncio.create_task(one()))
            for _ in range(gap):
                await tick()
        while not all(t.done() for t in tasks):
            await tick()
        return times

    times = sorted(asyncio.run(run()))
    assert len(times) == len(gaps)
    for earlier, later in itertools.pairwise(times):
        assert later - earlier >= 1 / rate - TICK - 1e-9
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t - start < 1.0 - TICK) <= max(1, math.ceil(rate))


def test_rate_limiter_refills_at_its_rate() -> None:
    clock = ManualClock()
    limiter = TokenBuckets(clock, capacity=2, rate_per_s=2)
    assert [limiter.take("a"), limiter.take("a")] == [0, 0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0
    clock.advance(0.5)
    assert limiter.take("a") == 0

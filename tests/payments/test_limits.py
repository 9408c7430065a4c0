"""The rate limits on the injectable clock."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartduka_tui.clock import ManualClock
from smartduka_tui.payments.limits import RateWindow, TokenBucket, whole_seconds


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


@given(
    rate=st.sampled_from([0.5, 1, 2.5, 5, 20]),
    gaps=st.lists(st.floats(0, 0.7), min_size=1, max_size=40),
)
def test_rate_window_never_lets_more_than_the_rate_through_in_any_second(
    rate: float, gaps: list[float]
) -> None:
    async def run() -> list[float]:
        clock = ManualClock()
        pace = RateWindow(clock, rate)
        times: list[float] = []

        async def one() -> None:
            await pace.acquire()
            times.append(clock.monotonic())

        tasks = []
        for gap in gaps:
            tasks.append(asyncio.create_task(one()))
            await asyncio.sleep(0)
            clock.advance(gap)
        while not all(t.done() for t in tasks):
            await asyncio.sleep(0)
            clock.advance(0.05)
        return times

    times = sorted(asyncio.run(run()))
    window = max(1.0, 1 / rate)
    most = max(1, int(rate * window))
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t - start < window - 1e-9) <= most

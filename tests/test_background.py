"""BackgroundTask: started once, cancelled (or let finish) and awaited on stop, restartable; and
`woken`: an event or the injectable clock, whichever comes first."""

from __future__ import annotations

import asyncio

from smartduka_tui.background import BackgroundTask, woken
from smartduka_tui.clock import ManualClock


async def test_start_runs_once_and_stop_cancels_and_waits() -> None:
    runs: list[str] = []
    ended = asyncio.Event()

    async def forever() -> None:
        runs.append("started")
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    task = BackgroundTask(forever, "test-forever")
    task.start()
    task.start()
    await asyncio.sleep(0)
    assert runs == ["started"] and task.running
    await task.stop()
    assert ended.is_set() and not task.running
    task.start()
    await asyncio.sleep(0)
    assert runs == ["started", "started"]
    await task.stop()


async def test_stop_without_cancel_lets_the_work_finish() -> None:
    release = asyncio.Event()
    finished: list[bool] = []

    async def one_job() -> None:
        await release.wait()
        finished.append(True)

    task = BackgroundTask(one_job, "test-job")
    task.start()
    await asyncio.sleep(0)
    stopping = asyncio.ensure_future(task.stop(cancel=False))
    await asyncio.sleep(0)
    assert not stopping.done()
    release.set()
    await stopping
    assert finished == [True] and not task.running


async def test_woken_says_whether_the_event_or_the_clock_came_first() -> None:
    clock = ManualClock()
    event = asyncio.Event()
    event.set()
    assert await woken(event, clock, 60) is True
    assert clock.sleepers == 0, "an event already set needs no sleep"

    event.clear()
    by_clock = asyncio.ensure_future(woken(event, clock, 60))
    while clock.sleepers == 0:
        await asyncio.sleep(0)
    clock.advance(59)
    await asyncio.sleep(0)
    assert not by_clock.done()
    clock.advance(1)
    assert await by_clock is False

    by_event = asyncio.ensure_future(woken(event, clock, 60))
    while clock.sleepers == 0:
        await asyncio.sleep(0)
    event.set()
    assert await by_event is True
    await asyncio.sleep(0)
    assert clock.sleepers == 0, "the clock's sleep is cancelled once the event came"

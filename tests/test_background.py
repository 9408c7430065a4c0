"""BackgroundTask: started once, cancelled (or let finish) and awaited on stop, restartable."""

from __future__ import annotations

import asyncio

from smartduka_tui.background import BackgroundTask


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

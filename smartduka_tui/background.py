"""One coroutine run in the background by the till's long-lived parts (the reconciler, the
Daraja probe, the relay client, the scheduled pull): started once, cancelled and awaited when
stopped. And the one way those parts wait "until told, or until the clock says" (`woken`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smartduka_tui.clock import Clock


class BackgroundTask:
    """`run()` as an asyncio task named `name`; `start` twice runs it once."""

    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self._run = run
        self._name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self, *, cancel: bool = True) -> None:
        """Cancel the task (or, with `cancel=False`, let it finish on its own) and wait for it;
        it may be started again afterwards."""
        if self._task is not None:
            if cancel:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def woken(event: asyncio.Event, clock: Clock, seconds: float) -> bool:
    """Wait for `event` or `seconds` of `clock` (the injectable clock, so tests move it);
    True if the event came first."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    sleeper = asyncio.ensure_future(clock.sleep(max(0.0, seconds)))
    try:
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        sleeper.cancel()
    return event.is_set()

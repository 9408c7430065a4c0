"""One coroutine run in the background by the till's long-lived parts (the reconciler, the
Daraja probe, the relay client): started once, cancelled and awaited when stopped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


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

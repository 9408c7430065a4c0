"""In-process wake-ups for long-polling tills: a commit for a till wakes its waiters at once, and
closing the hub (the relay is stopping) wakes every waiter for good."""

from __future__ import annotations

import asyncio


class FeedHub:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self.closed = False

    def register(self, till_id: str) -> asyncio.Future[None]:
        """Register before looking at the store, so a commit in between is not missed. Once
        closed, the future is already done: nobody waits on a stopping relay."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_result(None)
            return future
        self._waiters.setdefault(till_id, set()).add(future)
        return future

    def close(self) -> None:
        """The relay is stopping: wake every waiter now and every later one at once."""
        self.closed = True
        for till_id in list(self._waiters):
            self.notify(till_id)

    def unregister(self, till_id: str, future: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(till_id)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._waiters[till_id]

    def notify(self, till_id: str) -> None:
        for future in self._waiters.pop(till_id, ()):
            if not future.done():
                future.set_result(None)

    def waiting(self, till_id: str) -> int:
        return len(self._waiters.get(till_id, ()))

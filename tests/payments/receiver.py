"""A loopback stand-in for the relay's intake: the simulator POSTs callbacks here.

It does what the relay will do before an event reaches a till: parse the signed path with
`callback_path.parse`, verify its tag, refuse anything else, and hand the till a `CallbackEvent`.
It runs on the test's own event loop (`tests.support.asgi.Served`). Like the relay, it
answers at once and hands the event on afterwards (`handler`, called without waiting), so a
callback that arrives before its push response never holds up the simulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from smartduka_tui.clock import Clock
from smartduka_tui.mpesa import callback_path
from smartduka_tui.payments.api import CallbackEvent
from tests.support.asgi import request_body

Handler = Callable[[CallbackEvent], None]


@dataclass
class CallbackReceiver:
    """An ASGI app that turns signed callback POSTs into CallbackEvents."""

    secrets_by_kid: dict[str, str]
    clock: Clock
    handler: Handler | None = None
    events: list[CallbackEvent] = field(default_factory=list)
    refused: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        status = await self._take(scope["method"], scope["path"], await request_body(receive))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def _take(self, method: str, path: str, body: bytes) -> int:
        if method != "POST":
            return 405
        try:
            parsed = callback_path.parse(path)
        except callback_path.CallbackPathError:
            self.refused += 1
            return 404
        if not callback_path.verify(parsed, self.secrets_by_kid):
            self.refused += 1
            return 404
        event = CallbackEvent(
            attempt_ref=parsed.attempt_ref,
            shop_id=parsed.shop_id,
            till_id=parsed.till_id,
            body=body,
            received_at=self.clock.now(),
        )
        self.events.append(event)
        if self.handler is not None:
            self.handler(event)
        self.arrived.set()
        return 200

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[CallbackEvent]:
        """Wait (real time, bounded) until `count` events have arrived."""
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.events

"""A relay that lies (issue #11): the real relay process stores and serves the feed, and every
feed answer passes through a rewrite the test chooses on its way to the till. The relay is
trusted only to deliver, so a rewrite may substitute a body (its SHA-256 recomputed, as an
operator who controls the relay would), replay another till's event onto this till's attempt,
drop events or reorder them. Acknowledgements pass through unchanged."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from smartduka_tui.clock import ManualClock, SystemClock
from smartduka_tui.payments.service import PaymentEngine
from smartduka_tui.relay_client import FEED_PATH, HandledEvent, RelayClient
from tests.integration.support import RelayHandle, Till, eventually

FeedEvent = dict[str, Any]
Rewrite = Callable[[list[FeedEvent]], list[FeedEvent]]


def passthrough(events: list[FeedEvent]) -> list[FeedEvent]:
    return events


class MaliciousRelay(httpx.AsyncBaseTransport):
    """Loopback HTTP to the real relay, with the feed's events rewritten by `rewrite`."""

    def __init__(self, rewrite: Rewrite) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.rewrite = rewrite
        self.served: list[FeedEvent] = []
        """Every event the real relay handed out, before the rewrite."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.method != "GET" or request.url.path != FEED_PATH:
            return response
        raw = await response.aread()
        await response.aclose()
        if response.status_code != 200:
            return httpx.Response(response.status_code, content=raw)
        data = json.loads(raw)
        events: list[FeedEvent] = data["events"]
        self.served.extend(events)
        data["events"] = self.rewrite([dict(event) for event in events])
        return httpx.Response(200, json=data)

    async def aclose(self) -> None:
        await self._inner.aclose()


def with_body(event: FeedEvent, body: bytes) -> FeedEvent:
    """`event` carrying `body` instead of what Daraja sent (hash made to match)."""
    return {**event, "body": body.decode(), "body_sha256": hashlib.sha256(body).hexdigest()}


def replayed_onto(foreign: FeedEvent, target: FeedEvent) -> FeedEvent:
    """Another till's event, re-addressed to `target`'s attempt (id kept, so it is acked)."""
    return {
        **foreign,
        "id": target["id"],
        "shop_id": target["shop_id"],
        "till_id": target["till_id"],
        "attempt_ref": target["attempt_ref"],
    }


async def drain(
    engine: PaymentEngine, relay: RelayHandle, rewrite: Rewrite = passthrough
) -> tuple[list[HandledEvent], list[FeedEvent]]:
    """Read the till's feed through a lying relay until it is empty: (what the till did with
    each event it was handed, what the real relay served)."""
    liar = MaliciousRelay(rewrite)
    client = RelayClient(
        engine, engine.store, engine.till, relay.url, SystemClock(), transport=liar
    )
    handled: list[HandledEvent] = []
    client.on_event(handled.append)
    try:
        await client.drain()
    finally:
        await client.close()
    return handled, liar.served


async def callbacks_stored(relay: RelayHandle, till: Till, count: int) -> None:
    """Wait (bounded) until the relay holds `count` callbacks for `till`."""

    async def stored() -> bool:
        rows = relay.rows(
            "SELECT count(*) FROM events WHERE shop_id = ? AND till_id = ? AND kind = 'callback'",
            till.shop_id,
            till.till_id,
        )
        return int(rows[0][0]) >= count

    assert await eventually(stored), f"{count} callback(s) never reached the relay"


@asynccontextmanager
async def confirming_engine(
    till: Till, clock: ManualClock, *, confirm: bool = True, run_reconciler: bool = False
) -> AsyncIterator[PaymentEngine]:
    """The till's engine in process on `clock`, confirmation by query on (as in production)."""
    async with till.engine(
        clock=clock, run_reconciler=run_reconciler, confirm_callbacks_by_query=confirm
    ) as engine:
        yield engine

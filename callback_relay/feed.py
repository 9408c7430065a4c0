"""The per-till event feed: `GET /v1/events?wait=S` (long-poll) and `POST /v1/events/{id}/ack`.

A till authenticates with `Authorization: Bearer <till key>`; every store query is filtered by that
till and its shop, so no path reaches another till's events. The JSON shapes are documented in
`callback_relay/README.md`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from callback_relay import ids
from callback_relay.hub import FeedHub
from callback_relay.metrics import RelayMetrics
from callback_relay.registry import now_ms
from callback_relay.settings import RelaySettings
from callback_relay.store import RelayStore, StoredEvent, StoreUnavailable, TillRecord
from smartduka_tui.clock import Clock
from smartduka_tui.limits import TokenBuckets
from smartduka_tui.mpesa.feed_event import FeedEvent

log = logging.getLogger(__name__)

_DUMMY_HASH = ids.hash_key("t000000000000.dummy")


class FeedQuery(BaseModel):
    """Query parameters of `GET /v1/events`."""

    model_config = ConfigDict(extra="forbid")

    wait: float = Field(default=0.0, ge=0, le=3600, allow_inf_nan=False)
    limit: int | None = Field(default=None, ge=1, le=1000)


def feed_event(event: StoredEvent) -> FeedEvent:
    """A stored event as the shared model the till parses (`mpesa.feed_event`)."""
    return FeedEvent.from_stored(
        event_id=event.event_id,
        kind=event.kind.value,
        shop_id=event.shop_id,
        till_id=event.till_id,
        attempt_ref=event.attempt_ref,
        received_at_ms=event.received_at,
        body=event.body,
        body_sha256=event.body_sha256,
        flags=[flag.value for flag in event.flags],
        delivery_count=event.delivery_count,
        detail=event.detail,
    )


def event_json(event: StoredEvent) -> dict[str, Any]:
    return feed_event(event).wire()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Feed:
    def __init__(
        self,
        settings: RelaySettings,
        store: RelayStore,
        hub: FeedHub,
        metrics: RelayMetrics,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._store = store
        self._hub = hub
        self._read_limiter = TokenBuckets(clock, settings.feed_rate_burst, settings.feed_rate_per_s)
        self._ack_limiter = TokenBuckets(clock, settings.ack_rate_burst, settings.ack_rate_per_s)
        self._metrics = metrics
        self._clock = clock

    async def authenticate(self, request: Request, limiter: TokenBuckets) -> TillRecord | Response:
        """The till behind the bearer key, within `limiter`; or the 401/429/503 to send."""
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        till_id = ids.split_till_key(key) if scheme.lower() == "bearer" else None
        try:
            till = await self._store.get_till(till_id) if till_id else None
        except StoreUnavailable:
            return _error(503, "temporarily unavailable")
        matches = ids.key_matches(key, till.key_sha256 if till else _DUMMY_HASH)
        if till is None or not matches or till.revoked_at is not None:
            self._metrics.feed_requests.labels(outcome="unauthorized").inc()
            return _error(401, "missing, wrong or revoked till key", {"WWW-Authenticate": "Bearer"})
        retry_after = limiter.take(till.till_id)
        if retry_after > 0:
            self._metrics.feed_requests.labels(outcome="rate_limited").inc()
            return _error(
                429, "too many requests", {"Retry-After": str(max(1, math.ceil(retry_after)))}
            )
        return till

    async def events(self, request: Request) -> Response:
        till = await self.authenticate(request, self._read_limiter)
        if isinstance(till, Response):
            return till
        try:
            query = FeedQuery.model_validate(dict(request.query_params))
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            return _error(400, f"bad query parameter {where}: {first['msg']}")
        wait = min(query.wait, self._settings.feed_max_wait_s)
        limit = query.limit or self._settings.feed_batch_size
        try:
            events = await self._wait_for_events(till, wait, limit)
        except StoreUnavailable:
            return _error(503, "temporarily unavailable")
        self._metrics.feed_requests.labels(outcome="events" if events else "heartbeat").inc()
        return JSONResponse({"events": [event_json(e) for e in events]})

    async def _wait_for_events(
        self, till: TillRecord, wait: float, limit: int
    ) -> tuple[StoredEvent, ...]:
        deadline = self._clock.monotonic() + wait
        visibility_ms = int(self._settings.visibility_timeout_s * 1000)
        first = True
        while True:
            woken = self._hub.register(till.till_id)
            try:
                now = now_ms(self._clock)
                claim = await self._store.claim(
                    till.shop_id,
                    till.till_id,
                    now,
                    visibility_ms,
                    self._settings.max_deliveries,
                    limit,
                )
                if claim.events:
                    return claim.events
                remaining = deadline - self._clock.monotonic()
                if remaining <= 0 or self._hub.closed:
                    # Stopping: answer at once, so the till polls again (elsewhere, or here
                    # once restarted) instead of holding the process up for its whole wait.
                    return ()
                if claim.next_visible_at is not None:
                    remaining = min(remaining, max(0.001, (claim.next_visible_at - now) / 1000))
                if first:
                    log.debug("till %s: long-poll open for up to %.1f s", till.till_id, wait)
                    first = False
                await self._sleep_or_wake(woken, remaining)
            finally:
                self._hub.unregister(till.till_id, woken)

    async def _sleep_or_wake(self, woken: asyncio.Future[None], seconds: float) -> None:
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait({woken, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()

    async def ack(self, request: Request) -> Response:
        till = await self.authenticate(request, self._ack_limiter)
        if isinstance(till, Response):
            return till
        raw_id = str(request.path_params.get("event_id", ""))
        if not (raw_id.isascii() and raw_id.isdigit()) or len(raw_id) > 18:
            return _error(404, "no such event")
        now = now_ms(self._clock)
        try:
            result = await self._store.ack(till.shop_id, till.till_id, int(raw_id), now)
        except StoreUnavailable:
            return _error(503, "temporarily unavailable")
        if not result.found:
            return _error(404, "no such event")
        if not result.already and result.received_at is not None:
            self._metrics.ack_latency.observe(max(0.0, (now - result.received_at) / 1000))
        self._metrics.feed_requests.labels(outcome="ack").inc()
        return JSONResponse({"id": int(raw_id), "acked": True, "already": result.already})

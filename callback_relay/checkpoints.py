"""Per-till audit checkpoints: `POST /v1/audit/checkpoint` lodges one, `GET` reads the latest.

A till lodges the sequence number and chain head of its audit log, so a later rewrite of that log
on the till shows up against the copy kept here. Authenticated by the till key, like the feed.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from callback_relay.feed import Feed
from callback_relay.registry import now_ms
from callback_relay.settings import RelaySettings
from callback_relay.store import Checkpoint, RelayStore, StoreUnavailable
from smartduka_tui.clock import Clock
from smartduka_tui.limits import TokenBuckets
from smartduka_tui.mpesa.models import strict_json

_HEAD = re.compile(r"[0-9a-f]{64}")
# A checkpoint is two short fields; anything much bigger is not one.
_MAX_BODY = 1024
# SQLite and PostgreSQL BIGINT both stop here.
_MAX_SEQ = 2**63 - 1


def checkpoint_json(checkpoint: Checkpoint) -> dict[str, Any]:
    return {"seq": checkpoint.seq, "head": checkpoint.head, "at": checkpoint.at}


def _bad(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400)


def parse_checkpoint(raw: bytes) -> tuple[int, str] | str:
    """`(seq, head)` from a request body, or the reason it is not a checkpoint."""
    if len(raw) > _MAX_BODY:
        return "body too large"
    try:
        # The one strict loader: UTF-8 only, no NaN; its numbers are checked below.
        data = strict_json(raw, exact=False)
    except ValueError:
        return "body is not JSON"
    if not isinstance(data, dict) or set(data) != {"seq", "head"}:
        return 'body must be {"seq": <int>, "head": "<64 hex>"} and nothing else'
    seq, head = data["seq"], data["head"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= _MAX_SEQ:
        return "seq must be an integer >= 0"
    if not isinstance(head, str) or _HEAD.fullmatch(head) is None:
        return "head must be 64 lowercase hex digits"
    return seq, head


class Checkpoints:
    def __init__(self, settings: RelaySettings, store: RelayStore, feed: Feed, clock: Clock):
        self._store = store
        self._feed = feed
        self._clock = clock
        self._limiter = TokenBuckets(clock, settings.ack_rate_burst, settings.ack_rate_per_s)

    async def get(self, request: Request) -> Response:
        till = await self._feed.authenticate(request, self._limiter)
        if isinstance(till, Response):
            return till
        try:
            stored = await self._store.get_checkpoint(till.till_id)
        except StoreUnavailable:
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        if stored is None:
            return JSONResponse({"error": "no_checkpoint"}, status_code=404)
        return JSONResponse(checkpoint_json(stored))

    async def put(self, request: Request) -> Response:
        till = await self._feed.authenticate(request, self._limiter)
        if isinstance(till, Response):
            return till
        parsed = parse_checkpoint(await request.body())
        if isinstance(parsed, str):
            return _bad(parsed)
        seq, head = parsed
        try:
            result = await self._store.put_checkpoint(
                till.shop_id, till.till_id, seq, head, now_ms(self._clock)
            )
        except StoreUnavailable:
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        if result.outcome == "behind":
            return JSONResponse(
                {"error": "checkpoint_behind", "stored_seq": result.stored.seq}, status_code=409
            )
        if result.outcome == "conflict":
            return JSONResponse({"error": "checkpoint_conflict"}, status_code=409)
        return JSONResponse(checkpoint_json(result.stored))

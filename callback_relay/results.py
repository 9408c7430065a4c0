"""`POST /hooks/res/...` and `/hooks/qto/...`: the initiator APIs' asynchronous results.

Transaction Status and Reversal answer on the ResultURL (or, when M-Pesa's queue gives up, the
QueueTimeOutURL) the till put in its request: a signed per-request path
(`smartduka_tui.mpesa.result_path`) bound to one shop, one till and one request, with the
purpose signed too. The checks and the durability rule are the STK intake's: a generic 404
before the tag verified (counted only), the till enrolled, the body size, the source in
production, then the `{"Result": {...}}` shape; the event is committed before the 2xx, and
stored once however often M-Pesa repeats it. Only the till the path names reads it.
"""

from __future__ import annotations

import hashlib
import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from callback_relay.body import BodyIncomplete, BodyTooLarge, read_limited
from callback_relay.intake import ACCEPTED, SafaricomIntake, _error, append_and_wake
from callback_relay.registry import ShopEntry, now_ms
from callback_relay.routing import on_state
from callback_relay.sources import in_networks
from callback_relay.store import NewEvent, StoreUnavailable
from callback_relay.types import EventKind, RefusalReason
from smartduka_tui.model import Mode
from smartduka_tui.mpesa import result_path
from smartduka_tui.mpesa.callback_path import CallbackPathError
from smartduka_tui.mpesa.statement import StatementParseError, parse_async_result

log = logging.getLogger("callback_relay.results")

_KIND = {
    result_path.ResultPurpose.RESULT: EventKind.RESULT,
    result_path.ResultPurpose.QUEUE_TIMEOUT: EventKind.QUEUE_TIMEOUT,
}


def _path_keys(entry: ShopEntry, parsed: result_path.ResultPath) -> dict[str, str]:
    """The secrets (by kid) a result path of `parsed`'s shop and till is signed with: that
    till's own keys, as for its STK callbacks (none once it is revoked)."""
    return entry.till_secrets(parsed.till_id)


class ResultIntake(SafaricomIntake):
    """Verifies and stores one asynchronous result; the till reads it from its feed."""

    async def handle(self, request: Request) -> Response:
        parsed = await self._verify(request.scope["path"])
        if parsed is None:
            return _error(404, "not found")
        source = self._request_source(request)
        if self._settings.mode is Mode.PRODUCTION and not in_networks(source, self._allowlist):
            return self._refuse(parsed, RefusalReason.SOURCE_NOT_ALLOWED, 403, "forbidden")
        try:
            raw = await read_limited(request, self._settings.max_body_bytes)
        except BodyTooLarge:
            return self._refuse(
                parsed, RefusalReason.BODY_TOO_LARGE, 413, "body is larger than the relay accepts"
            )
        except BodyIncomplete:
            return _error(400, "request body was cut short")
        try:
            parse_async_result(raw)
        except StatementParseError:
            return self._refuse(
                parsed, RefusalReason.MALFORMED_JSON, 400, "body is not an M-Pesa result"
            )
        event = NewEvent(
            kind=_KIND[parsed.purpose],
            shop_id=parsed.shop_id,
            till_id=parsed.till_id,
            attempt_ref=parsed.request_ref,
            received_at=now_ms(self._clock),
            body=raw,
            body_sha256=hashlib.sha256(raw).hexdigest(),
        )
        try:
            await append_and_wake(self._store, self._hub, self._metrics, event)
        except StoreUnavailable:
            self._metrics.store_failed()
            return _error(503, "temporarily unable to accept results")
        return Response(ACCEPTED, media_type="application/json")

    async def _verify(self, path: str) -> result_path.ResultPath | None:
        try:
            parsed = result_path.parse(path)
        except CallbackPathError:
            self._unsigned(RefusalReason.MALFORMED_PATH, None)
            return None
        entry = await self._cache.fresh_entry(parsed.shop_id, parsed.till_id, parsed.kid)
        if entry is None:
            self._unsigned(RefusalReason.UNKNOWN_SHOP, parsed)
            return None
        keys = _path_keys(entry, parsed)
        if not result_path.verify(parsed, keys):
            known = parsed.kid in keys
            reason = RefusalReason.BAD_SIGNATURE if known else RefusalReason.UNKNOWN_KID
            self._unsigned(reason, parsed)
            return None
        if parsed.till_id not in entry.tills:
            self._unsigned(RefusalReason.UNKNOWN_TILL, parsed)
            return None
        return parsed

    def _unsigned(self, reason: RefusalReason, parsed: result_path.ResultPath | None) -> None:
        self._metrics.refusal(reason)
        self._metrics.callback("refused")
        log.info(
            "refused result: %s (shop %s)",
            reason.value,
            parsed.shop_id if parsed and self._cache.entry(parsed.shop_id) else "unknown",
        )
        return None

    def _refuse(
        self, parsed: result_path.ResultPath, reason: RefusalReason, status: int, message: str
    ) -> Response:
        # Signed but unusable: counted and logged with the shop and till; the body may be
        # anything its sender chose, so it is not kept.
        self._metrics.refusal(reason)
        self._metrics.callback("refused")
        log.warning(
            "refused signed result: %s (shop %s, till %s)",
            reason.value,
            parsed.shop_id,
            parsed.till_id,
        )
        return _error(status, message)


RESULT_ROUTES: list[Route] = [
    Route(
        f"{purpose.prefix}{{rest:path}}", on_state("results", ResultIntake.handle), methods=["POST"]
    )
    for purpose in result_path.ResultPurpose
]

"""`POST /hooks/stk/...`: verify a callback, store it durably, answer only after the commit.

Checks, in order: the path's shape, the shop, the till (live), the tag under the named kid of
that till's own secrets (constant time, no attempt look-up), the body size, the source address
(production refuses, sandbox logs), JSON, and the STK callback shape. Refusals before the tag
verified get a generic 404 and are only counted; refusals after it are also stored as a
"security" event for that till. Bad input never gets a 5xx; a store failure gets 503, never 2xx.

The intake is a raw ASGI app (the route's endpoint): the hook is the relay's one hot path, and
a Starlette Request and Response per callback cost more than everything it checks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from callback_relay.body import BodyIncomplete, BodyTooLarge, header_values, read_body
from callback_relay.hub import FeedHub
from callback_relay.metrics import RelayMetrics
from callback_relay.registry import SecretCache, now_ms
from callback_relay.settings import RelaySettings
from callback_relay.sources import IPAddress, NetworkSet, client_address, in_networks
from callback_relay.store import NewEvent, RelayStore, StoreUnavailable
from callback_relay.types import AppendOutcome, EventKind, RefusalReason
from smartduka_tui.clock import Clock
from smartduka_tui.limits import TokenBuckets
from smartduka_tui.model import Mode
from smartduka_tui.mpesa import callback_path
from smartduka_tui.mpesa.models import CallbackParseError, MalformedJson, check_callback_shape

log = logging.getLogger("callback_relay.intake")

ACCEPTED = b'{"ResultCode":0,"ResultDesc":"Accepted"}'
_STATUS = {
    RefusalReason.SOURCE_NOT_ALLOWED: 403,
    RefusalReason.BODY_TOO_LARGE: 413,
    RefusalReason.MALFORMED_JSON: 400,
    RefusalReason.NOT_STK_CALLBACK: 400,
}
_MESSAGES = {
    RefusalReason.SOURCE_NOT_ALLOWED: "forbidden",
    RefusalReason.BODY_TOO_LARGE: "body is larger than the relay accepts",
    RefusalReason.MALFORMED_JSON: "body is not valid JSON",
    RefusalReason.NOT_STK_CALLBACK: "body is not an STK callback",
}

_UNLISTED_MEMORY = 1024


# The answer to every stored callback, its headers encoded once rather than per request (each
# answer gets its own list, so a middleware that edits one cannot edit the next).
_ACCEPTED_HEADERS = tuple(Response(ACCEPTED, media_type="application/json").raw_headers)


async def _send_accepted(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": list(_ACCEPTED_HEADERS)})
    await send({"type": "http.response.body", "body": ACCEPTED})


@dataclass(frozen=True, slots=True)
class _Verified:
    path: callback_path.CallbackPath
    source: IPAddress | None


class SafaricomIntake:
    """What the routes Safaricom posts to (STK callbacks here, async results, C2B
    confirmations) hold alike: the relay's parts, the addresses Safaricom calls from
    (`allowlist`), and the proxies whose X-Forwarded-For is believed."""

    def __init__(
        self,
        settings: RelaySettings,
        store: RelayStore,
        cache: SecretCache,
        hub: FeedHub,
        metrics: RelayMetrics,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._store = store
        self._cache = cache
        self._hub = hub
        self._metrics = metrics
        self._clock = clock
        self._allowlist = NetworkSet(settings.allowlist)
        self._trusted_proxies = NetworkSet(settings.trusted_proxies)

    def _request_source(self, request: Request) -> IPAddress | None:
        """The caller's address: the connection's, or a trusted proxy's forwarded one."""
        client = request.scope.get("client")
        return client_address(
            client[0] if client else None,
            request.headers.getlist("x-forwarded-for"),
            self._trusted_proxies,
        )


class CallbackIntake(SafaricomIntake):
    def __init__(
        self,
        settings: RelaySettings,
        store: RelayStore,
        cache: SecretCache,
        hub: FeedHub,
        metrics: RelayMetrics,
        clock: Clock,
    ) -> None:
        super().__init__(settings, store, cache, hub, metrics, clock)
        self._unlisted_seen: set[IPAddress | None] = set()
        self._till_quota = _quota(
            settings.intake_till_rate_per_s, settings.intake_till_burst, clock
        )
        self._source_quota = _quota(
            settings.intake_source_rate_per_s, settings.intake_source_burst, clock
        )
        self._behind_proxy = bool(settings.trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The route's ASGI app: 200 once the callback is committed, else the refusal."""
        refusal = await self.handle(scope, receive)
        if refusal is None:
            await _send_accepted(send)
        else:
            await refusal(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive) -> Response | None:
        """None when the callback is stored (or a duplicate of a stored one), else the refusal."""
        verified = await self._verify(scope)
        if isinstance(verified, Response):
            return verified
        parsed = verified.path
        # Quotas only after the signature check: unsigned junk cannot spend a till's allowance.
        over = self._over_quota(parsed, verified.source)
        if over is not None:
            return over
        try:
            raw = await read_body(scope, receive, self._settings.max_body_bytes)
            too_large = False
        except BodyTooLarge:
            raw, too_large = b"", True
        except BodyIncomplete:
            return _error(400, "request body was cut short")

        if not in_networks(verified.source, self._allowlist):
            if self._settings.mode is Mode.PRODUCTION:
                return await self._refuse_signed(
                    parsed, verified.source, RefusalReason.SOURCE_NOT_ALLOWED, raw
                )
            self._note_unlisted(parsed.shop_id, verified.source)
        if too_large:
            return await self._refuse_signed(
                parsed, verified.source, RefusalReason.BODY_TOO_LARGE, raw
            )
        try:
            check_callback_shape(raw)  # one pass over the JSON on the hot path
        except MalformedJson:
            return await self._refuse_signed(
                parsed, verified.source, RefusalReason.MALFORMED_JSON, raw
            )
        except CallbackParseError:
            return await self._refuse_signed(
                parsed, verified.source, RefusalReason.NOT_STK_CALLBACK, raw
            )

        event = NewEvent(
            kind=EventKind.CALLBACK,
            shop_id=parsed.shop_id,
            till_id=parsed.till_id,
            attempt_ref=parsed.attempt_ref,
            received_at=now_ms(self._clock),
            body=raw,
            body_sha256=hashlib.sha256(raw).hexdigest(),
        )
        try:
            await append_and_wake(self._store, self._hub, self._metrics, event)
        except StoreUnavailable:
            self._metrics.store_failed()
            return _error(503, "temporarily unable to accept callbacks")
        return None

    async def _verify(self, scope: Scope) -> _Verified | Response:
        try:
            parsed = callback_path.parse(scope["path"])
        except callback_path.CallbackPathError:
            return self._refuse_unsigned(RefusalReason.MALFORMED_PATH, None)
        entry = await self._cache.fresh_entry(parsed.shop_id, parsed.till_id, parsed.kid)
        if entry is None:
            return self._refuse_unsigned(RefusalReason.UNKNOWN_SHOP, parsed)
        # Each till has its own secrets (none once revoked): a till signs only for itself.
        keys = entry.till_secrets(parsed.till_id)
        if not keys:
            return self._refuse_unsigned(RefusalReason.UNKNOWN_TILL, parsed)
        if not callback_path.verify(parsed, keys):
            reason = (
                RefusalReason.BAD_SIGNATURE if parsed.kid in keys else RefusalReason.UNKNOWN_KID
            )
            return self._refuse_unsigned(reason, parsed)
        client = scope.get("client")
        # Forwarded hops only count behind a trusted proxy: without one, skip decoding headers.
        forwarded = header_values(scope, b"x-forwarded-for") if self._behind_proxy else []
        source = client_address(client[0] if client else None, forwarded, self._trusted_proxies)
        return _Verified(parsed, source)

    def _over_quota(
        self, parsed: callback_path.CallbackPath, source: IPAddress | None
    ) -> Response | None:
        # A key is built only for a quota that is on (both are off by default).
        wait = 0.0
        if self._till_quota is not None:
            wait = self._till_quota.take(f"{parsed.shop_id}/{parsed.till_id}")
        if wait <= 0 and self._source_quota is not None:
            wait = self._source_quota.take(str(source))
        if wait <= 0:
            return None
        self._metrics.callback("rate_limited")
        return JSONResponse(
            {"error": "too many callbacks"},
            status_code=429,
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )

    def _note_unlisted(self, shop_id: str, source: IPAddress | None) -> None:
        """Sandbox mode: log each unlisted source once (a busy sandbox must not flood the log)."""
        if source in self._unlisted_seen:
            return
        if len(self._unlisted_seen) < _UNLISTED_MEMORY:
            self._unlisted_seen.add(source)
        log.warning(
            "callback for shop %s from unlisted source %s accepted (sandbox mode; production "
            "mode would refuse it)",
            shop_id,
            source,
        )

    def _refuse_unsigned(
        self, reason: RefusalReason, parsed: callback_path.CallbackPath | None
    ) -> Response:
        self._metrics.refusal(reason)
        known_shop = parsed is not None and self._cache.entry(parsed.shop_id) is not None
        self._metrics.callback("refused")
        log.info(
            "refused callback: %s (shop %s)",
            reason.value,
            parsed.shop_id if known_shop and parsed else "unknown",
        )
        return _error(404, "not found")

    async def _refuse_signed(
        self,
        parsed: callback_path.CallbackPath,
        source: IPAddress | None,
        reason: RefusalReason,
        raw: bytes,
    ) -> Response:
        """A refusal of a correctly signed request: counted, logged, and told to the till."""
        self._metrics.refusal(reason)
        self._metrics.callback("refused")
        log.warning(
            "refused signed callback: %s (shop %s, till %s, source %s)",
            reason.value,
            parsed.shop_id,
            parsed.till_id,
            source,
        )
        # The body of a refused request may be anything an attacker chose: only its hash and
        # size are kept (the size is unknown when reading stopped at the limit).
        detail = json.dumps(
            {
                "reason": reason.value,
                "source": None if source is None else str(source),
                "size": None if reason is RefusalReason.BODY_TOO_LARGE else len(raw),
            },
            sort_keys=True,
        )
        event = NewEvent(
            kind=EventKind.SECURITY,
            shop_id=parsed.shop_id,
            till_id=parsed.till_id,
            attempt_ref=parsed.attempt_ref,
            received_at=now_ms(self._clock),
            body=b"",
            body_sha256=hashlib.sha256(raw).hexdigest(),
            detail=detail,
            cap=self._settings.max_security_events_per_till,
        )
        try:
            result = await self._store.append(event)
        except StoreUnavailable:
            self._metrics.store_failures.inc()
            log.error("could not store a security event for shop %s", parsed.shop_id)
        else:
            if result.outcome is AppendOutcome.CAPPED:
                self._metrics.callback("security_capped")
            elif result.outcome is not AppendOutcome.DUPLICATE:
                self._hub.notify(parsed.till_id)
        return _error(_STATUS[reason], _MESSAGES[reason])


async def append_and_wake(
    store: RelayStore, hub: FeedHub, metrics: RelayMetrics, event: NewEvent
) -> None:
    """Store one verified event (a callback, an async result, a C2B confirmation), count its
    outcome and wake its till's long poll; a duplicate wakes nobody, the till has it already.
    `StoreUnavailable` goes to the caller, which answers 503 in its own words."""
    result = await store.append(event)
    metrics.callback(result.outcome)
    if result.outcome is not AppendOutcome.DUPLICATE:
        hub.notify(event.till_id)


def _quota(rate: float, burst: int, clock: Clock) -> TokenBuckets | None:
    return TokenBuckets(clock, burst, rate) if rate > 0 else None


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)

"""C2B confirmations (customers paying the till or paybill directly) and the shop-wide claim.

Safaricom registers one confirmation URL per shortcode, once, so the per-attempt signed path of
STK callbacks cannot authenticate these: the URL carries a long random token instead
(`/hooks/c2b/{token}`), stored only as its SHA-256. A token names one shop and its shortcode, or
(for the platform's paybill) only the shortcode, and the shop follows from the BillRefNumber
prefix. Each confirmation is checked, stored for every live till of the shop (committed before
the 2xx), and then any till may claim it for one sale: the first claim wins shop-wide.

Everything lives in the store's meta table under `c2b/...` keys: `set_meta_if_absent` is atomic
on both stores, which is exactly what first-claim-wins needs, and no new table has to be
migrated on two databases.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callback_relay.body import BodyIncomplete, BodyTooLarge, read_limited
from callback_relay.feed import Feed
from callback_relay.hub import FeedHub
from callback_relay.intake import ACCEPTED, SafaricomIntake, append_and_wake
from callback_relay.metrics import RelayMetrics
from callback_relay.registry import SecretCache, now_ms
from callback_relay.routing import on_state
from callback_relay.settings import RelaySettings
from callback_relay.sources import in_networks
from callback_relay.store import NewEvent, RelayStore, StoreUnavailable
from callback_relay.types import EventKind, RefusalReason
from smartduka_tui.clock import Clock
from smartduka_tui.limits import TokenBuckets
from smartduka_tui.model import Mode
from smartduka_tui.mpesa.statement import C2BPayment, StatementParseError, parse_c2b_payment

log = logging.getLogger("callback_relay.c2b")

# Hex only: Safaricom refuses URLs containing "exe", "cmd", "sql" and the like, which a
# base64 token could spell by chance; hex has no x, m, q or l.
_TOKEN = re.compile(r"^[0-9a-f]{64}$")
_SHORTCODE = re.compile(r"^\d{5,7}$")
_PREFIX = re.compile(r"^[A-Za-z0-9]{1,4}$")
_MAX_PREFIX = 4


class C2BSetupError(ValueError):
    """A token request that cannot be honoured; the message says why."""


@dataclass(frozen=True, slots=True)
class C2BRoute:
    """What a token stands for: one shop's shortcode, or the platform paybill (shop_id None)."""

    shortcode: str
    shop_id: str | None

    def to_json(self) -> bytes:
        return json.dumps({"shortcode": self.shortcode, "shop_id": self.shop_id}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> C2BRoute:
        data = json.loads(raw)
        return cls(shortcode=str(data["shortcode"]), shop_id=data["shop_id"])


def _token_key(token: str) -> str:
    return "c2b/token/" + hashlib.sha256(token.encode("ascii")).hexdigest()


def _prefix_key(shortcode: str, prefix: str) -> str:
    return f"c2b/prefix/{shortcode}/{prefix.upper()}"


def _seen_key(shop_id: str, trans_id: str) -> str:
    return f"c2b/seen/{shop_id}/{trans_id}"


def _claim_key(shop_id: str, trans_id: str) -> str:
    return f"c2b/claim/{shop_id}/{trans_id}"


def holder_json(till_id: str, sale_ref: str) -> bytes:
    """Who holds a receipt, as stored: a C2B claim's value, and a receipt registration's."""
    return json.dumps({"till_id": till_id, "sale_ref": sale_ref}).encode()


def confirmation_path(token: str) -> str:
    """The path to register as the shortcode's ConfirmationURL (behind the public base URL)."""
    return f"/hooks/c2b/{token}"


async def issue_token(store: RelayStore, shortcode: str, shop_id: str | None) -> str:
    """A new confirmation token for `shortcode` (one shop's, or the platform paybill's)."""
    if not _SHORTCODE.fullmatch(shortcode):
        raise C2BSetupError(f"shortcode {shortcode!r}: must be 5 to 7 digits")
    if shop_id is not None and await store.get_shop(shop_id) is None:
        raise C2BSetupError(f"no shop {shop_id!r} is enrolled")
    token = secrets.token_hex(32)
    await store.set_meta_if_absent(_token_key(token), C2BRoute(shortcode, shop_id).to_json())
    return token


async def route_prefix(store: RelayStore, shortcode: str, prefix: str, shop_id: str) -> None:
    """Send platform-paybill payments whose BillRefNumber starts with `prefix` to `shop_id`."""
    if not _PREFIX.fullmatch(prefix):
        raise C2BSetupError(f"prefix {prefix!r}: must be 1 to 4 letters or digits")
    if await store.get_shop(shop_id) is None:
        raise C2BSetupError(f"no shop {shop_id!r} is enrolled")
    held = await store.set_meta_if_absent(_prefix_key(shortcode, prefix), shop_id.encode())
    if held.decode() != shop_id:
        raise C2BSetupError(
            f"prefix {prefix.upper()!r} on {shortcode} already routes to shop {held.decode()}"
        )


class _Refused(Exception):
    def __init__(self, status: int, message: str, reason: RefusalReason | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class ClaimBody(BaseModel):
    """Body of `POST /v1/c2b/{trans_id}/claim`."""

    model_config = ConfigDict(extra="forbid")

    sale_ref: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")


class C2BIntake(SafaricomIntake):
    def __init__(
        self,
        settings: RelaySettings,
        store: RelayStore,
        cache: SecretCache,
        hub: FeedHub,
        metrics: RelayMetrics,
        clock: Clock,
        feed: Feed,
    ) -> None:
        super().__init__(settings, store, cache, hub, metrics, clock)
        self._feed = feed
        self._claim_limiter = TokenBuckets(clock, settings.ack_rate_burst, settings.ack_rate_per_s)
        self._routes: dict[str, C2BRoute] = {}

    # ------------------------------------------------------------------ confirmations

    async def confirm(self, request: Request) -> Response:
        try:
            return await self._confirm(request)
        except _Refused as refused:
            if refused.reason is not None:
                self._metrics.refusal(refused.reason)
            self._metrics.callback("refused")
            log.info("refused C2B confirmation: %s", refused)
            return JSONResponse({"error": str(refused)}, status_code=refused.status)
        except StoreUnavailable:
            self._metrics.store_failed()
            return JSONResponse(
                {"error": "temporarily unable to accept confirmations"}, status_code=503
            )

    async def _confirm(self, request: Request) -> Response:
        route = await self._route(str(request.path_params.get("token", "")))
        source = self._request_source(request)
        if not in_networks(source, self._allowlist):
            if self._settings.mode is Mode.PRODUCTION:
                raise _Refused(403, "forbidden", RefusalReason.SOURCE_NOT_ALLOWED)
            log.warning("C2B confirmation from unlisted source %s accepted (sandbox)", source)
        try:
            raw = await read_limited(request, self._settings.max_body_bytes)
        except BodyTooLarge:
            raise _Refused(
                413, "body is larger than the relay accepts", RefusalReason.BODY_TOO_LARGE
            ) from None
        except BodyIncomplete:
            raise _Refused(400, "request body was cut short") from None
        try:
            payment = parse_c2b_payment(raw)
        except StatementParseError as error:
            raise _Refused(400, str(error), RefusalReason.NOT_C2B_CONFIRMATION) from None
        if payment.shortcode != route.shortcode:
            raise _Refused(
                400, f"BusinessShortCode {payment.shortcode} is not the shortcode of this URL"
            )
        shop_id = route.shop_id or await self._shop_by_prefix(route.shortcode, payment)
        entry = self._cache.entry(shop_id)
        if entry is None:  # read again after the recheck, whatever it did (see intake)
            await self._cache.recheck()
            entry = self._cache.entry(shop_id)
        if entry is None or not entry.tills:
            raise _Refused(404, "the shop of this URL has no tills")
        await self._store.set_meta_if_absent(
            _seen_key(shop_id, payment.trans_id), str(payment.amount).encode()
        )
        sha = hashlib.sha256(raw).hexdigest()
        received = now_ms(self._clock)
        for till_id in sorted(entry.tills):
            event = NewEvent(
                kind=EventKind.C2B,
                shop_id=shop_id,
                till_id=till_id,
                attempt_ref=payment.trans_id,
                received_at=received,
                body=raw,
                body_sha256=sha,
            )
            await append_and_wake(self._store, self._hub, self._metrics, event)
        return Response(ACCEPTED, media_type="application/json")

    async def _route(self, token: str) -> C2BRoute:
        if not _TOKEN.fullmatch(token):
            raise _Refused(404, "not found", RefusalReason.MALFORMED_PATH)
        key = _token_key(token)
        route = self._routes.get(key)
        if route is None:
            raw = await self._store.get_meta(key)
            if raw is None:
                raise _Refused(404, "not found", RefusalReason.UNKNOWN_SHOP)
            route = self._routes[key] = C2BRoute.from_json(raw)
        return route

    async def _shop_by_prefix(self, shortcode: str, payment: C2BPayment) -> str:
        bill = payment.bill_ref_number
        for length in range(1, min(_MAX_PREFIX, len(bill)) + 1):
            held = await self._store.get_meta(_prefix_key(shortcode, bill[:length]))
            if held is not None:
                return held.decode()
        raise _Refused(400, f"BillRefNumber {bill!r} names no shop on paybill {shortcode}")

    # ------------------------------------------------------------------ claims

    async def claim(self, request: Request) -> Response:
        till = await self._feed.authenticate(request, self._claim_limiter)
        if isinstance(till, Response):
            return till
        trans_id = str(request.path_params.get("trans_id", ""))
        try:
            raw = await read_limited(request, 4096)
            body = ClaimBody.model_validate_json(raw)
        except (BodyTooLarge, BodyIncomplete, ValidationError):
            return JSONResponse(
                {"error": 'body must be {"sale_ref": "..."} (letters, digits, . _ -)'},
                status_code=400,
            )
        mine = holder_json(till.till_id, body.sale_ref)
        try:
            if await self._store.get_meta(_seen_key(till.shop_id, trans_id)) is None:
                return JSONResponse(
                    {"error": f"no C2B payment {trans_id} reached this shop"}, status_code=404
                )
            held = await self._store.set_meta_if_absent(_claim_key(till.shop_id, trans_id), mine)
        except StoreUnavailable:
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        holder = json.loads(held)
        if holder == json.loads(mine):
            return JSONResponse({"trans_id": trans_id, "granted": True, **holder})
        return JSONResponse(
            {
                "error": (
                    f"{trans_id} is already attached to sale {holder['sale_ref']} at till "
                    f"{holder['till_id']}"
                ),
                "granted": False,
                **holder,
            },
            status_code=409,
        )


C2B_ROUTES: list[Route] = [
    Route("/hooks/c2b/{token}", on_state("c2b", C2BIntake.confirm), methods=["POST"]),
    Route("/v1/c2b/{trans_id}/claim", on_state("c2b", C2BIntake.claim), methods=["POST"]),
]

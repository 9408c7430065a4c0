"""The Daraja broker: STK push and query for shops paid through the platform's paybill.

Tills of such shops hold no Daraja credentials. They call the relay with their till key (the
bodies and paths are `smartduka_tui.mpesa.broker_body`, which the till's gateway builds with):

- `GET  /v1/daraja/ready`: can a push go out now (shop on the platform, platform set up, the
  shop's push limit not reached, an OAuth token in hand)? `{"ready": true}` or a refusal.
- `POST /v1/daraja/stk-push` `{"amount", "phone", "reference", "description", "callback_url"}`:
  the relay pushes with the platform's shortcode and passkey, AccountReference = the shop's
  prefix + `reference`.
- `POST /v1/daraja/stk-query` `{"checkout_request_id"}`: only for this shop's own pushes.
- `GET  /v1/daraja/status`: the broker's view of Daraja (`reachable`, `unreachable`,
  `unknown`), from its real calls and a TCP probe; never from minting a token.

Answers keep Daraja's meaning so the till's engine treats brokered and direct pushes alike:
Daraja's own answer (accepted body, or its error envelope with the same HTTP status) goes back
as it came; the broker's own refusals are error envelopes too (`broker.*` codes, or Daraja's
`400.002.0x` for a field Daraja would refuse), so "an envelope means nothing was started" holds;
a push whose outcome is unknown answers a 5xx without an envelope. Over the shop's push limit:
429 with `Retry-After`. A till of a shop with its own credentials gets 403.

One `DarajaClient` serves every shop, so the platform's OAuth token is shared (and refreshed
once when Daraja says a newer token revoked it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, SecretStr, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callback_relay.body import BodyIncomplete, BodyTooLarge, read_limited
from callback_relay.crypto import RelayKeyError
from callback_relay.platform import (
    BrokerStore,
    PlatformAccount,
    PlatformRecord,
    PlatformShop,
    StoredToken,
    open_platform,
)
from callback_relay.registry import now_ms, open_box
from callback_relay.routing import on_state
from callback_relay.settings import RelaySettings, url_problem
from callback_relay.store import RelayStore, StoreUnavailable, TillRecord
from smartduka_tui.clock import Clock
from smartduka_tui.limits import TokenBuckets
from smartduka_tui.mpesa import callback_path
from smartduka_tui.mpesa.broker_body import (
    INVALID_FIELD,
    INVALID_PAYLOAD,
    PUSH_PATH,
    QUERY_PATH,
    READY_PATH,
    STATUS_PATH,
    BrokeredPush,
    BrokeredQuery,
    BrokerStatus,
    DarajaState,
    refusal,
)
from smartduka_tui.mpesa.client import DarajaClient, QueryResult, SharedToken
from smartduka_tui.mpesa.errors import (
    AuthenticationFailed,
    DarajaError,
    PushOutcomeUnknown,
    PushRefused,
    QueryFailed,
    QueryNoAnswer,
)
from smartduka_tui.mpesa.models import strict_json
from smartduka_tui.mpesa.requests import InvalidRequestError, build_stk_push
from smartduka_tui.secretbox import SealBrokenError, SecretBox

if TYPE_CHECKING:
    from callback_relay.app import Relay

log = logging.getLogger("callback_relay.broker")

NOT_PLATFORM_SHOP: Final = "broker.not_platform_shop"
NOT_CONFIGURED: Final = "broker.not_configured"
RATE_LIMITED: Final = "broker.rate_limited"
UNKNOWN_CHECKOUT: Final = "broker.unknown_checkout"
CALLBACK_NOT_SIGNED: Final = "broker.callback_url_not_signed"
NO_PUBLIC_URL: Final = "broker.no_public_url"
BODY_TOO_LARGE: Final = "broker.body_too_large"
# A push or query body is a few hundred bytes; the cap stops a till from making the relay buffer
# megabytes.
MAX_BODY_BYTES: Final = 64 * 1024

DARAJA_TIMEOUT: Final = httpx.Timeout(connect=5.0, read=20.0, write=10.0, pool=5.0)
PROBE_TIMEOUT_S: Final = 3.0


def envelope(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """A refusal in Daraja's error-envelope shape: the till reads it as "nothing started"."""
    body = {"requestId": "", "errorCode": code, "errorMessage": message}
    return JSONResponse(body, status_code=status, headers=headers)


def outcome_unknown(message: str) -> Response:
    """A 5xx without an envelope: the push may have started (the till settles it by query)."""
    return JSONResponse({"error": message}, status_code=504)


class DarajaWatch:
    """What the broker knows of Daraja's reachability: the latest real call, or a TCP connect
    to its host when nothing recent is known. Never an OAuth token minted to find out."""

    def __init__(self, clock: Clock, *, fresh_s: float = 15.0) -> None:
        self._clock = clock
        self._fresh_s = fresh_s
        self._state: DarajaState = "unknown"
        self._seen_at: float | None = None
        self._probe: asyncio.Future[None] | None = None

    def saw(self, reachable: bool) -> None:
        self._state = "reachable" if reachable else "unreachable"
        self._seen_at = self._clock.monotonic()

    async def state(self, base_url: str) -> DarajaState:
        stale = self._seen_at is None or self._clock.monotonic() - self._seen_at > self._fresh_s
        if stale:
            if self._probe is None or self._probe.done():
                self._probe = asyncio.ensure_future(self._tcp_probe(base_url))
            await asyncio.shield(self._probe)
        return self._state

    async def _tcp_probe(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PROBE_TIMEOUT_S)
        except (OSError, TimeoutError):
            self.saw(False)
            return
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self.saw(True)


class PlatformTokenShare:
    """The platform's OAuth token in the relay's store, encrypted under the relay key, so every
    relay instance on one database uses one token rather than each minting (and revoking) its
    own."""

    def __init__(self, store: BrokerStore, box: SecretBox) -> None:
        self._store = store
        self._box = box

    def __repr__(self) -> str:
        return "PlatformTokenShare()"

    @staticmethod
    def _aad(cache_key: str) -> bytes:
        return f"smartduka-relay/platform-token/{cache_key}".encode()

    async def load(self, cache_key: str) -> SharedToken | None:
        stored = await self._store.load_token(cache_key)
        if stored is None:
            return None
        value = self._box.decrypt(stored.ciphertext, self._aad(cache_key)).decode("utf-8")
        return SharedToken(SecretStr(value), stored.expires_in, stored.usable_until_ms)

    async def save(self, cache_key: str, token: SharedToken) -> None:
        ciphertext = self._box.encrypt(
            token.value.get_secret_value().encode("utf-8"), self._aad(cache_key)
        )
        await self._store.save_token(
            StoredToken(cache_key, ciphertext, token.expires_in, token.usable_until_ms)
        )


class Broker:
    """The broker's state in one running relay: its tables (in the relay's store, shared with
    every instance on it), the Daraja client and the till request limiter."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay
        self._clock = relay.clock
        self._store = relay.store.broker()
        self._client: DarajaClient | None = None
        self._retired: list[DarajaClient] = []
        self._account: tuple[PlatformRecord, PlatformAccount, SecretBox] | None = None
        # Till requests to the broker, per key: generous, only against a runaway till.
        self._requests = TokenBuckets(relay.clock, 50, 10.0)
        self.watch = DarajaWatch(relay.clock)

    def __repr__(self) -> str:
        return f"Broker(store={self._store!r})"

    async def aclose(self) -> None:
        for client in [*self._retired, *([self._client] if self._client else [])]:
            await client.aclose()
        self._retired.clear()
        self._client = None

    def client(self, base_url: str) -> DarajaClient:
        """The one Daraja client (one token for every shop, shared through the store with the
        other instances); rebuilt if the platform's base URL changed."""
        if self._client is None or self._client.base_url != base_url.rstrip("/"):
            if self._client is not None:
                self._retired.append(self._client)
            assert self._account is not None, "the account is opened before the client"
            self._client = DarajaClient(
                base_url,
                self._clock,
                timeout=DARAJA_TIMEOUT,
                query_retries=0,
                token_share=PlatformTokenShare(self._store, self._account[2]),
            )
        return self._client

    # ---------------------------------------------------------------- checks shared by routes

    async def _till_and_shop(
        self, request: Request
    ) -> tuple[TillRecord, PlatformShop, PlatformAccount] | Response:
        till = await self._relay.feed.authenticate(request, self._requests)
        if isinstance(till, Response):
            return till
        try:
            shop = await self._store.shop(till.shop_id)
            record = await self._store.platform() if shop is not None else None
        except StoreUnavailable:
            return envelope(503, NOT_CONFIGURED, "The relay cannot read its settings right now.")
        if shop is None:
            return envelope(
                403,
                NOT_PLATFORM_SHOP,
                "This shop has its own M-Pesa credentials: its tills push to Daraja directly, "
                "not through the platform's paybill.",
            )
        if record is None:
            return envelope(
                503,
                NOT_CONFIGURED,
                "The platform's paybill is not set up at the relay yet "
                "(smartduka-relay platform set).",
            )
        problem = url_problem(record.daraja_url, self._relay.settings.mode)
        if problem is not None:
            # `platform set` run in sandbox mode against a production relay's database.
            log.error("broker refused: the platform's Daraja URL %s", problem)
            return envelope(
                503, NOT_CONFIGURED, f"The platform's Daraja URL {problem}; nothing was sent."
            )
        try:
            account = await self._open_account(record)
        except (SealBrokenError, RelayKeyError, ValueError, StoreUnavailable) as error:
            log.error("the platform's credentials cannot be opened: %s", type(error).__name__)
            return envelope(
                503, NOT_CONFIGURED, "The platform's credentials at the relay cannot be opened."
            )
        return till, shop, account

    async def _open_account(self, record: PlatformRecord) -> PlatformAccount:
        """The platform's set-up, decrypted once per change (`platform set` in another process
        changes the record, and the next request opens the new one)."""
        if self._account is not None and self._account[0] == record:
            return self._account[1]
        settings = self._relay.settings
        box = await open_box(self._relay.store, settings.db, settings.env_key(), create=False)
        if box is None:
            raise RelayKeyError("no relay key")
        account = open_platform(box, record)
        self._account = (record, account, box)
        return account

    def _over_limit(self, shop: PlatformShop, wait: float) -> Response:
        seconds = max(1, math.ceil(wait))
        return envelope(
            429,
            RATE_LIMITED,
            f"The platform's push limit for this shop ({shop.pushes_per_minute} a minute) is "
            f"reached; nothing was sent. Try again in {seconds} s.",
            {"Retry-After": str(seconds)},
        )

    async def _callback_url(self, url: str, till: TillRecord, public: str) -> str | Response:
        """The CallBackURL to send, built from the configured public URL and the path the till
        signed (never from the till's host); or the refusal. The platform's credentials never
        send a shop's callbacks anywhere else. A till enrolled a moment ago (before the cache's
        next refresh) is found by the cache's recheck, as its callbacks are."""
        refusal = envelope(
            400,
            CALLBACK_NOT_SIGNED,
            "The CallBackURL is not a callback address this till signed at this relay.",
        )
        try:
            parts = urlsplit(url)
            parsed = callback_path.parse(parts.path)
        except (ValueError, callback_path.CallbackPathError):
            return refusal
        if parts.scheme not in ("http", "https") or parts.query or parts.fragment:
            return refusal
        base = public.rstrip("/")
        if not url.startswith(base + callback_path.PREFIX):
            return refusal
        if parsed.shop_id != till.shop_id or parsed.till_id != till.till_id:
            return refusal
        entry = await self._relay.cache.fresh_entry(till.shop_id, till.till_id, parsed.kid)
        if entry is None or not callback_path.verify(parsed, entry.till_secrets(till.till_id)):
            return refusal
        return base + parsed.path()

    async def _json(self, request: Request, model: type[BaseModel]) -> Any:
        try:
            raw = await read_limited(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            return envelope(
                413, BODY_TOO_LARGE, f"The body is over {MAX_BODY_BYTES // 1024} KiB; nothing sent."
            )
        except BodyIncomplete:
            return envelope(
                400, INVALID_PAYLOAD, "Invalid Request Payload: the body was cut short."
            )
        try:
            data = strict_json(raw)
        except ValueError:
            return envelope(400, INVALID_PAYLOAD, "Invalid Request Payload: the body is not JSON.")
        if not isinstance(data, dict):
            return envelope(400, INVALID_PAYLOAD, "Invalid Request Payload: expected an object.")
        try:
            return model.model_validate(data)
        except ValidationError as error:
            return envelope(400, *refusal(error))

    # ---------------------------------------------------------------- routes

    async def ready(self, request: Request) -> Response:
        checked = await self._till_and_shop(request)
        if isinstance(checked, Response):
            return checked
        _, shop, account = checked
        try:
            wait = await self._store.push_wait(shop, now_ms(self._clock))
        except StoreUnavailable:
            return envelope(503, NOT_CONFIGURED, "The relay cannot read its push limits now.")
        if wait > 0:
            return self._over_limit(shop, wait)
        client = self.client(account.daraja_url)
        try:
            await client.get_token(account.merchant)
        except AuthenticationFailed:
            self.watch.saw(True)
            log.error("Daraja refused the platform's consumer key and secret")
            return envelope(502, "authentication_failed", "M-Pesa refused the platform's sign-in.")
        except DarajaError as error:
            self.watch.saw(False)
            return envelope(502, "connection_failed", f"M-Pesa could not be reached ({error})")
        return JSONResponse({"ready": True})

    async def push(self, request: Request) -> Response:
        checked = await self._till_and_shop(request)
        if isinstance(checked, Response):
            return checked
        till, shop, account = checked
        public = self._relay.settings.public_url
        if not public:
            log.error("push refused: the relay has no public URL to build a CallBackURL from")
            return envelope(
                503,
                NO_PUBLIC_URL,
                "The relay has no public URL configured, so it cannot broker pushes.",
            )
        body = await self._json(request, BrokeredPush)
        if isinstance(body, Response):
            return body
        callback_url = await self._callback_url(body.callback_url, till, public)
        if isinstance(callback_url, Response):
            log.warning("push from till %s refused: callback URL not signed here", till.till_id)
            return callback_url
        try:
            stk = build_stk_push(
                account.merchant,
                clock=self._clock,
                amount=body.amount,
                phone=body.phone,
                callback_url=callback_url,
                account_reference=shop.prefix + body.reference,
                transaction_desc=body.description,
            )
        except InvalidRequestError as error:
            return envelope(
                400, INVALID_FIELD, f"Bad Request - Invalid {error.field} ({error.message})"
            )
        try:
            wait = await self._store.take_push(shop, now_ms(self._clock))
        except StoreUnavailable:
            # Nothing was sent: the limit is shared through the store, so no store, no push.
            return envelope(503, NOT_CONFIGURED, "The relay cannot check its push limit now.")
        if wait > 0:
            return self._over_limit(shop, wait)
        client = self.client(account.daraja_url)
        try:
            accepted = await client.stk_push(account.merchant, stk)
        except PushRefused as refused:
            return self._push_refused(refused)
        except PushOutcomeUnknown as unknown:
            # A 5xx page is an answer (Daraja is there, unwell); a timeout or reset is not.
            self.watch.saw(unknown.http_status is not None)
            return outcome_unknown(unknown.message)
        self.watch.saw(True)
        try:
            await self._store.remember_push(
                accepted.checkout_request_id, shop.shop_id, till.till_id, now_ms(self._clock)
            )
        except StoreUnavailable:
            # The push went out: answering anything but its acceptance would lose it.
            log.error("push for shop %s accepted but not recorded for queries", shop.shop_id)
        return JSONResponse(accepted.model_dump(by_alias=True, mode="json"))

    def _push_refused(self, refused: PushRefused) -> Response:
        info_code = refused.info.code if refused.info else None
        if refused.error_code is not None and refused.http_status is not None:
            # Daraja's envelope (or a non-zero ResponseCode), with Daraja's status.
            self.watch.saw(True)
            return _darajas_envelope(refused, refused.http_status)
        if info_code in ("connection_failed", "authentication_failed"):
            self.watch.saw(info_code == "authentication_failed")
            return envelope(502, info_code, refused.message)
        # A 4xx without an envelope: the same status and no envelope, as Daraja gave it.
        self.watch.saw(True)
        return Response(b"", status_code=refused.http_status or 400)

    async def query(self, request: Request) -> Response:
        checked = await self._till_and_shop(request)
        if isinstance(checked, Response):
            return checked
        _, shop, account = checked
        body = await self._json(request, BrokeredQuery)
        if isinstance(body, Response):
            return body
        try:
            owner = await self._store.push_shop(body.checkout_request_id)
        except StoreUnavailable:
            return outcome_unknown("The relay cannot read its push records right now.")
        if owner != shop.shop_id:
            return envelope(
                404, UNKNOWN_CHECKOUT, "This shop made no push with that CheckoutRequestID."
            )
        client = self.client(account.daraja_url)
        try:
            result = await client.stk_query(
                account.merchant, account.merchant, body.checkout_request_id
            )
        except QueryNoAnswer as error:
            self.watch.saw(error.http_status is not None)
            return outcome_unknown(error.message)
        except (QueryFailed, AuthenticationFailed) as error:
            self.watch.saw(True)
            return self._query_refused(error)
        except DarajaError as error:
            self.watch.saw(False)
            return outcome_unknown(error.message)
        self.watch.saw(True)
        return self._query_answer(result)

    @staticmethod
    def _query_refused(error: DarajaError) -> Response:
        if error.error_code is not None and error.http_status is not None:
            return _darajas_envelope(error, error.http_status)
        code = error.info.code if error.info else "http_refused"
        return envelope(error.http_status or 502, code, error.message)

    @staticmethod
    def _query_answer(result: QueryResult) -> Response:
        if result.response is not None:
            return JSONResponse(result.response.model_dump(by_alias=True, mode="json"))
        # Still pending: Daraja's own "being processed" envelope, as Daraja sends it.
        return JSONResponse(
            {
                "requestId": result.checkout_request_id,
                "errorCode": "500.001.1001",
                "errorMessage": result.info.description or "The transaction is being processed",
            },
            status_code=500,
        )

    async def status(self, request: Request) -> Response:
        checked = await self._till_and_shop(request)
        if isinstance(checked, Response):
            return checked
        _, _, account = checked
        status = BrokerStatus(daraja=await self.watch.state(account.daraja_url))
        return JSONResponse(status.model_dump())


def _darajas_envelope(error: DarajaError, status: int) -> Response:
    """Daraja's own error envelope, passed back with Daraja's HTTP status."""
    body = {
        "requestId": error.request_id or "",
        "errorCode": error.error_code,
        "errorMessage": error.error_message or "",
    }
    return JSONResponse(body, status_code=status)


BROKER_ROUTES: list[Route] = [
    Route(READY_PATH, on_state("broker", Broker.ready), methods=["GET"]),
    Route(PUSH_PATH, on_state("broker", Broker.push), methods=["POST"]),
    Route(QUERY_PATH, on_state("broker", Broker.query), methods=["POST"]),
    Route(STATUS_PATH, on_state("broker", Broker.status), methods=["GET"]),
]


async def platform_url_problem(store: RelayStore, settings: RelaySettings) -> str | None:
    """Why the stored platform Daraja URL cannot be used in the settings' mode, or None (also
    when no platform is set). `serve` checks it before listening."""
    record = await store.broker().platform()
    if record is None:
        return None
    problem = url_problem(record.daraja_url, settings.mode)
    return None if problem is None else f"the platform's Daraja URL {problem}"


async def close_broker(state: Any) -> None:
    """Close the app's broker, if the lifespan got as far as making one."""
    broker: Broker | None = getattr(state, "broker", None)
    if broker is not None:
        await broker.aclose()

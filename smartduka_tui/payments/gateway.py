"""How the engine reaches Daraja for one shop: a small interface and its direct implementation.

`DarajaGateway` is all the engine needs: get ready (an OAuth token, so that "M-Pesa cannot be
reached" is known before an attempt is written), push, and query. `DirectGateway` uses the
shop's own credentials from the vault on `DarajaClient`; shops on the platform's paybill will
get a gateway that talks to the relay's broker (a later issue) behind the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import httpx
from pydantic import SecretStr

from smartduka_tui.clock import Clock
from smartduka_tui.config import Settings
from smartduka_tui.faults import AFTER_PUSH_SENT, fault_point
from smartduka_tui.model import ShopType
from smartduka_tui.mpesa.client import PUSH_PATH, DarajaClient
from smartduka_tui.mpesa.errors import AuthenticationFailed, DarajaError
from smartduka_tui.mpesa.errors import PushOutcomeUnknown as MpesaPushOutcomeUnknown
from smartduka_tui.mpesa.errors import PushRefused as MpesaPushRefused
from smartduka_tui.mpesa.requests import (
    DarajaCredentials,
    InvalidRequestError,
    MerchantConfig,
    MerchantKind,
    build_stk_push,
)
from smartduka_tui.mpesa.statement import PullPage, QrCodeResponse, QrTransactionCode
from smartduka_tui.mpesa.statement_requests import (
    build_pull_query,
    build_pull_register,
    build_qr_code,
)
from smartduka_tui.store.records import Shop, ShopCredentials


class GatewayError(Exception):
    """Base of what a gateway raises; messages never carry a secret or a callback path."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotReady(GatewayError):
    """The shop cannot push: missing or rejected credentials, unknown shortcode, disabled."""


class Unreachable(GatewayError):
    """Daraja could not be reached; nothing was sent."""


class PushRejected(GatewayError):
    """Daraja definitely refused the push (an error envelope, any 4xx, connect failure).

    `code` is Daraja's errorCode when there was an envelope (e.g. "500.001.1001"), else the
    catalogue's own verdict ("connection_failed", "http_refused"); see `codes.advise`.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class PushOutcomeUnknown(GatewayError):
    """The push may have reached Daraja (read timeout, reset, 5xx without an envelope)."""


@dataclass(frozen=True, slots=True)
class PushOrder:
    """One STK push as the engine asks for it. `callback_url` is a capability: never log it."""

    amount: int
    phone: str
    account_reference: str
    description: str
    callback_url: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class PushAccepted:
    merchant_request_id: str
    checkout_request_id: str


class QueryKind(StrEnum):
    RESULT = "result"
    """Daraja gave a ResultCode for the transaction."""
    PENDING = "pending"
    """"The transaction is being processed"."""
    NO_ANSWER = "no_answer"
    """Unreachable, throttled, a 5xx, an unknown CheckoutRequestID: nothing learnt."""


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    kind: QueryKind
    result_code: str | None = None
    result_desc: str = ""


class DarajaGateway(Protocol):
    """Push and query for one shop."""

    async def prepare(self) -> None:
        """Make sure a push can go out now (an OAuth token in hand).

        Raises NotReady or Unreachable; sends no push.
        """
        ...

    async def push(self, order: PushOrder) -> PushAccepted:
        """Send one STK push, never retried. Raises PushRejected or PushOutcomeUnknown."""
        ...

    async def query(self, checkout_request_id: str) -> QueryAnswer:
        """One STK query (with the client's own backoff on throttling); never raises."""
        ...

    async def aclose(self) -> None: ...


class DirectGateway:
    """A shop's own paybill or till, reached with its own credentials (DESIGN.md section 6),
    through the protocol layer's `DarajaClient` (token cache, push never retried, query
    backoff)."""

    def __init__(
        self,
        shop: Shop,
        credentials: ShopCredentials,
        client: DarajaClient,
        clock: Clock,
        *,
        owns_client: bool = True,
    ) -> None:
        if shop.business_shortcode is None:
            raise NotReady(f"Shop {shop.id!r} has no shortcode set up.")
        try:
            self._merchant = MerchantConfig(
                kind=MerchantKind.TILL
                if shop.mpesa_type is ShopType.TILL
                else MerchantKind.PAYBILL,
                business_shortcode=shop.business_shortcode,
                till_number=shop.till_number if shop.mpesa_type is ShopType.TILL else None,
                passkey=SecretStr(credentials.passkey.reveal()),
                credentials=DarajaCredentials(
                    consumer_key=SecretStr(credentials.consumer_key.reveal()),
                    consumer_secret=SecretStr(credentials.consumer_secret.reveal()),
                ),
            )
        except ValueError:
            raise NotReady(
                f"Shop {shop.id!r} has M-Pesa settings the till cannot use; a manager must "
                "check them."
            ) from None
        self._shop_id = shop.id
        self._client = client
        self._clock = clock
        self._owns_client = owns_client

    @property
    def shortcode(self) -> str:
        return self._merchant.business_shortcode

    def __repr__(self) -> str:
        return f"DirectGateway(shop={self._shop_id!r}, shortcode={self.shortcode!r})"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def prepare(self) -> None:
        try:
            await self._client.get_token(self._merchant)
        except AuthenticationFailed:
            raise NotReady(
                "M-Pesa refused the shop's consumer key or secret; a manager must check them."
            ) from None
        except DarajaError as error:
            raise Unreachable(
                f"M-Pesa could not be reached ({error.message}); nothing was sent."
            ) from None

    async def sale_qr(self, merchant_name: str, reference: str, amount: int) -> QrCodeResponse:
        """A Dynamic QR for one sale; the customer's payment arrives as a C2B confirmation.
        Unreachable (with the reason) when M-Pesa gives no usable image."""
        till = self._merchant.kind is MerchantKind.TILL
        try:
            request = build_qr_code(
                merchant_name=merchant_name[:40],
                reference=reference,
                amount=amount,
                cpi=(self._merchant.till_number if till else None)
                or self._merchant.business_shortcode,
                trx_code=QrTransactionCode.BUY_GOODS if till else QrTransactionCode.PAYBILL,
            )
            return await self._client.generate_qr(self._merchant, request)
        except (DarajaError, ValueError) as error:
            reason = error.message if isinstance(error, DarajaError) else str(error)
            raise Unreachable(f"M-Pesa did not make the QR code ({reason}).") from None

    async def push(self, order: PushOrder) -> PushAccepted:
        try:
            request = build_stk_push(
                self._merchant,
                clock=self._clock,
                amount=order.amount,
                phone=order.phone,
                callback_url=order.callback_url,
                account_reference=order.account_reference,
                transaction_desc=order.description,
            )
        except InvalidRequestError as error:
            raise PushRejected(f"The request was not sent: {error}") from None
        try:
            accepted = await self._client.stk_push(self._merchant, request)
        except MpesaPushRefused as refused:
            code = refused.error_code or (refused.info.code if refused.info else None)
            raise PushRejected(refused.error_message or refused.message, code) from None
        except MpesaPushOutcomeUnknown as unknown:
            raise PushOutcomeUnknown(unknown.message) from None
        return PushAccepted(accepted.merchant_request_id, accepted.checkout_request_id)

    async def query(self, checkout_request_id: str) -> QueryAnswer:
        try:
            result = await self._client.stk_query(
                self._merchant, self._merchant, checkout_request_id
            )
        except (DarajaError, InvalidRequestError) as error:
            return QueryAnswer(QueryKind.NO_ANSWER, result_desc=str(error))
        if result.pending:
            return QueryAnswer(QueryKind.PENDING, result_desc=result.info.description)
        if result.checkout_request_id != checkout_request_id:
            return QueryAnswer(QueryKind.NO_ANSWER, result_desc="answer for another request")
        return QueryAnswer(QueryKind.RESULT, result.code_key, result.result_desc or "")

    async def register_pull(
        self, nominated_number: str, callback_url: str, *, production: bool
    ) -> bool:
        """Register the shortcode for Pull Transactions; True when newly registered, False
        when it already was. Unreachable (with the reason) when M-Pesa refuses."""
        try:
            request = build_pull_register(
                self.shortcode,
                nominated_number=nominated_number,
                callback_url=callback_url,
                production=production,
            )
            answer = await self._client.register_pull(self._merchant, request)
        except (DarajaError, ValueError) as error:
            reason = error.message if isinstance(error, DarajaError) else str(error)
            raise Unreachable(
                f"M-Pesa did not register the shortcode for pulls ({reason})."
            ) from None
        return not answer.already_registered

    async def pull_page(self, start: datetime, end: datetime, offset: int) -> PullPage:
        """One page of the shortcode's statement from `start` to `end`, from row `offset`.
        Unreachable (with the reason) for a refusal or a page that cannot be read."""
        try:
            request = build_pull_query(
                self.shortcode, start=start, end=end, offset=offset, now=self._clock.now()
            )
            return await self._client.pull_transactions(self._merchant, request)
        except (DarajaError, ValueError) as error:
            reason = error.message if isinstance(error, DarajaError) else str(error)
            raise Unreachable(f"M-Pesa did not give the statement ({reason}).") from None


def direct_gateway(gateway: DarajaGateway) -> DirectGateway | None:
    """The shop's own Daraja gateway beneath any wrapper that keeps it as `inner` (a running
    till's engine pushes through a `connectivity.ObservedGateway`), or None when the shop
    pushes through the relay's broker. What only the shop's own shortcode can do (Pull
    Transactions, dynamic QR) asks this rather than the engine's gateway's type."""
    seen: object = gateway
    while not isinstance(seen, DirectGateway):
        seen = getattr(seen, "inner", None)
        if seen is None:
            return None
    return seen


def daraja_client(
    settings: Settings,
    clock: Clock,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> DarajaClient:
    """The Daraja client a till uses: timeouts from settings, and the push's crash point."""
    timeout = httpx.Timeout(
        connect=settings.daraja.connect_timeout_s,
        read=settings.daraja.read_timeout_s,
        write=settings.daraja.read_timeout_s,
        pool=settings.daraja.connect_timeout_s,
    )
    return DarajaClient(
        settings.daraja_base_url,
        clock,
        timeout=timeout,
        transport=FaultPointTransport(transport or httpx.AsyncHTTPTransport()),
        token_refresh_margin_s=settings.daraja.token_refresh_margin_s,
        query_retries=settings.daraja.query_retries,
    )


class FaultPointTransport(httpx.AsyncBaseTransport):
    """Hands httpcore a trace hook on STK pushes so `after-push-sent` fires once the request
    body is on the wire and before its answer is read (no effect unless SMARTDUKA_FAULT)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(PUSH_PATH):
            request.extensions = {**request.extensions, "trace": _fault_after_request_sent}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _fault_after_request_sent(event: str, info: dict[str, Any]) -> None:
    if event.endswith("send_request_body.complete"):
        fault_point(AFTER_PUSH_SENT)

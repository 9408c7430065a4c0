"""How the engine reaches Daraja for one shop: a small interface and its direct implementation.

`DarajaGateway` is all the engine needs: get ready (an OAuth token, so that "M-Pesa cannot be
reached" is known before an attempt is written), push, and query. `DirectGateway` uses the
shop's own credentials from the vault on `DarajaClient`; shops on the platform's paybill will
get a gateway that talks to the relay's broker (a later issue) behind the same interface.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import httpx

from smartduka_tui.clock import Clock
from smartduka_tui.config import Settings
from smartduka_tui.faults import AFTER_PUSH_SENT, fault_point
from smartduka_tui.mpesa.kenya_time import kenya_timestamp
from smartduka_tui.mpesa.models import (
    OAuthResponse,
    StkPushRequest,
    StkPushResponse,
    StkQueryRequest,
    StkQueryResponse,
    TransactionType,
    parse_error_envelope,
)
from smartduka_tui.payments.codes import http_code
from smartduka_tui.store.records import Shop, ShopCredentials, ShopType

PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
QUERY_PATH = "/mpesa/stkpushquery/v1/query"
EXPIRED_BEARER_CODE = "404.001.03"


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

    `code` is Daraja's errorCode when there was an envelope (e.g. "500.001.1001").
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

    @property
    def shortcode(self) -> str:
        """The BusinessShortCode queries are paced by."""
        ...

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
    """A shop's own paybill or till, reached with its own credentials (DESIGN.md section 6).

    One OAuth token is cached per gateway and refreshed (one refresh at a time) before it
    expires, or once when Daraja calls it invalid. Pushes are never retried.
    """

    def __init__(
        self,
        shop: Shop,
        credentials: ShopCredentials,
        settings: Settings,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if shop.business_shortcode is None or shop.party_b is None:
            raise NotReady(f"Shop {shop.id!r} has no shortcode set up.")
        self._shop = shop
        self._credentials = credentials
        self._clock = clock
        self._margin = settings.daraja.token_refresh_margin_s
        self._client = httpx.AsyncClient(
            base_url=settings.daraja_base_url,
            timeout=httpx.Timeout(
                settings.daraja.read_timeout_s, connect=settings.daraja.connect_timeout_s
            ),
            transport=transport,
            trust_env=False,
            follow_redirects=False,
        )
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()

    @property
    def shortcode(self) -> str:
        assert self._shop.business_shortcode is not None
        return self._shop.business_shortcode

    def __repr__(self) -> str:
        return f"DirectGateway(shop={self._shop.id!r}, shortcode={self.shortcode!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    # ------------------------------------------------------------------ OAuth

    async def prepare(self) -> None:
        await self._bearer()

    async def _bearer(self, *, stale: str | None = None) -> str:
        async with self._token_lock:
            fresh = self._token is not None and self._clock.monotonic() < self._token_expires
            if fresh and self._token != stale:
                assert self._token is not None
                return self._token
            basic = base64.b64encode(
                f"{self._credentials.consumer_key.reveal()}:"
                f"{self._credentials.consumer_secret.reveal()}".encode()
            ).decode()
            try:
                response = await self._client.get(
                    "/oauth/v1/generate",
                    params={"grant_type": "client_credentials"},
                    headers={"Authorization": f"Basic {basic}"},
                )
            except httpx.HTTPError as error:
                raise Unreachable(
                    f"M-Pesa could not be reached ({type(error).__name__}); nothing was sent."
                ) from None
            if response.status_code in (400, 401, 403):
                raise NotReady(
                    "M-Pesa refused the shop's consumer key or secret; a manager must check them."
                )
            try:
                token = OAuthResponse.model_validate(response.json())
            except ValueError:
                raise Unreachable(
                    f"M-Pesa's sign-in answered HTTP {response.status_code} without a token; "
                    "nothing was sent."
                ) from None
            lifetime = max(1, token.expires_in - self._margin)
            self._token = token.access_token.get_secret_value()
            self._token_expires = self._clock.monotonic() + lifetime
            return self._token

    async def _post(
        self, path: str, body: dict[str, object], *, on_sent: _Trace | None = None
    ) -> httpx.Response:
        """POST with the bearer token; once more with a new token if Daraja says it is invalid
        (a request refused for its token was not processed)."""
        token = await self._bearer()
        extensions = {"trace": on_sent} if on_sent is not None else None
        for _ in range(2):
            response = await self._client.post(
                path,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                extensions=extensions,
            )
            envelope = parse_error_envelope(response.content)
            if envelope is None or envelope.error_code != EXPIRED_BEARER_CODE:
                return response
            token = await self._bearer(stale=token)
        return response

    def _password(self, timestamp: str) -> str:
        raw = f"{self.shortcode}{self._credentials.passkey.reveal()}{timestamp}"
        return base64.b64encode(raw.encode()).decode()

    # ------------------------------------------------------------------ push

    async def push(self, order: PushOrder) -> PushAccepted:
        timestamp = kenya_timestamp(self._clock.now())
        request = StkPushRequest.model_validate(
            {
                "BusinessShortCode": self.shortcode,
                "Password": self._password(timestamp),
                "Timestamp": timestamp,
                "TransactionType": TransactionType.BUY_GOODS
                if self._shop.mpesa_type is ShopType.TILL
                else TransactionType.PAYBILL,
                "Amount": order.amount,
                "PartyA": order.phone,
                "PartyB": self._shop.party_b,
                "PhoneNumber": order.phone,
                "CallBackURL": order.callback_url,
                "AccountReference": order.account_reference,
                "TransactionDesc": order.description,
            }
        )
        try:
            response = await self._post(
                PUSH_PATH, request.to_wire(), on_sent=_fault_after_request_sent
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise PushRejected(
                f"M-Pesa could not be reached ({type(error).__name__}); nothing was sent."
            ) from None
        except (Unreachable, NotReady) as error:
            raise PushRejected(error.message) from None
        except httpx.HTTPError as error:
            raise PushOutcomeUnknown(
                f"No answer from M-Pesa after sending ({type(error).__name__})."
            ) from None
        envelope = parse_error_envelope(response.content)
        if envelope is not None:
            raise PushRejected(envelope.error_message or envelope.error_code, envelope.error_code)
        if response.status_code == 200:
            try:
                accepted = StkPushResponse.model_validate(response.json())
            except ValueError:
                raise PushOutcomeUnknown("M-Pesa's answer to the push could not be read.") from None
            if accepted.accepted:
                return PushAccepted(accepted.merchant_request_id, accepted.checkout_request_id)
            raise PushRejected(
                accepted.response_description or "M-Pesa did not accept the request.",
                accepted.response_code,
            )
        if 400 <= response.status_code < 500:
            raise PushRejected(
                f"M-Pesa refused the request (HTTP {response.status_code}).",
                http_code(response.status_code),
            )
        raise PushOutcomeUnknown(
            f"M-Pesa answered HTTP {response.status_code} without saying what happened."
        )

    # ------------------------------------------------------------------ query

    async def query(self, checkout_request_id: str) -> QueryAnswer:
        timestamp = kenya_timestamp(self._clock.now())
        request = StkQueryRequest.model_validate(
            {
                "BusinessShortCode": self.shortcode,
                "Password": self._password(timestamp),
                "Timestamp": timestamp,
                "CheckoutRequestID": checkout_request_id,
            }
        )
        try:
            response = await self._post(QUERY_PATH, request.to_wire())
        except (httpx.HTTPError, GatewayError):
            return QueryAnswer(QueryKind.NO_ANSWER, result_desc="M-Pesa could not be reached")
        envelope = parse_error_envelope(response.content)
        if envelope is not None:
            if "being processed" in envelope.error_message.lower():
                return QueryAnswer(QueryKind.PENDING, result_desc=envelope.error_message)
            return QueryAnswer(
                QueryKind.NO_ANSWER,
                result_desc=f"{envelope.error_code} {envelope.error_message}".strip(),
            )
        if response.status_code != 200:
            return QueryAnswer(QueryKind.NO_ANSWER, result_desc=f"HTTP {response.status_code}")
        try:
            answer = StkQueryResponse.model_validate(response.json())
        except ValueError:
            return QueryAnswer(QueryKind.NO_ANSWER, result_desc="unreadable query answer")
        if answer.checkout_request_id != checkout_request_id:
            return QueryAnswer(QueryKind.NO_ANSWER, result_desc="answer for another request")
        return QueryAnswer(QueryKind.RESULT, answer.code_key, answer.description)


_Trace = Callable[[str, dict[str, Any]], Awaitable[None]]


async def _fault_after_request_sent(event: str, info: dict[str, Any]) -> None:
    """httpcore's trace hook: the push's body is on the wire, its answer not yet read."""
    if event.endswith("send_request_body.complete"):
        fault_point(AFTER_PUSH_SENT)

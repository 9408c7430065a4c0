"""The gateway of a shop paid through the platform's paybill: Daraja by way of the relay's broker.

The till holds no Daraja credentials for such a shop; it asks its relay (authenticated by its
till key) to push and query with the platform's. The broker's answers keep Daraja's meaning, so
this gateway reads them by the same rules as the direct one (DESIGN.md section 3):

- an accepted push body: PushAccepted;
- any error envelope, whatever the HTTP status (Daraja's, or the broker's own `broker.*` and
  `400.002.0x` refusals): PushRejected with its errorCode, nothing was started;
- 429 (the shop's push limit at the relay): PushRejected as a spike arrest, retry later;
- any other 4xx, or the relay not reached at all: PushRejected;
- a 5xx without an envelope, a read timeout or a reset: PushOutcomeUnknown (never re-sent, but
  for a push that provably never left a pooled connection the relay had closed:
  `mpesa.http_pool`, whose keep-alive is shorter than the relay's);
- a body the broker would refuse (`mpesa.broker_body`, the model both sides use): PushRejected
  with the broker's own code and words, before anything is sent.

`prepare` asks the broker whether a push can go out now (`GET /v1/daraja/ready`), so "the relay
or M-Pesa cannot be reached" and "this shop is not on the platform" are known before an attempt
is written.
"""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
from pydantic import ValidationError

from smartduka_tui.config import Settings
from smartduka_tui.model import ShopType
from smartduka_tui.mpesa.broker_body import (
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
from smartduka_tui.mpesa.http_pool import RELAY_LIMITS, send_idempotent, send_once
from smartduka_tui.mpesa.models import (
    StkPushResponse,
    StkQueryResponse,
    parse_error_envelope,
)
from smartduka_tui.mpesa.result_codes import SPIKE_ARREST, is_being_processed
from smartduka_tui.payments.gateway import (
    NotReady,
    PushAccepted,
    PushOrder,
    PushOutcomeUnknown,
    PushRejected,
    QueryAnswer,
    QueryKind,
    Unreachable,
)
from smartduka_tui.store.records import Shop, TillCredentials

# Transport failures that happen before the request leaves this machine: nothing was sent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)


def relay_timeout(settings: Settings) -> httpx.Timeout:
    """The broker waits for Daraja (up to its read timeout) before it answers: allow for that."""
    daraja = settings.daraja
    return httpx.Timeout(
        connect=daraja.connect_timeout_s,
        read=daraja.read_timeout_s + 10.0,
        write=daraja.read_timeout_s,
        pool=daraja.connect_timeout_s,
    )


class BrokerGateway:
    """`DarajaGateway` for a platform shop: push and query through the relay's broker."""

    def __init__(
        self,
        shop: Shop,
        till: TillCredentials,
        relay_url: str,
        *,
        timeout: httpx.Timeout,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if shop.mpesa_type is not ShopType.PLATFORM:
            raise NotReady(f"Shop {shop.id!r} has its own M-Pesa set-up, not the platform's.")
        self._shop = shop
        self._till_key = till.till_key
        self._http = httpx.AsyncClient(
            base_url=relay_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            trust_env=False,
            follow_redirects=False,
            headers={"Accept": "application/json"},
            limits=RELAY_LIMITS,
        )

    def __repr__(self) -> str:
        return f"BrokerGateway(shop={self._shop.id!r}, relay={str(self._http.base_url)!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._till_key.reveal()}"}

    def _reference(self, account_reference: str) -> str:
        """The sale part of the reference: the relay puts the shop's prefix in front."""
        prefix = self._shop.account_prefix
        if account_reference.startswith(prefix) and len(account_reference) > len(prefix):
            return account_reference[len(prefix) :]
        return account_reference

    async def prepare(self) -> None:
        try:
            response = await send_idempotent(
                lambda extensions: self._http.get(
                    READY_PATH, headers=self._auth(), extensions=extensions
                ),
                "broker readiness",
            )
        except httpx.TransportError as error:
            raise Unreachable(
                f"The relay could not be reached ({type(error).__name__}); nothing was sent."
            ) from None
        if response.status_code == 200:
            return
        envelope = parse_error_envelope(response.content)
        said = envelope.error_message if envelope else ""
        code = envelope.error_code if envelope else ""
        if response.status_code == 429:
            wait = response.headers.get("retry-after", "a few")
            raise Unreachable(
                f"The platform's push limit for this shop is reached; try again in {wait} s. "
                "Nothing was sent."
            )
        if response.status_code == 401:
            raise NotReady(
                "The relay refused this till's key (revoked or wrong): enrol the till again."
            )
        if code == "connection_failed" or (response.status_code >= 500 and envelope is None):
            raise Unreachable(f"M-Pesa could not be reached through the relay. {said}".strip())
        raise NotReady(said or f"The relay refused the push (HTTP {response.status_code}).")

    async def push(self, order: PushOrder) -> PushAccepted:
        try:
            body = BrokeredPush(
                amount=order.amount,
                phone=order.phone,
                reference=self._reference(order.account_reference),
                description=order.description,
                callback_url=order.callback_url,
            )
        except ValidationError as error:
            # What the broker would refuse, refused here in its words: nothing was sent.
            code, message = refusal(error)
            raise PushRejected(message, code) from None
        try:
            # Not idempotent (a second push can prompt twice): see mpesa.http_pool.
            response = await send_once(
                lambda extensions: self._http.post(
                    PUSH_PATH, json=body.model_dump(), headers=self._auth(), extensions=extensions
                ),
                "brokered STK push",
            )
        except _NOT_SENT as error:
            raise PushRejected(
                f"The relay could not be reached ({type(error).__name__}); nothing was sent.",
                "connection_failed",
            ) from None
        except httpx.TransportError as error:
            raise PushOutcomeUnknown(
                f"The push went to the relay but no answer came back ({type(error).__name__})."
            ) from None
        return self._push_answer(response)

    @staticmethod
    def _push_answer(response: httpx.Response) -> PushAccepted:
        status = response.status_code
        if status == 429:
            wait = response.headers.get("retry-after", "a few")
            raise PushRejected(
                f"The platform's push limit for this shop is reached; nothing was sent. Try "
                f"again in {wait} s.",
                SPIKE_ARREST,
            )
        envelope = parse_error_envelope(response.content)
        if envelope is not None:
            raise PushRejected(envelope.error_message or envelope.error_code, envelope.error_code)
        if 200 <= status < 300:
            try:
                accepted = StkPushResponse.model_validate(
                    json.loads(response.content, parse_float=Decimal)
                )
            except (ValueError, ValidationError):
                raise PushOutcomeUnknown(
                    f"The relay answered HTTP {status} with an unreadable body."
                ) from None
            if not accepted.accepted:
                raise PushRejected(
                    accepted.response_description or "M-Pesa did not accept the push.",
                    accepted.response_code,
                )
            return PushAccepted(accepted.merchant_request_id, accepted.checkout_request_id)
        if status >= 500:
            raise PushOutcomeUnknown(f"The relay answered HTTP {status}: the push may have gone.")
        raise PushRejected(f"The relay refused the push with HTTP {status}.", "http_refused")

    async def query(self, checkout_request_id: str) -> QueryAnswer:
        try:
            response = await send_idempotent(
                lambda extensions: self._http.post(
                    QUERY_PATH,
                    json=BrokeredQuery(checkout_request_id=checkout_request_id).model_dump(),
                    headers=self._auth(),
                    extensions=extensions,
                ),
                "brokered STK query",
            )
        except httpx.TransportError as error:
            return QueryAnswer(QueryKind.NO_ANSWER, result_desc=f"relay: {type(error).__name__}")
        envelope = parse_error_envelope(response.content)
        if envelope is not None:
            if is_being_processed(envelope.error_code, envelope.error_message):
                return QueryAnswer(QueryKind.PENDING, result_desc=envelope.error_message)
            return QueryAnswer(
                QueryKind.NO_ANSWER, result_desc=f"{envelope.error_code} {envelope.error_message}"
            )
        if response.status_code != 200:
            return QueryAnswer(QueryKind.NO_ANSWER, result_desc=f"HTTP {response.status_code}")
        try:
            answer = StkQueryResponse.model_validate(
                json.loads(response.content, parse_float=Decimal)
            )
        except (ValueError, ValidationError):
            return QueryAnswer(QueryKind.NO_ANSWER, result_desc="unreadable answer")
        if answer.checkout_request_id != checkout_request_id:
            return QueryAnswer(QueryKind.NO_ANSWER, result_desc="answer for another request")
        return QueryAnswer(QueryKind.RESULT, answer.code_key, answer.description)

    async def daraja_status(self) -> DarajaState | None:
        """The broker's view of Daraja ("reachable", "unreachable", "unknown"), or None when
        the relay could not say (unreachable, it refused this till, or an answer not read)."""
        try:
            response = await send_idempotent(
                lambda extensions: self._http.get(
                    STATUS_PATH, headers=self._auth(), extensions=extensions
                ),
                "broker status",
            )
            if response.status_code != 200:
                return None
            return BrokerStatus.model_validate_json(response.content).daraja
        except (httpx.TransportError, ValueError):
            return None

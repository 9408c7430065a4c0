"""An async Daraja client on httpx: OAuth, STK push and STK query for many shops at once.

Credentials are passed per call, so one client (one connection pool, one token cache) serves
every shop. Tokens are cached per credential set (keyed on a hash, never the secret), refreshed
`token_refresh_margin` before they expire with a single refresh in flight per credential set,
and refreshed once when Daraja answers `404.001.03 Invalid Access Token` (the portal says a new
token may revoke the old one).

`stk_push` is never retried, except once after `404.001.03`: that answer is a definite refusal,
so nothing was started (and, like every request here, once when it provably never left a pooled
connection the server had closed: `mpesa.http_pool`, whose short keep-alive is why that race
does not turn a good push into UNKNOWN). Everything else ends in `PushRefused` (definite) or
`PushOutcomeUnknown` (may have started). `stk_query` is read-only, so it retries busy, throttled
and unreachable answers with exponential backoff and jitter on the injected clock, a bounded
number of times.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Protocol, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from smartduka_tui.clock import Clock
from smartduka_tui.config import Settings
from smartduka_tui.mpesa.errors import (
    AuthenticationFailed,
    DarajaError,
    DarajaUnavailable,
    PushOutcomeUnknown,
    PushRefused,
    QueryNoAnswer,
    QueryRefused,
    RequestOutcomeUnknown,
    RequestRefused,
)
from smartduka_tui.mpesa.http_pool import DARAJA_LIMITS, send_idempotent, send_once
from smartduka_tui.mpesa.models import (
    ErrorEnvelope,
    OAuthResponse,
    StkPushRequest,
    StkPushResponse,
    StkQueryResponse,
    parse_error_envelope,
    strict_json,
)
from smartduka_tui.mpesa.phone import mask_phone
from smartduka_tui.mpesa.requests import DarajaCredentials, MerchantConfig, build_stk_query
from smartduka_tui.mpesa.result_codes import (
    AUTHENTICATION_FAILED,
    CONNECTION_FAILED,
    HTTP_REFUSED,
    INVALID_ACCESS_TOKEN,
    NO_ANSWER,
    OUTCOME_UNKNOWN,
    QUOTA_VIOLATION,
    SPIKE_ARREST,
    ResultInfo,
    describe_refusal,
    describe_result,
    is_being_processed,
)
from smartduka_tui.mpesa.statement import (
    AsyncAccepted,
    PullPage,
    PullQueryRequest,
    PullRegisterRequest,
    PullRegisterResponse,
    QrCodeRequest,
    QrCodeResponse,
    RegisterUrlRequest,
    RegisterUrlResponse,
    ReversalRequest,
    StatementParseError,
    TransactionStatusRequest,
    parse_pull_page,
)
from smartduka_tui.tls import client_verify

logger = logging.getLogger(__name__)

OAUTH_PATH: Final = "/oauth/v1/generate"
PUSH_PATH: Final = "/mpesa/stkpush/v1/processrequest"
QUERY_PATH: Final = "/mpesa/stkpushquery/v1/query"
REGISTER_URL_PATH: Final = "/mpesa/c2b/v2/registerurl"
QR_PATH: Final = "/mpesa/qrcode/v1/generate"
TRANSACTION_STATUS_PATH: Final = "/mpesa/transactionstatus/v1/query"
REVERSAL_PATH: Final = "/mpesa/reversal/v1/request"
PULL_REGISTER_PATH: Final = "/pulltransactions/v1/register"
PULL_QUERY_PATH: Final = "/pulltransactions/v1/query"
DEFAULT_TIMEOUT: Final = httpx.Timeout(connect=5.0, read=20.0, write=10.0, pool=5.0)
# Query answers worth asking again: throttles and Daraja's own internal error.
_RETRYABLE_QUERY_CODES: Final = frozenset({SPIKE_ARREST, QUOTA_VIOLATION, "500.003.1001"})
# Transport failures that happen before a request leaves this machine.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)

_Model = TypeVar("_Model", bound=BaseModel)


class QueryStatus(StrEnum):
    PENDING = "pending"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class QueryResult:
    """An STK query's answer: still pending, or resolved with a final ResultCode."""

    status: QueryStatus
    checkout_request_id: str
    info: ResultInfo
    result_code: int | str | None = None
    result_desc: str | None = None
    response: StkQueryResponse | None = None

    @property
    def pending(self) -> bool:
        return self.status is QueryStatus.PENDING

    @property
    def code_key(self) -> str | None:
        return None if self.response is None else self.response.code_key


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A cached bearer token. `value` is secret; `usable_until` is on the clock's monotonic."""

    value: SecretStr = field(repr=False)
    expires_in: int
    minted_at: float
    usable_until: float


@dataclass(frozen=True, slots=True)
class SharedToken:
    """A token as several processes share it: its end on the wall clock (milliseconds)."""

    value: SecretStr = field(repr=False)
    expires_in: int
    usable_until_ms: int


class TokenShare(Protocol):
    """Where processes that use the same credentials share one token (the relay's database):
    a fresh token there is used instead of minting another."""

    async def load(self, cache_key: str) -> SharedToken | None: ...

    async def save(self, cache_key: str, token: SharedToken) -> None: ...


@dataclass(slots=True)
class _TokenSlot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    token: AccessToken | None = None
    label: str = ""


def _envelope_error(
    cls: type[DarajaError], prefix: str, status: int, envelope: ErrorEnvelope
) -> DarajaError:
    """`cls` for a Daraja error envelope, with the catalogue's meaning of its code."""
    info = describe_refusal(envelope.error_code, envelope.error_message)
    return cls(
        f"{prefix}: Daraja answered {envelope.error_code} {info.description!r}"
        if info.description
        else f"{prefix}: Daraja answered {envelope.error_code}",
        http_status=status,
        error_code=envelope.error_code,
        error_message=info.description,
        request_id=envelope.request_id or None,
        info=info,
    )


def _read_model(model: type[_Model], response: httpx.Response) -> _Model | None:
    try:
        # The one strict loader: fractions as Decimal, no NaN; MalformedJson is a ValueError.
        return model.model_validate(strict_json(response.content))
    except (ValueError, ValidationError):
        return None


class DarajaClient:
    """Talks to Daraja (sandbox, production or the simulator) at `base_url`.

    `transport` lets tests use an in-process app (`httpx.ASGITransport`). `rng` supplies the
    backoff jitter (seed it for repeatable tests). `trust_env` is off so ambient proxy variables
    never silently reroute payments; turn it on where a shop needs a proxy.
    """

    def __init__(
        self,
        base_url: str,
        clock: Clock,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        token_refresh_margin_s: float = 120.0,
        query_retries: int = 3,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 8.0,
        rng: random.Random | None = None,
        trust_env: bool = False,
        token_share: TokenShare | None = None,
    ) -> None:
        if token_refresh_margin_s < 0 or query_retries < 0 or backoff_base_s < 0:
            raise ValueError("margins, retries and backoff must not be negative")
        if None in (timeout.connect, timeout.read, timeout.write, timeout.pool):
            raise ValueError("every Daraja timeout must be bounded")
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.token_refresh_margin_s = token_refresh_margin_s
        self.query_retries = query_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._rng = rng or random.Random()
        self._slots: dict[str, _TokenSlot] = {}
        self._share = token_share
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            trust_env=trust_env,
            verify=client_verify(),
            follow_redirects=False,
            headers={"Accept": "application/json"},
            limits=DARAJA_LIMITS,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> DarajaClient:
        """A client configured from the till's `[daraja]` settings (base URL follows the mode)."""
        daraja = settings.daraja
        timeout = httpx.Timeout(
            connect=daraja.connect_timeout_s,
            read=daraja.read_timeout_s,
            write=daraja.read_timeout_s,
            pool=daraja.connect_timeout_s,
        )
        return cls(
            settings.daraja_base_url,
            clock,
            timeout=timeout,
            transport=transport,
            token_refresh_margin_s=daraja.token_refresh_margin_s,
        )

    async def __aenter__(self) -> DarajaClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"DarajaClient(base_url={self.base_url!r}, cached_tokens={len(self._slots)})"

    # ---------------------------------------------------------------- OAuth

    def _slot(self, creds: DarajaCredentials) -> _TokenSlot:
        key = creds.cache_key
        slot = self._slots.get(key)
        if slot is None:
            slot = _TokenSlot(label=f"app#{len(self._slots) + 1}")
            self._slots[key] = slot
        return slot

    def _fresh(self, token: AccessToken) -> bool:
        return self.clock.monotonic() < token.usable_until

    async def get_token(self, creds: DarajaCredentials | MerchantConfig) -> AccessToken:
        """A bearer token for these credentials: cached while fresh, else minted (one at a time
        per credential set). Raises AuthenticationFailed or DarajaUnavailable."""
        credentials = _credentials(creds)
        cached = self._slot(credentials).token
        if cached is not None and self._fresh(cached):
            return cached
        return await self._replace_rejected(credentials, None)

    async def _replace_rejected(
        self, creds: DarajaCredentials, rejected: AccessToken | None
    ) -> AccessToken:
        """A new token, after Daraja called `rejected` invalid or because the cached one is
        stale, unless another task got a fresh one meanwhile (several calls may see the same
        rejection or expiry; one refresh serves them all)."""
        slot = self._slot(creds)
        async with slot.lock:
            cached = slot.token
            if cached is not None and cached is not rejected and self._fresh(cached):
                return cached
            slot.token = await self._shared_or_mint(creds, slot.label, rejected)
            return slot.token

    async def _shared_or_mint(
        self, creds: DarajaCredentials, label: str, rejected: AccessToken | None
    ) -> AccessToken:
        """The shared token if it is fresh (and not the one just rejected), else a new one,
        which is shared. A share that fails is logged and skipped: minting still works."""
        if self._share is None:
            return await self._mint(creds, label)
        now_ms = int(self.clock.now().timestamp() * 1000)
        try:
            shared = await self._share.load(creds.cache_key)
        except Exception as exc:
            logger.warning("shared token unreadable for %s (%s)", label, type(exc).__name__)
            shared = None
        rejected_value = rejected.value.get_secret_value() if rejected else None
        if (
            shared is not None
            and shared.usable_until_ms > now_ms
            and shared.value.get_secret_value() != rejected_value
        ):
            left_s = (shared.usable_until_ms - now_ms) / 1000
            started = self.clock.monotonic()
            return AccessToken(shared.value, shared.expires_in, started, started + left_s)
        token = await self._mint(creds, label)
        usable_ms = int((token.usable_until - token.minted_at) * 1000)
        try:
            await self._share.save(
                creds.cache_key, SharedToken(token.value, token.expires_in, now_ms + usable_ms)
            )
        except Exception as exc:
            logger.warning("token not shared for %s (%s)", label, type(exc).__name__)
        return token

    async def check_credentials(self, creds: DarajaCredentials | MerchantConfig) -> AccessToken:
        """The manager's "verify": mint a token now (not from cache). Raises AuthenticationFailed
        when Daraja refuses the key and secret, DarajaUnavailable when it cannot be asked."""
        credentials = _credentials(creds)
        slot = self._slot(credentials)
        async with slot.lock:
            slot.token = await self._mint(credentials, slot.label)
            return slot.token

    async def _mint(self, creds: DarajaCredentials, label: str) -> AccessToken:
        started = self.clock.monotonic()
        try:
            response = await send_idempotent(
                lambda extensions: self._http.get(
                    OAUTH_PATH,
                    params={"grant_type": "client_credentials"},
                    headers={"Authorization": creds.basic_authorization()},
                    extensions=extensions,
                ),
                "M-Pesa sign-in",
            )
        except httpx.TimeoutException:
            raise DarajaUnavailable("M-Pesa sign-in timed out", info=CONNECTION_FAILED) from None
        except httpx.TransportError as exc:
            raise DarajaUnavailable(
                f"M-Pesa sign-in could not connect ({type(exc).__name__})", info=CONNECTION_FAILED
            ) from None
        status = response.status_code
        if status == 200:
            parsed = _read_model(OAuthResponse, response)
            if parsed is None:
                raise DarajaUnavailable(
                    "M-Pesa sign-in answered 200 with a body that is not a token",
                    http_status=status,
                    info=HTTP_REFUSED,
                )
            margin = min(self.token_refresh_margin_s, parsed.expires_in / 2)
            logger.info("OAuth token minted for %s, expires in %d s", label, parsed.expires_in)
            return AccessToken(
                value=parsed.access_token,
                expires_in=parsed.expires_in,
                minted_at=started,
                usable_until=started + parsed.expires_in - margin,
            )
        envelope = parse_error_envelope(response.content)
        if status in (400, 401, 403):
            logger.warning("OAuth refused for %s (HTTP %d)", label, status)
            if envelope is not None:
                raise _envelope_error(
                    AuthenticationFailed, "M-Pesa sign-in refused", status, envelope
                )
            raise AuthenticationFailed(
                "M-Pesa refused the consumer key and secret (invalid credentials)",
                http_status=status,
                info=AUTHENTICATION_FAILED,
            )
        if envelope is not None:
            raise _envelope_error(DarajaUnavailable, "M-Pesa sign-in failed", status, envelope)
        raise DarajaUnavailable(
            f"M-Pesa sign-in failed with HTTP {status}", http_status=status, info=HTTP_REFUSED
        )

    # ---------------------------------------------------------------- STK push

    async def stk_push(
        self, creds: DarajaCredentials | MerchantConfig, request: StkPushRequest
    ) -> StkPushResponse:
        """Send one STK push. Never retried, except once after `404.001.03` (a definite refusal).

        Returns the accepted response; raises PushRefused (definitely not started) or
        PushOutcomeUnknown (may have started; settle it by query or callback).
        """
        credentials = _credentials(creds)
        where = f"{request.business_short_code} to {mask_phone(request.phone_number)}"
        try:
            token = await self.get_token(credentials)
        except DarajaError as exc:
            raise _not_sent(PushRefused, "STK push", exc) from exc
        body = request.to_wire()
        logger.info("STK push %s, KES %d", where, request.amount)
        response = await self._post_push(token, body)
        envelope = parse_error_envelope(response.content)
        if envelope is not None and envelope.error_code == INVALID_ACCESS_TOKEN:
            # A definite refusal: nothing started, so one more try with a new token is safe.
            logger.info("STK push %s: token rejected, refreshing once and trying again", where)
            try:
                token = await self._replace_rejected(credentials, token)
            except DarajaError as exc:
                raise _not_sent(PushRefused, "STK push", exc) from exc
            response = await self._post_push(token, body)
            envelope = parse_error_envelope(response.content)
        return self._push_answer(response, envelope, where)

    async def _post_push(self, token: AccessToken, body: dict[str, object]) -> httpx.Response:
        return await self._send(
            token, PUSH_PATH, body, "STK push", refused=PushRefused, unknown=PushOutcomeUnknown
        )

    async def _send(
        self,
        token: AccessToken,
        path: str,
        body: dict[str, object],
        what: str,
        *,
        refused: type[DarajaError],
        unknown: type[DarajaError],
    ) -> httpx.Response:
        """POST `body` with the bearer token: `refused` when it surely never arrived, `unknown`
        when it may have (read timeouts, resets and write failures)."""
        headers = {"Authorization": f"Bearer {token.value.get_secret_value()}"}
        try:
            return await send_once(
                lambda extensions: self._http.post(
                    path, json=body, headers=headers, extensions=extensions
                ),
                what,
            )
        except _NOT_SENT as exc:
            raise refused(
                f"{what} not sent: could not connect to M-Pesa ({type(exc).__name__})",
                info=CONNECTION_FAILED,
            ) from None
        except httpx.TransportError as exc:
            raise unknown(
                f"{what} sent but no answer came back ({type(exc).__name__})",
                info=OUTCOME_UNKNOWN,
            ) from None

    def _push_answer(
        self, response: httpx.Response, envelope: ErrorEnvelope | None, where: str
    ) -> StkPushResponse:
        status = response.status_code
        if envelope is not None:
            logger.warning("STK push %s refused: %s (HTTP %d)", where, envelope.error_code, status)
            raise _envelope_error(PushRefused, "STK push refused", status, envelope)
        if 200 <= status < 300:
            accepted = _read_model(StkPushResponse, response)
            if accepted is None:
                logger.warning("STK push %s: unreadable HTTP %d answer", where, status)
                raise PushOutcomeUnknown(
                    f"STK push answered HTTP {status} with an unreadable body",
                    http_status=status,
                    info=OUTCOME_UNKNOWN,
                )
            if not accepted.accepted:
                info = describe_refusal(accepted.response_code, accepted.response_description)
                raise PushRefused(
                    f"STK push not accepted: ResponseCode {accepted.response_code}",
                    http_status=status,
                    error_code=accepted.response_code,
                    error_message=info.description,
                    info=info,
                )
            logger.info("STK push %s accepted", where)
            return accepted
        if status >= 500:
            logger.warning("STK push %s: HTTP %d without a Daraja error", where, status)
            raise PushOutcomeUnknown(
                f"STK push answered HTTP {status} without a Daraja error code",
                http_status=status,
                info=OUTCOME_UNKNOWN,
            )
        logger.warning("STK push %s refused with HTTP %d", where, status)
        raise PushRefused(
            f"STK push refused with HTTP {status}", http_status=status, info=HTTP_REFUSED
        )

    # ---------------------------------------------------------------- STK query

    async def stk_query(
        self,
        creds: DarajaCredentials | MerchantConfig,
        merchant: MerchantConfig,
        checkout_request_id: str,
    ) -> QueryResult:
        """Ask Daraja how a push ended. Returns PENDING ("being processed") or RESOLVED (a final
        ResultCode). Retries throttles, 5xx and unreachable with backoff; then raises
        QueryNoAnswer. Raises QueryRefused for a refusal retrying cannot change, and
        AuthenticationFailed when the credentials are refused."""
        credentials = _credentials(creds)
        refreshed = False
        tries = 0
        while True:
            tries += 1
            try:
                return await self._query_once(credentials, merchant, checkout_request_id, refreshed)
            except _TokenRejected:
                refreshed = True
                tries -= 1  # a token refresh is not a Daraja busy signal; it costs no retry
                continue
            except _RetryQuery as retry:
                if tries > self.query_retries:
                    raise QueryNoAnswer(
                        f"STK query got no answer after {tries} tries: {retry.error.message}",
                        http_status=retry.error.http_status,
                        error_code=retry.error.error_code,
                        error_message=retry.error.error_message,
                        request_id=retry.error.request_id,
                        info=NO_ANSWER,
                    ) from None
                delay = self._backoff(tries - 1)
                logger.info(
                    "STK query %s: %s; retry %d in %.1f s",
                    merchant.business_shortcode,
                    retry.error.message,
                    tries,
                    delay,
                )
            await self.clock.sleep(delay)

    def _backoff(self, retry: int) -> float:
        """Exponential backoff with 'equal jitter': between half and all of the capped step."""
        step = min(self.backoff_max_s, self.backoff_base_s * (2.0**retry))
        return step / 2 + self._rng.uniform(0, step / 2)

    async def _query_once(
        self,
        creds: DarajaCredentials,
        merchant: MerchantConfig,
        checkout_request_id: str,
        token_was_refreshed: bool,
    ) -> QueryResult:
        try:
            token = await self.get_token(creds)
        except DarajaUnavailable as exc:
            raise _RetryQuery(exc) from None
        request = build_stk_query(
            merchant, clock=self.clock, checkout_request_id=checkout_request_id
        )
        headers = {"Authorization": f"Bearer {token.value.get_secret_value()}"}
        try:
            response = await send_idempotent(
                lambda extensions: self._http.post(
                    QUERY_PATH, json=request.to_wire(), headers=headers, extensions=extensions
                ),
                "STK query",
            )
        except httpx.TransportError as exc:
            raise _RetryQuery(
                DarajaUnavailable(
                    f"STK query could not reach M-Pesa ({type(exc).__name__})",
                    info=CONNECTION_FAILED,
                )
            ) from None
        status = response.status_code
        envelope = parse_error_envelope(response.content)
        if envelope is not None:
            return await self._query_envelope(
                creds, token, status, envelope, checkout_request_id, token_was_refreshed
            )
        if 200 <= status < 300:
            answer = _read_model(StkQueryResponse, response)
            if answer is None:
                raise _RetryQuery(
                    DarajaUnavailable(
                        f"STK query answered HTTP {status} without a ResultCode",
                        http_status=status,
                    )
                )
            info = describe_result(answer.result_code_raw, answer.result_desc_raw)
            logger.info("STK query %s: ResultCode %s", merchant.business_shortcode, info.code)
            return QueryResult(
                status=QueryStatus.RESOLVED,
                checkout_request_id=answer.checkout_request_id,
                info=info,
                result_code=answer.result_code,
                result_desc=answer.description,
                response=answer,
            )
        if status >= 500:
            raise _RetryQuery(
                DarajaUnavailable(
                    f"STK query answered HTTP {status} without a Daraja error code",
                    http_status=status,
                )
            )
        raise QueryRefused(
            f"STK query refused with HTTP {status}", http_status=status, info=HTTP_REFUSED
        )

    async def _query_envelope(
        self,
        creds: DarajaCredentials,
        token: AccessToken,
        status: int,
        envelope: ErrorEnvelope,
        checkout_request_id: str,
        token_was_refreshed: bool,
    ) -> QueryResult:
        info = describe_refusal(envelope.error_code, envelope.error_message)
        if is_being_processed(envelope.error_code, envelope.error_message):
            return QueryResult(
                status=QueryStatus.PENDING, checkout_request_id=checkout_request_id, info=info
            )
        if envelope.error_code == INVALID_ACCESS_TOKEN and not token_was_refreshed:
            try:
                await self._replace_rejected(creds, token)
            except DarajaUnavailable as exc:
                raise _RetryQuery(exc) from None
            raise _TokenRejected
        error = _envelope_error(QueryRefused, "STK query refused", status, envelope)
        if envelope.error_code in _RETRYABLE_QUERY_CODES:
            raise _RetryQuery(error)
        raise error

    # ---------------------------------------------------------------- statement APIs

    async def register_c2b_urls(
        self, creds: DarajaCredentials | MerchantConfig, request: RegisterUrlRequest
    ) -> RegisterUrlResponse:
        """Register a shortcode's C2B confirmation (and validation) URL. In production this
        works once: a second time is refused with 500.003.1001 "Urls are already registered"."""
        response = await self._statement_post(
            creds, REGISTER_URL_PATH, request.to_wire(), "C2B URL registration"
        )
        answer = self._statement_model(RegisterUrlResponse, response, "C2B URL registration")
        if answer.response_code != "0":
            raise RequestRefused(
                f"C2B URL registration not accepted: ResponseCode {answer.response_code}",
                http_status=response.status_code,
                error_code=answer.response_code,
                error_message=answer.response_description,
            )
        return answer

    async def generate_qr(
        self, creds: DarajaCredentials | MerchantConfig, request: QrCodeRequest
    ) -> QrCodeResponse:
        """A Dynamic QR image for one sale (`QrCodeResponse.png()`, `qr.qr_to_half_blocks`)."""
        response = await self._statement_post(creds, QR_PATH, request.to_wire(), "Dynamic QR")
        answer = self._statement_model(QrCodeResponse, response, "Dynamic QR")
        try:
            answer.png()
        except StatementParseError as exc:
            raise RequestOutcomeUnknown(
                f"Dynamic QR answered without a usable image ({exc})",
                http_status=response.status_code,
                info=OUTCOME_UNKNOWN,
            ) from None
        return answer

    async def transaction_status(
        self, creds: DarajaCredentials | MerchantConfig, request: TransactionStatusRequest
    ) -> AsyncAccepted:
        """Ask about one receipt. The answer only says "accepted": the result comes to the
        request's ResultURL (`statement.parse_async_result`), or QueueTimeOutURL."""
        return await self._initiator_call(
            creds, TRANSACTION_STATUS_PATH, request.to_wire(), "Transaction Status"
        )

    async def reverse(
        self, creds: DarajaCredentials | MerchantConfig, request: ReversalRequest
    ) -> AsyncAccepted:
        """Ask for a reversal. Acceptance is not a reversal: only a ResultCode 0 result on the
        ResultURL is. Never re-sent, except once after 404.001.03 (a definite refusal)."""
        return await self._initiator_call(creds, REVERSAL_PATH, request.to_wire(), "Reversal")

    async def register_pull(
        self, creds: DarajaCredentials | MerchantConfig, request: PullRegisterRequest
    ) -> PullRegisterResponse:
        """Register a shortcode for Pull Transactions (1000 now, 1001 already: both fine)."""
        response = await self._statement_post(
            creds, PULL_REGISTER_PATH, request.to_wire(), "Pull registration"
        )
        answer = self._statement_model(PullRegisterResponse, response, "Pull registration")
        if not answer.registered:
            raise RequestRefused(
                f"Pull registration refused: ResponseStatus {answer.response_status}",
                http_status=response.status_code,
                error_code=answer.response_status,
                error_message=answer.response_description,
            )
        return answer

    async def pull_transactions(
        self, creds: DarajaCredentials | MerchantConfig, request: PullQueryRequest
    ) -> PullPage:
        """One page of pulled transactions (empty on 1001: none, or not provisioned)."""
        response = await self._statement_post(
            creds, PULL_QUERY_PATH, request.to_wire(), "Pull query"
        )
        if not 200 <= response.status_code < 300:
            raise RequestOutcomeUnknown(
                f"Pull query answered HTTP {response.status_code}",
                http_status=response.status_code,
                info=OUTCOME_UNKNOWN,
            )
        try:
            return parse_pull_page(response.content)
        except StatementParseError as exc:
            raise RequestOutcomeUnknown(
                f"Pull query answered an unreadable page ({exc})",
                http_status=response.status_code,
                info=OUTCOME_UNKNOWN,
            ) from None

    async def _initiator_call(
        self,
        creds: DarajaCredentials | MerchantConfig,
        path: str,
        body: dict[str, object],
        what: str,
    ) -> AsyncAccepted:
        response = await self._statement_post(creds, path, body, what)
        answer = self._statement_model(AsyncAccepted, response, what)
        if not answer.accepted:
            raise RequestRefused(
                f"{what} not accepted: ResponseCode {answer.response_code}",
                http_status=response.status_code,
                error_code=answer.response_code,
                error_message=answer.response_description,
            )
        logger.info("%s accepted", what)
        return answer

    async def _statement_post(
        self,
        creds: DarajaCredentials | MerchantConfig,
        path: str,
        body: dict[str, object],
        what: str,
    ) -> httpx.Response:
        """POST with a bearer token, renewed once after 404.001.03. Raises RequestRefused for
        any Daraja envelope, other 4xx and connection failures before sending; returns any
        other answer (the caller reads it)."""
        credentials = _credentials(creds)
        token = await self._statement_token(credentials, None, what)
        response = await self._statement_send(token, path, body, what)
        envelope = parse_error_envelope(response.content)
        if envelope is not None and envelope.error_code == INVALID_ACCESS_TOKEN:
            logger.info("%s: token rejected, refreshing once and trying again", what)
            token = await self._statement_token(credentials, token, what)
            response = await self._statement_send(token, path, body, what)
            envelope = parse_error_envelope(response.content)
        status = response.status_code
        if envelope is not None:
            logger.warning("%s refused: %s (HTTP %d)", what, envelope.error_code, status)
            raise _envelope_error(RequestRefused, f"{what} refused", status, envelope)
        if 400 <= status < 500:
            raise RequestRefused(
                f"{what} refused with HTTP {status}", http_status=status, info=HTTP_REFUSED
            )
        return response

    async def _statement_token(
        self, creds: DarajaCredentials, rejected: AccessToken | None, what: str
    ) -> AccessToken:
        try:
            if rejected is None:
                return await self.get_token(creds)
            return await self._replace_rejected(creds, rejected)
        except DarajaError as exc:
            raise _not_sent(RequestRefused, what, exc) from exc

    async def _statement_send(
        self, token: AccessToken, path: str, body: dict[str, object], what: str
    ) -> httpx.Response:
        return await self._send(
            token, path, body, what, refused=RequestRefused, unknown=RequestOutcomeUnknown
        )

    @staticmethod
    def _statement_model(model: type[_Model], response: httpx.Response, what: str) -> _Model:
        status = response.status_code
        parsed = _read_model(model, response) if 200 <= status < 300 else None
        if parsed is None:
            raise RequestOutcomeUnknown(
                f"{what} answered HTTP {status} without a readable answer",
                http_status=status,
                info=OUTCOME_UNKNOWN,
            )
        return parsed


class _TokenRejected(Exception):
    """Internal: the query's token was refused and has been replaced; ask again."""


class _RetryQuery(Exception):
    """Internal: this query try failed in a way worth retrying."""

    def __init__(self, error: DarajaError) -> None:
        super().__init__(error.message)
        self.error = error


def _not_sent(cls: type[DarajaError], what: str, cause: DarajaError) -> DarajaError:
    """A request that never left because no token could be had: definite, like any refusal."""
    return cls(
        f"{what} not sent: {cause.message}",
        http_status=cause.http_status,
        error_code=cause.error_code,
        error_message=cause.error_message,
        info=cause.info,
    )


def _credentials(creds: DarajaCredentials | MerchantConfig) -> DarajaCredentials:
    return creds.credentials if isinstance(creds, MerchantConfig) else creds

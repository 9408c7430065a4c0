"""The simulator's behaviour, free of Starlette: OAuth, STK push and query in Daraja's order,
throttles, scenarios, the control operations and the request log.

State lives in `records.py` and callbacks go out through `courier.py`. State is kept per
shortcode and per phone, so parallel tests isolate themselves by phone and shortcode.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from smartduka_tui.clock import Clock, SystemClock
from smartduka_tui.simulator import codes
from smartduka_tui.simulator.courier import CallbackCourier, first_done
from smartduka_tui.simulator.records import App, LogFilter, Merchant, SimClock, Token, Transaction
from smartduka_tui.simulator.redact import redact, redact_authorization
from smartduka_tui.simulator.replies import ControlError, Reply, parse_body
from smartduka_tui.simulator.replies import Refused as _Refused
from smartduka_tui.simulator.replies import error_reply as _error_reply
from smartduka_tui.simulator.replies import refuse as _refuse
from smartduka_tui.simulator.schemas import (
    APP_SETTING_NAMES,
    MERCHANT_SETTING_NAMES,
    AdvanceResult,
    AppRegistration,
    AppSettings,
    AppView,
    CallbackDelivery,
    ClockView,
    ExpiresInType,
    MerchantSettings,
    PhoneScenario,
    PushAnomaly,
    QueryAnomaly,
    RequestLogEntry,
    ResolveRequest,
    ShortcodeKind,
    ShortcodeRegistration,
    ShortcodeView,
    SimSettings,
    TransactionState,
    TransactionView,
    UnknownCheckoutAnswer,
    explain_validation_error,
)
from smartduka_tui.simulator.statement import PATHS as STATEMENT_PATHS
from smartduka_tui.simulator.statement import Statement
from smartduka_tui.simulator.wire import (
    GATEWAY_ERROR_BODY,
    StkPushRequest,
    StkQueryRequest,
    TransactionType,
    checkout_request_id,
    daraja_timestamp,
    is_json_content_type,
    new_access_token,
    new_merchant_request_id,
    new_receipt,
    parse_daraja_timestamp,
    parse_json_object,
    push_accepted_body,
    query_result_body,
    stk_password,
    token_body,
)

OAUTH_PATH = "/oauth/v1/generate"
PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
QUERY_PATH = "/mpesa/stkpushquery/v1/query"

SANDBOX_SHORTCODE = "174379"
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
"""Safaricom's public sandbox passkey for 174379 (REFERENCE.md section 6)."""
DEMO_CONSUMER_KEY = "sim-demo-consumer-key"
DEMO_CONSUMER_SECRET = "sim-demo-consumer-secret"  # noqa: S105 - a documented demo value

# Where each API names the shortcode, for the request log's filter.
_SHORTCODE_FIELDS = ("BusinessShortCode", "ShortCode", "PartyA", "ReceiverParty", "CPI")
_FIRST_ALLOCATED_SHORTCODE = 5_000_001
_FIRST_ALLOCATED_TILL = 9_000_001


class SimulatorConfig(BaseModel):
    """How a simulator starts."""

    settings: SimSettings = Field(default_factory=SimSettings)
    preregister_sandbox: bool = Field(
        default=True,
        description="Register 174379 (sandbox passkey, usable by any app) and the demo app.",
    )
    request_log_limit: int = Field(default=100_000, ge=100)
    callback_log_limit: int = Field(default=100_000, ge=100)


@dataclass(frozen=True, slots=True)
class DarajaRequest:
    """One request to a Daraja endpoint, as the HTTP layer hands it over."""

    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    content_type: str | None
    body: bytes
    body_too_large: bool = False
    wait_disconnect: Callable[[], Awaitable[None]] | None = None


class InvalidControlRequest(ControlError):
    """A control body that failed validation; `details` names each field."""

    def __init__(self, message: str, details: list[dict[str, str]]) -> None:
        super().__init__(422, message)
        self.details = details

    @classmethod
    def from_validation(cls, error: ValidationError) -> InvalidControlRequest:
        return cls(*explain_validation_error(error))


class Simulator:
    """A Daraja stand-in: one instance per server process."""

    def __init__(self, config: SimulatorConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.clock = SimClock(clock or SystemClock())
        self.settings = self.config.settings.model_copy()
        self._apps_by_key: dict[str, App] = {}
        self._apps_by_id: dict[str, App] = {}
        self._merchants: dict[str, Merchant] = {}
        self._tokens: dict[str, Token] = {}
        self._transactions: dict[str, Transaction] = {}
        self._latest_by_phone: dict[str, Transaction] = {}
        self._last_prompt: dict[tuple[str, str, int], float] = {}
        self._scenarios: dict[str, PhoneScenario] = {}
        self._requests: deque[RequestLogEntry] = deque(maxlen=self.config.request_log_limit)
        self._request_seq = itertools.count(1)
        self._app_seq = itertools.count(1)
        self.courier = CallbackCourier(
            self.clock,
            lambda transaction: self.merchant_settings(transaction.merchant),
            self.config.callback_log_limit,
        )
        self.statement = Statement(self)
        if self.config.preregister_sandbox:
            self.register_shortcode(
                ShortcodeRegistration.model_validate(
                    {
                        "shortcode": SANDBOX_SHORTCODE,
                        "passkey": SANDBOX_PASSKEY,
                        "consumer_key": DEMO_CONSUMER_KEY,
                        "consumer_secret": DEMO_CONSUMER_SECRET,
                        "shared": True,
                    }
                )
            )

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start delivering callbacks as they fall due."""
        await self.courier.start()
        await self.statement.start()

    async def aclose(self) -> None:
        await self.courier.aclose()
        await self.statement.aclose()

    # ----------------------------------------------------------------- settings

    def app_settings(self, app: App) -> AppSettings:
        base = self.settings.model_dump(include=set(APP_SETTING_NAMES))
        return AppSettings.model_validate({**base, **app.overrides})

    def merchant_settings(self, merchant: Merchant) -> MerchantSettings:
        return self._merchant_settings_under(merchant.overrides)

    def _merchant_settings_under(self, overrides: dict[str, Any]) -> MerchantSettings:
        base = self.settings.model_dump(include=set(MERCHANT_SETTING_NAMES))
        return MerchantSettings.model_validate({**base, **overrides})

    def update_settings(self, patch: dict[str, Any]) -> SimSettings:
        try:
            updated = SimSettings.model_validate({**self.settings.model_dump(), **patch})
        except ValidationError as exc:
            raise InvalidControlRequest.from_validation(exc) from None
        self.settings = updated
        self.courier.wake()
        self.statement.wake()
        return updated

    def reset_settings(self) -> SimSettings:
        self.settings = self.config.settings.model_copy()
        self.courier.wake()
        return self.settings

    # ----------------------------------------------------------------- apps and shortcodes

    def upsert_app(self, registration: AppRegistration) -> AppView:
        key = registration.consumer_key.get_secret_value()
        secret = registration.consumer_secret.get_secret_value()
        app = self._apps_by_key.get(key)
        if app is None:
            app = self._new_app(key, secret)
        elif not hmac.compare_digest(app.consumer_secret.encode(), secret.encode()):
            app.consumer_secret = secret
            self._revoke_tokens(app)
        app.overrides = registration.model_dump(
            include=set(APP_SETTING_NAMES), exclude_none=True, mode="json"
        )
        return self.app_view(app)

    def _new_app(self, key: str, secret: str) -> App:
        app = App(app_id=f"app_{next(self._app_seq)}", consumer_key=key, consumer_secret=secret)
        self._apps_by_key[key] = app
        self._apps_by_id[app.app_id] = app
        return app

    def app_view(self, app: App) -> AppView:
        shortcodes = sorted(m.shortcode for m in self._merchants.values() if m.app is app)
        return AppView(app_id=app.app_id, shortcodes=shortcodes, settings=dict(app.overrides))

    def apps(self) -> list[AppView]:
        return [self.app_view(app) for app in self._apps_by_id.values()]

    def register_shortcode(
        self, registration: ShortcodeRegistration, shortcode: str | None = None
    ) -> ShortcodeView:
        """Register or replace a shortcode. `shortcode` (from the URL) must agree with the body."""
        if shortcode is not None and registration.shortcode not in (None, shortcode):
            raise ControlError(422, "the shortcode in the body differs from the one in the URL")
        chosen = shortcode or registration.shortcode or self._allocate(_FIRST_ALLOCATED_SHORTCODE)
        unknown = set(registration.settings) - MERCHANT_SETTING_NAMES
        if unknown:
            names = ", ".join(sorted(unknown))
            raise ControlError(
                422,
                f"unknown shortcode setting(s): {names} (app settings belong to PUT /__sim/apps)",
            )
        try:
            self._merchant_settings_under(registration.settings)
        except ValidationError as exc:
            message, details = explain_validation_error(exc)
            raise InvalidControlRequest(f"settings: {message}", details) from None
        key = registration.consumer_key.get_secret_value()
        secret = registration.consumer_secret.get_secret_value()
        app = self._apps_by_key.get(key)
        if app is not None and not hmac.compare_digest(
            app.consumer_secret.encode(), secret.encode()
        ):
            raise ControlError(
                409,
                "this consumer key is registered with a different consumer secret "
                "(PUT /__sim/apps changes it)",
            )
        tills = tuple(registration.till_numbers)
        for till in tills:
            owner = self._till_owner(till)
            if owner is not None and owner.shortcode != chosen:
                raise ControlError(
                    409, f"till number {till} belongs to shortcode {owner.shortcode}"
                )
        if registration.kind is ShortcodeKind.TILL and not tills:
            tills = (self._allocate(_FIRST_ALLOCATED_TILL),)
        if app is None:
            app = self._new_app(key, secret)
        merchant = self._merchants.get(chosen)
        passkey = registration.passkey.get_secret_value()
        if merchant is None:
            merchant = Merchant(
                shortcode=chosen,
                kind=registration.kind,
                till_numbers=tills,
                app=app,
                shared=registration.shared,
                passkey=passkey,
                overrides=dict(registration.settings),
            )
            self._merchants[chosen] = merchant
        else:
            merchant.kind = registration.kind
            merchant.till_numbers = tills
            merchant.app = app
            merchant.shared = registration.shared
            merchant.passkey = passkey
            merchant.overrides = dict(registration.settings)
        return self.shortcode_view(merchant)

    def _till_owner(self, till: str) -> Merchant | None:
        return next((m for m in self._merchants.values() if till in m.till_numbers), None)

    def _allocate(self, start: int) -> str:
        taken = set(self._merchants)
        for merchant in self._merchants.values():
            taken.update(merchant.till_numbers)
        return next(str(n) for n in itertools.count(start) if str(n) not in taken)

    def shortcode_view(self, merchant: Merchant) -> ShortcodeView:
        return ShortcodeView(
            shortcode=merchant.shortcode,
            kind=merchant.kind,
            till_numbers=list(merchant.till_numbers),
            app_id=merchant.app.app_id,
            shared=merchant.shared,
            settings=dict(merchant.overrides),
        )

    def shortcodes(self) -> list[ShortcodeView]:
        return [self.shortcode_view(m) for m in self._merchants.values()]

    def registered_merchant(self, shortcode: str) -> Merchant:
        merchant = self._merchants.get(shortcode)
        if merchant is None:
            raise ControlError(404, f"shortcode {shortcode} is not registered")
        return merchant

    def delete_shortcode(self, shortcode: str) -> int:
        merchant = self.registered_merchant(shortcode)
        cancelled = self.reset_shortcode(shortcode)
        del self._merchants[merchant.shortcode]
        return cancelled

    def reset_shortcode(self, shortcode: str) -> int:
        """Forget a shortcode's transactions, throttle counts and code-17 memory (logs stay).
        Pending prompts end silently; their scheduled callbacks are never sent."""
        merchant = self.registered_merchant(shortcode)
        gone = [t for t in self._transactions.values() if t.merchant is merchant]
        for transaction in gone:
            transaction.cancelled = True
            del self._transactions[transaction.checkout_request_id]
            if self._latest_by_phone.get(transaction.phone) is transaction:
                del self._latest_by_phone[transaction.phone]
        for key in [k for k in self._last_prompt if k[0] == shortcode]:
            del self._last_prompt[key]
        merchant.spike_window.clear()
        merchant.quota_window.clear()
        self.statement.forget(shortcode)
        return len(gone)

    # ----------------------------------------------------------------- phone scenarios

    def set_scenario(self, phone: str, scenario: PhoneScenario) -> PhoneScenario:
        self._scenarios[phone] = scenario
        return scenario

    def clear_scenario(self, phone: str) -> bool:
        return self._scenarios.pop(phone, None) is not None

    def scenario_for(self, phone: str) -> tuple[PhoneScenario, str]:
        """The scenario a push to `phone` takes, and where it came from."""
        if phone in self._scenarios:
            return self._scenarios[phone], "scripted"
        magic = codes.MAGIC_PHONES.get(phone)
        if magic is not None:
            return magic.scenario, "magic"
        return PhoneScenario(), "default"

    # ----------------------------------------------------------------- clock

    def clock_view(self) -> ClockView:
        now = self.clock.now()
        return ClockView(now=now, kenya_time=daraja_timestamp(now), offset_s=self.clock.offset)

    async def advance(self, seconds: float) -> AdvanceResult:
        """Move simulator time forward, then deliver every callback now due, in due order, so
        the caller sees their effects when this returns."""
        self.clock.advance(seconds)
        delivered = await self.courier.catch_up()
        delivered += await self.statement.catch_up()
        return AdvanceResult(**self.clock_view().model_dump(), callbacks_delivered=delivered)

    # ----------------------------------------------------------------- Daraja endpoints

    async def handle(self, request: DarajaRequest) -> Reply:
        """Answer one Daraja request, logging it (secrets redacted) in arrival order."""
        payload = (
            parse_json_object(request.body) if request.body and not request.body_too_large else None
        )
        entry = self._log_request(request, payload)
        try:
            if request.path == OAUTH_PATH:
                reply = self._oauth(request)
            elif request.path == PUSH_PATH:
                reply = await self._push(request, payload, entry)
            elif request.path == QUERY_PATH:
                reply = self._query(request, payload, entry)
            elif request.path in STATEMENT_PATHS:
                reply = await self.statement.handle(request, payload)
            else:
                reply = _error_reply(codes.RESOURCE_NOT_FOUND)
        except _Refused as refused:
            reply = refused.reply
        entry.status = reply.status
        entry.error_code = reply.error_code
        return reply

    def _log_request(
        self, request: DarajaRequest, payload: dict[str, Any] | None
    ) -> RequestLogEntry:
        body: Any = None if payload is None else redact(payload)
        note: str | None = None
        if request.body_too_large:
            note = "body too large; not recorded"
        elif request.body and payload is None:
            note = f"not a JSON object ({len(request.body)} bytes); not recorded"
        entry = RequestLogEntry(
            seq=next(self._request_seq),
            received_at=self.clock.now(),
            method=request.method,
            path=request.path,
            query=redact(request.query),
            authorization=redact_authorization(request.authorization),
            content_type=request.content_type,
            body=body,
            body_note=note,
        )
        if isinstance(body, dict):
            entry.phone = _plain(body.get("PhoneNumber"))
            entry.shortcode = _plain(next((body[k] for k in _SHORTCODE_FIELDS if k in body), None))
            entry.checkout_request_id = _plain(body.get("CheckoutRequestID"))
        self._requests.append(entry)
        return entry

    def _oauth(self, request: DarajaRequest) -> Reply:
        if request.method != "GET":
            raise _refuse(codes.INVALID_AUTH_HEADER)
        if request.query.get("grant_type") != "client_credentials":
            raise _refuse(codes.INVALID_GRANT_TYPE)
        scheme, _, credentials = (request.authorization or "").partition(" ")
        if scheme.lower() != "basic" or not credentials.strip():
            raise _refuse(codes.INVALID_AUTH_TYPE)
        app = self._app_for_basic(credentials.strip())
        if app is None:
            # Daraja answers wrong credentials with a bare 400 and no body.
            raise _Refused(Reply(400, b"", content_type=None))
        settings = self.app_settings(app)
        now = self.clock.monotonic()
        if settings.revoke_old_token:
            self._revoke_tokens(app)
        else:
            expired = [t for t in app.tokens if self._tokens[t].expires_at <= now]
            for token in expired:
                self._forget_token(app, token)
        token = new_access_token()
        self._tokens[token] = Token(app=app, expires_at=now + settings.token_lifetime_s)
        app.tokens.add(token)
        as_number = settings.expires_in_type is ExpiresInType.NUMBER
        return Reply(200, token_body(token, settings.token_lifetime_s - 1, as_number))

    def _app_for_basic(self, credentials: str) -> App | None:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        key, colon, secret = decoded.partition(":")
        app = self._apps_by_key.get(key)
        if not colon or app is None:
            return None
        if not hmac.compare_digest(app.consumer_secret.encode(), secret.encode()):
            return None
        return app

    def _revoke_tokens(self, app: App) -> None:
        for token in list(app.tokens):
            self._forget_token(app, token)

    def _forget_token(self, app: App, token: str) -> None:
        app.tokens.discard(token)
        self._tokens.pop(token, None)

    def bearer(self, authorization: str | None) -> App:
        scheme, _, token = (authorization or "").partition(" ")
        found = self._tokens.get(token) if scheme == "Bearer" else None
        if found is None or self.clock.monotonic() >= found.expires_at:
            raise _refuse(codes.INVALID_TOKEN)
        return found.app

    @staticmethod
    def json_body(request: DarajaRequest, payload: dict[str, Any] | None) -> dict[str, Any]:
        # Daraja answers a missing JSON content type as if the first field were wrong.
        if not is_json_content_type(request.content_type):
            raise _refuse(codes.invalid_field("BusinessShortCode"))
        if payload is None:
            raise _refuse(codes.INVALID_PAYLOAD)
        return payload

    def merchant_for(self, app: App, shortcode: str) -> Merchant:
        """A token may act only for its own app's shortcodes (and shared ones, like 174379)."""
        merchant = self._merchants.get(shortcode)
        if merchant is None or not (merchant.shared or merchant.app is app):
            raise _refuse(codes.MERCHANT_NOT_FOUND)
        return merchant

    def _throttle(self, merchant: Merchant, settings: MerchantSettings) -> None:
        now = self.clock.monotonic()
        if settings.spike_arrest_per_s is not None:
            _trim(merchant.spike_window, now - 1.0)
            if len(merchant.spike_window) >= settings.spike_arrest_per_s:
                raise _refuse(codes.SPIKE_ARREST)
        if settings.quota_limit is not None:
            _trim(merchant.quota_window, now - settings.quota_window_s)
            if len(merchant.quota_window) >= settings.quota_limit:
                raise _refuse(codes.QUOTA_VIOLATION)
        if settings.spike_arrest_per_s is not None:
            merchant.spike_window.append(now)
        if settings.quota_limit is not None:
            merchant.quota_window.append(now)

    def _check_timestamp_skew(self, timestamp: str, settings: MerchantSettings) -> None:
        if settings.max_timestamp_skew_s is None:
            return
        skew = abs((self.clock.now() - parse_daraja_timestamp(timestamp)).total_seconds())
        if skew > settings.max_timestamp_skew_s:
            raise _refuse(codes.invalid_field("Timestamp"))

    @staticmethod
    def _check_password(merchant: Merchant, password: str, timestamp: str) -> None:
        expected = stk_password(merchant.shortcode, merchant.passkey, timestamp)
        if not hmac.compare_digest(expected.encode(), password.encode()):
            raise _refuse(codes.WRONG_CREDENTIALS)

    def _stk_merchant(
        self, app: App, shortcode: str, password: str, timestamp: str
    ) -> tuple[Merchant, MerchantSettings]:
        """The merchant an STK push or query names, after Daraja's checks in its order: the
        app may use the shortcode, the timestamp is fresh, the rate is allowed, the password
        is right."""
        merchant = self.merchant_for(app, shortcode)
        settings = self.merchant_settings(merchant)
        self._check_timestamp_skew(timestamp, settings)
        self._throttle(merchant, settings)
        self._check_password(merchant, password, timestamp)
        return merchant, settings

    async def _push(
        self, request: DarajaRequest, payload: dict[str, Any] | None, entry: RequestLogEntry
    ) -> Reply:
        if request.method != "POST":
            raise _refuse(codes.METHOD_NOT_ALLOWED)
        app = self.bearer(request.authorization)
        push = parse_body(StkPushRequest, self.json_body(request, payload))
        entry.phone, entry.shortcode = push.PhoneNumber, push.BusinessShortCode
        merchant, settings = self._stk_merchant(
            app, push.BusinessShortCode, push.Password, push.Timestamp
        )
        latest = self._latest_by_phone.get(push.PhoneNumber)
        if latest is not None and latest.pending(self.clock.monotonic()):
            raise _refuse(codes.SUBSCRIBER_LOCKED)
        transaction = self._accept(push, merchant, settings)
        entry.checkout_request_id = transaction.checkout_request_id
        scenario = transaction.scenario
        if scenario.callback_before_response and transaction.callbacks_planned:
            await self.courier.deliver(transaction, 1)
        if scenario.push_anomaly is PushAnomaly.HOLD:
            await self._hold(scenario.push_hold_s, request.wait_disconnect)
        if scenario.push_anomaly is PushAnomaly.GATEWAY_ERROR:
            return Reply(503, GATEWAY_ERROR_BODY, content_type="text/html")
        return Reply(
            200,
            push_accepted_body(transaction.merchant_request_id, transaction.checkout_request_id),
        )

    def _forced_result(
        self, push: StkPushRequest, merchant: Merchant, now: float, window: float
    ) -> int | str | None:
        """A result Daraja decides before any prompt: till setup errors, then code 17."""
        till = merchant.kind is ShortcodeKind.TILL
        wanted_type = TransactionType.BUY_GOODS if till else TransactionType.PAYBILL
        if push.TransactionType is not wanted_type:
            return codes.PRODUCT_NOT_ASSIGNED
        if push.PartyB not in (merchant.till_numbers if till else (merchant.shortcode,)):
            return codes.OPERATOR_DOES_NOT_EXIST
        last = self._last_prompt.get((merchant.shortcode, push.PhoneNumber, push.Amount))
        if window > 0 and last is not None and now - last < window:
            return codes.RULE_LIMITED
        return None

    def _accept(
        self, push: StkPushRequest, merchant: Merchant, settings: MerchantSettings
    ) -> Transaction:
        now = self.clock.monotonic()
        wall = self.clock.now()
        scenario, _ = self.scenario_for(push.PhoneNumber)
        delay = (
            scenario.callback_delay_s
            if scenario.callback_delay_s is not None
            else settings.callback_delay_s
        )
        forced = self._forced_result(push, merchant, now, settings.rule_17_window_s)
        result_desc: str | None = None
        resolve_at = now + delay
        if forced is not None:
            result_code: int | str = forced
        elif scenario.unanswered:
            result_code = codes.UNREACHABLE
            resolve_at = now + settings.prompt_timeout_s
        else:
            result_code, result_desc = scenario.result_code, scenario.result_desc
        if forced is None:
            self._last_prompt[(merchant.shortcode, push.PhoneNumber, push.Amount)] = now
        if scenario.callback_before_response:
            resolve_at = now
        id_moment = wall
        checkout_id = checkout_request_id(id_moment, push.PhoneNumber)
        while checkout_id in self._transactions:
            id_moment += timedelta(milliseconds=1)
            checkout_id = checkout_request_id(id_moment, push.PhoneNumber)
        transaction = Transaction(
            checkout_request_id=checkout_id,
            merchant_request_id=new_merchant_request_id(),
            merchant=merchant,
            phone=push.PhoneNumber,
            party_a=push.PartyA,
            party_b=push.PartyB,
            amount=push.Amount,
            account_reference=push.AccountReference,
            transaction_type=push.TransactionType.value,
            callback_url=push.CallBackURL,
            pushed_at=now,
            pushed_wall=wall,
            resolve_at=resolve_at,
            result_code=result_code,
            result_desc=result_desc or codes.describe(result_code),
            receipt=new_receipt(),
            scenario=scenario,
            query_anomalies_left=scenario.query_anomaly_times,
        )
        self._transactions[checkout_id] = transaction
        self._latest_by_phone[push.PhoneNumber] = transaction
        self.courier.plan(transaction, first_copy=2 if scenario.callback_before_response else 1)
        return transaction

    async def _hold(
        self, seconds: float, wait_disconnect: Callable[[], Awaitable[None]] | None
    ) -> None:
        """Hold a response for `seconds`, or until the client hangs up."""
        hang_up = () if wait_disconnect is None else (wait_disconnect(),)
        await first_done(self.clock.sleep(seconds), *hang_up)

    def _query(
        self, request: DarajaRequest, payload: dict[str, Any] | None, entry: RequestLogEntry
    ) -> Reply:
        if request.method != "POST":
            raise _refuse(codes.METHOD_NOT_ALLOWED)
        app = self.bearer(request.authorization)
        query = parse_body(StkQueryRequest, self.json_body(request, payload))
        merchant, settings = self._stk_merchant(
            app, query.BusinessShortCode, query.Password, query.Timestamp
        )
        checkout_id = query.CheckoutRequestID
        transaction = self._transactions.get(checkout_id)
        if transaction is None or transaction.merchant is not merchant:
            return self._unknown_checkout(checkout_id, settings.unknown_checkout_answer)
        entry.phone = transaction.phone
        transaction.queries += 1
        anomaly = self._take_query_anomaly(transaction)
        if anomaly is QueryAnomaly.GATEWAY_ERROR:
            return Reply(503, GATEWAY_ERROR_BODY, content_type="text/html")
        if anomaly is QueryAnomaly.SPIKE_ARREST:
            raise _refuse(codes.SPIKE_ARREST)
        if anomaly is QueryAnomaly.QUOTA:
            raise _refuse(codes.QUOTA_VIOLATION)
        if anomaly is QueryAnomaly.STUCK_PENDING or transaction.pending(self.clock.monotonic()):
            raise _refuse(codes.BEING_PROCESSED, request_id=checkout_id)
        override = transaction.scenario.query_result_code
        code = transaction.result_code if override is None else override
        desc = transaction.result_desc if override is None else codes.describe(override)
        return Reply(
            200, query_result_body(transaction.merchant_request_id, checkout_id, code, desc)
        )

    @staticmethod
    def _take_query_anomaly(transaction: Transaction) -> QueryAnomaly:
        anomaly = transaction.scenario.query_anomaly
        if anomaly is QueryAnomaly.NONE or transaction.query_anomalies_left is None:
            return anomaly
        if transaction.query_anomalies_left <= 0:
            return QueryAnomaly.NONE
        transaction.query_anomalies_left -= 1
        return anomaly

    @staticmethod
    def _unknown_checkout(checkout_id: str, answer: UnknownCheckoutAnswer) -> Reply:
        if answer is UnknownCheckoutAnswer.BEING_PROCESSED:
            return _error_reply(codes.BEING_PROCESSED, request_id=checkout_id)
        if answer is UnknownCheckoutAnswer.DOES_NOT_EXIST:
            return _error_reply(codes.TRANSACTION_NOT_FOUND)
        return _error_reply(codes.invalid_field("CheckoutRequestID"))

    # ----------------------------------------------------------------- transactions

    def resolve(self, checkout_id: str, request: ResolveRequest) -> TransactionView:
        """Answer a pending prompt now, as the customer would; its callbacks follow the
        phone's scenario (late, duplicated or dropped)."""
        transaction = self._transactions.get(checkout_id)
        if transaction is None:
            raise ControlError(404, f"no transaction {checkout_id}")
        now = self.clock.monotonic()
        if not transaction.pending(now):
            raise ControlError(409, f"transaction {checkout_id} is already resolved")
        transaction.resolve_at = now
        transaction.result_code = request.result_code
        transaction.result_desc = request.result_desc or codes.describe(request.result_code)
        self.courier.plan(transaction)
        return self.transaction_view(transaction)

    def settled_transactions(self, merchant: Merchant) -> list[Transaction]:
        """A shortcode's pushes that have resolved, in acceptance order."""
        now = self.clock.monotonic()
        return [
            t for t in self._transactions.values() if t.merchant is merchant and not t.pending(now)
        ]

    def transaction_view(self, transaction: Transaction) -> TransactionView:
        now = self.clock.monotonic()
        state = transaction.state(now)
        resolved = state is TransactionState.RESOLVED
        return TransactionView(
            checkout_request_id=transaction.checkout_request_id,
            merchant_request_id=transaction.merchant_request_id,
            shortcode=transaction.merchant.shortcode,
            phone=transaction.phone,
            party_a=transaction.party_a,
            party_b=transaction.party_b,
            amount=transaction.amount,
            account_reference=transaction.account_reference,
            transaction_type=transaction.transaction_type,
            state=state,
            pushed_at=transaction.pushed_wall,
            resolves_at=transaction.resolved_wall(),
            result_code=transaction.result_code if resolved else None,
            result_desc=transaction.result_desc if resolved else None,
            receipt=transaction.receipt if resolved and transaction.result_code == 0 else None,
            callbacks_planned=transaction.callbacks_planned,
            callbacks_sent=transaction.callbacks_sent,
            queries=transaction.queries,
        )

    def transactions(self, wanted: LogFilter) -> list[TransactionView]:
        """Accepted pushes that match `wanted` (its since and limit are for logs)."""
        chosen = (
            t
            for t in self._transactions.values()
            if wanted.admits(t.phone, t.merchant.shortcode, t.checkout_request_id)
        )
        return [self.transaction_view(t) for t in chosen]

    # ----------------------------------------------------------------- logs

    def requests(self, wanted: LogFilter) -> list[RequestLogEntry]:
        """Logged requests, oldest first, as `wanted` says."""
        return wanted.select(self._requests)

    def callbacks(self, wanted: LogFilter) -> list[CallbackDelivery]:
        return self.courier.deliveries(wanted)


def _plain(value: object) -> str | None:
    """A correlation value from a raw body, if it is a plain string or number."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)[:64]


def _trim(window: deque[float], older_than: float) -> None:
    while window and window[0] <= older_than:
        window.popleft()
